// Tokenizer: ids identical to Hugging Face `tokenizers` (tests/golden/tokenizer/, made by
// make_tokenizer_golden.py) on the whole WikiText-2 test text with SmolLM2's tokenizer.json, on its
// first 200 KB with the GPT-2, Llama-3 and Qwen2 pre-tokenizers over the same vocabulary, and on
// hand-picked strings; decode inverts encode; a GGUF vocabulary gives the same ids as tokenizer.json;
// bad files are clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mxq/error.h"
#include "mxq/io/gguf.h"
#include "mxq/runtime/tokenizer.h"

namespace {

using mxq::runtime::Tokenizer;
using json = nlohmann::json;
namespace fs = std::filesystem;

const fs::path fixture_dir = fs::path(MXQ_FIXTURE_DIR) / "smollm2_tokenizer";
const fs::path golden_dir = fs::path(MXQ_GOLDEN_DIR) / "tokenizer";
// The project's shared data sits next to the repository (../shared/data).
const fs::path wiki_path =
    fs::path(MXQ_FIXTURE_DIR).parent_path().parent_path().parent_path() / "shared/data/wikitext-2-raw/wiki.test.raw";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> read_u32(const fs::path& p) {
  const std::string bytes = read_file(p);
  std::vector<int32_t> ids(bytes.size() / 4);
  std::memcpy(ids.data(), bytes.data(), ids.size() * 4);  // little-endian, as the script writes
  return ids;
}

fs::path temp_path(const std::string& name) {
  // Named per process: ctest runs the tests of this file in parallel processes.
  return fs::temp_directory_path() / ("mxq_tok_" + std::to_string(::getpid()) + "_" + name);
}

// The SmolLM2 tokenizer.json with a variant's pre-tokenizer and ignore_merges spliced in.
std::string variant_json(const std::string& name) {
  json tok = json::parse(read_file(fixture_dir / "tokenizer.json"));
  if (name != "smollm2") {
    const json variants = json::parse(read_file(golden_dir / "variants.json"));
    tok["pre_tokenizer"] = variants.at(name).at("pre_tokenizer");
    tok["model"]["ignore_merges"] = variants.at(name).at("ignore_merges");
  }
  return tok.dump();
}

const std::vector<std::string> variant_names = {"smollm2", "gpt2", "llama3", "qwen2"};

// Loaded once: four 2 MB tokenizer.json files take a while to parse.
const Tokenizer& tokenizer(const std::string& name) {
  static const std::map<std::string, Tokenizer> all = [] {
    std::map<std::string, Tokenizer> m;
    const std::string config = read_file(fixture_dir / "tokenizer_config.json");
    for (const std::string& n : variant_names) m.emplace(n, Tokenizer::from_hf_json(variant_json(n), config, n));
    return m;
  }();
  return all.at(name);
}

// Empty (with the reason printed by the caller) where the shared data is not present.
std::string wiki_text() {
  static const std::string text = fs::exists(wiki_path) ? read_file(wiki_path) : std::string();
  return text;
}

// "" when equal; else the first differing position with the tokens around it.
std::string first_mismatch(const Tokenizer& tok, const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "";
  const auto show = [&](const std::vector<int32_t>& ids) {
    std::string s;
    for (size_t k = i >= 5 ? i - 5 : 0; k < std::min(ids.size(), i + 6); ++k)
      s += (k == i ? " >>" : " ") + std::to_string(ids[k]) + "'" + tok.token_to_piece(ids[k]) + "'";
    return s;
  };
  size_t byte = 0;
  for (size_t k = 0; k < i; ++k) byte += tok.token_to_piece(want[k]).size();
  return "first mismatch at token " + std::to_string(i) + " (byte " + std::to_string(byte) + " of the text); " +
         std::to_string(got.size()) + " ids vs " + std::to_string(want.size()) + " expected\n  mxq:" + show(got) +
         "\n  HF: " + show(want);
}

TEST(Tokenizer, SmolLM2WholeWikiTextMatchesHF) {
  const std::string text = wiki_text();
  if (text.empty()) GTEST_SKIP() << wiki_path << " is not present";
  const json run = json::parse(read_file(golden_dir / "run.json"));
  ASSERT_EQ(text.size(), run["text_bytes"].get<size_t>()) << wiki_path << " is not the text the golden ids are for";
  const Tokenizer& tok = tokenizer("smollm2");
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok.encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("tokenized %zu bytes into %zu ids in %.3f s (%.1f MB/s, one thread)\n", text.size(), ids.size(),
              seconds, text.size() / seconds / 1e6);
  EXPECT_EQ(first_mismatch(tok, ids, read_u32(golden_dir / "smollm2_wiki.u32")), "");
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(Tokenizer, VariantPreTokenizersMatchHFOnWikiTextSubset) {
  const std::string text = wiki_text();
  if (text.empty()) GTEST_SKIP() << wiki_path << " is not present";
  const json run = json::parse(read_file(golden_dir / "run.json"));
  const std::string subset = text.substr(0, run["subset_bytes"].get<size_t>());
  for (const std::string name : {"gpt2", "llama3", "qwen2"}) {
    const Tokenizer& tok = tokenizer(name);
    const std::vector<int32_t> ids = tok.encode(subset);
    EXPECT_EQ(first_mismatch(tok, ids, read_u32(golden_dir / (name + "_wiki.u32"))), "") << name;
    EXPECT_EQ(tok.decode(ids), subset) << name;
  }
}

// The text less the bytes that have no token: BPE without an unk token drops them (SmolLM2's
// vocabulary has none for 21 bytes, control characters among them), as HF does.
std::string without_untokenizable_bytes(const Tokenizer& tok, const std::string& s) {
  std::string out;
  for (const char c : s)
    if (!tok.encode(std::string(1, c)).empty()) out += c;
  return out;
}

TEST(Tokenizer, HandPickedStringsMatchHF) {
  const json cases = json::parse(read_file(golden_dir / "cases.json"));
  const auto& strings = cases.at("strings");
  for (const std::string& name : variant_names) {
    const Tokenizer& tok = tokenizer(name);
    for (size_t i = 0; i < strings.size(); ++i) {
      const std::string s = strings[i].get<std::string>();
      const auto want = cases["ids"][name][i].get<std::vector<int32_t>>();
      const std::vector<int32_t> ids = tok.encode(s);
      EXPECT_EQ(first_mismatch(tok, ids, want), "") << name << ", case " << i << ": " << s;
      EXPECT_EQ(tok.decode(ids), without_untokenizable_bytes(tok, s)) << name << ", case " << i;
    }
  }
}

TEST(Tokenizer, AddedTokenFlagsMatchHF) {
  const json flagged = json::parse(read_file(golden_dir / "cases.json")).at("flagged");
  json tok = json::parse(variant_json("smollm2"));
  for (const json& t : flagged["added_tokens"]) tok["added_tokens"].push_back(t);
  const Tokenizer t = Tokenizer::from_hf_json(tok.dump(), "", "flagged");
  for (size_t i = 0; i < flagged["strings"].size(); ++i) {
    const std::string s = flagged["strings"][i].get<std::string>();
    const std::vector<int32_t> ids = t.encode(s);
    EXPECT_EQ(first_mismatch(t, ids, flagged["ids"][i].get<std::vector<int32_t>>()), "") << s;
    if (s.find("<L>") == std::string::npos) {  // lstrip/rstrip tokens decode without their whitespace
      EXPECT_EQ(t.decode(ids), s);
    }
  }
}

TEST(Tokenizer, SpecialTokensAndIds) {
  const Tokenizer& tok = tokenizer("smollm2");
  EXPECT_EQ(tok.vocab_size(), 49152u);
  EXPECT_EQ(tok.added_token("<|im_end|>"), 2);
  EXPECT_EQ(tok.added_token("<|im_start|>"), 1);
  EXPECT_EQ(tok.added_token("hello"), std::nullopt);
  EXPECT_EQ(tok.bos_id(), 1);  // tokenizer_config.json: bos_token <|im_start|>, eos_token <|im_end|>
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_FALSE(tok.adds_bos());  // add_bos_token: false
  EXPECT_EQ(tok.encode("Hi", true), tok.encode("Hi", false));
  EXPECT_EQ(tok.token_to_piece(2), "<|im_end|>");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 4093, 198}), "<|im_start|>user\n");
  EXPECT_THROW(tok.token_to_piece(49152), mxq::Error);
  EXPECT_THROW(tok.token_to_piece(-1), mxq::Error);
}

