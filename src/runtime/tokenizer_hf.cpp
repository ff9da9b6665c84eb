// tokenizer_hf.cpp — a TokenizerSpec from Hugging Face's tokenizer.json (+ tokenizer_config.json).
//
// Supported: model BPE over a byte-level pre-tokenizer (GPT-2, SmolLM, Llama-3, Qwen2 families).
// pre_tokenizer: ByteLevel, Digits, Split, Sequence of these, ending in ByteLevel; no normalizer;
// decoder ByteLevel; post_processor ByteLevel (ids unchanged) or TemplateProcessing (its leading
// special token is the BOS that add_special prepends).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mxq/error.h"
#include "mxq/io/hf_checkpoint.h"
#include "mxq/runtime/tokenizer.h"
#include "tokenizer_spec.h"

namespace mxq::runtime {
namespace {

using json = nlohmann::json;

json parse(std::string_view text, const std::string& origin) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", origin, e.what());
  }
}

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

SplitBehavior split_behavior(const std::string& name, const std::string& origin) {
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  fail("{}: Split behavior '{}' is unknown (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)",
       origin, name);
}

void add_pre_tokenizer(const json& p, const std::string& origin, std::vector<PreTokenizeStep>& steps) {
  const std::string type = type_of(p);
  PreTokenizeStep step;
  if (type == "Sequence") {
    for (const json& child : p.at("pretokenizers")) add_pre_tokenizer(child, origin, steps);
    return;
  }
  if (type == "ByteLevel") {
    step.kind = PreTokenizeStep::Kind::byte_level;
    step.add_prefix_space = p.value("add_prefix_space", true);  // HF's defaults
    step.use_regex = p.value("use_regex", true);
  } else if (type == "Digits") {
    // Rust's char::is_numeric is the N category; runs of them are one piece unless individual.
    step.pattern = p.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)";
  } else if (type == "Split") {
    const json& pattern = p.at("pattern");
    if (pattern.contains("Regex")) {
      step.pattern = pattern["Regex"].get<std::string>();
    } else if (pattern.contains("String")) {
      step.pattern = pattern["String"].get<std::string>();
      step.literal = true;
    } else {
      fail("{}: Split pattern {} is neither {{\"Regex\": ...}} nor {{\"String\": ...}}", origin, pattern.dump());
    }
    step.behavior = split_behavior(p.at("behavior").get<std::string>(), origin);
    step.invert = p.value("invert", false);
  } else {
    fail("{}: pre_tokenizer '{}' is not supported (supported: ByteLevel, Digits, Split, Sequence)", origin,
         type.empty() ? p.dump() : type);
  }
  steps.push_back(std::move(step));
}

// The token id of a tokenizer_config.json entry such as "bos_token": "<s>" or {"content": "<s>"}.
int32_t config_token(const json& config, const char* key, const TokenizerSpec& spec, const std::string& origin) {
  if (!config.contains(key) || config[key].is_null()) return -1;
  const json& v = config[key];
  const std::string content = v.is_object() ? v.value("content", "") : v.get<std::string>();
  for (const AddedToken& t : spec.added)
    if (t.content == content) return t.id;
  for (size_t id = 0; id < spec.pieces.size(); ++id)
    if (spec.pieces[id] == content) return int32_t(id);
  fail("{}: {} '{}' is not in the vocabulary", origin, key, content);
}

void read_model(const json& model, const std::string& origin, TokenizerSpec& spec) {
  const std::string type = type_of(model);
  if (!(type == "BPE" || (type.empty() && model.contains("merges"))))
    fail("{}: tokenizer model type '{}' is not supported (supported: BPE, byte-level)", origin,
         type.empty() ? "(none)" : type);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
      fail("{}: BPE {} is not supported (byte-level BPE has none)", origin, key);
  spec.ignore_merges = model.value("ignore_merges", false);
  // unk_token and byte_fallback only act on a byte missing from the vocabulary; a byte-level
  // vocabulary holds all 256.
  for (const auto& [piece, id_json] : model.at("vocab").items()) {
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id >= (int64_t(1) << 24)) fail("{}: vocabulary id {} of '{}' is out of range", origin, id, piece);
    if (size_t(id) >= spec.pieces.size()) spec.pieces.resize(size_t(id) + 1);
    if (!spec.pieces[size_t(id)].empty()) fail("{}: vocabulary id {} is given twice", origin, id);
    spec.pieces[size_t(id)] = piece;
  }
  for (const json& m : model.at("merges")) {
    if (m.is_array() && m.size() == 2) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
      fail("{}: merge '{}' is not two tokens separated by one space", origin, s);
    spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
  }
}

void read_added_tokens(const json& added, const json& vocab, const std::string& origin, TokenizerSpec& spec) {
  for (const json& a : added) {
    AddedToken t;
    t.content = a.at("content").get<std::string>();
    // HF's AddedVocabulary gives a token that the model's vocabulary already holds that id.
    t.id = vocab.contains(t.content) ? vocab[t.content].get<int32_t>() : a.at("id").get<int32_t>();
    if (t.id < 0) fail("{}: added token id {} is negative", origin, t.id);
    t.special = a.value("special", false);
    t.normalized = a.value("normalized", !t.special);  // HF's default
    t.lstrip = a.value("lstrip", false);
    t.rstrip = a.value("rstrip", false);
    t.single_word = a.value("single_word", false);
    if (size_t(t.id) >= spec.pieces.size()) spec.pieces.resize(size_t(t.id) + 1);
    spec.added.push_back(std::move(t));
  }
}

