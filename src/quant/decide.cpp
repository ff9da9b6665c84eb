// The per-tensor decision: is this tensor a linear weight, does the recipe select it, does a
// ModelOpt default exclusion keep it 16-bit, and does its K fit the format's blocks.
#include <fmt/format.h>

#include <optional>
#include <vector>

#include "mxq/quant/pattern.h"
#include "mxq/quant/recipe.h"

namespace mxq::quant {
namespace {

constexpr std::string_view kWeightSuffix = ".weight";

std::vector<std::string_view> split_dots(std::string_view s) {
  std::vector<std::string_view> parts;
  for (size_t begin = 0;;) {
    const size_t dot = s.find('.', begin);
    parts.push_back(s.substr(begin, dot == std::string_view::npos ? dot : dot - begin));
    if (dot == std::string_view::npos) return parts;
    begin = dot + 1;
  }
}

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// A layer that ModelOpt's default quantizer config leaves unquantized, and the word a rule's
// pattern must spell out to quantize it anyway.
struct Exclusion {
  std::string_view category;  // "lm_head", "embedding", "MoE router", "norm"
  std::string keyword;
};

// ModelOpt disables "*lm_head*", "*output_layer*", "*router*", "*mlp.gate.*",
// "*block_sparse_moe.gate*", "*mlp.shared_expert_gate.*" and never quantizes embeddings or norms
// (not Linear modules). Matched on name components, so gate_proj / gate_up_proj are not routers.
std::optional<Exclusion> default_exclusion(std::string_view prefix) {
  const std::vector<std::string_view> parts = split_dots(prefix);
  const std::string_view last = parts.back();
  if (last == "lm_head" || last == "output_layer") return Exclusion{"lm_head", std::string(last)};
  for (std::string_view p : parts) {
    // embed_tokens (Llama, Qwen, Mixtral), tok_embeddings, word_embeddings, token_embd (GGUF
    // names), embed_in (GPT-NeoX), wte / wpe (GPT-2).
    if (contains(p, "embed") || p == "wte" || p == "wpe")
      return Exclusion{"embedding", std::string(p)};
    if (contains(p, "router")) return Exclusion{"MoE router", "router"};
  }
  // Every MoE family names its router module exactly "gate" (mlp.gate in Qwen-MoE and DeepSeek,
  // block_sparse_moe.gate in Mixtral); the keyword carries its parent so that a pattern like
  // "*gate*", meant for gate_proj, does not lift the exclusion.
  if (last == "gate" && parts.size() >= 2)
    return Exclusion{"MoE router", fmt::format("{}.gate", parts[parts.size() - 2])};
  if (last == "shared_expert_gate") return Exclusion{"MoE router", "shared_expert_gate"};
  for (std::string_view p : parts)
    if (contains(p, "norm") || p.starts_with("ln_")) return Exclusion{"norm", "norm"};
  return std::nullopt;
}

// Elements per scale block along K, or 0 for a format without blocks.
uint64_t block_size(WeightFormat f) {
  switch (f) {
    case WeightFormat::mxfp4:
    case WeightFormat::mxfp8_e4m3: return 32;
    case WeightFormat::nvfp4: return 16;
    case WeightFormat::keep:
    case WeightFormat::fp8_e4m3: return 0;
  }
  return 0;
}

bool matches(std::string_view pattern, std::string_view prefix, std::string_view name) {
  return glob_match(pattern, prefix) || glob_match(pattern, name);
}

const std::string* first_match(const std::vector<std::string>& patterns, std::string_view prefix,
                               std::string_view name) {
  for (const std::string& p : patterns)
    if (matches(p, prefix, name)) return &p;
  return nullptr;
}

Decision keep(std::string reason) {
  Decision d;
  d.reason = std::move(reason);
  return d;
}

}  // namespace

Decision decide(const Recipe& recipe, std::string_view name, std::span<const uint64_t> shape) {
  const bool weight_suffix = name.ends_with(kWeightSuffix);
  const std::string_view prefix =
      weight_suffix ? name.substr(0, name.size() - kWeightSuffix.size()) : name;
  // 3-D MoE expert stacks [E, ., K] (GPT-OSS mlp.experts.gate_up_proj, Llama 4
  // feed_forward.experts.down_proj) are E linear weights in one tensor; their scales and biases
  // (*_scales, *_bias) are not.
  const bool expert_stack = shape.size() == 3 && contains(prefix, "experts") &&
                            (weight_suffix || split_dots(prefix).back().ends_with("_proj"));
  if (!(shape.size() == 2 && weight_suffix) && !expert_stack)
    return keep(shape.size() == 2 ? "not a linear weight (not <layer>.weight)"
                                  : fmt::format("not a linear weight ({}-D)", shape.size()));

  const Rule* rule = nullptr;
  size_t rule_index = 0;
  for (size_t i = 0; i < recipe.rules.size() && rule == nullptr; ++i)
    if (matches(recipe.rules[i].pattern, prefix, name)) {
      rule = &recipe.rules[i];
      rule_index = i + 1;
    }

  if (const auto ex = default_exclusion(prefix)) {
    const bool named = rule != nullptr && contains(rule->pattern, ex->keyword);
    const bool lm_head_asked = ex->category == "lm_head" && recipe.quantize_lm_head;
    if (!named && !lm_head_asked) return keep(fmt::format("default exclusion: {}", ex->category));
  }
  if (first_match(recipe.quantize_patterns, prefix, name) == nullptr)
    return keep("not in quantize_patterns");
  if (const std::string* p = first_match(recipe.ignore_patterns, prefix, name))
    return keep(fmt::format("ignore_patterns '{}'", *p));
  if (rule == nullptr) return keep("no rule matches");
  const std::string rule_label = fmt::format("rule {} '{}'", rule_index, rule->pattern);
  if (rule->format.weight == WeightFormat::keep) return keep(rule_label + ": keep");

  const uint64_t block = block_size(rule->format.weight);
  const uint64_t k = shape.back();
  if (block != 0 && k % block != 0) {
    Decision d = keep(fmt::format("{}: K = {} (last dim) is not a multiple of the {} block size {}",
                                  rule_label, k, weight_format_name(rule->format.weight), block));
    d.format = rule->format;
    d.k_not_block_multiple = true;
    return d;
  }
  return Decision{true, rule->format, rule_label, false};
}

}  // namespace mxq::quant
