// The CPU GEMM kernels and every LinearMethod mode against their scalar references, on fresh random
// data at awkward sizes (K a multiple of 32 but not of 128, N not a multiple of any tile, M in
// {1, 2, 3, 7, 33}), on every Highway target this CPU has, with and without the thread pool.
//
// Tolerance (derived, tier 2 of DESIGN.md): the references decode every weight and activation
// exactly to f32, form products and sums in double and round once, so they are the exact sum to
// within 2^-53·K·Σ|x·w| plus one final f32 rounding. The SIMD paths decode the same f32 values
// (exactly: BF16 is an f32 prefix, E2M1 × 2^e is a small integer times a power of two; MXFP4's
// activations are rounded to BF16 by both paths first) and sum in f32 with fused multiply-adds
// (or vdpbf16ps: exact products, one rounding per addition), each lane sequentially over K/L
// terms, then a reduction over L lanes, then (bf16 tails) up to L-1 scalar FMAs. Each addition
// rounds once; the classical bound for recursive summation gives |Σ̂ − Σ| ≤ γ_n · Σ|x·w| with n
// the longest chain of roundings (K/L + log2 L + L ≤ K + 1 for every L ≥ 1; the AVX-512 BF16
// MXFP4 kernel: ≤ 8 in a 128-element step, then ⌈K/128⌉ + 4, ≤ K + 1 for every K ≥ 32) and
// γ_n = n·u/(1 − n·u), u = 2^-24. So we assert
//     |y − y_ref| ≤ (K + 2) · 2^-24 · Σ_k |x_k · w_k|   (+ the ref's final rounding, inside the +2),
// computed per output element in double from the same decoded values. It is a worst-case bound
// (typical errors are ~√K smaller); it fails on any decode error, which moves y by a whole weight.
#include <gtest/gtest.h>

#include "simd_targets.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mxq/error.h"
#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/kernels/cpu/mx_convert.h"
#include "mxq/kernels/cpu/thread_pool.h"
#include "mxq/runtime/linear_method.h"

namespace mxq {
namespace {

constexpr size_t kMs[] = {1, 2, 3, 7, 33};
constexpr size_t kNs[] = {1, 13, 67};
constexpr size_t kMxKs[] = {32, 96, 160, 288};       // multiples of 32, not of 128
constexpr size_t kDenseKs[] = {1, 37, 100, 288};     // BF16 / F32: any K, tails mid-vector


std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<float> bf16_rounded(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  act_bf16_round_row(x.data(), x.size(), r.data());
  return r;
}

struct Mxfp4Weights {
  std::vector<uint8_t> codes, scales;
  std::vector<float> dense;  // decoded, [N, K]
};

// Random codes (every nibble, ±0 included) and scales 2^-12 .. 2^3 (no overflow, no NaN).
Mxfp4Weights random_mxfp4(size_t N, size_t K, std::mt19937& rng) {
  Mxfp4Weights w;
  w.codes.resize(N * K / 2);
  w.scales.resize(N * K / kMxBlock);
  std::uniform_int_distribution<int> byte(0, 255), sc(kE8M0Bias - 12, kE8M0Bias + 3);
  for (auto& c : w.codes) c = static_cast<uint8_t>(byte(rng));
  for (auto& s : w.scales) s = static_cast<uint8_t>(sc(rng));
  w.dense.resize(N * K);
  mxfp4_dequantize_row_ref(w.codes.data(), w.scales.data(), N * K, w.dense.data());
  return w;
}

// |y − y_ref| ≤ (K + 2)·2^-24·Σ|x·w| for every element (see the top of the file), x and w the
// values the GEMM consumes; a NaN in the reference must be NaN here. Also checks the data is not
// degenerate (some output is nonzero).
void expect_close(const std::vector<float>& y, const std::vector<float>& ref,
                  const std::vector<float>& x, const std::vector<float>& w, size_t M, size_t N,
                  size_t K) {
  double largest = 0.0;
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < N; ++n) {
      if (std::isnan(ref[m * N + n])) {
        ASSERT_TRUE(std::isnan(y[m * N + n])) << "m " << m << " n " << n;
        continue;
      }
      double sabs = 0.0;
      for (size_t k = 0; k < K; ++k) sabs += std::fabs(static_cast<double>(x[m * K + k]) * w[n * K + k]);
      const double tol = static_cast<double>(K + 2) * 0x1p-24 * sabs;
      const double d = std::fabs(static_cast<double>(y[m * N + n]) - ref[m * N + n]);
      ASSERT_LE(d, tol) << "m " << m << " n " << n << " y " << y[m * N + n] << " ref " << ref[m * N + n];
      largest = std::max(largest, std::fabs(static_cast<double>(ref[m * N + n])));
    }
  EXPECT_GT(largest, 0.0);
}

TEST(ThreadPool, EveryIndexOnceOverManyJobs) {
  ThreadPool pool(3);
  for (size_t job = 0; job < 2000; ++job) {
    const size_t n = 1 + job % 97;
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, 1, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "job " << job << " index " << i;
  }
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<size_t> total{0};
  pool.parallel_for(8, 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      pool.parallel_for(10, 1, [&](size_t b2, size_t e2) { total += e2 - b2; });
  });
  EXPECT_EQ(total.load(), 80u);
}