TEST(Tokenizer, TemplateProcessingPrependsBos) {
  // Llama-3's tokenizer.json names its BOS in a TemplateProcessing post-processor, and its
  // tokenizer_config.json says nothing of add_bos_token.
  json tok = json::parse(variant_json("smollm2"));
  tok["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                                       {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                           {"pair", json::array()},
                           {"special_tokens", {{"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {0}}, {"tokens", {"<|endoftext|>"}}}}}}};
  const Tokenizer t = Tokenizer::from_hf_json(tok.dump(), "", "template");
  EXPECT_TRUE(t.adds_bos());
  EXPECT_EQ(t.bos_id(), 0);
  const std::vector<int32_t> plain = t.encode("Hello"), with_bos = t.encode("Hello", true);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos[0], 0);
}

TEST(Tokenizer, AnyBytesRoundTrip) {
  const Tokenizer& tok = tokenizer("smollm2");
  // Invalid UTF-8: stray continuation bytes, truncated sequences, an overlong '/', a surrogate.
  const std::string bad = std::string("ok \x80\xbf x\xc3", 7) + "\xe2\x82" + " \xe0\x80\xaf \xed\xa0\x80" +
                          std::string(1, '\0') + "end\xf0\x9f";
  for (const std::string& name : variant_names) {
    const std::vector<int32_t> ids = tokenizer(name).encode(bad);
    EXPECT_EQ(tokenizer(name).decode(ids), bad) << name;
  }
  // Bytes that no UTF-8 text holds (0xC0, 0xFF, ...) have no token in SmolLM2's vocabulary; with
  // no unk token HF's BPE drops such a symbol, and so does mxq.
  EXPECT_EQ(tok.decode(tok.encode("a\xc0\xff\xfe b")), "a b");
  // Long runs of one class: the regex must neither run out of stack nor go quadratic.
  for (const std::string& run : {std::string(200000, 'a'), std::string(100000, ' '), std::string(50000, '7'),
                                 std::string(60000, '!') + std::string(60000, '\n')}) {
    const std::vector<int32_t> ids = tok.encode(run);
    EXPECT_EQ(tok.decode(ids), run);
  }
}

// A metadata-only GGUF v3 file holding a tokenizer, written as the format says.
class GgufWriter {
 public:
  template <class T> void put(T v) { const auto* p = reinterpret_cast<const uint8_t*>(&v); b_.insert(b_.end(), p, p + sizeof(T)); }
  void str(const std::string& s) { put<uint64_t>(s.size()); b_.insert(b_.end(), s.begin(), s.end()); }
  void kv_string(const std::string& k, const std::string& v) { str(k); put<uint32_t>(8); str(v); ++n_; }
  void kv_u32(const std::string& k, uint32_t v) { str(k); put<uint32_t>(4); put(v); ++n_; }
  void kv_bool(const std::string& k, bool v) { str(k); put<uint32_t>(7); put<uint8_t>(v); ++n_; }
  void kv_strings(const std::string& k, const std::vector<std::string>& v) {
    str(k); put<uint32_t>(9); put<uint32_t>(8); put<uint64_t>(v.size());
    for (const auto& s : v) str(s);
    ++n_;
  }
  void kv_i32s(const std::string& k, const std::vector<int32_t>& v) {
    str(k); put<uint32_t>(9); put<uint32_t>(5); put<uint64_t>(v.size());
    for (int32_t x : v) put(x);
    ++n_;
  }
  void write(const fs::path& p) const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    const uint64_t header[2] = {0, n_};  // tensors, metadata entries
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(header), reinterpret_cast<const uint8_t*>(header) + 16);
    out.insert(out.end(), b_.begin(), b_.end());
    while (out.size() % 32) out.push_back(0);
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(out.data()), out.size());
  }

 private:
  std::vector<uint8_t> b_;
  uint64_t n_ = 0;
};

