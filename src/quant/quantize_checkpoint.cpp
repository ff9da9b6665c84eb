// The RTN pipeline: plan, then stream tensor by tensor (memory holds one tensor and its outputs)
// into shards, then the configs. Output names follow ModelOpt's export: `<name>` holds the codes,
// `<name>_scale` the block scales, `<name>_scale_2` NVFP4's tensor scale.
#include "mxq/quant/quantize_checkpoint.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "mxq/error.h"
#include "mxq/format_ref.h"
#include "mxq/io/checkpoint_dir.h"
#include "mxq/io/quantized_checkpoint.h"
#include "mxq/kernels/cpu/format_traits.h"
#include "mxq/kernels/cpu/parallel.h"

namespace mxq::quant {
namespace {

using io::DType;

std::string layer_of(const std::string& tensor) {
  return tensor.ends_with(".weight") ? tensor.substr(0, tensor.size() - 7) : tensor;
}

int block_of(WeightFormat f) {
  return f == WeightFormat::nvfp4 ? kNvfp4Block : (f == WeightFormat::fp8_e4m3 ? 1 : kMxBlock);
}

// The output tensors of one quantized weight of shape [..., K].
std::vector<io::TensorSpec> outputs_of(const std::string& name, std::vector<uint64_t> shape, WeightFormat f) {
  std::vector<uint64_t> codes = shape, scales = shape;
  const uint64_t k = shape.back();
  switch (f) {
    case WeightFormat::mxfp4:
      codes.back() = k / 2, scales.back() = k / kMxBlock;
      return {{name, DType::u8, codes}, {name + "_scale", DType::u8, scales}};
    case WeightFormat::mxfp8_e4m3:
      scales.back() = k / kMxBlock;
      return {{name, DType::f8_e4m3, codes}, {name + "_scale", DType::u8, scales}};
    case WeightFormat::nvfp4:
      codes.back() = k / 2, scales.back() = k / kNvfp4Block;
      return {{name, DType::u8, codes}, {name + "_scale", DType::f8_e4m3, scales}, {name + "_scale_2", DType::f32, {}}};
    case WeightFormat::fp8_e4m3:
      return {{name, DType::f8_e4m3, codes}, {name + "_scale", DType::f32, {}}};
    case WeightFormat::keep:
      break;
  }
  return {};
}

uint64_t bytes_of(const std::vector<io::TensorSpec>& specs) {
  uint64_t n = 0;
  for (const auto& s : specs) n += io::tensor_bytes(s.dtype, s.shape, s.name);
  return n;
}

// The source tensor as float32 (BF16 and F16 are widened exactly).
std::vector<float> to_f32(const io::TensorView& t) {
  return io::dequantize(io::LogicalTensor{t.name, io::StoredFormat::dense, t.shape, &t, nullptr, nullptr});
}

double sqnr_db(const std::vector<float>& x, const std::vector<float>& y) {
  double s = 0, e = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = double(x[i]) - y[i];
    s += double(x[i]) * x[i], e += d * d;
  }
  return e == 0 ? INFINITY : 10 * std::log10(s / e);
}

[[noreturn]] void non_finite(const io::TensorView& t, size_t index) {
  const uint64_t k = t.shape.empty() ? 1 : t.shape.back();
  fail("tensor '{}': NaN or Inf at element {} (row {}, column {}); nothing was written", t.name, index, index / k, index % k);
}

// Quantizes one tensor into its output buffers (in outputs_of order); returns the SQNR.
// Source element i as float32 (the source is F32 or BF16 here).
float source_at(const void* src, ElemType t, size_t i) {
  return t == ElemType::f32 ? static_cast<const float*>(src)[i] : bf16_to_f32(static_cast<const bf16*>(src)[i]);
}

// SQNR of the block-format tensor (codes, scales) against its source, computed in chunks over
// threads so that no tensor-sized float buffer is needed. Partial sums are added in chunk order:
// the figure does not depend on the thread count.
double block_sqnr_db(const FormatTraits& tr, const QuantParams& p, const void* src, ElemType st, size_t n,
                     const std::vector<uint8_t>& codes, const std::vector<uint8_t>& scales, int threads) {
  const size_t chunk = size_t{1} << 16;  // elements; a multiple of every block size
  const size_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> sig(chunks), err(chunks);
  parallel_for(chunks, 1, threads, [&](size_t c0, size_t c1) {
    std::vector<float> x(chunk), y(chunk);
    for (size_t c = c0; c < c1; ++c) {
      const size_t b = c * chunk, len = std::min(chunk, n - b);
      tr.dequantize(codes.data() + tr.code_bytes(b), scales.data() + b / tr.block_size * tr.scale_bytes, len, y.data(),
                    ElemType::f32, p, 1);
      for (size_t i = 0; i < len; ++i) x[i] = source_at(src, st, b + i);
      // 16 independent float lanes (the compiler vectorizes them), then double per chunk.
      constexpr int kLanes = 16;
      float s16[kLanes] = {}, e16[kLanes] = {};
      size_t i = 0;
      for (; i + kLanes <= len; i += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          const float d = x[i + l] - y[i + l];
          s16[l] += x[i + l] * x[i + l], e16[l] += d * d;
        }
      double s = 0, e = 0;
      for (int l = 0; l < kLanes; ++l) s += s16[l], e += e16[l];
      for (; i < len; ++i) s += double(x[i]) * x[i], e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
      sig[c] = s, err[c] = e;
    }
  });
  double s = 0, e = 0;
  for (size_t c = 0; c < chunks; ++c) s += sig[c], e += err[c];
  return e == 0 ? INFINITY : 10 * std::log10(s / e);
}

// Quantizes one tensor into its output buffers (in outputs_of order); returns the SQNR. BF16 sources
// go to the converters as they are; F16 is widened to F32 first.
double quantize_tensor(const io::TensorView& t, const LayerFormat& f, int threads, std::vector<std::vector<uint8_t>>& out) {
  if (f.weight == WeightFormat::fp8_e4m3) {  // per-tensor: scale = amax / 448 (a baseline: scalar)
    const std::vector<float> x = to_f32(t);
    const size_t n = x.size();
    float amax = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!f32_is_finite(x[i])) non_finite(t, i);
      amax = std::max(amax, std::fabs(x[i]));
    }
    const float scale = amax > 0 ? amax / 448.0f : 1.0f;
    out = {std::vector<uint8_t>(n), std::vector<uint8_t>(4)};
    std::vector<float> y(n);
    for (size_t i = 0; i < n; ++i) {
      out[0][i] = e4m3_from_f32(x[i] / scale);
      y[i] = e4m3_to_f32(out[0][i]) * scale;
    }
    std::memcpy(out[1].data(), &scale, 4);
    return sqnr_db(x, y);
  }
  std::vector<float> widened;
  ElemType st = ElemType::bf16;
  const void* src = t.data.data();
  if (t.dtype != io::DType::bf16) {
    widened = to_f32(t);
    st = ElemType::f32, src = widened.data();
  }
  const size_t n = t.elements();
  const BlockFormat bf = f.weight == WeightFormat::mxfp4 ? BlockFormat::mxfp4
                         : f.weight == WeightFormat::nvfp4 ? BlockFormat::nvfp4 : BlockFormat::mxfp8_e4m3;
  const FormatTraits& tr = format_traits(bf);
  QuantParams p{f.mx, 1.0f};
  if (tr.has_tensor_scale) {
    float amax = 0;
    for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(source_at(src, st, i)));  // NaN is caught below
    p.tensor_scale = nvfp4_tensor_scale(amax);
  }
  out = {std::vector<uint8_t>(tr.code_bytes(n)), std::vector<uint8_t>(tr.scale_count(n) * tr.scale_bytes)};
  if (const size_t bad = tr.quantize(src, st, n, out[0].data(), out[1].data(), p, threads); bad != kRowOk)
    non_finite(t, bad);
  if (tr.has_tensor_scale) {
    out.emplace_back(4);
    std::memcpy(out[2].data(), &p.tensor_scale, 4);
  }
  return block_sqnr_db(tr, p, src, st, n, out[0], out[1], threads);
}