TEST(Gemm, Bf16AndF32MatchReference) {
  std::mt19937 rng(101);
  ThreadPool pool(3);
  for_each_simd_target([&](const std::string&) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool})
      for (size_t K : kDenseKs)
        for (size_t N : kNs)
          for (size_t M : kMs) {
            SCOPED_TRACE(testing::Message() << "M " << M << " N " << N << " K " << K << " pool " << (p != nullptr));
            const auto x = randn(M * K, rng);
            const auto wf = randn(N * K, rng, 0.1f);
            std::vector<bf16> wb(N * K);
            std::vector<float> wbf(N * K);
            for (size_t i = 0; i < wf.size(); ++i) {
              wb[i] = bf16_from_f32(wf[i]);
              wbf[i] = bf16_to_f32(wb[i]);
            }
            std::vector<float> y(M * N), ref(M * N);
            gemm_bf16(x.data(), M, K, wb.data(), N, y.data(), p);
            gemm_bf16_ref(x.data(), M, K, wb.data(), N, ref.data());
            expect_close(y, ref, x, wbf, M, N, K);
            gemm_f32(x.data(), M, K, wf.data(), N, y.data(), p);
            gemm_f32_ref(x.data(), M, K, wf.data(), N, ref.data());
            expect_close(y, ref, x, wf, M, N, K);
          }
  });
}

TEST(Gemm, Mxfp4MatchesReference) {
  std::mt19937 rng(202);
  ThreadPool pool(2);
  for_each_simd_target([&](const std::string&) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool})
      for (size_t K : kMxKs)
        for (size_t N : kNs)
          for (size_t M : kMs) {
            SCOPED_TRACE(testing::Message() << "M " << M << " N " << N << " K " << K << " pool " << (p != nullptr));
            const auto x = randn(M * K, rng);
            const Mxfp4Weights w = random_mxfp4(N, K, rng);
            std::vector<float> y(M * N), ref(M * N);
            gemm_mxfp4(x.data(), M, K, w.codes.data(), w.scales.data(), N, y.data(), p);
            gemm_mxfp4_ref(x.data(), M, K, w.codes.data(), w.scales.data(), N, ref.data());
            expect_close(y, ref, bf16_rounded(x), w.dense, M, N, K);
          }
  });
}

// W4A16 consumes bf16(x): the GEMM gives the same bits for x and for x rounded beforehand.
TEST(Gemm, Mxfp4ConsumesBf16Activations) {
  std::mt19937 rng(212);
  const size_t N = 13, K = 288;
  for_each_simd_target([&](const std::string&) {
    for (size_t M : {size_t{1}, size_t{5}}) {
      const auto x = randn(M * K, rng);
      const auto xr = bf16_rounded(x);
      ASSERT_NE(x, xr);  // the rounding is not a no-op on this data
      const Mxfp4Weights w = random_mxfp4(N, K, rng);
      std::vector<float> y(M * N), y_rounded(M * N);
      gemm_mxfp4(x.data(), M, K, w.codes.data(), w.scales.data(), N, y.data(), nullptr);
      gemm_mxfp4(xr.data(), M, K, w.codes.data(), w.scales.data(), N, y_rounded.data(), nullptr);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(f32_bits(y[i]), f32_bits(y_rounded[i])) << i;
    }
  });
}