// The SmolLM2 vocabulary as llama.cpp's converter stores it: added tokens are control tokens (3).
fs::path write_smollm2_gguf(const std::string& pre) {
  const json tok = json::parse(read_file(fixture_dir / "tokenizer.json"));
  std::vector<std::string> tokens(tok["model"]["vocab"].size());
  for (const auto& [piece, id] : tok["model"]["vocab"].items()) tokens.at(id.get<size_t>()) = piece;
  std::vector<int32_t> types(tokens.size(), 1);
  for (const json& a : tok["added_tokens"]) types.at(a["id"].get<size_t>()) = 3;
  GgufWriter w;
  w.kv_string("general.architecture", "llama");
  w.kv_string("tokenizer.ggml.model", "gpt2");
  w.kv_string("tokenizer.ggml.pre", pre);
  w.kv_strings("tokenizer.ggml.tokens", tokens);
  w.kv_i32s("tokenizer.ggml.token_type", types);
  w.kv_strings("tokenizer.ggml.merges", tok["model"]["merges"].get<std::vector<std::string>>());
  w.kv_u32("tokenizer.ggml.bos_token_id", 1);
  w.kv_u32("tokenizer.ggml.eos_token_id", 2);
  w.kv_bool("tokenizer.ggml.add_bos_token", false);
  const fs::path p = temp_path(pre + ".gguf");
  w.write(p);
  return p;
}

