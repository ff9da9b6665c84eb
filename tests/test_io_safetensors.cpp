// safetensors: what the writer writes the reader reads back, byte for byte; every truncation and
// every malformed header is rejected with a message naming the file, the tensor and the fault.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mxq/error.h"
#include "mxq/io/safetensors.h"

namespace mxq::io {
namespace {

namespace fs = std::filesystem;

// One folder per process: ctest runs the tests of this file in parallel processes.
fs::path temp_dir() {
  const auto d = fs::temp_directory_path() / ("mxq_test_safetensors_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void write_all(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
}

// A file from a raw header string and data buffer.
std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0x5A);
  const uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  const auto p = temp_dir() / "bad.safetensors";
  write_all(p, bytes);
  try {
    SafetensorsFile f(p.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, WriteThenRead) {
  std::vector<uint8_t> w(6 * 4 * 2), s(6), scalar(4), packed(8);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(120 + i);
  const float one = 1.0f;
  std::memcpy(scalar.data(), &one, 4);
  SafetensorsWriter wr;
  wr.set_metadata("format", "pt");
  wr.add("model.layers.0.mlp.up_proj.weight", DType::bf16, {6, 4}, w);
  wr.add("model.layers.0.mlp.up_proj.weight_scale", DType::u8, {6, 1}, s);
  wr.add("model.layers.0.mlp.up_proj.input_scale", DType::f32, {}, scalar);
  wr.add("packed", DType::f4, {4, 4}, packed);
  wr.add("empty", DType::f32, {0, 3}, {});
  const auto p = temp_dir() / "ok.safetensors";
  wr.write(p.string());
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));

  SafetensorsFile f(p.string());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), 5u);
  const TensorView* t = f.find("model.layers.0.mlp.up_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::bf16);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{6, 4}));
  EXPECT_TRUE(std::equal(t->data.begin(), t->data.end(), w.begin(), w.end()));
  EXPECT_EQ(f.find("model.layers.0.mlp.up_proj.input_scale")->elements(), 1u);
  EXPECT_EQ(f.find("packed")->data.size(), 8u);
  EXPECT_EQ(f.find("empty")->data.size(), 0u);
  EXPECT_EQ(f.find("missing"), nullptr);
  // The header is padded so that the data buffer starts 8-byte aligned.
  uint64_t n = 0;
  std::memcpy(&n, read_all(p).data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, EveryTruncationIsAnError) {
  std::vector<uint8_t> w(64);
  SafetensorsWriter wr;
  wr.add("a", DType::f32, {4, 4}, w);
  wr.add("b", DType::u8, {4}, std::span<const uint8_t>(w).first(4));
  const auto p = temp_dir() / "full.safetensors";
  wr.write(p.string());
  const auto good = read_all(p);
  for (size_t len = 0; len < good.size(); ++len)
    EXPECT_FALSE(error_of({good.begin(), good.begin() + len}).empty()) << "prefix of " << len;
  EXPECT_TRUE(error_of(good).empty());
}

TEST(Safetensors, HostileHeadersAreNamed) {
  struct Case { std::string header; size_t data; std::string expect; };
  const Case cases[] = {
      {"[1,2]", 0, "not a JSON object"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]", 4, "not valid JSON"},
      {R"({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4, "unknown dtype"},
      {R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4, "non-negative"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4, "needs 8 bytes"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}})", 4, "inside the 4-byte"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4, "inside"},
      {R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})", 6, "overlaps"},
      {R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}})", 4, "gap of 2"},
      {R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})", 4, "2 bytes after the last"},
      {R"({"a": {"dtype": "U8", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}})", 0, "overflows"},
      {R"({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}})", 2, "whole bytes"},
      {R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})", 2, "twice"},
      {R"({"a": {"dtype": "U8", "shape": [1]}})", 1, "needs dtype, shape and data_offsets"},
      {R"({"__metadata__": {"k": 3}})", 0, "not a string"},
  };
  for (const auto& c : cases) {
    const std::string err = error_of(raw_file(c.header, c.data));
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.header << "\n  gave: " << err;
    EXPECT_NE(err.find("bad.safetensors"), std::string::npos) << err;  // names the file
  }
  // Header length beyond the file and beyond the reference reader's limit.
  auto b = raw_file("{}", 0);
  uint64_t n = 1000;
  std::memcpy(b.data(), &n, 8);
  EXPECT_NE(error_of(b).find("past the end"), std::string::npos);
  n = 200'000'000;
  std::memcpy(b.data(), &n, 8);
  EXPECT_NE(error_of(b).find("limit"), std::string::npos);
}

TEST(Safetensors, WriterRefusesBadInputAndLeavesNothing) {
  std::vector<uint8_t> w(16);
  SafetensorsWriter wr;
  EXPECT_THROW(wr.add("a", DType::f32, {5}, w), Error);  // 20 bytes needed
  wr.add("a", DType::f32, {4}, w);
  EXPECT_THROW(wr.add("a", DType::f32, {4}, w), Error);
  const auto dir = temp_dir() / "no_such_dir" / "x.safetensors";
  EXPECT_THROW(wr.write(dir.string()), Error);
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(dir.string() + ".tmp"));
}

}  // namespace
}  // namespace mxq::io