// The inputs the AVX-512 BF16 kernel hands to its per-element path or must prescale (gemm.cpp):
// rows with a scale too small for x's prescale (2^-120) or NaN, activations spanning more than
// 2^182, and activations that are BF16 subnormals (treated as zero by vdpbf16ps unless prescaled).
// Every target must still match the reference.
TEST(Gemm, Mxfp4EdgeScalesAndActivations) {
  std::mt19937 rng(222);
  const size_t N = 13, K = 160;
  ThreadPool pool(2);
  for_each_simd_target([&](const std::string&) {
    for (size_t M : {size_t{1}, size_t{6}})
      for (int kind = 0; kind < 3; ++kind) {
        SCOPED_TRACE(testing::Message() << "M " << M << " kind " << kind);
        auto x = randn(M * K, rng);
        Mxfp4Weights w = random_mxfp4(N, K, rng);
        if (kind == 0) {
          // Row 3: one block at 2^-120; row 7: one NaN scale.
          w.scales[3 * (K / kMxBlock) + 1] = kE8M0Bias - 120;
          w.scales[7 * (K / kMxBlock) + 2] = kE8M0Nan;
          mxfp4_dequantize_row_ref(w.codes.data(), w.scales.data(), N * K, w.dense.data());
        } else if (kind == 1) {
          x[1] = 0x1p100f;   // the last row too: M · K − 1
          x[M * K - 1] = 0x1p-100f;
        } else {
          // BF16 subnormals and small normals (|x| ~ 2^-126), and one 2^-40 that every row
          // multiplies by +0 (its code nibble cleared), which sets the prescale. Scales 2^0..2^3
          // keep y (~2^-116) and the bound far above f32's subnormal step 2^-149.
          for (auto& v : x) v *= 0x1p-126f;
          x[0] = 0x1p-40f;
          for (size_t n = 0; n < N; ++n) w.codes[n * K / 2] &= 0xF0;
          for (auto& sc : w.scales) sc = static_cast<uint8_t>(kE8M0Bias + sc % 4);
          mxfp4_dequantize_row_ref(w.codes.data(), w.scales.data(), N * K, w.dense.data());
        }
        std::vector<float> y(M * N), ref(M * N);
        gemm_mxfp4(x.data(), M, K, w.codes.data(), w.scales.data(), N, y.data(), &pool);
        gemm_mxfp4_ref(x.data(), M, K, w.codes.data(), w.scales.data(), N, ref.data());
        expect_close(y, ref, bf16_rounded(x), w.dense, M, N, K);
      }
  });
}

// The AVX-512 BF16 kernel's row bookkeeping at a SmolLM2-like K = 576 (4.5 steps of 128): rows
// go in blocks of 113 (2048 f32 scales, gemm.cpp), within a block 4 at a time for M = 1 with the
// rest one by one, and a row's last step reads 2 scales past it (the next row's, or the block's
// zero padding). N = 233 = 2 · 113 + 7 leaves a short block whose 7 rows are one group of 4 and 3
// single rows; the rows taking the per-element path (a NaN scale, a scale too small for the
// prescale) sit in a group of 4, next to a block boundary (112, 113) and last (232).
TEST(Gemm, Mxfp4RowBlocksAndGroups) {
  std::mt19937 rng(232);
  const size_t N = 233, K = 576;
  ThreadPool pool(2);
  for_each_simd_target([&](const std::string&) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool})
      for (size_t M : {size_t{1}, size_t{5}})
        for (bool bad_rows : {false, true}) {
          SCOPED_TRACE(testing::Message() << "M " << M << " pool " << (p != nullptr) << " bad rows " << bad_rows);
          const auto x = randn(M * K, rng);
          Mxfp4Weights w = random_mxfp4(N, K, rng);
          if (bad_rows) {
            for (size_t n : {size_t{5}, size_t{112}, size_t{232}}) w.scales[n * (K / kMxBlock) + 17] = kE8M0Nan;
            w.scales[113 * (K / kMxBlock)] = kE8M0Bias - 120;
            mxfp4_dequantize_row_ref(w.codes.data(), w.scales.data(), N * K, w.dense.data());
          }
          std::vector<float> y(M * N), ref(M * N);
          gemm_mxfp4(x.data(), M, K, w.codes.data(), w.scales.data(), N, y.data(), p);
          gemm_mxfp4_ref(x.data(), M, K, w.codes.data(), w.scales.data(), N, ref.data());
          expect_close(y, ref, bf16_rounded(x), w.dense, M, N, K);
        }
  });
}

