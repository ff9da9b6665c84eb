// M = 1 GEMV y[N] = W[N, K] · x[K] on the CPU (issue 4): BF16 weights vs MXFP4 W4A16 weights
// (gemm_mxfp4: x rounded to BF16 inside, as W4A16 is defined in gemm.h), against the memory
// bandwidth measured in the same run.
//
// W: N × K (default 14336 × 4096, an MLP weight of a 7-8B model) of gaussian values in BF16, and
// the same values quantized to MXFP4 (codes + E8M0 scales) with mxq's converter. Several copies of
// each weight are used in turn (BF16: 2 × 117 MB; MXFP4: 4 × 31 MB), so neither the 2 MB L2 nor
// the 32 MB L3 holds the weights a run reads. Each kernel runs once per copy to warm up, then
// --reps times, the four measurements below taking turns call by call; the table gives medians.
// Threads: 1 and all (a persistent mxq::ThreadPool, the runtime's).
//
// Bandwidth, measured in the same run on a buffer as big as the BF16 weight, at the same thread
// count: "read" = a SIMD-friendly sum over the buffer (bytes read / time: a pure read stream, what
// a GEMV does), "memcpy" = copy of the buffer (reads + writes / time). GB/s of a GEMV counts weight
// bytes read (+ scale bytes for MXFP4); x and y are negligible (16 KB + 56 KB). "% read" compares
// with the read-only stream — the "weight + scale bytes / time" vs the measured memory
// bandwidth; "% memcpy" with memcpy's read+write GB/s.
//
//   bench_gemv_cpu [--reps N] [--rows N] [--cols K] [--threads T] [--target NAME]
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench_args.h"
#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/kernels/cpu/mx_convert.h"
#include "mxq/kernels/cpu/parallel.h"
#include "mxq/kernels/cpu/thread_pool.h"

namespace {

using namespace mxq;

using Args = bench::BenchArgs;

// A timed kernel: fn(copy) for copy = 0, 1, ... copies − 1, 0, ... (one call per repetition).
struct Timed {
  int copies;
  std::function<void(int)> fn;
};

// Median wall time in microseconds of each kernel, after one warm-up call per copy. The kernels
// take turns, one call each per repetition, so on a shared machine every kernel sees the same
// neighbours (another process's compile or memory traffic) rather than whichever ran during its
// own block of repetitions.
std::vector<double> interleaved_medians_us(int reps, const std::vector<Timed>& kernels) {
  for (const Timed& k : kernels)
    for (int c = 0; c < k.copies; ++c) k.fn(c);
  std::vector<std::vector<double>> t(kernels.size(), std::vector<double>(reps));
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < kernels.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      kernels[i].fn(r % kernels[i].copies);
      t[i][r] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    }
  std::vector<double> medians;
  for (auto& ti : t) {
    std::nth_element(ti.begin(), ti.begin() + reps / 2, ti.end());
    medians.push_back(ti[reps / 2]);
  }
  return medians;
}

