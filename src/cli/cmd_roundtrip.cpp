// `mxq roundtrip`: quantize a tensor to each block format and scale rule, dequantize it, and report
// the error (and, for the synthetic tensor, the conversion speed). With --gguf, every 2-D weight of a
// real model is quantized and the error is reported per kind of layer.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/progress.h"
#include "mxq/error.h"
#include "mxq/format_ref.h"
#include "mxq/io/gguf.h"
#include "mxq/kernels/cpu/format_traits.h"
#include "mxq/kernels/cpu/parallel.h"

namespace mxq::cli {
namespace {

struct RoundtripArgs {
  size_t rows = 4096;
  size_t cols = 4096;
  std::string dist = "gaussian";
  std::vector<std::string> rules = {"ocp_floor", "ceil", "even", "mse"};
  int threads = 0;
  uint32_t seed = 1;
  std::string gguf;
};

const std::map<std::string, ScaleRule> kRules = {{"ocp_floor", ScaleRule::ocp_floor},
                                                 {"ceil", ScaleRule::ceil},
                                                 {"even", ScaleRule::even},
                                                 {"mse", ScaleRule::mse}};

// Weights-like data: per-row scale times a gaussian, Laplace (heavier tails) or Student-t(3)
// (outliers), rounded to BF16 as a checkpoint would hold it.
std::vector<bf16> make_tensor(const RoundtripArgs& a) {
  std::vector<bf16> x(a.rows * a.cols);
  parallel_for(a.rows, 64, a.threads, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      std::mt19937 rng(a.seed * 7919u + static_cast<uint32_t>(r));
      std::normal_distribution<float> g(0.f, 1.f);
      std::exponential_distribution<float> ex(1.f);
      std::chi_squared_distribution<float> chi(3.f);
      const float row_scale = 0.02f * std::exp(0.5f * g(rng));
      for (size_t c = 0; c < a.cols; ++c) {
        float v = g(rng);
        if (a.dist == "laplace") v = (rng() & 1 ? 1.f : -1.f) * ex(rng);
        if (a.dist == "student-t") v = v / std::sqrt(chi(rng) / 3.f);
        x[r * a.cols + c] = bf16_from_f32(v * row_scale);
      }
    }
  });
  return x;
}

struct ErrorStats {
  double sqnr_db, rel_rmse, max_err_over_amax, saturated_pct;
};