// Integer-valued inputs (tier 1): x in {-3..3}, weights with scale 2^0 are small integers / 2, so
// every partial sum is exact in f32 and the SIMD GEMV equals the reference bit for bit.
TEST(Gemm, Mxfp4ExactOnIntegerData) {
  std::mt19937 rng(303);
  const size_t M = 1, N = 19, K = 160;
  std::uniform_int_distribution<int> xi(-3, 3), byte(0, 255);
  std::vector<float> x(M * K);
  for (auto& v : x) v = static_cast<float>(xi(rng));
  std::vector<uint8_t> codes(N * K / 2), scales(N * K / kMxBlock, kE8M0Bias);
  for (auto& c : codes) c = static_cast<uint8_t>(byte(rng));
  for_each_simd_target([&](const std::string&) {
    std::vector<float> y(M * N), ref(M * N);
    gemm_mxfp4(x.data(), M, K, codes.data(), scales.data(), N, y.data(), nullptr);
    gemm_mxfp4_ref(x.data(), M, K, codes.data(), scales.data(), N, ref.data());
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], ref[i]) << i;
  });
}

TEST(ActivationQuant, Fp8DynamicAndStatic) {
  std::mt19937 rng(404);
  const size_t K = 96;
  const auto x = randn(K, rng, 3.0f);
  std::vector<float> xq(K);
  const float s = act_fp8_quantize_row(x.data(), K, 0.0f, xq.data());
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  EXPECT_EQ(s, amax / 448.0f);
  for (size_t k = 0; k < K; ++k) {
    // Every x̂ is an E4M3 value times s; RNE with 3 mantissa bits: relative error ≤ 2^-4 for
    // normal values, absolute ≤ 2^-10·s (half the subnormal step 2^-9) below them.
    const float q = xq[k] / s;
    EXPECT_EQ(e4m3_to_f32(e4m3_from_f32(q)), q) << k;
    EXPECT_LE(std::fabs(xq[k] - x[k]), std::max(std::fabs(x[k]) * 0x1p-4f, 0x1p-10f * s) * 1.0001f) << k;
  }
  // Static: the checkpoint's scale, saturating at 448·s.
  const float st = amax / 800.0f;
  act_fp8_quantize_row(x.data(), K, st, xq.data());
  for (size_t k = 0; k < K; ++k) EXPECT_LE(std::fabs(xq[k]), 448.0f * st * 1.0000001f);
}

// act_fp8_codes (the runtime's SIMD W4A8 quantizer) against act_fp8_codes_row, bit for bit (NaN
// payload and sign too), on every target: fresh gaussian rows over many binades, with E4M3's edges
// planted (ties at the subnormal step and at 464, the 2^-6 boundary, values past 448, ±Inf, NaN,
// ±0, f32 subnormals) and awkward K; per-token and static scales (a unit scale puts the planted
// values exactly on the grid's ties and edges, a small one saturates).
TEST(ActivationQuant, Fp8CodesSimdEqualsRowBitForBit) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> binade(-12, 8);
  const float edges[] = {1.1875f, 1.0625f, 0x1.3p+4f, 0x1.38p-6f, 0x1p-10f, 3 * 0x1p-10f, 0x1p-6f,
                         0x1.fp-7f, 464.0f, 448.0f, 449.0f, 480.0f,
                         1e30f, 0.0f, -0.0f, 0x1p-140f, std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN(), 3.4e38f};
  for (const size_t K : {size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{100}, size_t{576}}) {
    const size_t M = 3;
    std::vector<float> x(M * K);
    for (auto& v : x) v = gauss(rng) * std::ldexp(1.0f, binade(rng));
    for (size_t i = 0; i < x.size(); i += 3) {
      const float e = edges[rng() % std::size(edges)];
      x[i] = (rng() & 1) ? -e : e;
    }
    for (const float static_scale : {0.0f, 1.0f, 0.0371f, 1e-3f}) {
      SCOPED_TRACE(testing::Message() << "K " << K << " static scale " << static_scale);
      std::vector<float> ref(M * K), ref_s(M);
      for (size_t m = 0; m < M; ++m) ref_s[m] = act_fp8_codes_row(x.data() + m * K, K, static_scale, ref.data() + m * K);
      for_each_simd_target([&](const std::string&) {
        std::vector<float> q(M * K, 7.0f), s(M, 7.0f);
        act_fp8_codes(x.data(), M, K, static_scale, q.data(), s.data());
        for (size_t m = 0; m < M; ++m) ASSERT_EQ(f32_bits(s[m]), f32_bits(ref_s[m])) << "row " << m;
        for (size_t i = 0; i < q.size(); ++i)
          ASSERT_EQ(f32_bits(q[i]), f32_bits(ref[i])) << "x " << x[i] << " at " << i;
      });
    }
  }
}

