// The quantizer pipeline on a small generated Llama-shaped checkpoint: every preset and scale rule
// writes ModelOpt's layout whose bytes equal the format core's reference on the same weights; kept
// tensors are copied bit for bit; shards and index read back; bad input fails and leaves nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "mxq/error.h"
#include "mxq/format_ref.h"
#include "mxq/io/hf_checkpoint.h"
#include "mxq/io/quantized_checkpoint.h"
#include "mxq/quant/quantize_checkpoint.h"

namespace mxq::quant {
namespace {

namespace fs = std::filesystem;

struct Tiny {
  fs::path dir;
  std::map<std::string, std::vector<float>> f32;  // the BF16 weights, widened
};

// A two-layer Llama-shaped checkpoint with BF16 weights (K = 96 and 160: multiples of 32, not 128).
// tied: no lm_head.weight, and config.json says tie_word_embeddings (SmolLM2's layout).
Tiny make_tiny(const std::string& name, float poison = 0.0f, uint64_t odd_k = 0, bool tied = false) {
  Tiny t{fs::temp_directory_path() / ("mxq_test_quant_" + name + "_" + std::to_string(::getpid())), {}};
  fs::remove_all(t.dir);
  fs::create_directories(t.dir);
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.f, 0.05f);
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> shapes = {
      {"model.embed_tokens.weight", {50, 96}},
      {"model.norm.weight", {96}},
      {"lm_head.weight", {50, 96}},
      {"model.layers.0.input_layernorm.weight", {96}},
      {"model.layers.0.self_attn.q_proj.weight", {96, 96}},
      {"model.layers.0.self_attn.o_proj.weight", {96, 96}},
      {"model.layers.0.mlp.up_proj.weight", {160, 96}},
      {"model.layers.0.mlp.down_proj.weight", {96, odd_k ? odd_k : 160}},
  };
  std::vector<std::vector<uint16_t>> keep;
  io::SafetensorsWriter w;
  for (const auto& [n, s] : shapes) {
    if (tied && n == "lm_head.weight") continue;
    uint64_t count = 1;
    for (auto d : s) count *= d;
    auto& bits = keep.emplace_back(count);
    auto& f = t.f32[n];
    for (uint64_t i = 0; i < count; ++i) {
      const float v = s.size() == 1 ? 1.0f + g(rng) : g(rng) * std::exp2f(float(i % 7) - 3.f);
      bits[i] = bf16_from_f32(v).bits;
      f.push_back(bf16_to_f32(bf16{bits[i]}));
    }
    if (poison != 0.0f && n == "model.layers.0.mlp.up_proj.weight") bits[200] = bf16_from_f32(poison).bits;
    w.add(n, io::DType::bf16, s, {reinterpret_cast<const uint8_t*>(bits.data()), bits.size() * 2});
  }
  w.write((t.dir / "model.safetensors").string());
  std::ofstream(t.dir / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 96, "tie_word_embeddings": )"
                                        << (tied ? "true}" : "false}");
  std::ofstream(t.dir / "tokenizer.json") << "{}";
  return t;
}

fs::path out_dir(const std::string& name) {
  const auto p = fs::temp_directory_path() / ("mxq_test_quant_out_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

std::vector<uint8_t> bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

TEST(QuantizeCheckpoint, EveryPresetAndRuleMatchesTheReference) {
  const Tiny tiny = make_tiny("presets");
  const io::HfCheckpoint in(tiny.dir.string());
  std::vector<Recipe> recipes;
  for (const auto& name : recipe_preset_names()) recipes.push_back(recipe_preset(name));
  for (ScaleRule r : {ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even, ScaleRule::mse})
    recipes.push_back(with_scale_rule(recipe_preset("MXFP4_WEIGHT_ONLY"), r));
  for (const Recipe& recipe : recipes) {
    SCOPED_TRACE(recipe.name);
    const Plan plan = make_plan(in, recipe, false);
    const auto out = out_dir("presets");
    quantize_checkpoint(in, plan, recipe, out.string(), {});
    const io::HfCheckpoint q(out.string());
    EXPECT_TRUE(q.config().contains("quantization_config"));
    EXPECT_TRUE(fs::exists(out / "hf_quant_config.json"));
    EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
    size_t checked = 0;
    for (const auto& e : plan.entries) {
      const std::string& n = e.source->name;
      const auto& x = tiny.f32.at(n);
      if (!e.decision.quantize) {
        ASSERT_NE(q.find(n), nullptr) << n;
        EXPECT_EQ(bytes(q.find(n)->data), bytes(e.source->data)) << n;
        continue;
      }
      const io::TensorView* w = q.find(n);
      const io::TensorView* s = q.find(n + "_scale");
      ASSERT_TRUE(w && s) << n;
      const auto& f = e.decision.format;
      if (f.weight == WeightFormat::mxfp4) {
        std::vector<uint8_t> codes(x.size() / 2), scales(x.size() / 32);
        ASSERT_EQ(mxfp4_quantize_row_ref(x.data(), x.size(), codes.data(), scales.data(), f.mx), kRowOk);
        EXPECT_EQ(w->dtype, io::DType::u8);
        EXPECT_EQ(w->shape.back(), e.source->shape.back() / 2) << n;
        EXPECT_EQ(s->shape.back(), e.source->shape.back() / 32) << n;
        EXPECT_EQ(bytes(w->data), codes) << n;
        EXPECT_EQ(bytes(s->data), scales) << n;
        ++checked;
      } else if (f.weight == WeightFormat::nvfp4) {
        float amax = 0;
        for (float v : x) amax = std::max(amax, std::fabs(v));
        const float ts = nvfp4_tensor_scale(amax);
        std::vector<uint8_t> codes(x.size() / 2), scales(x.size() / 16);
        ASSERT_EQ(nvfp4_quantize_row_ref(x.data(), x.size(), ts, codes.data(), scales.data()), kRowOk);
        EXPECT_EQ(bytes(w->data), codes) << n;
        EXPECT_EQ(bytes(s->data), scales) << n;
        float stored = 0;
        std::memcpy(&stored, q.find(n + "_scale_2")->data.data(), 4);
        EXPECT_EQ(stored, ts);
        ++checked;
      } else if (f.weight == WeightFormat::fp8_e4m3) {
        float amax = 0;
        for (float v : x) amax = std::max(amax, std::fabs(v));
        EXPECT_EQ(w->dtype, io::DType::f8_e4m3);
        for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(w->data[i], e4m3_from_f32(x[i] / (amax / 448.f))) << n << " " << i;
        ++checked;
      }
    }
    EXPECT_GT(checked, 0u);
    // Read back as logical tensors: every one dequantizes to exactly what the reference decodes
    // from the reference's own bytes (for kept tensors: the source values).
    for (const auto& l : io::logical_tensors(q)) {
      const std::vector<float> y = io::dequantize(l);
      const auto& x = tiny.f32.at(l.name);
      ASSERT_EQ(y.size(), x.size()) << l.name;
      if (l.format == io::StoredFormat::dense) {
        EXPECT_EQ(y, x) << l.name;
      } else if (l.format == io::StoredFormat::mxfp4) {
        std::vector<float> want(x.size());
        mxfp4_dequantize_row_ref(l.data->data.data(), l.scales->data.data(), x.size(), want.data());
        EXPECT_EQ(y, want) << l.name;
        EXPECT_EQ(l.shape, in.find(l.name)->shape) << l.name;
      }
    }
    // Default exclusions: embeddings and lm_head stay BF16 under every preset.
    EXPECT_EQ(q.find("lm_head.weight")->dtype, io::DType::bf16);
    EXPECT_EQ(q.find("model.embed_tokens.weight")->dtype, io::DType::bf16);
  }
}

// A tied head: by default it stays the (kept) embedding table; with quantize_lm_head
// (--quantize-lm-head) it becomes lm_head.weight + weight_scale, the MXFP4 of the embedding's values
// (the reference's bytes), while the embedding itself is copied bit for bit and config.json is
// untied, so that engines load the head from its own tensors.
TEST(QuantizeCheckpoint, TiedLmHeadBecomesAnMxfp4TensorOfItsOwn) {
  const Tiny tiny = make_tiny("tied", 0.0f, 0, true);
  const io::HfCheckpoint in(tiny.dir.string());
  const auto excludes_head = [](const io::HfCheckpoint& q) {
    for (const auto& m : q.config()["quantization_config"]["ignore"])
      if (m == "lm_head") return true;
    return false;
  };
  Recipe r = recipe_preset("MXFP4_WEIGHT_ONLY");
  {
    const Plan plan = make_plan(in, r, false);
    EXPECT_FALSE(plan.untied_lm_head);
    const auto out = out_dir("tied_kept");
    quantize_checkpoint(in, plan, r, out.string(), {});
    const io::HfCheckpoint q(out.string());
    EXPECT_EQ(q.find("lm_head.weight"), nullptr);
    EXPECT_TRUE(q.config().value("tie_word_embeddings", false));
    EXPECT_TRUE(excludes_head(q));
  }
  r.quantize_lm_head = true;
  const Plan plan = make_plan(in, r, false);
  EXPECT_TRUE(plan.untied_lm_head);
  ASSERT_EQ(plan.entries.size(), 8u);  // the 7 tensors + the head
  for (size_t i = 1; i < plan.entries.size(); ++i) EXPECT_LT(plan.entries[i - 1].name, plan.entries[i].name);
  const auto head = std::find_if(plan.entries.begin(), plan.entries.end(),
                                 [](const PlanEntry& e) { return e.name == "lm_head.weight"; });
  ASSERT_NE(head, plan.entries.end());
  EXPECT_TRUE(head->decision.quantize);
  EXPECT_EQ(head->source->name, "model.embed_tokens.weight");

  const auto out = out_dir("tied_mxfp4");
  quantize_checkpoint(in, plan, r, out.string(), {});
  const io::HfCheckpoint q(out.string());
  const auto& x = tiny.f32.at("model.embed_tokens.weight");
  std::vector<uint8_t> codes(x.size() / 2), scales(x.size() / 32);
  ASSERT_EQ(mxfp4_quantize_row_ref(x.data(), x.size(), codes.data(), scales.data(), head->decision.format.mx), kRowOk);
  const io::TensorView* w = q.find("lm_head.weight");
  const io::TensorView* s = q.find("lm_head.weight_scale");
  ASSERT_TRUE(w && s);
  EXPECT_EQ(w->shape, (std::vector<uint64_t>{50, 48}));
  EXPECT_EQ(bytes(w->data), codes);
  EXPECT_EQ(bytes(s->data), scales);
  EXPECT_EQ(q.find("model.embed_tokens.weight")->dtype, io::DType::bf16);
  EXPECT_EQ(bytes(q.find("model.embed_tokens.weight")->data), bytes(in.find("model.embed_tokens.weight")->data));
  EXPECT_FALSE(q.config().value("tie_word_embeddings", true));
  EXPECT_FALSE(excludes_head(q));
}

TEST(QuantizeCheckpoint, ShardsAndIndexReadBack) {
  const Tiny tiny = make_tiny("shards");
  const io::HfCheckpoint in(tiny.dir.string());
  const Recipe& r = recipe_preset("MXFP4_WEIGHT_ONLY");
  const auto out = out_dir("shards");
  const auto sum = quantize_checkpoint(in, make_plan(in, r, false), r, out.string(), {false, 1, 12000});
  EXPECT_GT(sum.shards, 2u);
  EXPECT_TRUE(fs::exists(out / "model.safetensors.index.json"));
  const io::HfCheckpoint q(out.string());
  EXPECT_NE(q.find("model.layers.0.mlp.up_proj.weight_scale"), nullptr);
  EXPECT_EQ(q.tensors().size(), 8u + 4u);  // 4 weights gained a scale tensor
}

bool nothing_left(const fs::path& out) { return !fs::exists(out) && !fs::exists(out.string() + ".tmp"); }

TEST(QuantizeCheckpoint, NanWeightFailsNamingTheTensorAndLeavesNothing) {
  const Tiny tiny = make_tiny("nan", NAN);
  const io::HfCheckpoint in(tiny.dir.string());
  const Recipe& r = recipe_preset("MXFP4_WEIGHT_ONLY");
  const auto out = out_dir("nan");
  try {
    quantize_checkpoint(in, make_plan(in, r, false), r, out.string(), {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("row 2, column 8"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(nothing_left(out));
}

TEST(QuantizeCheckpoint, KNotMultipleOf32IsAnErrorUnlessAllowed) {
  const Tiny tiny = make_tiny("oddk", 0.0f, 100);
  const io::HfCheckpoint in(tiny.dir.string());
  const Recipe& r = recipe_preset("MXFP4_WEIGHT_ONLY");
  try {
    make_plan(in, r, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.down_proj.weight"), std::string::npos) << e.what();
  }
  const Plan plan = make_plan(in, r, true);
  for (const auto& e : plan.entries)
    if (e.source->name == "model.layers.0.mlp.down_proj.weight") {
      EXPECT_FALSE(e.decision.quantize);
    }
}

TEST(QuantizeCheckpoint, RefusesExistingOutputAndQuantizedInput) {
  const Tiny tiny = make_tiny("exists");
  const io::HfCheckpoint in(tiny.dir.string());
  const Recipe& r = recipe_preset("MXFP4_WEIGHT_ONLY");
  const auto out = out_dir("exists");
  fs::create_directories(out);
  std::ofstream(out / "keep.txt") << "x";
  EXPECT_THROW(quantize_checkpoint(in, make_plan(in, r, false), r, out.string(), {}), Error);
  EXPECT_TRUE(fs::exists(out / "keep.txt"));  // untouched
  quantize_checkpoint(in, make_plan(in, r, false), r, out.string(), {true});
  EXPECT_FALSE(fs::exists(out / "keep.txt"));
  const io::HfCheckpoint q(out.string());
  EXPECT_THROW(make_plan(q, r, false), Error);  // already quantized
}

// A GPT-OSS-style checkpoint (blocks [E, R, G, 16] + scales [E, R, G], quant_method mxfp4) reads
// as MXFP4 logical tensors and dequantizes to transformers' [E, in, out] orientation.
TEST(QuantizedCheckpoint, GptOssBlocksAndScales) {
  const auto dir = fs::temp_directory_path() / ("mxq_test_gptoss_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const uint64_t E = 2, R = 3, K = 64;  // 2 experts, 3 output rows, K = 64 (2 blocks)
  std::vector<uint8_t> blocks(E * R * K / 2), scales(E * R * K / 32);
  std::mt19937 rng(5);
  for (auto& b : blocks) b = static_cast<uint8_t>(rng());
  for (auto& s : scales) s = static_cast<uint8_t>(120 + rng() % 10);
  std::vector<uint16_t> router(4 * 8, bf16_from_f32(0.5f).bits);
  io::SafetensorsWriter w;
  w.add("model.layers.0.mlp.experts.down_proj_blocks", io::DType::u8, {E, R, K / 32, 16}, blocks);
  w.add("model.layers.0.mlp.experts.down_proj_scales", io::DType::u8, {E, R, K / 32}, scales);
  w.add("model.layers.0.mlp.router.weight", io::DType::bf16, {4, 8}, {reinterpret_cast<const uint8_t*>(router.data()), 64});
  w.write((dir / "model.safetensors").string());
  std::ofstream(dir / "config.json") << R"({"architectures": ["GptOssForCausalLM"], "quantization_config": {"quant_method": "mxfp4"}})";
  const io::HfCheckpoint ck(dir.string());
  const auto ts = io::logical_tensors(ck);
  ASSERT_EQ(ts.size(), 2u);
  const auto& d = ts[0];
  EXPECT_EQ(d.name, "model.layers.0.mlp.experts.down_proj");
  EXPECT_EQ(d.format, io::StoredFormat::mxfp4);
  EXPECT_EQ(d.shape, (std::vector<uint64_t>{E, R, K}));
  std::vector<float> want(E * R * K);
  mxfp4_dequantize_row_ref(blocks.data(), scales.data(), want.size(), want.data());
  EXPECT_EQ(io::dequantize(d), want);

  const auto out = out_dir("gptoss");
  io::dequantize_checkpoint(ck, out.string(), false);
  const io::HfCheckpoint plain(out.string());
  EXPECT_FALSE(plain.config().contains("quantization_config"));
  const io::TensorView* t = plain.find("model.layers.0.mlp.experts.down_proj");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{E, K, R}));
  for (uint64_t e = 0; e < E; ++e)
    for (uint64_t r = 0; r < R; ++r)
      for (uint64_t k = 0; k < K; ++k) {
        uint16_t h;
        std::memcpy(&h, t->data.data() + 2 * ((e * K + k) * R + r), 2);
        ASSERT_EQ(bf16_to_f32(bf16{h}), want[(e * R + r) * K + k]) << e << " " << r << " " << k;
      }
}

TEST(QuantizedCheckpoint, MismatchedScalesAreNamed) {
  const auto dir = fs::temp_directory_path() / ("mxq_test_badscale_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<uint8_t> codes(4 * 32), scales(4 * 3);
  io::SafetensorsWriter w;
  w.add("a.weight", io::DType::u8, {4, 32}, codes);
  w.add("a.weight_scale", io::DType::u8, {4, 3}, scales);  // K = 64 needs 2 scales per row
  w.write((dir / "model.safetensors").string());
  std::ofstream(dir / "config.json") << "{}";
  const io::HfCheckpoint ck(dir.string());
  try {
    io::logical_tensors(ck);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.weight_scale"), std::string::npos) << e.what();
  }
}

TEST(QuantizeCheckpoint, UnwritableOutputIsAnError) {
  const Tiny tiny = make_tiny("unwritable");
  const io::HfCheckpoint in(tiny.dir.string());
  const Recipe& r = recipe_preset("MXFP4_WEIGHT_ONLY");
  EXPECT_ANY_THROW(quantize_checkpoint(in, make_plan(in, r, false), r, "/proc/mxq_cannot_write_here/out", {}));
}

}  // namespace
}  // namespace mxq::quant
