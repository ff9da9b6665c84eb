// GGUF -> HF checkpoint. Weights are decoded to float32, un-permuted where llama.cpp's converter
// permuted them, rounded to BF16 (RNE) and written under transformers' names. Architectures: llama
// (Llama 2/3, SmolLM2, Mistral-style) for now; anything else is an error naming what is supported.
#include "mxq/io/gguf_import.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "mxq/error.h"
#include "mxq/format.h"
#include "mxq/io/checkpoint_dir.h"
#include "mxq/io/gguf.h"
#include "mxq/io/safetensors.h"

namespace mxq::io {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

struct LlamaShape {
  uint64_t hidden, intermediate, layers, heads, kv_heads, vocab, context;
  double eps, rope_theta;
};

LlamaShape llama_shape(const GgufFile& g) {
  LlamaShape s{};
  s.hidden = g.get_uint("llama.embedding_length");
  s.intermediate = g.get_uint("llama.feed_forward_length");
  s.layers = g.get_uint("llama.block_count");
  s.heads = g.get_uint("llama.attention.head_count");
  s.kv_heads = g.find("llama.attention.head_count_kv") ? g.get_uint("llama.attention.head_count_kv") : s.heads;
  s.context = g.get_uint("llama.context_length");
  s.eps = g.get_float("llama.attention.layer_norm_rms_epsilon");
  s.rope_theta = g.find("llama.rope.freq_base") ? g.get_float("llama.rope.freq_base") : 10000.0;
  const GgufTensor& emb = g.tensor("token_embd.weight");
  s.vocab = emb.ne.size() == 2 ? emb.ne[1] : 0;
  if (s.heads == 0 || s.kv_heads == 0 || s.hidden % s.heads != 0 || s.heads % s.kv_heads != 0)
    fail("{}: inconsistent attention shape: hidden {} with {} heads and {} key/value heads", g.path(), s.hidden, s.heads, s.kv_heads);
  return s;
}

// transformers' name for a GGUF llama tensor name, or "" for one the model does not use.
std::string hf_name(const std::string& n) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  for (auto [g, h] : kTop)
    if (n == g) return h;
  static const std::regex kBlock(R"(blk\.(\d+)\.(\w+)\.weight)");
  static const std::pair<const char*, const char*> kLayer[] = {
      {"attn_norm", "input_layernorm"},    {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},      {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  std::smatch m;
  if (!std::regex_match(n, m, kBlock)) return "";
  for (auto [g, h] : kLayer)
    if (m[2] == g) return "model.layers." + m[1].str() + "." + h + ".weight";
  return "";
}

// llama.cpp's converter reorders the rows of q_proj and k_proj within each head from transformers'
// rotate-half layout [2, head_dim/2] to interleaved pairs [head_dim/2, 2]. This undoes it:
// w is [heads · head_dim, cols] row-major; hf row (h, j, i) = gguf row (h, i, j).
std::vector<float> unpermute_rope_rows(const std::vector<float>& w, uint64_t heads, uint64_t cols) {
  const uint64_t rows = w.size() / cols, head_dim = rows / heads, half = head_dim / 2;
  std::vector<float> out(w.size());
  for (uint64_t h = 0; h < heads; ++h)
    for (uint64_t j = 0; j < 2; ++j)
      for (uint64_t i = 0; i < half; ++i) {
        const float* src = &w[(h * head_dim + i * 2 + j) * cols];
        std::copy(src, src + cols, &out[(h * head_dim + j * half + i) * cols]);
      }
  return out;
}

ojson llama_config(const GgufFile& g, const LlamaShape& s, bool tied) {
  auto token_id = [&](const char* key, uint64_t dflt) { return g.find(key) ? g.get_uint(key) : dflt; };
  return ojson{{"architectures", {"LlamaForCausalLM"}},
               {"model_type", "llama"},
               {"hidden_size", s.hidden},
               {"intermediate_size", s.intermediate},
               {"num_hidden_layers", s.layers},
               {"num_attention_heads", s.heads},
               {"num_key_value_heads", s.kv_heads},
               {"head_dim", s.hidden / s.heads},
               {"hidden_act", "silu"},
               {"max_position_embeddings", s.context},
               {"rms_norm_eps", s.eps},
               {"rope_theta", s.rope_theta},
               {"rope_scaling", nullptr},
               {"attention_bias", false},
               {"mlp_bias", false},
               {"vocab_size", s.vocab},
               {"tie_word_embeddings", tied},
               {"bos_token_id", token_id("tokenizer.ggml.bos_token_id", 1)},
               {"eos_token_id", token_id("tokenizer.ggml.eos_token_id", 2)},
               {"torch_dtype", "bfloat16"},
               {"mxq_source", {{"format", "gguf"}, {"file", fs::path(g.path()).filename().string()},
                               {"name", g.find("general.name") ? g.get_string("general.name") : ""}}}};
}

std::vector<std::string> string_array(const GgufFile& g, const char* key) {
  const GgufValue* v = g.find(key);
  if (!v) fail("{}: metadata '{}' is missing", g.path(), key);
  const auto* arr = std::get_if<std::vector<GgufValue>>(&v->v);
  if (!arr) fail("{}: metadata '{}' is not an array", g.path(), key);
  std::vector<std::string> out;
  out.reserve(arr->size());
  for (const auto& e : *arr) {
    const auto* s = std::get_if<std::string>(&e.v);
    if (!s) fail("{}: metadata '{}' holds a non-string", g.path(), key);
    out.push_back(*s);
  }
  return out;
}

// The pre-tokenizer that reproduces a GGUF "tokenizer.ggml.pre" family in HF tokenizers terms.
ojson pre_tokenizer(const GgufFile& g) {
  const std::string pre = g.find("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
  const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  if (pre == "smollm")  // digits split one by one, then GPT-2's byte-level regex
    return {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level}}};
  if (pre == "gpt-2" || pre == "default") return byte_level;
  fail("{}: tokenizer pre-tokenizer '{}' is not supported yet (supported: smollm, gpt-2)", g.path(), pre);
}

struct Tokenizer { ojson tokenizer, config, special_map, generation; };

Tokenizer gpt2_tokenizer(const GgufFile& g, uint64_t context) {
  if (g.get_string("tokenizer.ggml.model") != "gpt2")
    fail("{}: tokenizer model '{}' is not supported yet (supported: gpt2 byte-level BPE)", g.path(), g.get_string("tokenizer.ggml.model"));
  const auto tokens = string_array(g, "tokenizer.ggml.tokens");
  const auto merges = string_array(g, "tokenizer.ggml.merges");
  std::vector<int64_t> types(tokens.size(), 1);
  if (const GgufValue* tv = g.find("tokenizer.ggml.token_type")) {
    const auto* arr = std::get_if<std::vector<GgufValue>>(&tv->v);
    if (!arr || arr->size() != tokens.size()) fail("{}: tokenizer.ggml.token_type does not match the vocabulary", g.path());
    for (size_t i = 0; i < arr->size(); ++i) {
      const auto* t = std::get_if<int64_t>(&(*arr)[i].v);
      if (!t) fail("{}: tokenizer.ggml.token_type[{}] is not an integer", g.path(), i);
      types[i] = *t;
    }
  }
  ojson vocab = ojson::object(), added = ojson::array(), decoder = ojson::object();
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = i;
    if (types[i] == 3 || types[i] == 4) {  // control or user-defined: matched before BPE
      const ojson tok = {{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", types[i] == 3}};
      added.push_back(tok);
      ojson dec = tok;
      dec.erase("id");
      decoder[std::to_string(i)] = dec;
    }
  }
  auto token_of = [&](const char* key) -> ojson {
    if (!g.find(key)) return nullptr;
    const uint64_t id = g.get_uint(key);
    if (id >= tokens.size()) fail("{}: {} = {} is outside the vocabulary of {}", g.path(), key, id, tokens.size());
    return tokens[id];
  };
  Tokenizer t;
  const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  t.tokenizer = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
                 {"normalizer", nullptr}, {"pre_tokenizer", pre_tokenizer(g)}, {"post_processor", byte_level},
                 {"decoder", byte_level},
                 {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                            {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                            {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                            {"vocab", vocab}, {"merges", merges}}}};
  const GgufValue* bos_flag = g.find("tokenizer.ggml.add_bos_token");
  const bool add_bos = bos_flag && std::holds_alternative<bool>(bos_flag->v) && std::get<bool>(bos_flag->v);
  t.config = {{"add_bos_token", add_bos}, {"add_prefix_space", false}, {"added_tokens_decoder", decoder},
              {"bos_token", token_of("tokenizer.ggml.bos_token_id")}, {"eos_token", token_of("tokenizer.ggml.eos_token_id")},
              {"unk_token", token_of("tokenizer.ggml.unknown_token_id")}, {"pad_token", token_of("tokenizer.ggml.padding_token_id")},
              {"clean_up_tokenization_spaces", false}, {"model_max_length", context},
              {"tokenizer_class", "GPT2Tokenizer"}};
  if (g.find("tokenizer.chat_template")) t.config["chat_template"] = g.get_string("tokenizer.chat_template");
  for (const char* k : {"bos_token", "eos_token", "unk_token", "pad_token"})
    if (!t.config[k].is_null()) t.special_map[k] = t.config[k];
  t.generation = {{"bos_token_id", g.find("tokenizer.ggml.bos_token_id") ? ojson(g.get_uint("tokenizer.ggml.bos_token_id")) : ojson(nullptr)},
                  {"eos_token_id", g.find("tokenizer.ggml.eos_token_id") ? ojson(g.get_uint("tokenizer.ggml.eos_token_id")) : ojson(nullptr)}};
  return t;
}

}  // namespace

ImportSummary import_gguf(const std::string& gguf_path, const std::string& out_dir, bool force,
                          const ImportProgress& progress) {
  const GgufFile g(gguf_path);
  const std::string arch = g.get_string("general.architecture");
  if (arch != "llama")
    fail("{}: architecture '{}' cannot be imported yet (supported: llama — Llama 2/3, SmolLM2, Mistral)", gguf_path, arch);
  const LlamaShape shape = llama_shape(g);
  const bool tied = std::none_of(g.tensors().begin(), g.tensors().end(),
                                 [](const GgufTensor& t) { return t.name == "output.weight"; });
  const Tokenizer tok = gpt2_tokenizer(g, shape.context);

  // Every name and shape is known from the GGUF header, so the file streams: one tensor in memory.
  std::vector<TensorSpec> specs;
  for (const GgufTensor& t : g.tensors()) {
    const std::string name = hf_name(t.name);
    if (name.empty()) fail("{}: tensor '{}' has no place in a llama model", gguf_path, t.name);
    specs.push_back({name, DType::bf16, t.shape()});
  }
  CheckpointDir out(out_dir, force);
  ImportSummary sum{"LlamaForCausalLM", 0, 0, 0};
  SafetensorsStreamWriter w(out.path("model.safetensors"), specs, {{"format", "pt"}});
  for (size_t k = 0; k < specs.size(); ++k) {
    const GgufTensor& t = g.tensors()[k];
    const std::string& name = specs[k].name;
    std::vector<float> v = g.dequantize(t);
    const uint64_t cols = specs[k].shape.back();
    if (name.ends_with("q_proj.weight")) v = unpermute_rope_rows(v, shape.heads, cols);
    if (name.ends_with("k_proj.weight")) v = unpermute_rope_rows(v, shape.kv_heads, cols);
    std::vector<uint16_t> bits(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (!f32_is_finite(v[i])) fail("{}: tensor '{}' holds a non-finite value at element {}", gguf_path, t.name, i);
      bits[i] = bf16_from_f32(v[i]).bits;
    }
    w.append(name, {reinterpret_cast<const uint8_t*>(bits.data()), bits.size() * 2});
    sum.tensors += 1, sum.parameters += v.size(), sum.bytes_written += bits.size() * 2;
    if (progress) progress(k + 1, specs.size(), name);
  }
  w.commit();
  out.write_json("config.json", llama_config(g, shape, tied));
  out.write_json("generation_config.json", tok.generation);
  out.write_json("tokenizer.json", tok.tokenizer);
  out.write_json("tokenizer_config.json", tok.config);
  out.write_json("special_tokens_map.json", tok.special_map);
  out.commit();
  return sum;
}

}  // namespace mxq::io
