// The MXFP4 linear layer on the GPU (Mxfp4LinearCuda: W4A16, W4A8, W4A4 through the GEMV and the
// wgmma GEMMs) against the CPU references gemm_mxfp4_ref / gemm_mxfp4_w4a8_ref / gemm_mxfp4_w4a4_ref,
// and the MXFP4 fake-quantizing activation kernel against act_mxfp4_quantize_row (the FP8 one is
// checked with its code-writing twin in tests/test_cuda_gemv.cu).
//
// Shapes: M over {1, 2, 3, 7, 16, 33, 127, 512, 2049}, N = 200 (not a multiple of the GEMV's 16-row
// tile nor of the GEMM's 128), K = 1056 (a multiple of 32, not of 128, and an odd number of MX
// blocks: the GEMV's last 64-K step and the GEMM's last K-tile are partial). Each M runs through the
// GEMV, through the wgmma GEMM (on sm_90a), through the sm_80 mma.sync GEMM (W4A16 and W4A4, on any
// device: set_prefer_sm80) and through the default dispatch, which must equal the kernel it picks bit
// for bit. Every test draws fresh random data (the seed is printed on failure); every
// output sits between guard bytes and starts as NaN bytes. Without a device the tests skip.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mxq/format.h"
#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/kernels/cuda/act_quant.h"
#include "mxq/kernels/cuda/mxfp4_linear.h"
#include "cuda_test_util.h"

namespace mxq {
namespace {

constexpr size_t kN = 200, kK = 1056;
constexpr size_t kMs[] = {1, 2, 3, 7, 16, 33, 127, 512, 2049};
constexpr Mxfp4LinearMode kModes[] = {Mxfp4LinearMode::w4a16, Mxfp4LinearMode::w4a8,
                                      Mxfp4LinearMode::w4a4};

// ---------------------------------------------------------------------------------------------
// Fake quantization to bf16, bit for bit.
// ---------------------------------------------------------------------------------------------

// Rows of gaussians over many binades, then the extremes: row 0 holds bf16's largest finite values
// (the ceil rule's scale 2^126, elements rounding to 2^128 = Inf) and values just below the
// overflow, row 1 blocks of subnormals and of amax <= 6 · 2^-127 (the smallest scale), row 2 a NaN
// block and an Inf block; one block in 5 is all zeros.
std::vector<float> make_activations(size_t M, size_t K, std::mt19937_64& rng) {
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> binade(-30, 30);
  std::vector<float> x(M * K);
  for (size_t m = 0; m < M; ++m) {
    const float row_scale = pow2f(binade(rng));
    for (size_t k = 0; k < K; ++k) x[m * K + k] = gauss(rng) * row_scale * pow2f(binade(rng) / 6);
  }
  for (size_t b = 0; b + kMxBlock <= M * K; b += 5 * kMxBlock) std::fill_n(x.begin() + b, kMxBlock, 0.0f);
  const float big = bf16_to_f32(bf16{0x7F7F});  // bf16's largest finite value, (2 - 2^-7) · 2^127
  for (size_t k = 0; k < std::min<size_t>(K, 64); ++k) {
    if (M > 0) x[k] = (k % 2 ? -1.0f : 1.0f) * big * (1.0f - 0.01f * static_cast<float>(k % 32));
    if (M > 1) x[K + k] = gauss(rng) * (k < 32 ? pow2f(-130) : pow2f(-125));
  }
  if (M > 2 && K >= 64) {
    x[2 * K + 5] = std::numeric_limits<float>::quiet_NaN();
    x[2 * K + 40] = -std::numeric_limits<float>::infinity();
  }
  return x;
}

// got (bf16 bytes from the device) against bf16(want[i]) for each element; NaN matches any NaN.
void expect_bf16_equal(const std::vector<uint8_t>& got, const std::vector<float>& want, size_t K) {
  size_t bad = 0;
  for (size_t i = 0; i < want.size() && bad < 5; ++i) {
    bf16 g;
    std::memcpy(&g, got.data() + 2 * i, 2);
    const bf16 w = bf16_from_f32(want[i]);
    const bool ok = g.bits == w.bits || (std::isnan(bf16_to_f32(g)) && std::isnan(want[i]));
    if (!ok) {
      ++bad;
      ADD_FAILURE() << "row " << i / K << " k " << i % K << ": 0x" << std::hex << g.bits << ", want 0x"
                    << w.bits << std::dec << " (" << want[i] << ")";
    }
  }
}

TEST(CudaActFakeQuant, Mxfp4MatchesReferenceBitForBit) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const auto& [M, K] : {std::pair<size_t, size_t>{1, 4096 + 32}, {3, 2880}, {33, 96}, {5, 1056}}) {
    for (const ElemType xt : {ElemType::bf16, ElemType::f32}) {
      SCOPED_TRACE("M " + std::to_string(M) + " K " + std::to_string(K) + (xt == ElemType::bf16 ? " bf16" : " f32"));
      std::vector<float> x = make_activations(M, K, rng);
      const auto x_dev = activations_on_device(x, xt);
      GuardedOutput xq(M * K * 2);
      cuda_check(act_mxfp4_fake_quantize_cuda(x_dev.get(), xt, M, K, static_cast<bf16*>(xq.get()), nullptr),
                 "act_mxfp4_fake_quantize_cuda");
      std::vector<float> want(M * K);
      for (size_t m = 0; m < M; ++m) act_mxfp4_quantize_row(x.data() + m * K, K, want.data() + m * K);
      // The extremes did what act_quant.h says: Inf at the top, finite just below, zeros at the bottom.
      EXPECT_TRUE(std::isinf(want[0]));
      EXPECT_EQ(std::fabs(want[31]), 1.5f * pow2f(127)) << "0.69 of bf16's largest rounds to 3 · 2^126";
      expect_bf16_equal(xq.download(), want, K);
    }
  }
}