TEST(Tokenizer, GgufVocabularyGivesTheSameIds) {
  const json cases = json::parse(read_file(golden_dir / "cases.json"));
  const std::string text = wiki_text();
  const json run = json::parse(read_file(golden_dir / "run.json"));
  const std::string subset = text.substr(0, std::min(text.size(), run["subset_bytes"].get<size_t>()));
  // Each llama.cpp pre-tokenizer name and the HF pre-tokenizer of that family.
  for (const auto& [pre, name] : std::vector<std::pair<std::string, std::string>>{
           {"smollm", "smollm2"}, {"gpt-2", "gpt2"}, {"llama-bpe", "llama3"}, {"qwen2", "qwen2"}}) {
    const fs::path path = write_smollm2_gguf(pre);
    const Tokenizer g = Tokenizer::from_gguf(mxq::io::GgufFile(path.string()));
    fs::remove(path);
    const Tokenizer& hf = tokenizer(name);
    EXPECT_EQ(g.vocab_size(), hf.vocab_size()) << pre;
    EXPECT_EQ(g.bos_id(), 1) << pre;
    EXPECT_EQ(g.eos_id(), 2) << pre;
    EXPECT_EQ(g.added_token("<|im_end|>"), 2) << pre;
    for (size_t i = 0; i < cases["strings"].size(); ++i)
      EXPECT_EQ(first_mismatch(g, g.encode(cases["strings"][i].get<std::string>()),
                               cases["ids"][name][i].get<std::vector<int32_t>>()), "")
          << pre << ", case " << i;
    if (!subset.empty()) {
      EXPECT_EQ(first_mismatch(g, g.encode(subset), hf.encode(subset)), "") << pre;
    }
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mxq::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Tokenizer, BadFilesAreClearErrors) {
  const std::string missing = "/nonexistent/dir/tokenizer.json";
  EXPECT_NE(error_of([&] { Tokenizer::from_hf_files(missing); }).find(missing), std::string::npos);
  EXPECT_NE(error_of([&] { Tokenizer::from_hf_dir("/nonexistent/dir"); }).find("/nonexistent/dir"), std::string::npos);

  const auto write = [](const std::string& name, const std::string& body) {
    const fs::path p = temp_path(name);
    std::ofstream(p, std::ios::binary) << body;
    return p.string();
  };
  const std::string invalid = write("invalid.json", R"({"model": {"type": "BPE", "vocab": {)");
  std::string e = error_of([&] { Tokenizer::from_hf_files(invalid); });
  EXPECT_NE(e.find(invalid), std::string::npos) << e;
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;

  for (const std::string model : {"Unigram", "WordPiece"}) {
    const std::string path = write(model + ".json", R"({"model": {"type": ")" + model + R"(", "vocab": []}})");
    e = error_of([&] { Tokenizer::from_hf_files(path); });
    EXPECT_NE(e.find(path), std::string::npos) << e;
    EXPECT_NE(e.find("'" + model + "' is not supported"), std::string::npos) << e;
    fs::remove(path);
  }

  // A SentencePiece-style pre-tokenizer and a normalizer: named, not silently ignored.
  json tok = json::parse(variant_json("smollm2"));
  tok["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
  e = error_of([&] { Tokenizer::from_hf_json(tok.dump(), "", "metaspace.json"); });
  EXPECT_NE(e.find("metaspace.json: pre_tokenizer 'Metaspace' is not supported"), std::string::npos) << e;
  tok = json::parse(variant_json("smollm2"));
  tok["normalizer"] = {{"type", "NFC"}};
  e = error_of([&] { Tokenizer::from_hf_json(tok.dump(), "", "nfc.json"); });
  EXPECT_NE(e.find("nfc.json: normalizer 'NFC' is not supported"), std::string::npos) << e;
  tok = json::parse(variant_json("smollm2"));
  tok["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  e = error_of([&] { Tokenizer::from_hf_json(tok.dump(), "", "badregex.json"); });
  EXPECT_NE(e.find("badregex.json"), std::string::npos) << e;

  const json config = json::parse(R"({"bos_token": "<not-in-vocab>"})");
  e = error_of([&] { Tokenizer::from_hf_json(variant_json("smollm2"), config.dump(), "cfg"); });
  EXPECT_NE(e.find("<not-in-vocab>"), std::string::npos) << e;
  fs::remove(invalid);
}

// Split behaviours other than Isolated, and a literal pattern, against what HF's
// SplitDelimiterBehavior documents for "the-final--countdown" split on '-'.
TEST(Tokenizer, SplitBehaviours) {
  const std::map<std::string, std::vector<std::string>> want = {
      {"Removed", {"the", "final", "countdown"}},
      {"Isolated", {"the", "-", "final", "-", "-", "countdown"}},
      {"MergedWithPrevious", {"the-", "final-", "-", "countdown"}},
      {"MergedWithNext", {"the", "-final", "-", "-countdown"}},
      {"Contiguous", {"the", "-", "final", "--", "countdown"}},
  };
  // BPE over each piece whole: byte-level without GPT-2's regex.
  json whole_json = json::parse(variant_json("smollm2"));
  whole_json["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  const Tokenizer whole = Tokenizer::from_hf_json(whole_json.dump(), "", "whole");
  for (const auto& [behavior, pieces] : want) {
    json tok = json::parse(variant_json("smollm2"));
    tok["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers",
                             {{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}},
                              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    const Tokenizer t = Tokenizer::from_hf_json(tok.dump(), "", behavior);
    std::vector<int32_t> expected;
    for (const std::string& p : pieces) {
      const auto ids = whole.encode(p);
      expected.insert(expected.end(), ids.begin(), ids.end());
    }
    EXPECT_EQ(first_mismatch(t, t.encode("the-final--countdown"), expected), "") << behavior;
  }
}

}  // namespace
