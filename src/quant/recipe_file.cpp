// Recipe files (JSON). Every key is checked: a typo must not silently leave a layer unquantized.
//
//   {
//     "name": "mlp_w4a8",                   optional; default: the file name without extension
//     "base": "MXFP4_WEIGHT_ONLY",          optional preset; its rules follow this file's rules,
//                                           its other settings apply unless given here
//     "rules": [                            ordered, first match wins (at least one rule in all)
//       {"pattern": "*mlp*", "weight": "mxfp4", "activation": "fp8_e4m3_per_tensor_static",
//        "scale_rule": "ceil", "ties": "toward_zero"},
//       {"pattern": "*self_attn*", "weight": "keep"}
//     ],
//     "quantize_patterns": ["*"],           default ["*"]
//     "ignore_patterns": ["*attn*"],        default []
//     "quantize_lm_head": false,
//     "kv_cache": "FP8"                     "" or "FP8"
//   }
//
// A rule's activation defaults to "none". An MX rule without scale_rule / ties gets ModelOpt's
// export options (ceil, toward_zero), so a file that restates a preset writes the same bytes; a
// rule that names its scale_rule gets ties to even unless it names those too (as --scale-rule).
#include <fmt/ranges.h>  // fmt::join

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mxq/error.h"
#include "mxq/quant/recipe.h"

namespace mxq::quant {
namespace {

using nlohmann::json;

constexpr std::array kWeightFormats{WeightFormat::keep, WeightFormat::mxfp4, WeightFormat::nvfp4,
                                    WeightFormat::fp8_e4m3, WeightFormat::mxfp8_e4m3};
constexpr std::array kActivationFormats{
    ActivationFormat::none, ActivationFormat::fp8_e4m3_per_tensor_static,
    ActivationFormat::fp8_e4m3_per_token_dynamic, ActivationFormat::mxfp4,
    ActivationFormat::nvfp4};

// The weight × activation pairs a checkpoint can state, with hf_quant_config.json's quant_algo
// for each (ModelOpt's strings; TensorRT-LLM's W4A16_NVFP4 / W4A8_NVFP4_FP8 where ModelOpt has
// one). Anything else is rejected when the file is read, not when the checkpoint is written.
struct FormatPair {
  WeightFormat weight;
  ActivationFormat activation;
  std::string_view quant_algo;
};
constexpr std::array<FormatPair, 8> kFormatPairs{{
    {WeightFormat::mxfp4, ActivationFormat::none, "MXFP4"},
    {WeightFormat::mxfp4, ActivationFormat::mxfp4, "MXFP4"},
    {WeightFormat::mxfp4, ActivationFormat::fp8_e4m3_per_tensor_static, "W4A8_MXFP4_FP8"},
    {WeightFormat::nvfp4, ActivationFormat::none, "W4A16_NVFP4"},
    {WeightFormat::nvfp4, ActivationFormat::nvfp4, "NVFP4"},
    {WeightFormat::nvfp4, ActivationFormat::fp8_e4m3_per_tensor_static, "W4A8_NVFP4_FP8"},
    {WeightFormat::fp8_e4m3, ActivationFormat::fp8_e4m3_per_tensor_static, "FP8"},
    {WeightFormat::mxfp8_e4m3, ActivationFormat::none, "MXFP8"},
}};

// Where an error is: the file and the key path ("rules[2].weight").
struct Where {
  const std::string& path;

  template <class... Args>
  [[noreturn]] void fail_at(std::string_view key, fmt::format_string<Args...> f,
                            Args&&... args) const {
    fail("recipe file '{}': key '{}': {}", path, key,
         fmt::format(f, std::forward<Args>(args)...));
  }
};

void check_keys(const Where& w, const json& obj, std::string_view where,
                std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : obj.items()) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || key == k;
    if (!ok) {
      const std::string full = where.empty() ? key : fmt::format("{}.{}", where, key);
      w.fail_at(full, "unknown key (known here: {})", fmt::join(known, ", "));
    }
  }
}

const std::string& get_string(const Where& w, const json& v, std::string_view key) {
  if (!v.is_string()) w.fail_at(key, "expected a string, got {}", v.dump());
  return v.get_ref<const std::string&>();
}

std::vector<std::string> get_patterns(const Where& w, const json& v, std::string_view key) {
  if (!v.is_array()) w.fail_at(key, "expected an array of glob patterns, got {}", v.dump());
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i)
    out.push_back(get_string(w, v[i], fmt::format("{}[{}]", key, i)));
  return out;
}

template <class Enum, size_t N, class NameOf>
Enum parse_name(const Where& w, const json& v, std::string_view key, std::string_view what,
                const std::array<Enum, N>& all, NameOf name_of) {
  const std::string& s = get_string(w, v, key);
  std::vector<std::string_view> names;
  for (Enum e : all) {
    if (name_of(e) == s) return e;
    names.push_back(name_of(e));
  }
  w.fail_at(key, "unknown {} '{}' (known: {})", what, s, fmt::join(names, ", "));
}