TEST(ActivationQuant, Mxfp4IsModelOptW4A4Rule) {
  // The SIMD converter with the same options gives the same values (and it is tested bit for bit
  // against the reference in test_cpu_simd.cpp): ceil scale, ties to even.
  std::mt19937 rng(505);
  const size_t K = 160;
  const auto x = randn(K, rng);
  std::vector<float> xq(K), via(K);
  act_mxfp4_quantize_row(x.data(), K, xq.data());
  std::vector<uint8_t> codes(K / 2), scales(K / 32);
  mxfp4_quantize(x.data(), ElemType::f32, K, codes.data(), scales.data(),
                 MxOptions{ScaleRule::ceil, TieRule::nearest_even, NonFinite::error}, 1);
  mxfp4_dequantize(codes.data(), scales.data(), K, via.data(), ElemType::f32, 1);
  for (size_t k = 0; k < K; ++k) ASSERT_EQ(xq[k], via[k]) << k;
}

// ---- LinearMethods on hand-made tensors ----

struct FakeLayer {
  io::TensorView wv, sv, pqs_v, in_v, bias_v;
  io::LogicalTensor w, pqs, in_scale, bias;
  std::vector<float> pqs_data, bias_data, in_scale_data;
  runtime::LoadedWeights loaded(const runtime::LinearSpec& s, bool with_pqs, bool with_in) const {
    runtime::LoadedWeights l{{s.prefix + ".weight", &w}};
    if (with_pqs) l.emplace(s.prefix + ".pre_quant_scale", &pqs);
    if (with_in) l.emplace(s.prefix + ".input_scale", &in_scale);
    if (s.bias) l.emplace(s.prefix + ".bias", &bias);
    return l;
  }
};

io::TensorView f32_view(const std::string& name, const std::vector<float>& v, std::vector<uint64_t> shape) {
  return io::TensorView{name, io::DType::f32, std::move(shape),
                        {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}};
}

// The dense tensors a quantized method may take besides its weight, filled with random values:
// pre_quant_scale around 1 [K], a bias [N] and a static input_scale (the caller's value).
void add_dense_params(FakeLayer& f, size_t K, size_t N, float input_scale, std::mt19937& rng) {
  f.pqs_data = randn(K, rng, 0.3f);
  for (auto& v : f.pqs_data) v = 1.0f + v;
  f.pqs_v = f32_view("l.pre_quant_scale", f.pqs_data, {K});
  f.pqs = io::LogicalTensor{"l.pre_quant_scale", io::StoredFormat::dense, {K}, &f.pqs_v, nullptr, nullptr};
  f.bias_data = randn(N, rng);
  f.bias_v = f32_view("l.bias", f.bias_data, {N});
  f.bias = io::LogicalTensor{"l.bias", io::StoredFormat::dense, {N}, &f.bias_v, nullptr, nullptr};
  f.in_scale_data = {input_scale};
  f.in_v = f32_view("l.input_scale", f.in_scale_data, {});
  f.in_scale = io::LogicalTensor{"l.input_scale", io::StoredFormat::dense, {}, &f.in_v, nullptr, nullptr};
}

// One method (make(path) builds it on either KernelPath) on layer f, for every combination of
// pre_quant_scale, input_scale (when takes_input_scale), bias and M in kMs: the SIMD path (with a
// pool) against the reference path, within expect_close's bound computed from the activations both
// multiply, x·pre_quant_scale through act(row in, uses input_scale, row out), and w [N, K].
template <class Make, class ActQuant>
void expect_method_matches_reference(const FakeLayer& f, size_t K, size_t N, const std::vector<float>& w,
                                     bool takes_input_scale, Make make, ActQuant act, std::mt19937& rng) {
  ThreadPool pool(2);
  for (bool pqs : {false, true})
    for (bool with_in : {false, true}) {
      if (with_in && !takes_input_scale) continue;
      for (bool bias : {false, true})
        for (size_t M : kMs) {
          SCOPED_TRACE(testing::Message() << "pqs " << pqs << " input_scale " << with_in << " bias " << bias << " M " << M);
          const runtime::LinearSpec spec{"l", K, N, bias, ""};
          auto simd = make(runtime::KernelPath::simd);
          auto ref = make(runtime::KernelPath::ref);
          for (auto* m : {simd.get(), ref.get()}) {
            m->create_weights(spec);
            m->process_weights_after_loading(f.loaded(spec, pqs, with_in));
          }
          const auto x = randn(M * K, rng);
          std::vector<float> y(M * N), yr(M * N);
          simd->apply(x.data(), M, y.data(), &pool);
          ref->apply(x.data(), M, yr.data(), nullptr);
          std::vector<float> xe(M * K), xs(K);
          for (size_t m = 0; m < M; ++m) {
            for (size_t k = 0; k < K; ++k) xs[k] = x[m * K + k] * (pqs ? f.pqs_data[k] : 1.0f);
            act(xs.data(), with_in, xe.data() + m * K);
          }
          if (bias)  // the bias adds one more rounding on each side: compare without it
            for (size_t m = 0; m < M; ++m)
              for (size_t n = 0; n < N; ++n) {
                y[m * N + n] -= f.bias_data[n];
                yr[m * N + n] -= f.bias_data[n];
              }
          expect_close(y, yr, xe, w, M, N, K);
        }
    }
}

