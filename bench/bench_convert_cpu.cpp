// MXFP4 quantize / dequantize on the CPU against memcpy measured in the same run.
//
// A rows × cols BF16 tensor (default 14336 × 4096, an MLP weight of a 7-8B model) of gaussian
// values. cols is a multiple of 32, so no block straddles two rows and the tensor is converted as
// one row of rows·cols elements. Each op runs once to warm up, then --reps times; the table gives
// the median. GB/s counts bytes read + written: BF16 in/out 2 B, codes 0.5 B, scales 1/32 B per
// element; memcpy reads and writes the BF16 tensor once each.
//
//   bench_convert_cpu [--reps N] [--rows R] [--cols C] [--threads T] [--target NAME]
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench_args.h"
#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/mx_convert.h"
#include "mxq/kernels/cpu/parallel.h"

namespace {

using namespace mxq;

using Args = bench::BenchArgs;

// Median wall time of fn in milliseconds, after one warm-up run.
double median_ms(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> t(reps);
  for (double& ms : t) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
  return t[reps / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = bench::parse_bench_args(argc, argv, 9);
  const int all = a.threads > 0 ? a.threads : hardware_threads();
  const size_t n = a.rows * a.cols;

  std::vector<bf16> x(n), y(n), copy(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  for (auto& v : x) v = bf16_from_f32(gauss(rng));
  std::vector<uint8_t> codes(blocks_of(n, 2)), scales(blocks_of(n, kMxBlock));

  const double tensor_bytes = 2.0 * n;
  const double packed_bytes = static_cast<double>(codes.size() + scales.size());
  fmt::print("tensor {} x {} bf16 ({:.1f} MB), SIMD target {}, max threads {}, median of {}\n\n",
             a.rows, a.cols, tensor_bytes / 1e6, cpu_simd_active_target(), all, a.reps);
  fmt::print(
      "| op | rule | threads | median ms | GB/s (r+w) | GB/s bf16 in | % of copy | target |\n");
  fmt::print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");

  std::vector<int> thread_counts{1};
  if (all > 1) thread_counts.push_back(all);
  for (const int threads : thread_counts) {
    const auto row = [&](const char* op, const char* rule, double ms, double bytes, double copy_gbs,
                         bool quantize) {
      const double gbs = bytes / ms / 1e6;
      fmt::print("| {} | {} | {} | {:.2f} | {:.2f} | {} | {:.0f}% | {} |\n", op, rule, threads, ms,
                 gbs, quantize ? fmt::format("{:.2f}", tensor_bytes / ms / 1e6) : std::string("-"),
                 100.0 * gbs / copy_gbs, cpu_simd_active_target());
    };

    // Copy bandwidth with this many threads: contiguous slices, one per thread.
    const double copy_ms = median_ms(a.reps, [&] {
      parallel_for(n, 1 << 16, threads, [&](size_t b, size_t e) {
        std::memcpy(copy.data() + b, x.data() + b, (e - b) * sizeof(bf16));
      });
    });
    const double copy_gbs = 2.0 * tensor_bytes / copy_ms / 1e6;
    row("memcpy", "-", copy_ms, 2.0 * tensor_bytes, copy_gbs, false);

    for (const ScaleRule rule :
         {ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even, ScaleRule::mse}) {
      const MxOptions opt{rule, TieRule::nearest_even, NonFinite::error};
      size_t ret = kRowOk;
      const double ms = median_ms(a.reps, [&] {
        ret =
            mxfp4_quantize(x.data(), ElemType::bf16, n, codes.data(), scales.data(), opt, threads);
      });
      if (ret != kRowOk) { fmt::print(stderr, "quantize failed at {}\n", ret); return 1; }
      const char* names[] = {"ocp_floor", "ceil", "even", "mse"};
      row("quantize", names[static_cast<int>(rule)], ms, tensor_bytes + packed_bytes, copy_gbs,
          true);
    }

    const double deq_ms = median_ms(a.reps, [&] {
      mxfp4_dequantize(codes.data(), scales.data(), n, y.data(), ElemType::bf16, threads);
    });
    row("dequantize->bf16", "-", deq_ms, packed_bytes + tensor_bytes, copy_gbs, false);
  }
  return 0;
}