nlohmann::ordered_json quant_config_json(const Recipe& r, const Plan& plan) {
  nlohmann::ordered_json exclude = nlohmann::ordered_json::array(), layers = nlohmann::ordered_json::object();
  int group = 0;
  bool has_lm_head = false, embedding_kept = false;
  for (const auto& e : plan.entries) {
    const auto& shape = e.source->shape;
    if (shape.size() < 2) continue;
    has_lm_head = has_lm_head || e.name == "lm_head.weight";
    if (!e.decision.quantize) {
      exclude.push_back(layer_of(e.name));
      embedding_kept = embedding_kept || e.decision.reason.find("embedding") != std::string::npos;
      continue;
    }
    const WeightFormat w = e.decision.format.weight;
    group = block_of(w);
    layers[layer_of(e.name)] = {{"weight", weight_format_name(w)},
                                        {"activation", activation_format_name(e.decision.format.activation)},
                                        {"group_size", block_of(w)}};
  }
  // A tied LM head has no tensor of its own: it is the kept embedding, so it is excluded too (as
  // ModelOpt lists lm_head), and an engine must not look for MXFP4 head weights.
  if (!has_lm_head && embedding_kept) exclude.push_back("lm_head");
  nlohmann::ordered_json q = {{"quant_algo", r.quant_algo},
                              {"kv_cache_quant_algo", r.kv_cache.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.kv_cache)},
                              {"group_size", group},
                              {"exclude_modules", exclude}};
  if (r.quant_algo == "MIXED_PRECISION") q["quantized_layers"] = layers;
  return q;
}

}  // namespace