Rule parse_rule(const Where& w, const json& j, size_t index) {
  const std::string at = fmt::format("rules[{}]", index);
  if (!j.is_object()) w.fail_at(at, "expected an object, got {}", j.dump());
  check_keys(w, j, at, {"pattern", "weight", "activation", "scale_rule", "ties"});
  for (const char* required : {"pattern", "weight"})
    if (!j.contains(required)) w.fail_at(fmt::format("{}.{}", at, required), "missing");

  Rule rule;
  rule.pattern = get_string(w, j["pattern"], at + ".pattern");
  rule.format.weight = parse_name(w, j["weight"], at + ".weight", "weight format",
                                  kWeightFormats, weight_format_name);
  if (j.contains("activation"))
    rule.format.activation = parse_name(w, j["activation"], at + ".activation",
                                        "activation format", kActivationFormats,
                                        activation_format_name);

  const bool mx = rule.format.weight == WeightFormat::mxfp4 ||
                  rule.format.weight == WeightFormat::mxfp8_e4m3;
  for (const char* key : {"scale_rule", "ties"})
    if (j.contains(key) && !mx)
      w.fail_at(fmt::format("{}.{}", at, key), "applies only to MX weight formats, not '{}'",
                weight_format_name(rule.format.weight));
  if (mx) rule.format.mx = {ScaleRule::ceil, TieRule::toward_zero, NonFinite::error};
  if (j.contains("scale_rule")) {
    const std::string& s = get_string(w, j["scale_rule"], at + ".scale_rule");
    const auto r = scale_rule_from_name(s);
    if (!r)
      w.fail_at(at + ".scale_rule", "unknown scale rule '{}' (known: ocp_floor, ceil, even, mse)",
                s);
    rule.format.mx.scale = *r;
    rule.format.mx.ties = TieRule::nearest_even;
  }
  if (j.contains("ties")) {
    const std::string& s = get_string(w, j["ties"], at + ".ties");
    if (s == "nearest_even") rule.format.mx.ties = TieRule::nearest_even;
    else if (s == "toward_zero") rule.format.mx.ties = TieRule::toward_zero;
    else w.fail_at(at + ".ties", "unknown tie rule '{}' (known: nearest_even, toward_zero)", s);
  }

  if (rule.format.weight == WeightFormat::keep) {
    if (rule.format.activation != ActivationFormat::none)
      w.fail_at(at + ".activation",
                "a 'keep' rule leaves the layer 16-bit; activation must be none");
    return rule;
  }
  for (const FormatPair& p : kFormatPairs)
    if (p.weight == rule.format.weight && p.activation == rule.format.activation) return rule;
  std::vector<std::string> pairs;
  for (const FormatPair& p : kFormatPairs)
    pairs.push_back(fmt::format("{}+{}", weight_format_name(p.weight),
                                activation_format_name(p.activation)));
  w.fail_at(at, "weight '{}' with activation '{}' is not a format a checkpoint can state "
                "(supported: {})",
            weight_format_name(rule.format.weight), activation_format_name(rule.format.activation),
            fmt::join(pairs, ", "));
}

// hf_quant_config.json's quant_algo for these rules: one format pair's string, or
// MIXED_PRECISION when the quantizing rules use more than one pair.
std::string derive_quant_algo(const std::vector<Rule>& rules) {
  const FormatPair* first = nullptr;
  for (const Rule& r : rules) {
    if (r.format.weight == WeightFormat::keep) continue;
    for (const FormatPair& p : kFormatPairs) {
      if (p.weight != r.format.weight || p.activation != r.format.activation) continue;
      if (first != nullptr && first != &p) return "MIXED_PRECISION";
      first = &p;
    }
  }
  return first != nullptr ? std::string(first->quant_algo) : std::string();
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("recipe file '{}': cannot open: {}", path, std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::parse_error& e) {
    fail("recipe file '{}': invalid JSON: {}", path, e.what());
  }
}

}  // namespace

Recipe recipe_from_file(const std::string& path) {
  const Where w{path};
  const json j = read_json(path);
  if (!j.is_object()) fail("recipe file '{}': expected a JSON object at the top", path);
  check_keys(w, j, "", {"name", "base", "rules", "quantize_patterns", "ignore_patterns",
                        "quantize_lm_head", "kv_cache"});

  Recipe recipe;
  if (j.contains("base")) {
    const std::string& base = get_string(w, j["base"], "base");
    try {
      recipe = recipe_preset(base);
    } catch (const Error& e) {
      w.fail_at("base", "{}", e.what());
    }
  }
  recipe.name = j.contains("name") ? get_string(w, j["name"], "name")
                                   : std::filesystem::path(path).stem().string();

  if (j.contains("rules")) {
    const json& rules = j["rules"];
    if (!rules.is_array()) w.fail_at("rules", "expected an array of rules, got {}", rules.dump());
    std::vector<Rule> own;
    for (size_t i = 0; i < rules.size(); ++i) own.push_back(parse_rule(w, rules[i], i));
    recipe.rules.insert(recipe.rules.begin(), own.begin(), own.end());
  }
  if (recipe.rules.empty()) w.fail_at("rules", "a recipe needs at least one rule (or a base)");

  if (j.contains("quantize_patterns"))
    recipe.quantize_patterns = get_patterns(w, j["quantize_patterns"], "quantize_patterns");
  if (j.contains("ignore_patterns"))
    recipe.ignore_patterns = get_patterns(w, j["ignore_patterns"], "ignore_patterns");
  if (j.contains("quantize_lm_head")) {
    if (!j["quantize_lm_head"].is_boolean())
      w.fail_at("quantize_lm_head", "expected true or false, got {}", j["quantize_lm_head"].dump());
    recipe.quantize_lm_head = j["quantize_lm_head"].get<bool>();
  }
  if (j.contains("kv_cache")) {
    recipe.kv_cache = get_string(w, j["kv_cache"], "kv_cache");
    if (!recipe.kv_cache.empty() && recipe.kv_cache != "FP8")
      w.fail_at("kv_cache", "unknown KV-cache format '{}' (known: \"\", \"FP8\")", recipe.kv_cache);
  }
  recipe.quant_algo = derive_quant_algo(recipe.rules);
  if (recipe.quant_algo.empty()) w.fail_at("rules", "every rule is 'keep': nothing to quantize");
  return recipe;
}

}  // namespace mxq::quant