TEST(CudaActFakeQuant, RejectsBadArguments) {
  SKIP_WITHOUT_CUDA_DEVICE();
  DeviceBuffer<bf16> x(64 + 8), xq(64 + 8);
  EXPECT_EQ(act_mxfp4_fake_quantize_cuda(x.get(), ElemType::bf16, 1, 48, xq.get(), nullptr),
            cudaErrorInvalidValue);  // K not a multiple of 32
  EXPECT_EQ(act_mxfp4_fake_quantize_cuda(x.get() + 1, ElemType::bf16, 1, 64, xq.get(), nullptr),
            cudaErrorInvalidValue);  // x not 16-byte aligned
  EXPECT_EQ(act_fp8_values_bf16_cuda(x.get(), ElemType::bf16, 1, 64, 0.0f, xq.get() + 1, nullptr, nullptr),
            cudaErrorInvalidValue);  // q not 16-byte aligned
}

// ---------------------------------------------------------------------------------------------
// The linear layer.
// ---------------------------------------------------------------------------------------------

struct Weight {
  std::vector<uint8_t> codes, scales;
};

// integer: scales 2^1 or 2^2, so every weight is an integer up to 24; otherwise E8M0 in [120, 131]
// (weights up to 6 · 16), one block in 16 all ±0 under a far larger exponent (it carries no value:
// the GEMM must not take it as its K-tile's base).
Weight random_weight(bool integer, std::mt19937_64& rng) {
  Weight w{std::vector<uint8_t>(kN * kK / 2), std::vector<uint8_t>(kN * kK / kMxBlock)};
  for (auto& c : w.codes) c = static_cast<uint8_t>(rng());
  for (size_t b = 0; b < w.scales.size(); ++b) {
    w.scales[b] = static_cast<uint8_t>(integer ? 128 + rng() % 2 : 120 + rng() % 12);
    if (!integer && rng() % 16 == 0) {
      for (size_t i = 0; i < kMxBlock / 2; ++i) w.codes[b * 16 + i] &= 0x88;
      w.scales[b] = 250;
    }
  }
  return w;
}

// integer: x in {0, ±0.875, ±1.75} with a 1.75 in every row, so each path is exact (see
// IntegerInputsAreBitExact); otherwise gaussians over a few binades, row 1 all zeros when M >= 7.
std::vector<bf16> random_x(size_t M, bool integer, std::mt19937_64& rng) {
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<bf16> x(M * kK);
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = integer ? 0.875f * static_cast<float>(static_cast<int>(rng() % 5) - 2)
                            : gauss(rng) * pow2f(static_cast<int>(rng() % 7) - 3);
    x[i] = bf16_from_f32(v);
  }
  if (integer)
    for (size_t m = 0; m < M; ++m) x[m * kK + rng() % kK] = bf16_from_f32(1.75f);
  else if (M >= 7)
    std::fill_n(x.begin() + kK, kK, bf16_from_f32(0.0f));
  return x;
}

