// tokenizer_gguf.cpp — a TokenizerSpec from a GGUF file's vocabulary (tokenizer.ggml.model "gpt2").
//
// Each tokenizer.ggml.pre family gets the pre-tokenizer of its model's own tokenizer.json, so that
// ids are the ones HF gives (and the ones `mxq import`'s tokenizer.json gives). Control (3) and
// user-defined (4) tokens are added tokens, as gguf_import.cpp writes them.
#include <variant>

#include "mxq/error.h"
#include "mxq/io/gguf.h"
#include "mxq/runtime/tokenizer.h"
#include "tokenizer_spec.h"

namespace mxq::runtime {
namespace {

using io::GgufFile;
using io::GgufValue;

// Meta Llama-3's and Alibaba Qwen2's split patterns, as their tokenizer.json files carry them.
constexpr const char* llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* qwen2_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::vector<GgufValue>& array_of(const GgufFile& g, const char* key) {
  const GgufValue* v = g.find(key);
  if (!v) fail("{}: metadata '{}' is missing", g.path(), key);
  const auto* arr = std::get_if<std::vector<GgufValue>>(&v->v);
  if (!arr) fail("{}: metadata '{}' is not an array", g.path(), key);
  return *arr;
}

std::vector<std::string> strings_of(const GgufFile& g, const char* key) {
  std::vector<std::string> out;
  for (const GgufValue& e : array_of(g, key)) {
    const auto* s = std::get_if<std::string>(&e.v);
    if (!s) fail("{}: metadata '{}' holds a non-string", g.path(), key);
    out.push_back(*s);
  }
  return out;
}

PreTokenizeStep isolate(const char* pattern) {
  PreTokenizeStep s;
  s.pattern = pattern;
  return s;
}

PreTokenizeStep byte_level(bool use_regex) {
  PreTokenizeStep s;
  s.kind = PreTokenizeStep::Kind::byte_level;
  s.use_regex = use_regex;
  return s;
}

void set_pre_tokenizer(const GgufFile& g, TokenizerSpec& spec) {
  const std::string pre = g.find("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
  if (pre == "gpt-2" || pre == "default") {
    spec.pre_tokenizer = {byte_level(true)};
  } else if (pre == "smollm") {  // digits one by one, then GPT-2's regex
    spec.pre_tokenizer = {isolate(R"(\p{N})"), byte_level(true)};
  } else if (pre == "llama-bpe" || pre == "qwen2") {
    spec.pre_tokenizer = {isolate(pre == "qwen2" ? qwen2_pattern : llama3_pattern), byte_level(false)};
    // Llama-3's tokenizer.json sets ignore_merges. Qwen2's also has an NFC normalizer, which mxq
    // does not apply: text that is already NFC (WikiText is) gets the same ids.
    spec.ignore_merges = pre == "llama-bpe";
  } else {
    fail("{}: tokenizer.ggml.pre '{}' is not supported (supported: gpt-2, smollm, llama-bpe, qwen2)", g.path(), pre);
  }
}

int32_t token_id(const GgufFile& g, const char* key, size_t vocab) {
  if (!g.find(key)) return -1;
  const uint64_t id = g.get_uint(key);
  if (id >= vocab) fail("{}: {} = {} is outside the vocabulary of {}", g.path(), key, id, vocab);
  return int32_t(id);
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufFile& g) {
  const std::string model = g.find("tokenizer.ggml.model") ? g.get_string("tokenizer.ggml.model") : "(none)";
  if (model != "gpt2")
    fail("{}: tokenizer model '{}' is not supported (supported: gpt2, byte-level BPE)", g.path(), model);
  TokenizerSpec spec;
  spec.origin = g.path();
  spec.pieces = strings_of(g, "tokenizer.ggml.tokens");
  for (const std::string& m : strings_of(g, "tokenizer.ggml.merges")) {
    const size_t space = m.find(' ');
    if (space == std::string::npos) fail("{}: merge '{}' is not two tokens separated by a space", g.path(), m);
    spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  if (g.find("tokenizer.ggml.token_type")) {
    const auto& types = array_of(g, "tokenizer.ggml.token_type");
    if (types.size() != spec.pieces.size())
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", g.path(), types.size(), spec.pieces.size());
    for (size_t id = 0; id < types.size(); ++id) {
      const auto* t = std::get_if<int64_t>(&types[id].v);
      const auto* u = std::get_if<uint64_t>(&types[id].v);
      if (!t && !u) fail("{}: tokenizer.ggml.token_type[{}] is not an integer", g.path(), id);
      const int64_t type = t ? *t : int64_t(*u);
      if (type != 3 && type != 4) continue;  // control, user-defined
      AddedToken added;
      added.id = int32_t(id);
      added.content = spec.pieces[id];
      added.special = type == 3;
      spec.added.push_back(std::move(added));
    }
  }
  set_pre_tokenizer(g, spec);
  spec.bos = token_id(g, "tokenizer.ggml.bos_token_id", spec.pieces.size());
  spec.eos = token_id(g, "tokenizer.ggml.eos_token_id", spec.pieces.size());
  const GgufValue* add_bos = g.find("tokenizer.ggml.add_bos_token");
  spec.add_bos = add_bos && std::holds_alternative<bool>(add_bos->v) && std::get<bool>(add_bos->v);
  return Tokenizer(std::move(spec));
}

}  // namespace mxq::runtime
