// mxq/io/safetensors.h — safetensors files: a validating, memory-mapped, zero-copy reader and an
// atomic writer. Format: u64 little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
// data buffer, which the tensors must cover exactly (no gaps, no overlap, nothing after).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mxq/io/mapped_file.h"

namespace mxq::io {

enum class DType : uint8_t {
  boolean, f4, f6_e2m3, f6_e3m2, u8, i8, f8_e5m2, f8_e4m3, f8_e8m0, f8_e4m3fnuz, f8_e5m2fnuz,
  i16, u16, f16, bf16, i32, u32, f32, c64, f64, i64, u64,
};

struct DTypeInfo {
  DType dtype;
  const char* name;  // as written in the header ("BF16", "F8_E4M3", ...)
  int bits;          // per element
};
const DTypeInfo& dtype_info(DType d);
const DTypeInfo* dtype_from_name(std::string_view name);  // nullptr if unknown

// Bytes of a tensor of this dtype and shape; throws mxq::Error on overflow or a partial byte.
uint64_t tensor_bytes(DType d, std::span<const uint64_t> shape, std::string_view what);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  std::span<const uint8_t> data;  // points into the mapped file
  uint64_t elements() const;
};

class SafetensorsFile {
 public:
  // Maps and validates the whole header; throws mxq::Error naming the file, the tensor and the fault.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in file order
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile file_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// What a writer is told about a tensor before its bytes arrive.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
};

// Writes one safetensors file as a stream: the header (padded with spaces to a multiple of 8, so
// the data buffer is 8-byte aligned) goes out at construction, then each tensor's bytes in the
// order of `specs`, so memory holds one tensor at a time. Everything goes to `path + ".tmp"`;
// commit() renames it into place, and a writer destroyed before commit() removes it, so a failure
// never leaves a partial file under the final name.
class SafetensorsStreamWriter {
 public:
  SafetensorsStreamWriter(std::string path, std::vector<TensorSpec> specs,
                          const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsStreamWriter();
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;

  // The next tensor's bytes; its name and size must be the next spec's.
  void append(std::string_view name, std::span<const uint8_t> bytes);
  void commit();
  bool complete() const { return next_ == specs_.size(); }

 private:
  std::string path_, tmp_;
  std::vector<TensorSpec> specs_;
  size_t next_ = 0;
  std::FILE* file_ = nullptr;
};

// Collects tensors (by reference) and writes one safetensors file with the stream writer.
class SafetensorsWriter {
 public:
  void set_metadata(std::string key, std::string value);
  // The bytes are copied only when write() runs; they must stay valid until then.
  void add(std::string name, DType dtype, std::vector<uint64_t> shape, std::span<const uint8_t> bytes);
  void write(const std::string& path) const;

 private:
  std::vector<TensorSpec> specs_;
  std::vector<std::span<const uint8_t>> bytes_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace mxq::io