// x̂: the activations as the mode's reference quantizes them (the GEMM's actual operand).
std::vector<float> quantized_activations(Mxfp4LinearMode mode, const std::vector<float>& x, size_t M,
                                         float input_scale) {
  std::vector<float> xq(x.size());
  for (size_t m = 0; m < M; ++m) {
    const float* row = x.data() + m * kK;
    float* out = xq.data() + m * kK;
    switch (mode) {
      case Mxfp4LinearMode::w4a16: std::copy_n(row, kK, out); break;
      case Mxfp4LinearMode::w4a8: act_fp8_quantize_row(row, kK, input_scale, out); break;
      case Mxfp4LinearMode::w4a4: act_mxfp4_quantize_row(row, kK, out); break;
    }
  }
  return xq;
}

std::vector<float> reference(Mxfp4LinearMode mode, const std::vector<float>& x, size_t M,
                             const Weight& w, float input_scale) {
  std::vector<float> y(M * kN);
  switch (mode) {
    case Mxfp4LinearMode::w4a16:
      gemm_mxfp4_ref(x.data(), M, kK, w.codes.data(), w.scales.data(), kN, y.data());
      break;
    case Mxfp4LinearMode::w4a8:
      gemm_mxfp4_w4a8_ref(x.data(), M, kK, w.codes.data(), w.scales.data(), kN, input_scale, y.data());
      break;
    case Mxfp4LinearMode::w4a4:
      gemm_mxfp4_w4a4_ref(x.data(), M, kK, w.codes.data(), w.scales.data(), kN, y.data());
      break;
  }
  return y;
}

// Σ_k |x̂[m, k]| · |w[n, k]| per output: the scale of every summation error bound below.
std::vector<float> magnitude_sums(const std::vector<float>& xq, size_t M, const Weight& w) {
  std::vector<float> xabs(xq.size()), mag(M * kN);
  for (size_t i = 0; i < xq.size(); ++i) xabs[i] = std::fabs(xq[i]);
  std::vector<uint8_t> codes_abs(w.codes);
  for (auto& c : codes_abs) c &= 0x77u;
  gemm_mxfp4_ref(xabs.data(), M, kK, codes_abs.data(), w.scales.data(), kN, mag.data());
  return mag;
}

enum class Path { gemv, gemm, gemm_sm80, dispatch };
const char* path_name(Path p) {
  switch (p) {
    case Path::gemv: return "gemv";
    case Path::gemm: return "gemm";
    case Path::gemm_sm80: return "gemm_sm80";
    case Path::dispatch: return "dispatch";
  }
  return "?";
}

// The kernel the default dispatch runs (mxfp4_linear.h): the GEMV up to default_gemv_max_m, then the
// wgmma GEMM on sm_90a, elsewhere the sm_80 GEMM (W4A8: the GEMV).
Path dispatched(const Mxfp4LinearCuda& layer, Mxfp4LinearMode mode, size_t M) {
  if (M <= layer.default_gemv_max_m(mode)) return Path::gemv;
  if (layer.has_wgmma()) return Path::gemm;
  return mode == Mxfp4LinearMode::w4a8 ? Path::gemv : Path::gemm_sm80;
}

