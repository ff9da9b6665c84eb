// quant recipes: glob matching (fnmatch semantics, no exponential backtracking), the presets'
// decisions on Llama / Qwen2 / Mixtral / GPT-OSS tensor names, the seed's quantize_patterns /
// ignore_patterns examples, ModelOpt's default exclusions and how rules lift them, and recipe
// files with each error they must report.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mxq/error.h"
#include "mxq/quant/pattern.h"
#include "mxq/quant/recipe.h"

namespace mxq::quant {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// glob_match
// ---------------------------------------------------------------------------------------------

TEST(QuantGlob, StarCrossesDotsAndMatchesEmpty) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(glob_match("*mlp*", "model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(glob_match("model.*.up_proj", "model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(glob_match("*attn*", "model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(glob_match("*attn*", "model.layers.0.mlp.up_proj"));
  EXPECT_FALSE(glob_match("mlp", "model.layers.0.mlp"));  // a full match, not a search
  EXPECT_FALSE(glob_match("", "x"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_TRUE(glob_match("**a**", "a"));
}

TEST(QuantGlob, QuestionMarkAndCase) {
  EXPECT_TRUE(glob_match("model.layers.?.mlp", "model.layers.7.mlp"));
  EXPECT_FALSE(glob_match("model.layers.?.mlp", "model.layers.17.mlp"));
  EXPECT_FALSE(glob_match("?", ""));
  EXPECT_FALSE(glob_match("*MLP*", "model.layers.0.mlp.up_proj"));  // fnmatchcase
}

TEST(QuantGlob, Classes) {
  EXPECT_TRUE(glob_match("model.layers.[0-3].*", "model.layers.2.mlp"));
  EXPECT_FALSE(glob_match("model.layers.[0-3].*", "model.layers.4.mlp"));
  EXPECT_TRUE(glob_match("*.[qkv]_proj", "a.k_proj"));
  EXPECT_FALSE(glob_match("*.[qkv]_proj", "a.o_proj"));
  EXPECT_TRUE(glob_match("*.[!qkv]_proj", "a.o_proj"));
  EXPECT_FALSE(glob_match("*.[!qkv]_proj", "a.q_proj"));
  EXPECT_TRUE(glob_match("[]]", "]"));      // ']' first is a member
  EXPECT_TRUE(glob_match("[!]]", "a"));
  EXPECT_FALSE(glob_match("[!]]", "]"));
  EXPECT_TRUE(glob_match("[a-]", "-"));     // a trailing '-' is literal
  EXPECT_TRUE(glob_match("x[", "x["));      // unclosed '[' is literal
  EXPECT_FALSE(glob_match("x[", "xa"));
  EXPECT_TRUE(glob_match("layers.1[0-9]", "layers.15"));
  EXPECT_FALSE(glob_match("[z-a]", "m"));   // an empty range matches nothing
}

TEST(QuantGlob, BacktracksToTheLatestStar) {
  EXPECT_TRUE(glob_match("*a*b", "xxaxxaxxb"));
  EXPECT_TRUE(glob_match("*mlp.*proj", "model.mlp.layers.mlp.down_proj"));
  EXPECT_FALSE(glob_match("*a*b", "xxaxxaxx"));
  EXPECT_TRUE(glob_match("a*b*c", "abbbc"));
}

// A recursive matcher needs about |text|^5 steps here; this one needs |pattern|·|text|. Runs in
// milliseconds; an exponential matcher would hit the test timeout.
TEST(QuantGlob, HostilePatternStaysPolynomial) {
  const std::string as(200000, 'a');
  EXPECT_FALSE(glob_match("*a*a*a*a*a*b", as));
  EXPECT_TRUE(glob_match("*a*a*a*a*a*a", as));
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(20000, 'a')));
}

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

using Shape = std::vector<uint64_t>;

Decision decide_on(const Recipe& r, const std::string& name, const Shape& shape) {
  return decide(r, name, shape);
}

// A tiny Llama: hidden 64, 8 q heads / 2 kv heads of 8, intermediate 128, vocab 256.
struct Tensor {
  std::string name;
  Shape shape;
  const char* kind;  // "attn", "mlp", or what keeps it unquantized
};
const std::vector<Tensor>& llama_layer() {
  static const std::vector<Tensor> t = {
      {"model.embed_tokens.weight", {256, 64}, "embedding"},
      {"model.layers.0.input_layernorm.weight", {64}, "1-D"},
      {"model.layers.0.self_attn.q_proj.weight", {64, 64}, "attn"},
      {"model.layers.0.self_attn.k_proj.weight", {16, 64}, "attn"},
      {"model.layers.0.self_attn.v_proj.weight", {16, 64}, "attn"},
      {"model.layers.0.self_attn.o_proj.weight", {64, 64}, "attn"},
      {"model.layers.0.post_attention_layernorm.weight", {64}, "1-D"},
      {"model.layers.0.mlp.gate_proj.weight", {128, 64}, "mlp"},
      {"model.layers.0.mlp.up_proj.weight", {128, 64}, "mlp"},
      {"model.layers.0.mlp.down_proj.weight", {64, 128}, "mlp"},
      {"model.norm.weight", {64}, "1-D"},
      {"lm_head.weight", {256, 64}, "lm_head"},
  };
  return t;
}

struct PresetRow {
  const char* preset;
  const char* quant_algo;
  bool attn;  // attention projections quantized
  WeightFormat weight;
  ActivationFormat activation;
  const char* attn_reason;  // why attention stays 16-bit, when it does
};

// Every preset on a Llama layer: embeddings, norms and lm_head are never quantized by default.
TEST(QuantDecide, EveryPresetOnLlama) {
  using A = ActivationFormat;
  const PresetRow rows[] = {
      {"MXFP4_DEFAULT_CFG", "MXFP4", true, WeightFormat::mxfp4, A::mxfp4, ""},
      {"W4A8_MXFP4_FP8_CFG", "W4A8_MXFP4_FP8", true, WeightFormat::mxfp4,
       A::fp8_e4m3_per_tensor_static, ""},
      {"MXFP4_MLP_WEIGHT_ONLY_CFG", "MXFP4", false, WeightFormat::mxfp4, A::none,
       "no rule matches"},
      {"MXFP4_WEIGHT_ONLY", "MXFP4", true, WeightFormat::mxfp4, A::none, ""},
      {"NVFP4_DEFAULT_CFG", "NVFP4", true, WeightFormat::nvfp4, A::nvfp4, ""},
      {"FP8_DEFAULT_CFG", "FP8", true, WeightFormat::fp8_e4m3, A::fp8_e4m3_per_tensor_static, ""},
  };
  ASSERT_EQ(recipe_preset_names().size(), std::size(rows));
  for (const PresetRow& row : rows) {
    const Recipe& r = recipe_preset(row.preset);
    EXPECT_EQ(r.quant_algo, row.quant_algo) << row.preset;
    for (const Tensor& t : llama_layer()) {
      SCOPED_TRACE(fmt::format("{} {}", row.preset, t.name));
      const Decision d = decide_on(r, t.name, t.shape);
      const std::string kind = t.kind;
      const bool expect = kind == "mlp" || (kind == "attn" && row.attn);
      EXPECT_EQ(d.quantize, expect) << d.reason;
      EXPECT_FALSE(d.k_not_block_multiple);
      if (expect) {
        EXPECT_EQ(d.format.weight, row.weight);
        EXPECT_EQ(d.format.activation, row.activation);
        EXPECT_TRUE(d.reason.starts_with("rule ")) << d.reason;
      } else if (kind == "attn") {
        EXPECT_EQ(d.reason, row.attn_reason);
      } else if (kind == "1-D") {
        EXPECT_EQ(d.reason, "not a linear weight (1-D)");
      } else {
        EXPECT_EQ(d.reason, "default exclusion: " + kind);
      }
    }
  }
}

// The presets reproduce ModelOpt's exported bytes: ceil scale with ties toward zero on weights;
// MXFP4 activations use ModelOpt's run-time rule, ceil with ties to even.
TEST(QuantDecide, MxPresetsUseModelOptExportRounding) {
  for (const char* name : {"MXFP4_DEFAULT_CFG", "W4A8_MXFP4_FP8_CFG", "MXFP4_MLP_WEIGHT_ONLY_CFG"}) {
    const Decision d =
        decide_on(recipe_preset(name), "model.layers.0.mlp.up_proj.weight", {128, 64});
    ASSERT_TRUE(d.quantize) << name;
    EXPECT_EQ(d.format.mx.scale, ScaleRule::ceil) << name;
    EXPECT_EQ(d.format.mx.ties, TieRule::toward_zero) << name;
    EXPECT_EQ(d.format.activation_mx.scale, ScaleRule::ceil) << name;
    EXPECT_EQ(d.format.activation_mx.ties, TieRule::nearest_even) << name;
  }
}

// mxq's own preset takes mxq's default numerics, the `even` rule with ties to even
// (docs/ACCURACY.md has the measurement behind the choice), not ModelOpt's bytes.
TEST(QuantDecide, MxqPresetUsesEvenRule) {
  const Decision d = decide_on(recipe_preset("MXFP4_WEIGHT_ONLY"), "model.layers.0.mlp.up_proj.weight",
                               {128, 64});
  ASSERT_TRUE(d.quantize);
  EXPECT_EQ(d.format.mx.scale, ScaleRule::even);
  EXPECT_EQ(d.format.mx.ties, TieRule::nearest_even);
}

struct Case {
  const char* name;
  Shape shape;
  bool quantize;
  const char* reason;  // exact
};

void expect_cases(const Recipe& r, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    const Decision d = decide_on(r, c.name, c.shape);
    EXPECT_EQ(d.quantize, c.quantize) << r.name << " " << c.name << ": " << d.reason;
    EXPECT_EQ(d.reason, c.reason) << r.name << " " << c.name;
  }
}

TEST(QuantDecide, Qwen2BiasesAreNotCandidates) {
  expect_cases(recipe_preset("MXFP4_DEFAULT_CFG"),
               {
                   {"model.layers.0.self_attn.q_proj.weight", {64, 64}, true, "rule 1 '*'"},
                   {"model.layers.0.self_attn.q_proj.bias", {64}, false,
                    "not a linear weight (1-D)"},
                   {"model.layers.0.self_attn.k_proj.bias", {16}, false,
                    "not a linear weight (1-D)"},
                   {"model.layers.0.self_attn.v_proj.bias", {16}, false,
                    "not a linear weight (1-D)"},
                   {"model.layers.0.mlp.down_proj.weight", {64, 128}, true, "rule 1 '*'"},
               });
}

TEST(QuantDecide, MixtralExpertsAndRouter) {
  // MLP weight-only reaches Mixtral's experts through its second rule.
  expect_cases(recipe_preset("MXFP4_MLP_WEIGHT_ONLY_CFG"),
               {
                   {"model.layers.0.block_sparse_moe.experts.3.w1.weight", {128, 64}, true,
                    "rule 2 '*block_sparse_moe*'"},
                   {"model.layers.0.block_sparse_moe.experts.3.w2.weight", {64, 128}, true,
                    "rule 2 '*block_sparse_moe*'"},
                   {"model.layers.0.block_sparse_moe.experts.3.w3.weight", {128, 64}, true,
                    "rule 2 '*block_sparse_moe*'"},
                   {"model.layers.0.block_sparse_moe.gate.weight", {8, 64}, false,
                    "default exclusion: MoE router"},
                   {"model.layers.0.self_attn.q_proj.weight", {64, 64}, false, "no rule matches"},
               });
}

TEST(QuantDecide, GptOssExpertStacksAndRouter) {
  // HF GPT-OSS (BF16): experts as 3-D stacks [E, in, out] without ".weight", quantized along the
  // last dim; router and attention sinks stay 16-bit.
  expect_cases(
      recipe_preset("MXFP4_MLP_WEIGHT_ONLY_CFG"),
      {
          {"model.layers.0.mlp.experts.gate_up_proj", {4, 64, 128}, true, "rule 1 '*mlp*'"},
          {"model.layers.0.mlp.experts.down_proj", {4, 64, 64}, true, "rule 1 '*mlp*'"},
          {"model.layers.0.mlp.experts.gate_up_proj_bias", {4, 128}, false,
           "not a linear weight (not <layer>.weight)"},
          {"model.layers.0.mlp.experts.down_proj_bias", {4, 64}, false,
           "not a linear weight (not <layer>.weight)"},
          {"model.layers.0.mlp.router.weight", {4, 64}, false, "default exclusion: MoE router"},
          {"model.layers.0.mlp.router.bias", {4}, false, "not a linear weight (1-D)"},
          {"model.layers.0.self_attn.sinks", {8}, false, "not a linear weight (1-D)"},
          {"model.layers.0.self_attn.q_proj.weight", {64, 64}, false, "no rule matches"},
          // An already-quantized GPT-OSS checkpoint: blocks and scales are not candidates.
          {"model.layers.0.mlp.experts.gate_up_proj_blocks", {4, 128, 2, 16}, false,
           "not a linear weight (4-D)"},
          {"model.layers.0.mlp.experts.gate_up_proj_scales", {4, 128, 2}, false,
           "not a linear weight (3-D)"},
      });
  // K of a 3-D stack is its last dim.
  const Decision d = decide_on(recipe_preset("MXFP4_WEIGHT_ONLY"),
                               "model.layers.0.mlp.experts.down_proj", {4, 64, 48});
  EXPECT_FALSE(d.quantize);
  EXPECT_TRUE(d.k_not_block_multiple);
}

TEST(QuantDecide, QwenMoeRoutersButNotGateProj) {
  expect_cases(recipe_preset("MXFP4_WEIGHT_ONLY"),
               {
                   {"model.layers.0.mlp.gate.weight", {8, 64}, false,
                    "default exclusion: MoE router"},
                   {"model.layers.0.mlp.shared_expert_gate.weight", {1, 64}, false,
                    "default exclusion: MoE router"},
                   {"model.layers.0.mlp.experts.0.gate_proj.weight", {32, 64}, true, "rule 1 '*'"},
                   {"model.layers.0.mlp.shared_expert.gate_proj.weight", {128, 64}, true,
                    "rule 1 '*'"},
                   {"model.layers.0.mlp.gate_up_proj.weight", {256, 64}, true, "rule 1 '*'"},
               });
}

// The seed's first example: quantize_patterns ["*mlp*"] quantizes only MLP layers.
TEST(QuantDecide, SeedQuantizePatternsMlpOnly) {
  Recipe r = recipe_preset("MXFP4_WEIGHT_ONLY");
  r.quantize_patterns = {"*mlp*"};
  for (const Tensor& t : llama_layer()) {
    const Decision d = decide_on(r, t.name, t.shape);
    EXPECT_EQ(d.quantize, std::string(t.kind) == "mlp") << t.name << ": " << d.reason;
    if (std::string(t.kind) == "attn") {
      EXPECT_EQ(d.reason, "not in quantize_patterns");
    }
  }
}

// The seed's second example: ignore_patterns ["*attn*"] quantizes everything but attention
// (and, still, not what ModelOpt excludes by default).
TEST(QuantDecide, SeedIgnorePatternsAttention) {
  Recipe r = recipe_preset("MXFP4_WEIGHT_ONLY");
  r.ignore_patterns = {"*attn*"};
  for (const Tensor& t : llama_layer()) {
    const Decision d = decide_on(r, t.name, t.shape);
    EXPECT_EQ(d.quantize, std::string(t.kind) == "mlp") << t.name << ": " << d.reason;
    if (std::string(t.kind) == "attn") {
      EXPECT_EQ(d.reason, "ignore_patterns '*attn*'");
    }
  }
  expect_cases(r, {{"model.layers.0.block_sparse_moe.experts.0.w2.weight", {64, 128}, true,
                    "rule 1 '*'"},
                   {"model.layers.0.block_sparse_moe.gate.weight", {8, 64}, false,
                    "default exclusion: MoE router"}});
}

TEST(QuantDecide, PatternsMayNameTheFullTensorName) {
  Recipe r = recipe_preset("MXFP4_WEIGHT_ONLY");
  r.ignore_patterns = {"*.q_proj.weight"};
  expect_cases(r, {{"model.layers.0.self_attn.q_proj.weight", {64, 64}, false,
                    "ignore_patterns '*.q_proj.weight'"},
                   {"model.layers.0.self_attn.k_proj.weight", {16, 64}, true, "rule 1 '*'"}});
}

TEST(QuantDecide, FirstMatchingRuleWinsAndKeepLeavesTheLayer) {
  Recipe r = recipe_preset("MXFP4_WEIGHT_ONLY");
  r.rules.insert(r.rules.begin(),
                 {{"*self_attn.o_proj", {WeightFormat::keep}},
                  {"*self_attn*",
                   {WeightFormat::mxfp4, ActivationFormat::fp8_e4m3_per_tensor_static}}});
  expect_cases(r, {{"model.layers.0.self_attn.o_proj.weight", {64, 64}, false,
                    "rule 1 '*self_attn.o_proj': keep"},
                   {"model.layers.0.self_attn.q_proj.weight", {64, 64}, true,
                    "rule 2 '*self_attn*'"},
                   {"model.layers.0.mlp.up_proj.weight", {128, 64}, true, "rule 3 '*'"}});
  EXPECT_EQ(decide_on(r, "model.layers.0.self_attn.q_proj.weight", {64, 64}).format.activation,
            ActivationFormat::fp8_e4m3_per_tensor_static);
}

TEST(QuantDecide, DefaultExclusionsLiftOnlyWhenNamed) {
  const Recipe& base = recipe_preset("MXFP4_WEIGHT_ONLY");
  // --quantize-lm-head
  Recipe lm = base;
  lm.quantize_lm_head = true;
  expect_cases(lm, {{"lm_head.weight", {256, 64}, true, "rule 1 '*'"},
                    {"model.embed_tokens.weight", {256, 64}, false,
                     "default exclusion: embedding"}});
  // A rule that names the layer: lm_head, embed_tokens, mlp.gate.
  Recipe named = base;
  named.rules.insert(named.rules.begin(), {{"lm_head", base.rules[0].format},
                                           {"*embed_tokens*", base.rules[0].format},
                                           {"*mlp.gate", base.rules[0].format}});
  expect_cases(named, {{"lm_head.weight", {256, 64}, true, "rule 1 'lm_head'"},
                       {"model.embed_tokens.weight", {256, 64}, true, "rule 2 '*embed_tokens*'"},
                       {"model.layers.0.mlp.gate.weight", {8, 64}, true, "rule 3 '*mlp.gate'"}});
  // "*gate*" is written for gate_proj; it does not name the router.
  Recipe gate = base;
  gate.rules.insert(gate.rules.begin(), {"*gate*", base.rules[0].format});
  expect_cases(gate, {{"model.layers.0.mlp.gate.weight", {8, 64}, false,
                       "default exclusion: MoE router"},
                      {"model.layers.0.mlp.gate_proj.weight", {128, 64}, true,
                       "rule 1 '*gate*'"}});
  // quantize_lm_head lifts the exclusion, not quantize_patterns.
  Recipe lm_filtered = lm;
  lm_filtered.quantize_patterns = {"*mlp*"};
  expect_cases(lm_filtered, {{"lm_head.weight", {256, 64}, false, "not in quantize_patterns"}});
}

TEST(QuantDecide, KMustBeAMultipleOfTheBlock) {
  const Decision mx =
      decide_on(recipe_preset("MXFP4_WEIGHT_ONLY"), "model.layers.0.mlp.down_proj.weight",
                {64, 100});
  EXPECT_FALSE(mx.quantize);
  EXPECT_TRUE(mx.k_not_block_multiple);
  EXPECT_EQ(mx.format.weight, WeightFormat::mxfp4);  // what was asked for, for the message
  EXPECT_EQ(mx.reason,
            "rule 1 '*': K = 100 (last dim) is not a multiple of the mxfp4 block size 32");
  // 48 = 3 NVFP4 blocks of 16 but 1.5 MXFP4 blocks; FP8 has no blocks.
  const auto quantized = [](const char* preset, uint64_t k) {
    return decide_on(recipe_preset(preset), "x.down_proj.weight", {8, k}).quantize;
  };
  EXPECT_FALSE(quantized("MXFP4_DEFAULT_CFG", 48));
  EXPECT_TRUE(quantized("NVFP4_DEFAULT_CFG", 48));
  EXPECT_FALSE(quantized("NVFP4_DEFAULT_CFG", 40));
  EXPECT_TRUE(quantized("FP8_DEFAULT_CFG", 100));
}

// ---------------------------------------------------------------------------------------------
// Presets and --scale-rule
// ---------------------------------------------------------------------------------------------

TEST(QuantRecipe, UnknownPresetListsTheKnownNames) {
  try {
    recipe_preset("MXFP4_CFG");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown recipe 'MXFP4_CFG'"), std::string::npos) << m;
    for (const std::string& n : recipe_preset_names()) EXPECT_NE(m.find(n), std::string::npos) << m;
  }
}

TEST(QuantRecipe, ScaleRuleOverrideAndNames) {
  const Recipe r = with_scale_rule(recipe_preset("W4A8_MXFP4_FP8_CFG"), ScaleRule::mse);
  ASSERT_EQ(r.rules.size(), 1u);
  EXPECT_EQ(r.rules[0].format.mx.scale, ScaleRule::mse);
  EXPECT_EQ(r.rules[0].format.mx.ties, TieRule::nearest_even);
  EXPECT_EQ(r.rules[0].format.activation, ActivationFormat::fp8_e4m3_per_tensor_static);
  EXPECT_EQ(recipe_preset("W4A8_MXFP4_FP8_CFG").rules[0].format.mx.scale, ScaleRule::ceil);
  EXPECT_THROW(with_scale_rule(recipe_preset("NVFP4_DEFAULT_CFG"), ScaleRule::ceil), Error);
  for (ScaleRule s : {ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even, ScaleRule::mse})
    EXPECT_EQ(scale_rule_from_name(scale_rule_name(s)), s);
  EXPECT_FALSE(scale_rule_from_name("floor").has_value());
}

// ---------------------------------------------------------------------------------------------
// Recipe files
// ---------------------------------------------------------------------------------------------

fs::path write_recipe(const std::string& file, const std::string& text) {
  // One folder per process: ctest runs these tests in parallel processes.
  const fs::path dir = fs::temp_directory_path() / ("mxq_test_quant_recipe_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path p = dir / file;
  std::ofstream(p) << text;
  return p;
}

TEST(QuantRecipeFile, ValidFileWithBase) {
  const fs::path p = write_recipe("mlp_w4a8.json", R"({
    "base": "MXFP4_WEIGHT_ONLY",
    "rules": [
      {"pattern": "*mlp*", "weight": "mxfp4", "activation": "fp8_e4m3_per_tensor_static"},
      {"pattern": "*self_attn*", "weight": "mxfp4", "scale_rule": "mse"},
      {"pattern": "*o_proj", "weight": "keep"}
    ],
    "ignore_patterns": ["*layers.0.*"],
    "quantize_lm_head": true,
    "kv_cache": "FP8"
  })");
  const Recipe r = recipe_from_file(p.string());
  EXPECT_EQ(r.name, "mlp_w4a8");
  EXPECT_EQ(r.quant_algo, "MIXED_PRECISION");
  ASSERT_EQ(r.rules.size(), 4u);  // the file's three, then the base's "*"
  EXPECT_EQ(r.rules[3].pattern, "*");
  EXPECT_EQ(r.rules[0].format.mx.scale, ScaleRule::ceil);  // ModelOpt's export by default
  EXPECT_EQ(r.rules[0].format.mx.ties, TieRule::toward_zero);
  EXPECT_EQ(r.rules[1].format.mx.scale, ScaleRule::mse);  // a named rule rounds ties to even
  EXPECT_EQ(r.rules[1].format.mx.ties, TieRule::nearest_even);
  EXPECT_EQ(r.quantize_patterns, std::vector<std::string>{"*"});
  EXPECT_TRUE(r.quantize_lm_head);
  EXPECT_EQ(r.kv_cache, "FP8");
  expect_cases(r, {{"model.layers.1.mlp.up_proj.weight", {128, 64}, true, "rule 1 '*mlp*'"},
                   {"model.layers.1.self_attn.q_proj.weight", {64, 64}, true,
                    "rule 2 '*self_attn*'"},
                   {"model.layers.0.mlp.up_proj.weight", {128, 64}, false,
                    "ignore_patterns '*layers.0.*'"},
                   {"lm_head.weight", {256, 64}, true, "rule 4 '*'"}});
}

TEST(QuantRecipeFile, SingleFormatGetsItsQuantAlgo) {
  const fs::path p = write_recipe("w4a8.json", R"({
    "name": "attn_and_mlp",
    "rules": [{"pattern": "*", "weight": "mxfp4", "activation": "fp8_e4m3_per_tensor_static",
               "scale_rule": "ceil", "ties": "toward_zero"},
              {"pattern": "*embed*", "weight": "keep"}],
    "quantize_patterns": ["*mlp*", "*attn*"]
  })");
  const Recipe r = recipe_from_file(p.string());
  EXPECT_EQ(r.name, "attn_and_mlp");
  EXPECT_EQ(r.quant_algo, "W4A8_MXFP4_FP8");
  EXPECT_EQ(r.quantize_patterns, (std::vector<std::string>{"*mlp*", "*attn*"}));
  EXPECT_TRUE(r.ignore_patterns.empty());
  EXPECT_EQ(r.kv_cache, "");
}

// Each malformed file: an mxq::Error whose message names the file and the key.
TEST(QuantRecipeFile, Errors) {
  struct Bad {
    const char* file;
    const char* text;
    std::vector<const char*> message_parts;
  };
  const Bad cases[] = {
      {"unknown_key.json", R"({"base": "MXFP4_WEIGHT_ONLY", "quantise_patterns": ["*"]})",
       {"key 'quantise_patterns'", "unknown key", "quantize_patterns"}},
      {"unknown_rule_key.json",
       R"({"rules": [{"pattern": "*", "weight": "mxfp4", "act": "none"}]})",
       {"key 'rules[0].act'", "unknown key"}},
      {"unknown_weight.json", R"({"rules": [{"pattern": "*", "weight": "mxfp5"}]})",
       {"key 'rules[0].weight'", "unknown weight format 'mxfp5'", "mxfp4"}},
      {"unknown_activation.json",
       R"({"rules": [{"pattern": "*", "weight": "mxfp4", "activation": "fp16"}]})",
       {"key 'rules[0].activation'", "unknown activation format 'fp16'"}},
      {"unknown_scale_rule.json",
       R"({"rules": [{"pattern": "*", "weight": "mxfp4", "scale_rule": "floor"}]})",
       {"key 'rules[0].scale_rule'", "unknown scale rule 'floor'", "ocp_floor"}},
      {"scale_rule_on_fp8.json",
       R"({"rules": [{"pattern": "*", "weight": "fp8_e4m3",
                      "activation": "fp8_e4m3_per_tensor_static", "scale_rule": "ceil"}]})",
       {"key 'rules[0].scale_rule'", "only to MX weight formats"}},
      {"unsupported_pair.json",
       R"({"rules": [{"pattern": "*", "weight": "mxfp4", "activation": "nvfp4"}]})",
       {"key 'rules[0]'", "weight 'mxfp4' with activation 'nvfp4'"}},
      {"keep_with_activation.json",
       R"({"rules": [{"pattern": "*", "weight": "keep", "activation": "mxfp4"}]})",
       {"key 'rules[0].activation'", "'keep'"}},
      {"missing_weight.json", R"({"rules": [{"pattern": "*"}]})",
       {"key 'rules[0].weight'", "missing"}},
      {"no_rules.json", R"({"ignore_patterns": ["*attn*"]})", {"key 'rules'", "at least one"}},
      {"only_keep.json", R"({"rules": [{"pattern": "*", "weight": "keep"}]})",
       {"key 'rules'", "nothing to quantize"}},
      {"unknown_base.json", R"({"base": "MXFP4"})", {"key 'base'", "unknown recipe 'MXFP4'"}},
      {"bad_type.json", R"({"base": "MXFP4_WEIGHT_ONLY", "quantize_lm_head": "yes"})",
       {"key 'quantize_lm_head'", "expected true or false"}},
      {"bad_pattern_type.json", R"({"base": "MXFP4_WEIGHT_ONLY", "ignore_patterns": ["*a*", 3]})",
       {"key 'ignore_patterns[1]'", "expected a string"}},
      {"bad_kv.json", R"({"base": "MXFP4_WEIGHT_ONLY", "kv_cache": "fp4"})",
       {"key 'kv_cache'", "unknown KV-cache format 'fp4'"}},
      {"not_object.json", R"(["*mlp*"])", {"expected a JSON object"}},
      {"bad_json.json", R"({"rules": [{"pattern": "*", "weight": "mxfp4"})", {"invalid JSON"}},
  };
  for (const Bad& c : cases) {
    const fs::path p = write_recipe(c.file, c.text);
    try {
      recipe_from_file(p.string());
      ADD_FAILURE() << c.file << ": no error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("recipe file '" + p.string() + "'"), std::string::npos) << m;
      for (const char* part : c.message_parts)
        EXPECT_NE(m.find(part), std::string::npos) << c.file << ": '" << part << "' not in: " << m;
    }
  }
}

TEST(QuantRecipeFile, MissingFile) {
  const std::string path = (fs::temp_directory_path() / "mxq_no_such_recipe.json").string();
  try {
    recipe_from_file(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "recipe file '" + path + "': cannot open: No such file or directory");
  }
}

}  // namespace
}  // namespace mxq::quant