namespace {

// The decision for `t` written under `name` (t's own name, or lm_head.weight for a tied head).
PlanEntry plan_entry(const std::string& name, const io::TensorView* t, const Recipe& recipe,
                     bool allow_unquantized_k) {
  PlanEntry e{name, t, decide(recipe, name, t->shape), {}, t->data.size(), 0};
  if (e.decision.k_not_block_multiple && !allow_unquantized_k)
    fail("tensor '{}': K = {} is not a multiple of the {} block size {} (--allow-unquantized-k keeps such tensors in {})",
         name, t->shape.back(), weight_format_name(e.decision.format.weight), block_of(e.decision.format.weight),
         io::dtype_info(t->dtype).name);
  e.outputs = e.decision.quantize ? outputs_of(name, t->shape, e.decision.format.weight)
                                  : std::vector<io::TensorSpec>{{name, t->dtype, t->shape}};
  e.bytes_after = bytes_of(e.outputs);
  return e;
}

}  // namespace

Plan make_plan(const io::HfCheckpoint& in, const Recipe& recipe, bool allow_unquantized_k) {
  if (in.config().contains("quantization_config"))
    fail("{}: config.json already has a quantization_config: the checkpoint is quantized", in.dir());
  Plan plan;
  for (const io::TensorView* t : in.tensors())
    plan.entries.push_back(plan_entry(t->name, t, recipe, allow_unquantized_k));
  // A tied head (Llama-family name) that the recipe quantizes becomes a tensor of its own, made
  // from the embedding table; the embedding itself is decided as an embedding above (kept).
  const io::TensorView* embedding = in.find("model.embed_tokens.weight");
  if (in.config().value("tie_word_embeddings", false) && embedding && !in.find("lm_head.weight")) {
    PlanEntry head = plan_entry("lm_head.weight", embedding, recipe, allow_unquantized_k);
    if (head.decision.quantize) {
      head.decision.reason += " (made from the tied model.embed_tokens.weight)";
      head.bytes_before = 0;  // no tensor of its own in the input
      const auto at = std::find_if(plan.entries.begin(), plan.entries.end(),
                                   [](const PlanEntry& e) { return e.name > "lm_head.weight"; });
      plan.entries.insert(at, std::move(head));
      plan.untied_lm_head = true;
    }
  }
  for (const PlanEntry& e : plan.entries) {
    plan.bytes_before += e.bytes_before, plan.bytes_after += e.bytes_after;
    plan.quantized += e.decision.quantize ? 1 : 0;
  }
  return plan;
}

