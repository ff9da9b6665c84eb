// safetensors reader and writer (format: reference/numerics.md §8). The reader applies every check
// of the reference implementation: header length within limits and the file, valid JSON object, no
// duplicate names, known dtypes, dtype × shape = byte size, offsets that tile the data buffer
// exactly from 0 to its end.
#include "mxq/io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "mxq/error.h"

namespace mxq::io {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit

constexpr DTypeInfo kDTypes[] = {
    {DType::boolean, "BOOL", 8},       {DType::f4, "F4", 4},
    {DType::f6_e2m3, "F6_E2M3", 6},    {DType::f6_e3m2, "F6_E3M2", 6},
    {DType::u8, "U8", 8},              {DType::i8, "I8", 8},
    {DType::f8_e5m2, "F8_E5M2", 8},    {DType::f8_e4m3, "F8_E4M3", 8},
    {DType::f8_e8m0, "F8_E8M0", 8},    {DType::f8_e4m3fnuz, "F8_E4M3FNUZ", 8},
    {DType::f8_e5m2fnuz, "F8_E5M2FNUZ", 8}, {DType::i16, "I16", 16},
    {DType::u16, "U16", 16},           {DType::f16, "F16", 16},
    {DType::bf16, "BF16", 16},         {DType::i32, "I32", 32},
    {DType::u32, "U32", 32},           {DType::f32, "F32", 32},
    {DType::c64, "C64", 64},           {DType::f64, "F64", 64},
    {DType::i64, "I64", 64},           {DType::u64, "U64", 64},
};

uint64_t json_uint(const nlohmann::json& v, const std::string& path, const std::string& tensor,
                   const char* field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  fail("{}: tensor '{}': {} must hold non-negative integers, found {}", path, tensor, field, v.dump());
}

}  // namespace

const DTypeInfo& dtype_info(DType d) { return kDTypes[static_cast<size_t>(d)]; }

const DTypeInfo* dtype_from_name(std::string_view name) {
  for (const auto& t : kDTypes)
    if (name == t.name) return &t;
  return nullptr;
}

uint64_t tensor_bytes(DType d, std::span<const uint64_t> shape, std::string_view what) {
  uint64_t bits = static_cast<uint64_t>(dtype_info(d).bits);
  for (uint64_t dim : shape)
    if (__builtin_mul_overflow(bits, dim, &bits)) fail("{}: the size of shape overflows 64 bits", what);
  if (bits % 8 != 0) fail("{}: {} elements of {} do not fill whole bytes", what, bits / dtype_info(d).bits, dtype_info(d).name);
  return bits / 8;
}