TEST(LinearMethod, EveryMxfp4ModeMatchesItsReference) {
  std::mt19937 rng(606);
  const size_t K = 288, N = 67;
  const Mxfp4Weights wq = random_mxfp4(N, K, rng);
  FakeLayer f;
  f.wv = io::TensorView{"l.weight", io::DType::u8, {N, K / 2}, {wq.codes.data(), wq.codes.size()}};
  f.sv = io::TensorView{"l.weight_scale", io::DType::u8, {N, K / 32}, {wq.scales.data(), wq.scales.size()}};
  f.w = io::LogicalTensor{"l.weight", io::StoredFormat::mxfp4, {N, K}, &f.wv, &f.sv, nullptr};
  add_dense_params(f, K, N, 0.02f, rng);

  using runtime::Mxfp4Mode;
  for (Mxfp4Mode mode : {Mxfp4Mode::w4a16, Mxfp4Mode::w4a8, Mxfp4Mode::w4a4}) {
    SCOPED_TRACE(runtime::mxfp4_mode_name(mode));
    expect_method_matches_reference(
        f, K, N, wq.dense, mode == Mxfp4Mode::w4a8,
        [&](runtime::KernelPath p) { return runtime::make_mxfp4_linear(mode, p); },
        [&](const float* xs, bool with_in, float* o) {  // the mode's quantizer (shared code)
          if (mode == Mxfp4Mode::w4a8) act_fp8_quantize_row(xs, K, with_in ? f.in_scale_data[0] : 0.0f, o);
          else if (mode == Mxfp4Mode::w4a4) act_mxfp4_quantize_row(xs, K, o);
          else std::copy(xs, xs + K, o);
        },
        rng);
  }
}

TEST(LinearMethod, UnquantizedMatchesReference) {
  std::mt19937 rng(707);
  const size_t K = 100, N = 13;
  const auto wf = randn(N * K, rng, 0.1f);
  std::vector<uint16_t> wb(N * K);
  std::vector<float> wbf(N * K);
  for (size_t i = 0; i < wf.size(); ++i) {
    wb[i] = bf16_from_f32(wf[i]).bits;
    wbf[i] = bf16_to_f32(bf16{wb[i]});
  }
  const io::TensorView v_bf{"l.weight", io::DType::bf16, {N, K}, {reinterpret_cast<const uint8_t*>(wb.data()), wb.size() * 2}};
  const io::TensorView v_f32 = f32_view("l.weight", wf, {N, K});
  for (const io::TensorView* v : {&v_bf, &v_f32}) {
    const io::LogicalTensor t{"l.weight", io::StoredFormat::dense, {N, K}, v, nullptr, nullptr};
    for (size_t M : kMs) {
      auto simd = runtime::make_unquantized_linear(runtime::KernelPath::simd);
      auto ref = runtime::make_unquantized_linear(runtime::KernelPath::ref);
      const runtime::LinearSpec spec{"l", K, N, false, ""};
      for (auto* m : {simd.get(), ref.get()}) {
        m->create_weights(spec);
        m->process_weights_after_loading({{"l.weight", &t}});
      }
      const auto x = randn(M * K, rng);
      std::vector<float> y(M * N), yr(M * N);
      simd->apply(x.data(), M, y.data(), nullptr);
      ref->apply(x.data(), M, yr.data(), nullptr);
      expect_close(y, yr, x, v == &v_bf ? wbf : wf, M, N, K);
    }
  }
}

}  // namespace
}  // namespace mxq

// ---- NVFP4 (for comparison): the GEMM, the activation quantizer and Nvfp4Linear ----
//
// The same tolerance as above: gemm_nvfp4 decodes each weight to nvfp4_decode's f32 value (bit for
// bit, checked through expect_close's use of the reference-decoded weights: a wrong decode moves y
// by a whole weight), so only the f32 summation order differs from gemm_nvfp4_ref.