// Sum of 64-bit words, 8 independent accumulators (vectorized by the compiler): a read stream.
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += p[i + j];
  for (; i < n; ++i) a[0] += p[i];
  uint64_t s = 0;
  for (uint64_t v : a) s += v;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = bench::parse_bench_args(argc, argv, 15);
  const int all = a.threads > 0 ? a.threads : hardware_threads();
  const size_t N = a.rows, K = a.cols, n = N * K;
  constexpr int kBf16Copies = 2, kMxCopies = 4;

  std::mt19937 rng(1);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<std::vector<bf16>> wb(kBf16Copies, std::vector<bf16>(n));
  for (auto& w : wb)
    for (auto& v : w) v = bf16_from_f32(gauss(rng) * 0.02f);
  std::vector<std::vector<uint8_t>> codes(kMxCopies, std::vector<uint8_t>(n / 2)),
      scales(kMxCopies, std::vector<uint8_t>(n / kMxBlock));
  const MxOptions opt{ScaleRule::ocp_floor, TieRule::nearest_even, NonFinite::error};
  for (int c = 0; c < kMxCopies; ++c) {
    // Copies 0, 1 from BF16 copy 0, 1; copies 2, 3 from the same with their sign flipped.
    std::vector<bf16> src = wb[c % kBf16Copies];
    if (c >= kBf16Copies)
      for (auto& v : src) v = bf16_from_f32(-bf16_to_f32(v));
    if (mxfp4_quantize(src.data(), ElemType::bf16, n, codes[c].data(), scales[c].data(), opt, 0) !=
        kRowOk) {
      fmt::print(stderr, "quantize failed\n");
      return 1;
    }
  }
  std::vector<float> x(K), y_bf16(N), y_mx(N);
  for (auto& v : x) v = gauss(rng);

  // Bandwidth buffers: as big as one BF16 weight.
  const size_t buf_bytes = n * sizeof(bf16);
  std::vector<uint64_t> src(buf_bytes / 8), dst(buf_bytes / 8);
  for (size_t i = 0; i < src.size(); ++i) src[i] = i * 0x9E3779B97F4A7C15ull;

  const double bf16_bytes = 2.0 * n;
  const double mx_bytes = n / 2.0 + static_cast<double>(n / kMxBlock);
  fmt::print(
      "GEMV M=1, W {} x {}: bf16 {:.1f} MB, mxfp4 {:.1f} MB (codes + scales); {} bf16 / {} mxfp4 "
      "copies in turn; SIMD target {}; median of {} after warm-up\n\n",
      N, K, bf16_bytes / 1e6, mx_bytes / 1e6, kBf16Copies, kMxCopies, cpu_simd_active_target(),
      a.reps);
  fmt::print("| kernel | threads | median us | GB/s | % read | % memcpy | mxfp4/bf16 time |\n");
  fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");

  std::vector<int> thread_counts{1};
  if (all > 1) thread_counts.push_back(all);
  volatile uint64_t sink = 0;
  for (const int threads : thread_counts) {
    ThreadPool pool(threads);
    ThreadPool* p = threads > 1 ? &pool : nullptr;
    const size_t words = src.size();
    const auto slices = [&](const std::function<void(size_t, size_t)>& fn) {
      if (p == nullptr) fn(0, words);
      else p->parallel_for(words, (words + threads - 1) / threads, fn);
    };

    const std::vector<double> us = interleaved_medians_us(a.reps, {
        {1, [&](int) {  // read
           uint64_t s = 0;
           std::vector<uint64_t> parts(threads * 8, 0);
           std::atomic<size_t> slot{0};
           slices([&](size_t b, size_t e) { parts[slot++] = sum_words(src.data() + b, e - b); });
           for (uint64_t v : parts) s += v;
           sink = sink + s;
         }},
        {1, [&](int) {  // memcpy
           slices([&](size_t b, size_t e) {
             std::memcpy(dst.data() + b, src.data() + b, (e - b) * sizeof(uint64_t));
           });
         }},
        {kBf16Copies, [&](int c) { gemm_bf16(x.data(), 1, K, wb[c].data(), N, y_bf16.data(), p); }},
        {kMxCopies, [&](int c) {
           gemm_mxfp4(x.data(), 1, K, codes[c].data(), scales[c].data(), N, y_mx.data(), p);
         }},
    });
    const double read_us = us[0], copy_us = us[1], bf16_us = us[2], mx_us = us[3];
    const double read_gbs = buf_bytes / read_us / 1e3;
    const double copy_gbs = 2.0 * buf_bytes / copy_us / 1e3;

    const auto row = [&](const char* kernel, double t_us, double bytes, const std::string& ratio) {
      const double gbs = bytes / t_us / 1e3;
      fmt::print("| {} | {} | {:.1f} | {:.2f} | {:.0f}% | {:.0f}% | {} |\n", kernel, threads, t_us,
                 gbs, 100.0 * gbs / read_gbs, 100.0 * gbs / copy_gbs, ratio);
    };
    row("read (sum)", read_us, buf_bytes, "-");
    row("memcpy (r+w)", copy_us, 2.0 * buf_bytes, "-");
    row("bf16", bf16_us, bf16_bytes, "-");
    row("mxfp4 w4a16", mx_us, mx_bytes, fmt::format("{:.3f}", mx_us / bf16_us));
  }
  return 0;
}
