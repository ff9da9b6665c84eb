// mxq/quant/recipe.h — what to quantize and how: recipes (ModelOpt's presets by name, or a user's
// JSON file) and the per-tensor decision the quantizer's plan is built from.
//
// A recipe is an ordered list of glob rules (layer pattern -> format; the first match wins), the
// seed's quantize_patterns / ignore_patterns filter, and ModelOpt's default exclusions
// (embeddings, norms, MoE routers, lm_head), which a rule lifts only by naming the layer.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mxq/format.h"

namespace mxq::quant {

enum class WeightFormat : uint8_t {
  keep,        // leave the tensor as it is (unquantized)
  mxfp4,       // E2M1 codes, one E8M0 scale per 32 along K
  nvfp4,       // E2M1 codes, one E4M3 scale per 16 along K, plus a per-tensor FP32 scale
  fp8_e4m3,    // per-tensor scaled FP8
  mxfp8_e4m3,  // E4M3 elements, one E8M0 scale per 32 along K
};

enum class ActivationFormat : uint8_t {
  none,                        // 16-bit activations (weight-only quantization)
  fp8_e4m3_per_tensor_static,  // one calibrated scale per layer (exported as input_scale)
  fp8_e4m3_per_token_dynamic,  // a scale per token, computed at run time
  mxfp4,                       // dynamic MX blocks of 32 along K, computed at run time
  nvfp4,                       // dynamic NV blocks of 16 along K
};

struct LayerFormat {
  WeightFormat weight = WeightFormat::keep;
  ActivationFormat activation = ActivationFormat::none;
  MxOptions mx{};  // how MX weight blocks are scaled and rounded; unused by other formats
  // How the engine quantizes MX activations at run time. Apart from `mx` because ModelOpt's two
  // MXFP4 paths round differently: its exporter (weights) breaks ties toward zero, its run-time
  // kernel (activations) to even; both use the ceil scale.
  MxOptions activation_mx{ScaleRule::ceil, TieRule::nearest_even, NonFinite::error};
};

struct Rule {
  std::string pattern;  // glob (pattern.h) on the layer prefix or the full tensor name
  LayerFormat format;
};

struct Recipe {
  std::string name;
  // hf_quant_config.json's quant_algo: "MXFP4", "W4A8_MXFP4_FP8", "NVFP4", "FP8", ... or
  // "MIXED_PRECISION" when the rules quantize layers to more than one format.
  std::string quant_algo;
  std::vector<Rule> rules;  // ordered; the first rule whose pattern matches decides
  std::vector<std::string> quantize_patterns{"*"};
  std::vector<std::string> ignore_patterns;
  bool quantize_lm_head = false;  // lifts the lm_head default exclusion (--quantize-lm-head)
  std::string kv_cache;           // "" (16-bit) or "FP8"
};

// The presets, by ModelOpt's names: MXFP4_DEFAULT_CFG, W4A8_MXFP4_FP8_CFG,
// MXFP4_MLP_WEIGHT_ONLY_CFG, NVFP4_DEFAULT_CFG, FP8_DEFAULT_CFG, and mxq's MXFP4_WEIGHT_ONLY.
// An unknown name is an mxq::Error that lists the known ones.
const Recipe& recipe_preset(std::string_view name);
std::vector<std::string> recipe_preset_names();

// A recipe from a JSON file (the format is described atop src/quant/recipe_file.cpp). Strict: an
// unknown key, a bad format or rule name, a wrong type or invalid JSON is an mxq::Error that names
// the file and the key.
Recipe recipe_from_file(const std::string& path);

// The recipe with every MX weight rule using `rule` (--scale-rule) and ties to even: the
// toward-zero ties of the presets exist only to reproduce ModelOpt's bytes under its own ceil rule.
// An error if the recipe has no MX weights to apply it to.
Recipe with_scale_rule(Recipe recipe, ScaleRule rule);

// Names as recipe files and the plan print them ("mxfp4", "fp8_e4m3_per_tensor_static"; scale
// rules by mxq::scale_rule_name, "ceil").
std::string_view weight_format_name(WeightFormat f);
std::string_view activation_format_name(ActivationFormat f);
std::optional<ScaleRule> scale_rule_from_name(std::string_view name);

struct Decision {
  bool quantize = false;
  LayerFormat format;  // the format to write when quantize; {keep, none} otherwise, except below
  // e.g. "rule 2 '*mlp*'", "default exclusion: norm", "ignore_patterns '*attn*'",
  // "not a linear weight (1-D)"
  std::string reason;
  // The rules asked for a block format but K (the last dim) is not a multiple of its block size;
  // `format` holds the format asked for, and the caller decides whether that is an error.
  bool k_not_block_multiple = false;
};

// Whether and how to quantize one tensor of a checkpoint. Candidates are 2-D `<layer>.weight`
// tensors and 3-D MoE expert tensors (`*experts*`, e.g. GPT-OSS mlp.experts.gate_up_proj), which
// are quantized along their last dim. Patterns match the layer prefix (the name without
// ".weight", as the seed's fnmatch(prefix, p)) or the full tensor name.
Decision decide(const Recipe& recipe, std::string_view tensor_name,
                std::span<const uint64_t> shape);

}  // namespace mxq::quant
