// Whole-model speed on the CPU (issue 4): prefill and decode tokens/s of several checkpoints side by
// side in one process, the ratio to the first (the BF16 baseline), and where decode spends its time.
//
// Per model and repetition: a prefill of --prompt fixed token ids from position 0 (logits of the
// last position only, as generation does), then --decode greedy steps of one token each (argmax of
// the logits = the "sampling" part). The models take turns within each repetition, so a burst of
// load from other processes hits all of them, and each repetition starts with the next model, so no
// model always runs right after the same one. (Rotation does not remove one effect measured here:
// the same checkpoint loaded three times decoded 4-10% faster in the copy loaded first, whatever its
// turn; list the baseline first and the ratios to it err low.) The tables give medians over --reps,
// and the ratios to the first model are medians of the per-repetition ratios (runs a second or two
// apart, so a slow drift of the machine's load cancels). One more
// repetition per model runs with a runtime::Profile attached and gives the per-part table of
// decode: each part's share of the decode wall time and its milliseconds per token; "sampling +
// other" is the wall time no part claims (argmax, argument checks).
//
// Bytes per token = every linear layer's weight bytes (codes + scales, or 16-bit values) + one
// embedding row; GB/s = that × decode tokens/s (the weight stream decode must read; the KV cache,
// 8.8 MB per token for SmolLM2 at 192 positions in f32, half that in bf16, is not counted).
//
//   bench_model_cpu [--prompt N] [--decode N] [--reps N] [--threads T] [--merge-linears 0|1]
//                   [--kv-cache f32|bf16] [LABEL=]MODEL_DIR ...   (--merge-linears 0: the models
//                   after it run q/k/v and gate/up as separate layers, to show what merging them
//                   gives; --kv-cache: the KV cache type of the models after it)
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "mxq/error.h"
#include "mxq/runtime/model.h"