// TemplateProcessing's leading special token, the BOS (Llama-3: "<|begin_of_text|>"); -1 if none.
int32_t template_bos(const json& post, const std::string& origin) {
  const std::string type = type_of(post);
  if (post.is_null() || type == "ByteLevel") return -1;
  if (type == "Sequence") {
    int32_t bos = -1;
    for (const json& p : post.at("processors"))
      if (const int32_t b = template_bos(p, origin); b >= 0) bos = b;
    return bos;
  }
  if (type != "TemplateProcessing")
    fail("{}: post_processor '{}' is not supported (supported: ByteLevel, TemplateProcessing)", origin, type);
  const json& single = post.at("single");
  if (single.empty() || !single[0].contains("SpecialToken")) return -1;
  const std::string name = single[0]["SpecialToken"].at("id").get<std::string>();
  const json& ids = post.at("special_tokens").at(name).at("ids");
  if (ids.size() != 1) fail("{}: TemplateProcessing token '{}' is not one id", origin, name);
  return ids[0].get<int32_t>();
}

TokenizerSpec spec_from_hf(const json& tok, const std::string& origin, const json& config,
                           const std::string& config_origin) {
  TokenizerSpec spec;
  spec.origin = origin;
  if (!tok.is_object() || !tok.contains("model")) fail("{}: no \"model\": not a tokenizer.json", origin);
  read_model(tok["model"], origin, spec);
  if (tok.contains("added_tokens")) read_added_tokens(tok["added_tokens"], tok["model"].at("vocab"), origin, spec);
  if (tok.contains("normalizer") && !tok["normalizer"].is_null())
    fail("{}: normalizer '{}' is not supported (mxq runs byte-level BPE on the text as it is)", origin,
         type_of(tok["normalizer"]));
  if (!tok.contains("pre_tokenizer") || tok["pre_tokenizer"].is_null())
    fail("{}: no pre_tokenizer: only byte-level BPE is supported (a ByteLevel pre-tokenizer)", origin);
  add_pre_tokenizer(tok["pre_tokenizer"], origin, spec.pre_tokenizer);
  if (spec.pre_tokenizer.empty() || spec.pre_tokenizer.back().kind != PreTokenizeStep::Kind::byte_level)
    fail("{}: the pre_tokenizer must end with ByteLevel (only byte-level BPE is supported)", origin);
  for (size_t i = 0; i + 1 < spec.pre_tokenizer.size(); ++i)
    if (spec.pre_tokenizer[i].kind == PreTokenizeStep::Kind::byte_level)
      fail("{}: ByteLevel must be the last pre-tokenizer, it is step {} of {}", origin, i + 1, spec.pre_tokenizer.size());
  if (tok.contains("decoder") && !tok["decoder"].is_null() && type_of(tok["decoder"]) != "ByteLevel")
    fail("{}: decoder '{}' is not supported (supported: ByteLevel)", origin, type_of(tok["decoder"]));

  const int32_t bos_from_template = tok.contains("post_processor") ? template_bos(tok["post_processor"], origin) : -1;
  spec.bos = config_token(config, "bos_token", spec, config_origin);
  spec.eos = config_token(config, "eos_token", spec, config_origin);
  if (spec.bos < 0) spec.bos = bos_from_template;
  // transformers: an explicit add_bos_token wins; otherwise the template decides.
  spec.add_bos = config.contains("add_bos_token") && config["add_bos_token"].is_boolean()
                     ? config["add_bos_token"].get<bool>()
                     : bos_from_template >= 0;
  return spec;
}

TokenizerSpec spec_from_texts(std::string_view tokenizer_json, const std::string& origin,
                              std::string_view config_json, const std::string& config_origin) {
  const json config = config_json.empty() ? json::object() : parse(config_json, config_origin);
  const json tok = parse(tokenizer_json, origin);
  try {
    return spec_from_hf(tok, origin, config, config_origin);
  } catch (const json::exception& e) {  // a field missing or of the wrong type
    fail("{}: malformed tokenizer: {}", origin, e.what());
  }
}

}  // namespace

Tokenizer Tokenizer::from_hf_json(std::string_view tokenizer_json, std::string_view config_json,
                                  const std::string& origin) {
  return Tokenizer(spec_from_texts(tokenizer_json, origin, config_json, origin + " (tokenizer_config.json)"));
}

Tokenizer Tokenizer::from_hf_files(const std::string& tokenizer_path, const std::string& config_path) {
  const std::string config = config_path.empty() ? std::string() : io::read_text_file(config_path);
  return Tokenizer(spec_from_texts(io::read_text_file(tokenizer_path), tokenizer_path, config, config_path));
}

Tokenizer Tokenizer::from_hf_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path tokenizer = fs::path(dir) / "tokenizer.json", config = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(tokenizer))
    fail("{}: no tokenizer.json (mxq reads Hugging Face fast-tokenizer files)", dir);
  return from_hf_files(tokenizer.string(), fs::exists(config) ? config.string() : std::string());
}

}  // namespace mxq::runtime