uint64_t TensorView::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // validated when the file was read
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const auto bytes = file_.bytes();
  if (bytes.size() < 8) fail("{}: truncated: {} bytes, shorter than the 8-byte header length", path, bytes.size());
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > kMaxHeaderBytes) fail("{}: header length {} exceeds the {} byte limit", path, n, kMaxHeaderBytes);
  if (n > bytes.size() - 8) fail("{}: header length {} runs past the end of the file ({} bytes)", path, n, bytes.size());
  const auto* hdr = reinterpret_cast<const char*>(bytes.data() + 8);
  if (n == 0 || hdr[0] != '{') fail("{}: the header is not a JSON object", path);

  // Parse, refusing duplicate names at the top level (the JSON library would keep the last one).
  std::set<std::string> seen;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hdr, hdr + n, [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
      if (depth == 1 && ev == nlohmann::json::parse_event_t::key && !seen.insert(v.get<std::string>()).second)
        fail("{}: the header names tensor '{}' twice", path, v.get<std::string>());
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: the header is not a JSON object", path);

  const uint64_t data_size = bytes.size() - 8 - n;
  const uint8_t* data = bytes.data() + 8 + n;
  struct Range { uint64_t begin, end; size_t index; };
  std::vector<Range> ranges;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ is not an object", path);
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string()) fail("{}: __metadata__ '{}' is not a string", path, k);
        metadata_[k] = mv.get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail("{}: tensor '{}': needs dtype, shape and data_offsets", path, name);
    const auto& jd = v["dtype"];
    const DTypeInfo* dt = jd.is_string() ? dtype_from_name(jd.get<std::string>()) : nullptr;
    if (!dt) fail("{}: tensor '{}': unknown dtype {}", path, name, jd.dump());
    const auto& js = v["shape"];
    const auto& jo = v["data_offsets"];
    if (!js.is_array()) fail("{}: tensor '{}': shape is not an array", path, name);
    if (!jo.is_array() || jo.size() != 2) fail("{}: tensor '{}': data_offsets is not [begin, end]", path, name);
    TensorView t{name, dt->dtype, {}, {}};
    for (const auto& d : js) t.shape.push_back(json_uint(d, path, name, "shape"));
    const uint64_t begin = json_uint(jo[0], path, name, "data_offsets");
    const uint64_t end = json_uint(jo[1], path, name, "data_offsets");
    const uint64_t want = tensor_bytes(t.dtype, t.shape, fmt::format("{}: tensor '{}'", path, name));
    if (end < begin || end > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}) do not lie inside the {}-byte data buffer", path, name, begin, end, data_size);
    if (end - begin != want)
      fail("{}: tensor '{}': {} with shape {} needs {} bytes, data_offsets give {}", path, name,
           dt->name, js.dump(), want, end - begin);
    t.data = {data + begin, end - begin};
    ranges.push_back({begin, end, tensors_.size()});
    tensors_.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (const auto& r : ranges) {
    const auto& name = tensors_[r.index].name;
    if (r.begin < at) fail("{}: tensor '{}': data [{}, {}) overlaps the previous tensor", path, name, r.begin, r.end);
    if (r.begin > at) fail("{}: tensor '{}': gap of {} bytes before its data at {}", path, name, r.begin - at, r.begin);
    at = r.end;
  }
  if (at != data_size) fail("{}: {} bytes after the last tensor are not indexed by the header", path, data_size - at);
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string path, std::vector<TensorSpec> specs,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), specs_(std::move(specs)) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& t : specs_) {
    if (t.name == "__metadata__") fail("{}: '__metadata__' is reserved and cannot name a tensor", path_);
    if (!names.insert(t.name).second) fail("{}: tensor '{}' is listed twice", path_, t.name);
    const uint64_t bytes = tensor_bytes(t.dtype, t.shape, fmt::format("{}: tensor '{}'", path_, t.name));
    header[t.name] = {{"dtype", dtype_info(t.dtype).name}, {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) fail("{}: cannot create: {}", tmp_, std::strerror(errno));
  const uint64_t n = text.size();
  if (std::fwrite(&n, 8, 1, file_) != 1 || std::fwrite(text.data(), 1, n, file_) != n) {
    const int err = errno;
    std::fclose(file_);  // the destructor does not run for a constructor that throws
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
    fail("{}: write failed: {}", tmp_, std::strerror(err));
  }
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (file_) {  // not committed: leave nothing behind
    std::fclose(file_);
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

void SafetensorsStreamWriter::append(std::string_view name, std::span<const uint8_t> bytes) {
  if (!file_ || next_ >= specs_.size()) fail("{}: tensor '{}' comes after the last one", path_, name);
  const TensorSpec& t = specs_[next_];
  const uint64_t want = tensor_bytes(t.dtype, t.shape, t.name);
  if (name != t.name || bytes.size() != want)
    fail("{}: expected tensor '{}' ({} bytes) next, got '{}' ({} bytes)", path_, t.name, want, name, bytes.size());
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    fail("{}: write failed: {}", tmp_, std::strerror(errno));
  ++next_;
}

void SafetensorsStreamWriter::commit() {
  if (!complete()) fail("{}: only {} of {} tensors were written", path_, next_, specs_.size());
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  std::error_code ec;
  if (!closed) {
    std::filesystem::remove(tmp_, ec);
    fail("{}: write failed: {}", tmp_, std::strerror(errno));
  }
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) {
    const std::string why = ec.message();
    std::filesystem::remove(tmp_, ec);
    fail("{}: cannot rename the finished file into place: {}", path_, why);
  }
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<uint64_t> shape,
                            std::span<const uint8_t> bytes) {
  const uint64_t want = tensor_bytes(dtype, shape, fmt::format("tensor '{}'", name));
  if (want != bytes.size()) fail("tensor '{}': shape needs {} bytes, {} given", name, want, bytes.size());
  for (const auto& s : specs_)
    if (s.name == name) fail("tensor '{}' added twice", name);
  if (name == "__metadata__") fail("'__metadata__' is reserved and cannot name a tensor");
  specs_.push_back({std::move(name), dtype, std::move(shape)});
  bytes_.push_back(bytes);
}

void SafetensorsWriter::write(const std::string& path) const {
  SafetensorsStreamWriter w(path, specs_, metadata_);
  for (size_t i = 0; i < specs_.size(); ++i) w.append(specs_[i].name, bytes_[i]);
  w.commit();
}

}  // namespace mxq::io