template <typename Out = float>
std::vector<Out> run_linear(Mxfp4LinearCuda& layer, Mxfp4LinearMode mode, Path path,
                            const DeviceBuffer<bf16>& x, size_t M) {
  if (path == Path::gemv) layer.set_gemv_max_m(std::numeric_limits<size_t>::max());
  if (path == Path::gemm || path == Path::gemm_sm80) layer.set_gemv_max_m(0);
  if (path == Path::dispatch) layer.reset_gemv_max_m();
  layer.set_prefer_sm80(path == Path::gemm_sm80);
  GuardedOutput y(M * kN * sizeof(Out));
  layer.apply(mode, x.get(), M, static_cast<Out*>(y.get()), nullptr);
  cuda_check(cudaDeviceSynchronize(), "Mxfp4LinearCuda::apply (kernels)");
  const std::vector<uint8_t> bytes = y.download();
  std::vector<Out> out(M * kN);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// Derived limit, as a fraction of Σ|x̂||w|, of a path's distance from the reference (exact products
// and sum, one rounding to f32; W4A8: y = fl32(s · fl32(Σ q·w)), x̂ = q·s):
//   BF16 operands (W4A16; W4A4 through any kernel; W4A8's q through the GEMV): the operands are
//     exact bf16 and their products exact in f32, so only the K f32 additions err, each by at most
//     2^-23 of a partial sum no larger than Σ|x̂||w| (2^-23, not 2^-24, in case the tensor cores
//     truncate), and the reference's own rounding: (K + 1) · 2^-23. W4A8 adds the scale's product in
//     both (GEMV epilogue and reference): 2 · 2^-24.
//   W4A8 through the FP8 GEMM: e4m3 codes × widened weights, scaled in the epilogue; the tensor core
//     sums each 128-wide K-tile in an accumulator of at least 13 fraction bits that may truncate:
//     127 · 2^-13; then one f32 fma per K-tile, the epilogue's scale, and the reference's two
//     roundings: (KT + 3) · 2^-24 (tests/test_cuda_gemm_wgmma.cu derives the same).
double tolerance_fraction(Mxfp4LinearMode mode, bool fp8_gemm) {
  const bool w4a8 = mode == Mxfp4LinearMode::w4a8;
  if (w4a8 && fp8_gemm) {
    const double kt = static_cast<double>((kK + 127) / 128);
    return 127.0 * 0x1p-13 + (kt + 3.0) * 0x1p-24;
  }
  return (static_cast<double>(kK) + 1.0) * 0x1p-23 + (w4a8 ? 2.0 * 0x1p-24 : 0.0);
}

// Each mode at every M through each path; integer data must match bit for bit.
void check_every_mode(bool integer, float input_scale) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " input_scale " + std::to_string(input_scale));
  std::mt19937_64 rng(seed);
  const Weight w = random_weight(integer, rng);
  Mxfp4LinearCuda layer;
  layer.prepare(w.codes.data(), w.scales.data(), kN, kK, input_scale,
                {Mxfp4LinearMode::w4a16, Mxfp4LinearMode::w4a8, Mxfp4LinearMode::w4a4});
  for (const size_t M : kMs) {
    const std::vector<bf16> xb = random_x(M, integer, rng);
    const std::vector<float> x = widen(xb);
    const DeviceBuffer<bf16> x_dev = to_device(xb);
    for (const Mxfp4LinearMode mode : kModes) {
      const std::vector<float> want = reference(mode, x, M, w, input_scale);
      const std::vector<float> mag = magnitude_sums(quantized_activations(mode, x, M, input_scale), M, w);
      std::vector<float> picked;  // the output of the path the dispatch should take
      for (const Path path : {Path::gemv, Path::gemm, Path::gemm_sm80, Path::dispatch}) {
        if (path == Path::gemm && !layer.has_wgmma()) continue;
        if (path == Path::gemm_sm80 && mode == Mxfp4LinearMode::w4a8) continue;  // the GEMV there
        SCOPED_TRACE(std::string(mxfp4_linear_mode_name(mode)) + " M " + std::to_string(M) + " via " +
                     path_name(path));
        const std::vector<float> got = run_linear(layer, mode, path, x_dev, M);
        if (path == Path::dispatch) {
          // The dispatch ran one of the kernels checked above: the same bits.
          EXPECT_EQ(0, std::memcmp(got.data(), picked.data(), got.size() * 4));
          continue;
        }
        if (path == dispatched(layer, mode, M)) picked = got;
        const OutputCheck c =
            check_outputs(got, want, mag, tolerance_fraction(mode, path == Path::gemm), integer, kN);
        EXPECT_EQ(0u, c.bad);
        // Outputs that all vanish would pass a kernel that writes zeros (random rows: one all-zero row
        // of M >= 7; integer rows: a sum of multiples of ±0.875 is 0 now and then).
        EXPECT_GT(c.nonzero, want.size() * 3 / 4);
      }
    }
  }
}

TEST(CudaMxfp4Linear, EveryModeMatchesReferencePerTokenScales) { check_every_mode(false, 0.0f); }
TEST(CudaMxfp4Linear, EveryModeMatchesReferenceStaticInputScale) { check_every_mode(false, 0.0123f); }