namespace mxq {
namespace {

constexpr size_t kNvKs[] = {16, 48, 80, 272};  // multiples of 16, none of 32 (a short last MX block)

struct Nvfp4Weights {
  std::vector<uint8_t> codes, scales;
  float tensor_scale = 0.0f;
  std::vector<float> dense;  // decoded by nvfp4_dequantize_row_ref, [N, K]
};

// Random codes (every nibble, ±0 included), every positive finite E4M3 scale byte (0x01..0x7E:
// subnormal scales included) and a tensor scale that is not a power of two, so that most decoded
// weights are rounded products.
Nvfp4Weights random_nvfp4(size_t N, size_t K, std::mt19937& rng) {
  Nvfp4Weights w;
  w.codes.resize(N * K / 2);
  w.scales.resize(N * K / kNvfp4Block);
  std::uniform_int_distribution<int> byte(0, 255), sc(0x01, 0x7E);
  for (auto& c : w.codes) c = static_cast<uint8_t>(byte(rng));
  for (auto& s : w.scales) s = static_cast<uint8_t>(sc(rng));
  w.tensor_scale = std::uniform_real_distribution<float>(1e-4f, 1e-2f)(rng);
  w.dense.resize(N * K);
  nvfp4_dequantize_row_ref(w.codes.data(), w.scales.data(), N * K, w.tensor_scale, w.dense.data());
  return w;
}

TEST(Gemm, Nvfp4MatchesReference) {
  std::mt19937 rng(808);
  ThreadPool pool(2);
  for_each_simd_target([&](const std::string&) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool})
      for (size_t K : kNvKs)
        for (size_t N : kNs)
          for (size_t M : kMs) {
            SCOPED_TRACE(testing::Message() << "M " << M << " N " << N << " K " << K << " pool " << (p != nullptr));
            const auto x = randn(M * K, rng);
            const Nvfp4Weights w = random_nvfp4(N, K, rng);
            std::vector<float> y(M * N), ref(M * N);
            gemm_nvfp4(x.data(), M, K, w.codes.data(), w.scales.data(), w.tensor_scale, N, y.data(), p);
            gemm_nvfp4_ref(x.data(), M, K, w.codes.data(), w.scales.data(), w.tensor_scale, N, ref.data());
            expect_close(y, ref, x, w.dense, M, N, K);
          }
  });
}

// Tier 1: block scale 1.0 (0x38), tensor scale 2, x in {-3..3}: every weight is an integer
// (2·E2M1) and every partial sum is exact in f32, so both paths agree bit for bit (M = 1 and M > 1).
TEST(Gemm, Nvfp4ExactOnIntegerData) {
  std::mt19937 rng(909);
  const size_t N = 19, K = 80;
  std::uniform_int_distribution<int> xi(-3, 3), byte(0, 255);
  std::vector<uint8_t> codes(N * K / 2), scales(N * K / kNvfp4Block, 0x38);
  for (auto& c : codes) c = static_cast<uint8_t>(byte(rng));
  for (size_t M : {size_t{1}, size_t{5}}) {
    std::vector<float> x(M * K);
    for (auto& v : x) v = static_cast<float>(xi(rng));
    for_each_simd_target([&](const std::string&) {
      std::vector<float> y(M * N), ref(M * N);
      gemm_nvfp4(x.data(), M, K, codes.data(), scales.data(), 2.0f, N, y.data(), nullptr);
      gemm_nvfp4_ref(x.data(), M, K, codes.data(), scales.data(), 2.0f, N, ref.data());
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], ref[i]) << "M " << M << " i " << i;
    });
  }
}

