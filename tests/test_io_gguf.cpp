// GGUF reader: ggml block decoders against gguf-py's (tests/golden/ggml_blocks.json), a small file
// written here read back, and hostile files (every truncation, bad fields) rejected with a message.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mxq/error.h"
#include "mxq/format.h"
#include "mxq/io/gguf.h"

namespace mxq::io {
namespace {

std::vector<uint8_t> from_hex(const std::string& h) {
  std::vector<uint8_t> b(h.size() / 2);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return b;
}

TEST(GgmlDecoders, MatchGgufPy) {
  std::ifstream f(std::string(MXQ_GOLDEN_DIR) + "/ggml_blocks.json");
  ASSERT_TRUE(f) << "tests/golden/ggml_blocks.json is missing (made by make_ggml_golden.py)";
  const auto j = nlohmann::json::parse(f);
  int types = 0;
  for (const auto& c : j["cases"]) {
    const auto* info = ggml_type_info(c["type_id"].get<uint32_t>());
    ASSERT_NE(info, nullptr) << c["type"];
    const auto raw = from_hex(c["bytes"]);
    const size_t n = c["elements"];
    ASSERT_EQ(raw.size(), n / info->block_elems * info->block_bytes) << info->name;
    std::vector<float> y(n);
    info->dequantize(raw.data(), n, y.data());
    const auto want = c["f32_bits"].get<std::vector<uint32_t>>();
    size_t nonzero = 0;
    for (size_t i = 0; i < n; ++i) {
      // ggml decodes the E2M1 code 0x8 as +0 (its value table holds integers); mxq keeps the
      // spec's -0. That is the one difference allowed: zeros compare as values.
      if (want[i] == 0)
        ASSERT_EQ(y[i], 0.0f) << info->name << " element " << i;
      else
        ASSERT_EQ(f32_bits(y[i]), want[i]) << info->name << " element " << i;
      nonzero += y[i] != 0.0f;
    }
    EXPECT_GT(nonzero, n / 2) << info->name;  // the vectors are not degenerate
    ++types;
  }
  EXPECT_EQ(types, 11);
}

// A minimal GGUF writer for tests: metadata and tensors laid out as the format says.
class GgufBuilder {
 public:
  template <class T> void put(T v) { const auto* p = reinterpret_cast<const uint8_t*>(&v); b.insert(b.end(), p, p + sizeof(T)); }
  void str(const std::string& s) { put<uint64_t>(s.size()); b.insert(b.end(), s.begin(), s.end()); }
  std::vector<uint8_t> b;
};

struct TestTensor { std::string name; std::vector<uint64_t> ne; uint32_t type; std::vector<uint8_t> data; };

std::vector<uint8_t> make_gguf(const std::vector<TestTensor>& tensors, bool extra_kv = true) {
  GgufBuilder g;
  g.b = {'G', 'G', 'U', 'F'};
  g.put<uint32_t>(3);
  g.put<uint64_t>(tensors.size());
  g.put<uint64_t>(extra_kv ? 4 : 1);
  g.str("general.architecture"); g.put<uint32_t>(8); g.str("llama");
  if (extra_kv) {
    g.str("llama.block_count"); g.put<uint32_t>(4); g.put<uint32_t>(30);
    g.str("llama.rope.freq_base"); g.put<uint32_t>(6); g.put<float>(100000.f);
    g.str("tokenizer.ggml.tokens"); g.put<uint32_t>(9); g.put<uint32_t>(8); g.put<uint64_t>(2);
    g.str("<s>"); g.str("hello");
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    g.str(t.name);
    g.put<uint32_t>(t.ne.size());
    for (auto d : t.ne) g.put<uint64_t>(d);
    g.put<uint32_t>(t.type);
    g.put<uint64_t>(offset);
    offset += (t.data.size() + 31) / 32 * 32;
  }
  while (g.b.size() % 32) g.b.push_back(0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    g.b.insert(g.b.end(), tensors[i].data.begin(), tensors[i].data.end());
    while (i + 1 < tensors.size() && g.b.size() % 32) g.b.push_back(0);  // the file ends at the data
  }
  return g.b;
}

std::string write_temp(const std::vector<uint8_t>& bytes, const std::string& name) {
  // Named per process: ctest runs the tests of this file in parallel processes.
  const auto p = std::filesystem::temp_directory_path() /
                 ("mxq_test_" + name + "_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return p.string();
}

std::vector<TestTensor> sample_tensors() {
  std::vector<uint8_t> f32(8 * 4);
  for (int i = 0; i < 8; ++i) { const float v = 0.5f * i - 1.f; std::memcpy(&f32[4 * i], &v, 4); }
  std::vector<uint8_t> q8(2 * 34);
  for (int b = 0; b < 2; ++b) {
    const uint16_t d = fp16_from_f32(0.25f * (b + 1)).bits;
    std::memcpy(&q8[34 * b], &d, 2);
    for (int j = 0; j < 32; ++j) q8[34 * b + 2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  }
  return {{"norm.weight", {4, 2}, 0, f32}, {"blk.0.ffn_up.weight", {32, 2}, 8, q8}};
}

TEST(Gguf, ReadsWhatWasWritten) {
  const std::string path = write_temp(make_gguf(sample_tensors()), "ok");
  GgufFile f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 30u);
  EXPECT_EQ(f.get_float("llama.rope.freq_base"), 100000.0);
  const auto& toks = std::get<std::vector<GgufValue>>(f.find("tokenizer.ggml.tokens")->v);
  ASSERT_EQ(toks.size(), 2u);
  EXPECT_EQ(std::get<std::string>(toks[1].v), "hello");
  ASSERT_EQ(f.tensors().size(), 2u);
  const auto& norm = f.tensor("norm.weight");
  EXPECT_EQ(norm.shape(), (std::vector<uint64_t>{2, 4}));
  const auto v = f.dequantize(norm);
  EXPECT_EQ(v[7], 2.5f);
  const auto q = f.dequantize(f.tensor("blk.0.ffn_up.weight"));
  EXPECT_EQ(q[0], -4.0f);   // 0.25 · -16
  EXPECT_EQ(q[63], 7.5f);   // 0.5 · 15
  EXPECT_THROW(f.tensor("missing"), Error);
  EXPECT_THROW(f.get_string("llama.block_count"), Error);
}

// Every strict prefix of a valid file is a truncated file: each must be rejected, none may crash.
TEST(Gguf, EveryTruncationIsAnError) {
  const auto good = make_gguf(sample_tensors());
  for (size_t len = 0; len < good.size(); len += (len < 300 ? 1 : 17)) {
    const std::string path = write_temp({good.begin(), good.begin() + len}, "trunc");
    EXPECT_THROW(GgufFile{path}, Error) << "prefix of " << len << " bytes";
  }
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile f(write_temp(bytes, "bad"));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Gguf, HostileFieldsAreNamed) {
  const auto good = make_gguf(sample_tensors(), false);
  // Offsets in the 1-kv file: 4 magic, 4 version, 8 n_tensors, 8 n_kv, then the kv and tensor infos.
  auto patch = [&](size_t at, auto v) { auto b = good; std::memcpy(&b[at], &v, sizeof v); return b; };
  EXPECT_NE(error_of(patch(0, uint32_t{0x46554747 ^ 1})).find("bad magic"), std::string::npos);
  EXPECT_NE(error_of(patch(4, uint32_t{4})).find("version 4"), std::string::npos);
  EXPECT_NE(error_of(patch(16, uint64_t{1} << 40)).find("more than the file can hold"), std::string::npos);
  const size_t kv_end = 24 + 8 + 20 + 4 + 8 + 5;
  const size_t t0 = kv_end;  // first tensor info: name (8 + 11), n_dims, ne[2], type, offset
  const size_t ndims = t0 + 8 + 11, ne0 = ndims + 4, type = ne0 + 16, off = type + 4;
  EXPECT_NE(error_of(patch(ndims, uint32_t{5})).find("5 dimensions"), std::string::npos);
  EXPECT_NE(error_of(patch(type, uint32_t{99})).find("ggml type 99"), std::string::npos);
  EXPECT_NE(error_of(patch(off, uint64_t{8})).find("not aligned"), std::string::npos);
  EXPECT_NE(error_of(patch(off, uint64_t{1} << 20)).find("outside the file"), std::string::npos);
  EXPECT_NE(error_of(patch(ne0, uint64_t{1} << 62)).find("overflows"), std::string::npos);
  // The Q8_0 tensor's first dimension must be a multiple of 32.
  const size_t t1_ne0 = off + 8 + 8 + 19 + 4;
  EXPECT_NE(error_of(patch(t1_ne0, uint64_t{33})).find("not a multiple"), std::string::npos);
  EXPECT_NE(error_of(patch(t1_ne0, uint64_t{64})).find("outside the file"), std::string::npos);
  // A string whose length runs past the end of the file.
  EXPECT_NE(error_of(patch(24, uint64_t{1} << 50)).find("truncated"), std::string::npos);
}

TEST(Gguf, MissingFileIsNamed) {
  try {
    GgufFile f("/nonexistent/model.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace mxq::io