QuantizeSummary quantize_checkpoint(const io::HfCheckpoint& in, const Plan& plan, const Recipe& recipe,
                                    const std::string& out_dir, const QuantizeOptions& opt, const TensorDone& on_tensor) {
  const auto t0 = std::chrono::steady_clock::now();
  // Shards: consecutive plan entries, each shard at most max_shard_bytes unless one entry is larger.
  std::vector<size_t> shard_of(plan.entries.size());
  std::vector<std::vector<io::TensorSpec>> shard_specs(1);
  uint64_t in_shard = 0;
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    const auto& e = plan.entries[i];
    if (in_shard > 0 && in_shard + e.bytes_after > opt.max_shard_bytes) shard_specs.emplace_back(), in_shard = 0;
    shard_of[i] = shard_specs.size() - 1;
    shard_specs.back().insert(shard_specs.back().end(), e.outputs.begin(), e.outputs.end());
    in_shard += e.bytes_after;
  }
  const size_t n_shards = shard_specs.size();
  auto shard_name = [&](size_t s) {
    return n_shards == 1 ? std::string("model.safetensors") : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, n_shards);
  };

  io::CheckpointDir out(out_dir, opt.force);
  QuantizeSummary sum{n_shards, 0, 0, 0};
  std::unique_ptr<io::SafetensorsStreamWriter> writer;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    const PlanEntry& e = plan.entries[i];
    if (!writer)
      writer = std::make_unique<io::SafetensorsStreamWriter>(out.path(shard_name(shard_of[i])), shard_specs[shard_of[i]],
                                                             std::map<std::string, std::string>{{"format", "pt"}});
    double sqnr = NAN;
    if (e.decision.quantize) {
      std::vector<std::vector<uint8_t>> bufs;
      sqnr = quantize_tensor(*e.source, e.decision.format, opt.threads, bufs);
      for (size_t k = 0; k < bufs.size(); ++k) writer->append(e.outputs[k].name, bufs[k]);
    } else {
      writer->append(e.name, e.source->data);
    }
    for (const auto& o : e.outputs) weight_map[o.name] = shard_name(shard_of[i]);
    sum.bytes_read += e.bytes_before, sum.bytes_written += e.bytes_after;
    if (writer->complete()) writer->commit(), writer.reset();
    io::release_pages(e.source->data);
    if (on_tensor) on_tensor(i, e, sqnr);
  }
  if (n_shards > 1)
    out.write_json("model.safetensors.index.json", {{"metadata", {{"total_size", plan.bytes_after}}}, {"weight_map", weight_map}});

  const nlohmann::ordered_json producer = {{"name", "mxq"}, {"version", MXQ_VERSION_STRING}};
  const nlohmann::ordered_json q = quant_config_json(recipe, plan);
  out.write_json("hf_quant_config.json", {{"producer", producer}, {"quantization", q}});
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in.config().dump());
  if (plan.untied_lm_head) config["tie_word_embeddings"] = false;
  config["quantization_config"] = {{"quant_method", "modelopt"}, {"quant_algo", q["quant_algo"]},
                                   {"group_size", q["group_size"]}, {"ignore", q["exclude_modules"]},
                                   {"kv_cache_scheme", q["kv_cache_quant_algo"]}, {"producer", producer},
                                   {"mxq_recipe", recipe.name}};
  out.write_json("config.json", config);
  out.copy_files(in.dir(), in.side_files());
  out.commit();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace mxq::quant