// act_nvfp4_quantize_row against format.h's NVFP4 block encoder, element by element, bit for bit.
// Blocks span 2^-40 .. 2^10 in magnitude, so the row has blocks whose E4M3 scale is subnormal or
// clamped to 2^-9 and elements that round to zero, besides ordinary ones.
TEST(ActivationQuant, Nvfp4IsFormatEncoderBitForBit) {
  std::mt19937 rng(1010);
  const size_t K = 272;
  std::uniform_int_distribution<int> e(-40, 10);
  std::vector<float> x = randn(K, rng);
  for (size_t b = 0; b < K / kNvfp4Block; ++b) {
    const float s = std::ldexp(1.0f, e(rng));
    for (size_t i = 0; i < kNvfp4Block; ++i) x[b * kNvfp4Block + i] *= s;
  }
  const float amax = block_amax(x.data(), static_cast<int>(K));
  // 0: per token (s2 from the row's amax); then a static input_scale a quarter of that, as a
  // calibration that saw smaller inputs than these would give: the largest blocks saturate.
  for (float input_scale : {0.0f, nvfp4_tensor_scale(amax) / 4}) {
    SCOPED_TRACE(testing::Message() << "input_scale " << input_scale);
    std::vector<float> xq(K);
    const float s2 = act_nvfp4_quantize_row(x.data(), K, input_scale, xq.data());
    EXPECT_EQ(s2, input_scale > 0 ? input_scale : nvfp4_tensor_scale(amax));
    size_t changed = 0, zeroed = 0;
    for (size_t b = 0; b < K / kNvfp4Block; ++b) {
      const float* xb = x.data() + b * kNvfp4Block;
      const uint8_t sb = nvfp4_block_scale(block_amax(xb, kNvfp4Block), s2);
      for (size_t i = 0; i < kNvfp4Block; ++i) {
        const size_t k = b * kNvfp4Block + i;
        const float want = nvfp4_decode(nvfp4_encode(xb[i], sb, s2), sb, s2);
        ASSERT_EQ(f32_bits(xq[k]), f32_bits(want)) << "k " << k << " x " << x[k];
        ASSERT_LE(std::fabs(xq[k]), 6.0f * 448.0f * s2 * (1 + 0x1p-23f)) << k;
        changed += xq[k] != x[k];
        zeroed += xq[k] == 0.0f && x[k] != 0.0f;
      }
    }
    EXPECT_GT(changed, K / 2);  // it did quantize
    EXPECT_GT(zeroed, 0u);      // and the tiny blocks are there
  }
  // A non-finite element: the row comes out all NaN.
  x[100] = INFINITY;
  std::vector<float> xq(K);
  act_nvfp4_quantize_row(x.data(), K, 0.0f, xq.data());
  for (size_t k = 0; k < K; ++k) ASSERT_TRUE(std::isnan(xq[k])) << k;
}

TEST(LinearMethod, Nvfp4ModesMatchTheirReference) {
  std::mt19937 rng(1111);
  const size_t K = 272, N = 67;
  const Nvfp4Weights wq = random_nvfp4(N, K, rng);
  const std::vector<float> s2{wq.tensor_scale};
  FakeLayer f;
  f.wv = io::TensorView{"l.weight", io::DType::u8, {N, K / 2}, {wq.codes.data(), wq.codes.size()}};
  f.sv = io::TensorView{"l.weight_scale", io::DType::f8_e4m3, {N, K / 16}, {wq.scales.data(), wq.scales.size()}};
  const io::TensorView s2v = f32_view("l.weight_scale_2", s2, {});
  f.w = io::LogicalTensor{"l.weight", io::StoredFormat::nvfp4, {N, K}, &f.wv, &f.sv, &s2v};
  // About amax(x·pqs) / (6 · 448) for these N(0, 1) rows: blocks at a row's top saturate a little.
  add_dense_params(f, K, N, 3.0f / (6.0f * 448.0f), rng);

  using runtime::Mxfp4Mode;
  EXPECT_THROW(runtime::make_nvfp4_linear(Mxfp4Mode::w4a8, runtime::KernelPath::simd), Error);
  for (Mxfp4Mode mode : {Mxfp4Mode::w4a16, Mxfp4Mode::w4a4}) {
    SCOPED_TRACE(runtime::mxfp4_mode_name(mode));
    expect_method_matches_reference(
        f, K, N, wq.dense, mode == Mxfp4Mode::w4a4,
        [&](runtime::KernelPath p) { return runtime::make_nvfp4_linear(mode, p); },
        [&](const float* xs, bool with_in, float* o) {
          if (mode == Mxfp4Mode::w4a4) act_nvfp4_quantize_row(xs, K, with_in ? f.in_scale_data[0] : 0.0f, o);
          else std::copy(xs, xs + K, o);
        },
        rng);
  }
  // What each variant says it runs.
  const runtime::LinearSpec spec{"l", K, N, false, ""};
  for (bool with_in : {false, true}) {
    auto m = runtime::make_nvfp4_linear(Mxfp4Mode::w4a4, runtime::KernelPath::simd);
    m->create_weights(spec);
    m->process_weights_after_loading(f.loaded(spec, true, with_in));
    EXPECT_EQ(m->describe(), with_in ? "Nvfp4Linear(W4A4, static input_scale, pre_quant_scale)"
                                     : "Nvfp4Linear(W4A4, per-token, pre_quant_scale)");
  }
}

}  // namespace
}  // namespace mxq
