// mxq/io/gguf.h — a validating GGUF (v2/v3) reader: metadata, tensor infos, and dequantization of
// the ggml block types a checkpoint may hold. Every read is bounds-checked: a truncated or hostile
// file gives an mxq::Error naming the file, the byte offset and the field, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mxq/io/mapped_file.h"

namespace mxq::io {

// ggml tensor types mxq can read (ids from ggml.h).
enum class GgmlType : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q4_k = 12, q6_k = 14,
  bf16 = 30, mxfp4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  const char* name;
  int block_elems;
  int block_bytes;
  // Decodes n elements (a multiple of block_elems) from src into dst.
  void (*dequantize)(const uint8_t* src, size_t n, float* dst);
};
// nullptr for a type id mxq does not read.
const GgmlTypeInfo* ggml_type_info(uint32_t type_id);

// A metadata value: scalars widen to the largest type of their kind.
struct GgufValue {
  uint32_t type = 0;  // GGUF value type id (0 u8 ... 12 f64)
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> v;
};

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> ne;      // ggml order: ne[0] is contiguous (a [out, in] weight is {in, out})
  const GgmlTypeInfo* type;
  std::span<const uint8_t> data;
  uint64_t elements() const;
  // PyTorch-order shape (reverse of ne).
  std::vector<uint64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }

  const GgufTensor& tensor(const std::string& name) const;   // throws if absent
  const GgufValue* find(const std::string& key) const;      // nullptr if absent
  std::string get_string(const std::string& key) const;     // throws if absent or not a string
  uint64_t get_uint(const std::string& key) const;          // any unsigned/signed integer >= 0
  double get_float(const std::string& key) const;

  // The tensor decoded to float32, in its stored (row-major, ne[0]-contiguous) order.
  std::vector<float> dequantize(const GgufTensor& t) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace mxq::io
