// GGUF parsing with a bounds-checked cursor. Layout: magic "GGUF", u32 version, u64 tensor count,
// u64 metadata count, metadata (key string, u32 type, value), tensor infos (name, u32 n_dims,
// u64 ne[n_dims], u32 type, u64 offset), padding to general.alignment (default 32), data.
#include "mxq/io/gguf.h"

#include <cstring>
#include <set>

#include "mxq/error.h"

namespace mxq::io {
namespace {

constexpr uint32_t kTypeU8 = 0, kTypeI8 = 1, kTypeU16 = 2, kTypeI16 = 3, kTypeU32 = 4, kTypeI32 = 5,
                   kTypeF32 = 6, kTypeBool = 7, kTypeString = 8, kTypeArray = 9, kTypeU64 = 10,
                   kTypeI64 = 11, kTypeF64 = 12;
constexpr int kMaxArrayDepth = 4;
constexpr uint32_t kMaxDims = 4;

class Cursor {
 public:
  Cursor(std::span<const uint8_t> b, const std::string& path) : b_(b), path_(path) {}

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return s;
  }
  void need(uint64_t n, const char* what) const {
    if (n > b_.size() - pos_)
      fail("{}: truncated: {} needs {} bytes at offset {}, the file has {}", path_, what, n, pos_,
           b_.size());
  }
  size_t pos() const { return pos_; }
  void seek(size_t p) { pos_ = p; }
  size_t remaining() const { return b_.size() - pos_; }

 private:
  std::span<const uint8_t> b_;
  const std::string& path_;
  size_t pos_ = 0;
};

GgufValue read_value(Cursor& c, uint32_t type, const std::string& key, const std::string& path,
                     int depth) {
  GgufValue v{type, uint64_t{0}};
  switch (type) {
    case kTypeU8: v.v = uint64_t{c.read<uint8_t>("u8 value")}; break;
    case kTypeU16: v.v = uint64_t{c.read<uint16_t>("u16 value")}; break;
    case kTypeU32: v.v = uint64_t{c.read<uint32_t>("u32 value")}; break;
    case kTypeU64: v.v = c.read<uint64_t>("u64 value"); break;
    case kTypeI8: v.v = int64_t{c.read<int8_t>("i8 value")}; break;
    case kTypeI16: v.v = int64_t{c.read<int16_t>("i16 value")}; break;
    case kTypeI32: v.v = int64_t{c.read<int32_t>("i32 value")}; break;
    case kTypeI64: v.v = c.read<int64_t>("i64 value"); break;
    case kTypeF32: v.v = double{c.read<float>("f32 value")}; break;
    case kTypeF64: v.v = c.read<double>("f64 value"); break;
    case kTypeBool: {
      const uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) fail("{}: metadata '{}': bool value {} is neither 0 nor 1", path, key, b);
      v.v = b == 1;
      break;
    }
    case kTypeString: v.v = c.read_string("string value"); break;
    case kTypeArray: {
      if (depth >= kMaxArrayDepth) fail("{}: metadata '{}': arrays nested deeper than {}", path, key, kMaxArrayDepth);
      const uint32_t elem_type = c.read<uint32_t>("array element type");
      const uint64_t count = c.read<uint64_t>("array length");
      // Every element takes at least one byte: a count beyond the file is a lie, not a big array.
      if (count > c.remaining())
        fail("{}: metadata '{}': array of {} elements cannot fit in the {} bytes left", path, key,
             count, c.remaining());
      std::vector<GgufValue> items;
      items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) items.push_back(read_value(c, elem_type, key, path, depth + 1));
      v.v = std::move(items);
      break;
    }
    default:
      fail("{}: metadata '{}': unknown value type {} at offset {}", path, key, type, c.pos() - 4);
  }
  return v;
}

}  // namespace

uint64_t GgufTensor::elements() const {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;  // checked for overflow when the file was read
  return n;
}