ErrorStats measure(const std::vector<bf16>& x, const std::vector<float>& y, const FormatTraits& t,
                   const std::vector<uint8_t>& scales, const QuantParams& p) {
  double sig = 0, err = 0, worst = 0;
  size_t saturated = 0;
  for (size_t b = 0; b * t.block_size < x.size(); ++b) {
    double amax = 0, block_worst = 0;
    const size_t end = std::min(x.size(), (b + 1) * t.block_size);
    for (size_t i = b * t.block_size; i < end; ++i) {
      const double v = bf16_to_f32(x[i]), e = v - y[i];
      sig += v * v, err += e * e;
      amax = std::max(amax, std::fabs(v));
      block_worst = std::max(block_worst, std::fabs(e));
    }
    if (amax > 0) worst = std::max(worst, block_worst / amax);
    // An element saturates where |x| exceeds the block's largest representable magnitude.
    const double top = t.format == BlockFormat::nvfp4
                           ? 6.0 * e4m3_to_f32(scales[b]) * p.tensor_scale
                           : (t.format == BlockFormat::mxfp4 ? 6.0 : 448.0) * e8m0_to_f32(scales[b]);
    for (size_t i = b * t.block_size; i < end; ++i)
      saturated += std::fabs(bf16_to_f32(x[i])) > top;
  }
  return {10 * std::log10(sig / err), std::sqrt(err / sig), worst, 100.0 * saturated / x.size()};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_roundtrip(const RoundtripArgs& a) {
  const auto x = make_tensor(a);
  const size_t n = x.size();
  fmt::print("mxq roundtrip: {} x {} BF16 ({:.1f} MB), {} data, {} threads\n\n", a.rows, a.cols,
             n * 2 / 1e6, a.dist, a.threads > 0 ? a.threads : hardware_threads());
  fmt::print("{:<11} {:<10} {:>9} {:>9} {:>11} {:>8} {:>10} {:>10} {:>6}\n", "format", "rule",
             "SQNR dB", "rel RMSE", "max|e|/amax", "sat. %", "quant GB/s", "deq GB/s", "bits");
  float amax = 0;
  for (const bf16 v : x) amax = std::max(amax, std::fabs(bf16_to_f32(v)));
  for (const auto& t : format_traits_table()) {
    std::vector<std::string> rules = a.rules;
    if (t.format == BlockFormat::nvfp4) rules = {"-"};
    for (const auto& rule : rules) {
      QuantParams p;
      if (rule != "-") p.mx.scale = kRules.at(rule);
      if (t.has_tensor_scale) p.tensor_scale = nvfp4_tensor_scale(amax);
      std::vector<uint8_t> codes(t.code_bytes(n)), scales(t.scale_count(n) * t.scale_bytes);
      auto t0 = std::chrono::steady_clock::now();
      const size_t bad = t.quantize(x.data(), ElemType::bf16, n, codes.data(), scales.data(), p, a.threads);
      const double tq = seconds_since(t0);
      if (bad != kRowOk) fail("non-finite input at element {}", bad);
      std::vector<float> y(n);
      t0 = std::chrono::steady_clock::now();
      t.dequantize(codes.data(), scales.data(), n, y.data(), ElemType::f32, p, a.threads);
      const double td = seconds_since(t0);
      const ErrorStats s = measure(x, y, t, scales, p);
      const double bits = 8.0 * (codes.size() + scales.size()) / n;
      fmt::print("{:<11} {:<10} {:>9.2f} {:>9.4f} {:>11.4f} {:>8.3f} {:>10.2f} {:>10.2f} {:>6.2f}\n",
                 t.name, rule, s.sqnr_db, s.rel_rmse, s.max_err_over_amax, s.saturated_pct,
                 n * 2 / tq / 1e9, n * 2 / td / 1e9, bits);
    }
  }
  fmt::print("\nGB/s counts BF16 bytes (quantize input, dequantize output as if BF16); one timed run each.\n"
             "For careful timings use bench/bench_convert_cpu (docs/BENCHMARKS.md).\n");
}

// The layer kind of a GGUF tensor name: "blk.12.ffn_down.weight" -> "ffn_down".
std::string layer_kind(const std::string& name) {
  std::string k = name;
  if (k.rfind("blk.", 0) == 0) k = k.substr(k.find('.', 4) + 1);
  if (const auto dot = k.rfind(".weight"); dot != std::string::npos) k.resize(dot);
  return k;
}

struct Config {
  std::string label;
  const FormatTraits* traits;
  QuantParams params;
};

void run_model_roundtrip(const RoundtripArgs& a) {
  const io::GgufFile model(a.gguf);
  std::vector<Config> configs;
  for (const auto& rule : a.rules)
    configs.push_back({"mxfp4 " + rule, &format_traits(BlockFormat::mxfp4), {MxOptions{kRules.at(rule)}, 1.f}});
  configs.push_back({"mxfp8 ocp_floor", &format_traits(BlockFormat::mxfp8_e4m3), {}});
  configs.push_back({"nvfp4", &format_traits(BlockFormat::nvfp4), {}});

  struct Sums { size_t tensors = 0, params = 0; double signal = 0; std::vector<double> err; };
  std::map<std::string, Sums> by_kind;
  Sums all;
  all.err.assign(configs.size(), 0);
  size_t done = 0, weights = 0;
  for (const auto& t : model.tensors()) weights += t.ne.size() == 2;
  Progress bar(weights);
  for (const auto& t : model.tensors()) {
    if (t.ne.size() != 2) continue;  // norms and biases stay in high precision
    const auto x = model.dequantize(t);
    auto& s = by_kind[layer_kind(t.name)];
    s.err.resize(configs.size());
    s.tensors += 1, s.params += x.size(), all.tensors += 1, all.params += x.size();
    double sig = 0;
    float amax = 0;
    for (float v : x) sig += double(v) * v, amax = std::max(amax, std::fabs(v));
    s.signal += sig, all.signal += sig;
    for (size_t c = 0; c < configs.size(); ++c) {
      const FormatTraits& tr = *configs[c].traits;
      QuantParams p = configs[c].params;
      if (tr.has_tensor_scale) p.tensor_scale = nvfp4_tensor_scale(amax);
      std::vector<uint8_t> codes(tr.code_bytes(x.size())), scales(tr.scale_count(x.size()) * tr.scale_bytes);
      if (tr.quantize(x.data(), ElemType::f32, x.size(), codes.data(), scales.data(), p, a.threads) != kRowOk)
        fail("{}: tensor '{}' holds NaN or Inf", a.gguf, t.name);
      std::vector<float> y(x.size());
      tr.dequantize(codes.data(), scales.data(), x.size(), y.data(), ElemType::f32, p, a.threads);
      double e = 0;
      for (size_t i = 0; i < x.size(); ++i) e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
      s.err[c] += e, all.err[c] += e;
    }
    bar.update(++done, t.name);
  }
  bar.finish();

  fmt::print("mxq roundtrip: {} ({} weight tensors, {:.1f} M parameters), source type as stored\n",
             a.gguf, all.tensors, all.params / 1e6);
  fmt::print("SQNR in dB of the dequantized weights against the source weights (higher is better)\n\n");
  fmt::print("{:<14} {:>7} {:>9}", "layer", "tensors", "params M");
  for (const auto& c : configs) fmt::print(" {:>16}", c.label);
  fmt::print("\n");
  auto row = [&](const std::string& name, const Sums& s) {
    fmt::print("{:<14} {:>7} {:>9.2f}", name, s.tensors, s.params / 1e6);
    for (double e : s.err) fmt::print(" {:>16.2f}", 10 * std::log10(s.signal / e));
    fmt::print("\n");
  };
  for (const auto& [kind, s] : by_kind) row(kind, s);
  row("all", all);
}

}  // namespace

void add_roundtrip(CLI::App& app) {
  auto args = std::make_shared<RoundtripArgs>();
  auto* cmd = app.add_subcommand(
      "roundtrip", "Error (and speed) of each format and scale rule on a synthetic tensor or a GGUF model's weights");
  cmd->add_option("--rows", args->rows, "Rows of the tensor")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--cols", args->cols, "Columns (the reduction axis)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--dist", args->dist, "Value distribution")
      ->check(CLI::IsMember({"gaussian", "laplace", "student-t"}));
  cmd->add_option("--rules", args->rules, "MX scale rules to compare")
      ->check(CLI::IsMember({"ocp_floor", "ceil", "even", "mse"}));
  cmd->add_option("--threads", args->threads, "Worker threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--seed", args->seed, "Random seed");
  cmd->add_option("--gguf", args->gguf, "Quantize every 2-D weight of this GGUF model instead")
      ->check(CLI::ExistingFile);
  cmd->callback([args] { args->gguf.empty() ? run_roundtrip(*args) : run_model_roundtrip(*args); });
}

}  // namespace mxq::cli