namespace {

using namespace mxq;
using runtime::Profile;
using Clock = std::chrono::steady_clock;

struct Args {
  size_t prompt = 128, decode = 64;
  int reps = 5, threads = 0;
  struct Model {
    std::string label, dir;
    bool merge_linears = true;
    runtime::KvCacheType kv_cache = runtime::KvCacheType::f32;
  };
  std::vector<Model> models;
};

[[noreturn]] void usage(const std::string& why) {
  fmt::print(stderr, "{}\nusage: bench_model_cpu [--prompt N] [--decode N] [--reps N] [--threads T] "
                     "[--merge-linears 0|1] [--kv-cache f32|bf16] [LABEL=]MODEL_DIR ...\n"
                     "  --merge-linears 0: the models named after it run q/k/v and gate/up as separate "
                     "layers (default 1: merged)\n"
                     "  --kv-cache bf16: the models named after it keep a bf16 KV cache (default f32)\n", why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  bool merge = true;
  runtime::KvCacheType kv_cache = runtime::KvCacheType::f32;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k.starts_with("--")) {
      if (i + 1 >= argc) usage("missing value after " + k);
      if (k == "--kv-cache") {
        const auto t = runtime::kv_cache_type_from_name(argv[++i]);
        if (!t)
          usage(fmt::format("--kv-cache takes {} or {}", runtime::kv_cache_type_name(runtime::KvCacheType::f32),
                            runtime::kv_cache_type_name(runtime::KvCacheType::bf16)));
        kv_cache = *t;
        continue;
      }
      const long v = std::atol(argv[++i]);
      if (k == "--merge-linears") {
        if (v != 0 && v != 1) usage("--merge-linears takes 0 or 1");
        merge = v == 1;
        continue;
      }
      if (v <= 0 && k != "--threads") usage(k + " needs a positive number");
      if (k == "--prompt") a.prompt = static_cast<size_t>(v);
      else if (k == "--decode") a.decode = static_cast<size_t>(v);
      else if (k == "--reps") a.reps = static_cast<int>(v);
      else if (k == "--threads") a.threads = static_cast<int>(v);
      else usage("unknown flag " + k);
      continue;
    }
    const size_t eq = k.find('=');
    if (eq == std::string::npos) a.models.push_back({k.substr(k.find_last_of('/') + 1), k, merge, kv_cache});
    else a.models.push_back({k.substr(0, eq), k.substr(eq + 1), merge, kv_cache});
  }
  if (a.models.empty()) usage("no model directory given");
  return a;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int32_t argmax_last(const runtime::Tensor& logits) {
  const float* r = logits.row(logits.rows() - 1);
  return static_cast<int32_t>(std::max_element(r, r + logits.cols()) - r);
}

struct Run {
  double prefill_s = 0, decode_s = 0;
};

// One prefill of `prompt` and `n_decode` greedy steps.
Run run_once(runtime::Model& model, const std::vector<int32_t>& prompt, size_t n_decode) {
  Run r;
  auto t0 = Clock::now();
  int32_t tok = argmax_last(model.forward(prompt, 0, false));
  r.prefill_s = seconds_since(t0);
  t0 = Clock::now();
  for (size_t i = 0; i < n_decode; ++i)
    tok = argmax_last(model.forward(std::span<const int32_t>(&tok, 1), prompt.size() + i, false));
  r.decode_s = seconds_since(t0);
  return r;
}

struct Entry {
  std::string label;
  std::unique_ptr<runtime::Model> model;
  std::vector<double> prefill_tps, decode_tps;
  Profile profile;
  double profiled_decode_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  std::vector<Entry> models;
  try {
    for (const Args::Model& m : a.models) {
      runtime::ModelOptions opt;
      opt.threads = a.threads;
      opt.max_seq = a.prompt + a.decode;
      opt.merge_linears = m.merge_linears;
      opt.kv_cache = m.kv_cache;
      models.push_back({m.label, std::make_unique<runtime::Model>(m.dir, opt), {}, {}, {}, 0});
    }
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  // Fixed prompt ids spread over the vocabulary (the cost of a step does not depend on them).
  const size_t vocab = models[0].model->config().vocab;
  std::vector<int32_t> prompt(a.prompt);
  for (size_t i = 0; i < a.prompt; ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % vocab);

  fmt::print("prompt {} tokens, decode {} tokens, median of {} repetitions (+1 warm-up, +1 profiled)\n\n",
             a.prompt, a.decode, a.reps);
  for (Entry& e : models) run_once(*e.model, prompt, a.decode);  // warm-up: page in the weights
  for (int rep = 0; rep < a.reps; ++rep)
    for (size_t k = 0; k < models.size(); ++k) {  // each repetition starts with the next model
      Entry& e = models[(static_cast<size_t>(rep) + k) % models.size()];
      const Run r = run_once(*e.model, prompt, a.decode);
      e.prefill_tps.push_back(static_cast<double>(a.prompt) / r.prefill_s);
      e.decode_tps.push_back(static_cast<double>(a.decode) / r.decode_s);
    }
  for (Entry& e : models) {
    // Prefill without the profile, decode with it.
    const int32_t tok = argmax_last(e.model->forward(prompt, 0, false));
    e.model->set_profile(&e.profile);
    const auto t0 = Clock::now();
    int32_t t = tok;
    for (size_t i = 0; i < a.decode; ++i)
      t = argmax_last(e.model->forward(std::span<const int32_t>(&t, 1), a.prompt + i, false));
    e.profiled_decode_s = seconds_since(t0);
    e.model->set_profile(nullptr);
  }

  const auto ratio = [&](const std::vector<double>& v, const std::vector<double>& base) {
    std::vector<double> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = v[i] / base[i];
    return median(r);
  };
  fmt::print("| model | weight MB / token | prefill tok/s | decode tok/s | decode range | prefill vs {0} | decode vs {0} | GB/s |\n",
             models[0].label);
  fmt::print("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Entry& e : models) {
    const double mb = static_cast<double>(e.model->weight_bytes_per_token()) / 1e6;
    const double p = median(e.prefill_tps), d = median(e.decode_tps);
    const auto [lo, hi] = std::minmax_element(e.decode_tps.begin(), e.decode_tps.end());
    fmt::print("| {} | {:.1f} | {:.1f} | {:.1f} | {:.1f}-{:.1f} | {:.2f}x | {:.2f}x | {:.1f} |\n", e.label, mb, p, d,
               *lo, *hi, ratio(e.prefill_tps, models[0].prefill_tps),
               ratio(e.decode_tps, models[0].decode_tps), mb * d / 1e3);
  }

  fmt::print("\ndecode time by part: % of the profiled decode wall time (ms per token; GB/s of the part's "
             "weight bytes where it reads weights)\n\n| part |");
  for (const Entry& e : models) fmt::print(" {} |", e.label);
  fmt::print("\n|---|");
  for (size_t i = 0; i < models.size(); ++i) fmt::print("---:|");
  fmt::print("\n");
  const auto cell = [&](const Entry& e, double ns, size_t bytes_per_token) {
    const double wall_ns = e.profiled_decode_s * 1e9, per_token_ns = ns / static_cast<double>(a.decode);
    fmt::print(" {:.1f}% ({:.3f}", 100.0 * ns / wall_ns, per_token_ns / 1e6);
    if (bytes_per_token > 0 && per_token_ns > 0) fmt::print("; {:.1f} GB/s", static_cast<double>(bytes_per_token) / per_token_ns);
    fmt::print(") |");
  };
  for (size_t p = 0; p < Profile::kPartCount; ++p) {
    const auto part = static_cast<Profile::Part>(p);
    fmt::print("| {} |", Profile::kNames[p]);
    for (const Entry& e : models)
      cell(e, static_cast<double>(e.profile.ns[p]), part == Profile::embedding ? 0 : e.model->weight_bytes(part));
    fmt::print("\n");
  }
  fmt::print("| sampling + other |");
  for (const Entry& e : models)
    cell(e, std::max(0.0, e.profiled_decode_s * 1e9 - static_cast<double>(e.profile.total_ns())), 0);
  fmt::print("\n| decode tok/s while profiled |");
  for (const Entry& e : models) fmt::print(" {:.1f} |", static_cast<double>(a.decode) / e.profiled_decode_s);
  fmt::print("\n");
  return 0;
}