GgufFile::GgufFile(const std::string& path) : file_(path) {
  Cursor c(file_.bytes(), path);
  char magic[4];
  c.need(4, "magic");
  std::memcpy(magic, file_.bytes().data(), 4);
  if (std::memcmp(magic, "GGUF", 4) != 0) fail("{}: not a GGUF file (bad magic)", path);
  c.seek(4);
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) fail("{}: GGUF version {} is not supported (2 or 3)", path, version_);
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_kv > c.remaining() || n_tensors > c.remaining())
    fail("{}: header claims {} metadata entries and {} tensors, more than the file can hold", path, n_kv, n_tensors);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key");
    const uint32_t type = c.read<uint32_t>("metadata value type");
    GgufValue v = read_value(c, type, key, path, 0);
    if (!metadata_.emplace(key, std::move(v)).second) fail("{}: duplicate metadata key '{}'", path, key);
  }

  uint64_t alignment = 32;
  if (const GgufValue* a = find("general.alignment")) {
    const auto* u = std::get_if<uint64_t>(&a->v);
    if (!u || *u == 0 || (*u & (*u - 1)) != 0)
      fail("{}: general.alignment must be a non-zero power of two", path);
    alignment = *u;
  }

  struct Pending { GgufTensor t; uint64_t offset, bytes; };
  std::vector<Pending> pending;
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.read_string("tensor name");
    if (!names.insert(t.name).second) fail("{}: duplicate tensor '{}'", path, t.name);
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) fail("{}: tensor '{}': {} dimensions (1 to {} allowed)", path, t.name, n_dims, kMaxDims);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      if (__builtin_mul_overflow(elements, ne, &elements))
        fail("{}: tensor '{}': the product of its dimensions overflows 64 bits", path, t.name);
      t.ne.push_back(ne);
    }
    const uint32_t type_id = c.read<uint32_t>("tensor type");
    t.type = ggml_type_info(type_id);
    if (!t.type) fail("{}: tensor '{}': ggml type {} is not supported", path, t.name, type_id);
    if (t.ne[0] % t.type->block_elems != 0)
      fail("{}: tensor '{}': first dimension {} is not a multiple of the {} block size {}", path,
           t.name, t.ne[0], t.type->name, t.type->block_elems);
    const uint64_t offset = c.read<uint64_t>("tensor offset");
    if (offset % alignment != 0) fail("{}: tensor '{}': offset {} is not aligned to {}", path, t.name, offset, alignment);
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(elements / t.type->block_elems, uint64_t(t.type->block_bytes), &bytes))
      fail("{}: tensor '{}': byte size overflows 64 bits", path, t.name);
    pending.push_back({std::move(t), offset, bytes});
  }

  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  const uint64_t size = file_.bytes().size();
  for (auto& p : pending) {
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(data_start, p.offset, &begin) || __builtin_add_overflow(begin, p.bytes, &end) || end > size)
      fail("{}: tensor '{}': data [{}, {}) lies outside the file ({} bytes)", path, p.t.name,
           data_start + p.offset, data_start + p.offset + p.bytes, size);
    p.t.data = file_.bytes().subspan(begin, p.bytes);
    tensors_.push_back(std::move(p.t));
  }
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  fail("{}: no tensor named '{}'", path(), name);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: metadata '{}' is missing", path(), key);
  const auto* s = std::get_if<std::string>(&v->v);
  if (!s) fail("{}: metadata '{}' is not a string", path(), key);
  return *s;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: metadata '{}' is missing", path(), key);
  if (const auto* u = std::get_if<uint64_t>(&v->v)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v->v); i && *i >= 0) return static_cast<uint64_t>(*i);
  fail("{}: metadata '{}' is not a non-negative integer", path(), key);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: metadata '{}' is missing", path(), key);
  if (const auto* d = std::get_if<double>(&v->v)) return *d;
  fail("{}: metadata '{}' is not a float", path(), key);
}

std::vector<float> GgufFile::dequantize(const GgufTensor& t) const {
  std::vector<float> out(t.elements());
  t.type->dequantize(t.data.data(), out.size(), out.data());
  return out;
}

}  // namespace mxq::io