// Exactness, per path, with x in {0, ±0.875, ±1.75} (a 1.75 in every row) and integer weights up
// to 24: W4A16's products are multiples of 1/8; W4A4's blocks get scales 2^-1 or 2^-2, so x̂ is a
// multiple of 1/8 up to 2; |y| <= 1056 · 2 · 24 < 2^16, so every partial sum is exact in f32 (19
// bits). W4A8's per-token scale is fl32(1.75 / 448) = 2^-8 and every x / 2^-8 is an E4M3 value
// (224 or 448), so Σ q·w is an integer below 1056 · 448 · 24 < 2^24, exact in f32, and the scale
// 2^-8 is exact; in the FP8 GEMM the codes times the widened weights (E2M1 · 2^(6 + d), d in
// {0, -1}) are multiples of 224 · 16 and a K-tile's sum stays below 128 · 448 · 384 = 6144 such
// units, exact in the 13 fraction bits assumed above. Every path then equals the reference bit for
// bit.
TEST(CudaMxfp4Linear, IntegerInputsAreBitExact) { check_every_mode(true, 0.0f); }
TEST(CudaMxfp4Linear, IntegerInputsAreBitExactStaticInputScale) { check_every_mode(true, 0x1p-8f); }

// A bf16 y is the f32 y of the same path rounded to nearest even, bit for bit, on every path: each
// kernel rounds its own f32 value once (W4A8 through the GEMV multiplies each f32 sum by its
// token's scale first). The random weights keep every W4A16 wgmma tile to one pass.
TEST(CudaMxfp4Linear, Bf16OutputIsTheF32OutputRounded) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const Weight w = random_weight(false, rng);
  for (const float input_scale : {0.0f, 0.0123f}) {
    Mxfp4LinearCuda layer;
    layer.prepare(w.codes.data(), w.scales.data(), kN, kK, input_scale,
                  {Mxfp4LinearMode::w4a16, Mxfp4LinearMode::w4a8, Mxfp4LinearMode::w4a4});
    for (const size_t M : kMs) {
      const DeviceBuffer<bf16> x_dev = to_device(random_x(M, false, rng));
      for (const Mxfp4LinearMode mode : kModes)
        for (const Path path : {Path::gemv, Path::gemm, Path::gemm_sm80}) {
          if (path == Path::gemm && !layer.has_wgmma()) continue;
          if (path == Path::gemm_sm80 && mode == Mxfp4LinearMode::w4a8) continue;  // the GEMV there
          SCOPED_TRACE("seed " + std::to_string(seed) + " input_scale " + std::to_string(input_scale) + " " +
                       mxfp4_linear_mode_name(mode) + " M " + std::to_string(M) + " via " + path_name(path));
          const std::vector<float> f32 = run_linear<float>(layer, mode, path, x_dev, M);
          const std::vector<bf16> b16 = run_linear<bf16>(layer, mode, path, x_dev, M);
          size_t bad = 0, first_bad = 0, nonzero = 0;
          for (size_t i = 0; i < f32.size(); ++i) {
            if (b16[i].bits != bf16_from_f32(f32[i]).bits && bad++ == 0) first_bad = i;
            nonzero += f32[i] != 0.0f;
          }
          EXPECT_EQ(0u, bad) << "first at " << first_bad << ": f32 " << f32[first_bad] << ", bf16 bits 0x"
                             << std::hex << b16[first_bad].bits;
          EXPECT_GT(nonzero, f32.size() * 3 / 4);
        }
    }
  }
}

TEST(CudaMxfp4Linear, RejectsBadArguments) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<uint8_t> codes(16 * 24, 0), scales(16 * 2, 127);
  Mxfp4LinearCuda layer;
  EXPECT_THROW(layer.prepare(codes.data(), scales.data(), 16, 48, 0.0f, {Mxfp4LinearMode::w4a16}), Error);
  layer.prepare(codes.data(), scales.data(), 16, 32, 0.0f, {Mxfp4LinearMode::w4a16});
  DeviceBuffer<bf16> x(32);
  DeviceBuffer<float> y(16);
  EXPECT_THROW(layer.apply(Mxfp4LinearMode::w4a8, x.get(), 1, y.get(), nullptr), Error);
}

}  // namespace
}  // namespace mxq
