// The CUDA W4A16 GEMV and activation quantizers against the CPU references in
// mxq/kernels/cpu/gemm.h.
//
// Every device test draws fresh random data (the seed is printed on failure), fills each output and
// kGuard bytes on both sides of it with 0xFF (NaN in f32 and bf16, so an unwritten output fails any
// comparison) and checks the guards afterwards. The repack test needs no device. Without a CUDA
// device the other tests skip and say why.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mxq/format.h"
#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/kernels/cuda/act_quant.h"
#include "mxq/kernels/cuda/gemm_mma_sm80.h"
#include "mxq/kernels/cuda/gemv.h"
#include "cuda_test_util.h"

namespace mxq {
namespace {

// ---------------------------------------------------------------------------------------------
// Repack: the layout functions are a bijection onto the non-padding bits, and the repack places
// every code bit and scale where they say.
// ---------------------------------------------------------------------------------------------

// Bit i of weight (n, k)'s code, as an index into the repacked code bytes' bits.
size_t repacked_code_bit(size_t n, size_t k, unsigned i, size_t K) {
  return 8 * mxfp4_gemv_code_word(n, k, K) + mxfp4_gemv_code_bit(k, i);
}

TEST(CudaGemvRepack, BijectionOverAllIndices) {
  std::mt19937_64 rng(fresh_seed());
  for (const auto& [N, K] : {std::pair<size_t, size_t>{129, 96}, {40, 4128}, {16, 64}, {33, 32}}) {
    SCOPED_TRACE("N " + std::to_string(N) + " K " + std::to_string(K));
    const size_t code_bytes = mxfp4_gemv_code_bytes(N, K), scale_bytes = mxfp4_gemv_scale_bytes(N, K);
    std::vector<uint8_t> seen_bit(8 * code_bytes, 0), seen_scale(scale_bytes, 0);
    for (size_t n = 0; n < N; ++n) {
      for (size_t k = 0; k < K; ++k) {
        for (unsigned i = 0; i < 4; ++i) {
          const size_t b = repacked_code_bit(n, k, i, K);
          ASSERT_LT(b, 8 * code_bytes);
          ASSERT_EQ(seen_bit[b]++, 0) << "two code bits at bit " << b << " (n " << n << ", k " << k << ")";
        }
      }
      for (size_t kb = 0; kb < K / kMxBlock; ++kb) {
        const size_t i = mxfp4_gemv_scale_byte(n, kb, K);
        ASSERT_LT(i, scale_bytes);
        ASSERT_EQ(seen_scale[i]++, 0) << "two scales at byte " << i;
      }
    }

    std::vector<uint8_t> codes(N * K / 2), scales(N * K / kMxBlock);
    for (auto& c : codes) c = static_cast<uint8_t>(rng());
    for (auto& s : scales) s = static_cast<uint8_t>(rng());
    std::vector<uint8_t> codes_rp(code_bytes), scales_rp(scale_bytes);
    mxfp4_gemv_repack(codes.data(), scales.data(), N, K, codes_rp.data(), scales_rp.data());
    for (size_t n = 0; n < N; ++n) {
      for (size_t k = 0; k < K; ++k) {
        uint32_t got = 0;
        for (unsigned i = 0; i < 4; ++i) {
          const size_t b = repacked_code_bit(n, k, i, K);
          got |= ((codes_rp[b / 8] >> (b % 8)) & 1u) << i;
        }
        const uint32_t want = (codes[(n * K + k) / 2] >> (4 * (k % 2))) & 0xFu;
        ASSERT_EQ(got, want) << "n " << n << " k " << k;
      }
      for (size_t kb = 0; kb < K / kMxBlock; ++kb)
        ASSERT_EQ(scales_rp[mxfp4_gemv_scale_byte(n, kb, K)], scales[n * (K / kMxBlock) + kb]);
    }
    // Padding: zero code bits and the 1.0 scale everywhere no weight maps.
    for (size_t b = 0; b < 8 * code_bytes; ++b)
      if (!seen_bit[b]) ASSERT_EQ((codes_rp[b / 8] >> (b % 8)) & 1u, 0u) << "code bit " << b;
    for (size_t i = 0; i < scale_bytes; ++i)
      if (!seen_scale[i]) ASSERT_EQ(scales_rp[i], kGemvPadScale) << "scale byte " << i;
  }
  std::vector<uint8_t> one(16);
  EXPECT_THROW(mxfp4_gemv_repack(one.data(), one.data(), 1, 48, one.data(), one.data()), Error);
}

// ---------------------------------------------------------------------------------------------
// GEMV against gemm_mxfp4_ref on the bf16 activations widened to f32.
// ---------------------------------------------------------------------------------------------

struct GemvCase {
  size_t M, N, K;
};

struct GemvData {
  std::vector<bf16> x;
  std::vector<uint8_t> codes, scales;
};

// integer: activations small integers, scales 2^1 .. 2^3 (weights integers up to 48), so every
// partial sum is an integer below 2^24 and exact in f32 in any order. Otherwise gaussian
// activations, random codes, scale exponents mostly in [-27, 13] (13 > 1 takes the kernel's
// two-multiply path) with some 2^-127 (the bf16-subnormal scale).
GemvData make_gemv_data(const GemvCase& c, bool integer, std::mt19937_64& rng) {
  GemvData d;
  d.x.resize(c.M * c.K);
  d.codes.resize(c.N * c.K / 2);
  d.scales.resize(c.N * c.K / kMxBlock);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> small_int(-8, 8), scale_exp(100, 140), int_scale(128, 130);
  for (auto& v : d.x) v = bf16_from_f32(integer ? static_cast<float>(small_int(rng)) : gauss(rng));
  for (auto& b : d.codes) b = static_cast<uint8_t>(rng());
  for (auto& s : d.scales)
    s = static_cast<uint8_t>(integer ? int_scale(rng) : rng() % 64 == 0 ? 0 : scale_exp(rng));
  return d;
}

// y (yt) from the device, as f32: through the GEMV (with row_scales [M] if given), or with
// sm80_cta_tiles (8 or 16) through the sm_80 GEMM with CTAs of that many row tiles, on the same
// repacked weights (f32 out only).
std::vector<float> run_gemv(const GemvCase& c, const GemvData& d, ElemType yt, int sm80_cta_tiles = 0,
                            const std::vector<float>* row_scales = nullptr) {
  std::vector<uint8_t> codes_rp(mxfp4_gemv_code_bytes(c.N, c.K)), scales_rp(mxfp4_gemv_scale_bytes(c.N, c.K));
  mxfp4_gemv_repack(d.codes.data(), d.scales.data(), c.N, c.K, codes_rp.data(), scales_rp.data());
  const auto x_dev = to_device(d.x);
  const auto codes_dev = to_device(codes_rp), scales_dev = to_device(scales_rp);
  const DeviceBuffer<float> row_scales_dev =
      row_scales != nullptr ? to_device(*row_scales) : DeviceBuffer<float>();
  const size_t esize = yt == ElemType::bf16 ? 2 : 4;
  GuardedOutput y(c.M * c.N * esize);
  const bool sm80 = sm80_cta_tiles != 0;
  if (sm80)
    cuda_check(gemm_mxfp4_w4a16_sm80(x_dev.get(), c.M, c.K, codes_dev.get(), scales_dev.get(), c.N,
                                     static_cast<float*>(y.get()), nullptr, sm80_cta_tiles),
               "gemm_mxfp4_w4a16_sm80");
  else
    cuda_check(mxfp4_gemv_w4a16_cuda(x_dev.get(), c.M, c.K, codes_dev.get(), scales_dev.get(), c.N,
                                     y.get(), yt, nullptr,
                                     row_scales != nullptr ? row_scales_dev.get() : nullptr),
               "mxfp4_gemv_w4a16_cuda");
  cuda_check(cudaDeviceSynchronize(), sm80 ? "gemm_mxfp4_w4a16_sm80 (kernel)" : "mxfp4_gemv_w4a16_cuda (kernel)");
  const std::vector<uint8_t> bytes = y.download();
  std::vector<float> out(c.M * c.N);
  for (size_t i = 0; i < out.size(); ++i) {
    if (yt == ElemType::bf16) {
      bf16 h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = bf16_to_f32(h);
    } else {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    }
  }
  return out;
}

// 33797 rows (2113 row tiles, the last one partial) at K = 160: CTAs of 4 (1 token) and 8 (16
// tokens) tiles, and each warp's 3 steps (the last one half padding) fewer than its ring holds.
// 21 tokens: the kernel of 3 column tiles (17-24 tokens), at K = 4128 (65 steps of 64, the last one
// half padding) and a partial last row tile. K = 8224 (129 steps) on few rows takes the K split
// over a cluster, on a 132-SM H100 or H200 (plan_gemv): 2 CTAs at 1 token and 2888 rows, 8 at 7 and
// 16 tokens and 40 rows, 4 at 21 tokens and 808 rows; 32 tokens split K at 1088 rows and K = 4128,
// and at 129 rows (M = 127's launches of 32). At 9-24 tokens the
// 33797-row cases take two row tiles per warp (the one-tile plan has 8 per CTA; the smaller
// matrices one, and every matrix two at 25-32), with an odd tile count (the last warp's second tile
// past the end) and K / 32 odd (the last step's second block absent); 13, 21 and 29 tokens also
// rows of the last column tile past M.
const GemvCase kCases[] = {{1, 4096 + 40, 4096 + 32}, {2, 2880, 2880}, {3, 129, 96},
                           {7, 4096 + 40, 4096 + 32}, {16, 2880, 2880}, {16, 129, 96},
                           {21, 2880 + 8, 4096 + 32}, {33, 2880, 2880},          {127, 129, 4096 + 32},
                           {1, 129, 96},              {1, 33797, 160},           {16, 33797, 160},
                           {13, 33797, 1056},         {21, 33797, 1056},         {29, 33797, 1056},
                           {1, 2888, 8224},           {7, 40, 8224},
                           {16, 40, 8224},            {21, 808, 8224},           {32, 1088, 4096 + 32}};

// One device run of a case: the kernel (sm80_cta_tiles 0: the GEMV; 8 or 16: the sm_80 GEMM with
// CTAs of that many row tiles) and its output type.
struct GemvRun {
  ElemType yt;
  int sm80_cta_tiles;
};
constexpr GemvRun kGemvRuns[] = {{ElemType::f32, 0}, {ElemType::bf16, 0}};

// check(c, yt, d, xf, ref, got) for every case and run, on fresh data (integer or not): xf the bf16
// activations widened to f32, ref gemm_mxfp4_ref on them, got the device's y as f32.
template <size_t kCaseCount, size_t kRunCount, class Check>
void for_each_case(const GemvCase (&cases)[kCaseCount], const GemvRun (&runs)[kRunCount], bool integer,
                   Check check) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const GemvCase& c : cases) {
    for (const GemvRun& run : runs) {
      SCOPED_TRACE("M " + std::to_string(c.M) + " N " + std::to_string(c.N) + " K " +
                   std::to_string(c.K) + (run.yt == ElemType::bf16 ? " bf16 out" : " f32 out") +
                   (run.sm80_cta_tiles != 0 ? " sm_80 GEMM, CTA tiles " + std::to_string(run.sm80_cta_tiles)
                                            : std::string(" GEMV")));
      const GemvData d = make_gemv_data(c, integer, rng);
      const std::vector<float> xf = widen(d.x);
      std::vector<float> ref(c.M * c.N);
      gemm_mxfp4_ref(xf.data(), c.M, c.K, d.codes.data(), d.scales.data(), c.N, ref.data());
      check(c, run.yt, d, xf, ref, run_gemv(c, d, run.yt, run.sm80_cta_tiles));
    }
  }
}

// Σ|x|·|w| per output: the same reference on magnitudes (codes with the sign bits cleared).
std::vector<float> magnitude_sums(const GemvCase& c, const GemvData& d, const std::vector<float>& xf) {
  std::vector<float> xabs(xf.size()), mag(c.M * c.N);
  std::vector<uint8_t> codes_abs(d.codes.size());
  for (size_t i = 0; i < xf.size(); ++i) xabs[i] = std::fabs(xf[i]);
  for (size_t i = 0; i < d.codes.size(); ++i) codes_abs[i] = d.codes[i] & 0x77u;
  gemm_mxfp4_ref(xabs.data(), c.M, c.K, codes_abs.data(), d.scales.data(), c.N, mag.data());
  return mag;
}

TEST(CudaGemv, MatchesReferenceWithinSummationBound) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for_each_case(kCases, kGemvRuns, false, [](const GemvCase& c, ElemType yt, const GemvData& d,
                               const std::vector<float>& xf, const std::vector<float>& ref,
                               const std::vector<float>& got) {
    const std::vector<float> mag = magnitude_sums(c, d, xf);
    // Bound: weights and activations are exact in bf16 and their products exact in f32, so the
    // kernel differs from the reference (exact sum, one rounding) only by its K f32 additions,
    // each off by at most 2^-23 of a partial sum no larger than Σ|x||w| (2^-23, not 2^-24, in case
    // the tensor cores truncate): |err| <= (K + 1)·2^-23·Σ|x||w|, plus half a bf16 ulp (2^-8
    // relative) for a bf16 output.
    size_t bad = 0;
    for (size_t i = 0; i < got.size() && bad < 5; ++i) {
      double tol = (static_cast<double>(c.K) + 1.0) * 0x1p-23 * mag[i];
      if (yt == ElemType::bf16) tol += 0x1p-8 * std::fabs(ref[i]) + tol * 0x1p-8;
      if (!(std::fabs(static_cast<double>(got[i]) - ref[i]) <= tol)) {
        ++bad;
        ADD_FAILURE() << "y[" << i / c.N << ", " << i % c.N << "] = " << got[i] << ", reference "
                      << ref[i] << ", bound " << tol;
      }
    }
  });
}

TEST(CudaGemv, BitExactOnIntegers) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for_each_case(kCases, kGemvRuns, true, [](const GemvCase& c, ElemType yt, const GemvData&, const std::vector<float>&,
                              const std::vector<float>& ref, const std::vector<float>& got) {
    size_t nonzero = 0, bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const float want = yt == ElemType::bf16 ? bf16_to_f32(bf16_from_f32(ref[i])) : ref[i];
      nonzero += want != 0.0f;
      if (f32_bits(got[i]) != f32_bits(want) && !(got[i] == 0.0f && want == 0.0f) && bad++ < 5)
        ADD_FAILURE() << "y[" << i / c.N << ", " << i % c.N << "] = " << got[i] << ", want " << want;
    }
    EXPECT_GT(nonzero, got.size() * 3 / 4) << "the integer data must give non-zero outputs";
  });
}

// With row_scales each output is the f32 sum times its row's scale, then (bf16 y) rounded: the f32
// y without them times the scale, bit for bit (the GEMV sums in a fixed order). M = 33: the second
// launch (tokens 32 on) reads its scales from row 32.
TEST(CudaGemv, RowScalesMultiplyTheF32Sums) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  for (const GemvCase& c : {GemvCase{1, 129, 96}, GemvCase{16, 2880, 2880}, GemvCase{33, 200, 4096 + 32}}) {
    SCOPED_TRACE("M " + std::to_string(c.M) + " N " + std::to_string(c.N) + " K " + std::to_string(c.K));
    const GemvData d = make_gemv_data(c, false, rng);
    std::vector<float> row_scales(c.M);
    for (float& v : row_scales) v = mantissa(rng) * 0x1p-7f;  // not powers of two: the multiply rounds
    const std::vector<float> sums = run_gemv(c, d, ElemType::f32);
    for (const ElemType yt : {ElemType::f32, ElemType::bf16}) {
      const std::vector<float> got = run_gemv(c, d, yt, 0, &row_scales);
      size_t nonzero = 0, bad = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        const float scaled = sums[i] * row_scales[i / c.N];
        const float want = yt == ElemType::bf16 ? bf16_to_f32(bf16_from_f32(scaled)) : scaled;
        nonzero += want != 0.0f;
        if (f32_bits(got[i]) != f32_bits(want) && bad++ < 5)
          ADD_FAILURE() << (yt == ElemType::bf16 ? "bf16 " : "f32 ") << "y[" << i / c.N << ", " << i % c.N
                        << "] = " << got[i] << ", want " << want;
      }
      EXPECT_GT(nonzero, got.size() * 3 / 4);
    }
  }
}

// A NaN scale (0xFF) makes its row's outputs NaN, as in the reference; the other rows stay finite.
TEST(CudaGemv, NanScalePoisonsItsRow) {
  SKIP_WITHOUT_CUDA_DEVICE();
  std::mt19937_64 rng(fresh_seed());
  const GemvCase c{3, 129, 96};
  GemvData d = make_gemv_data(c, true, rng);
  d.scales[17 * (c.K / kMxBlock) + 2] = kE8M0Nan;  // row 17, last block
  const std::vector<float> got = run_gemv(c, d, ElemType::f32);
  for (size_t m = 0; m < c.M; ++m)
    for (size_t n = 0; n < c.N; ++n)
      EXPECT_EQ(std::isnan(got[m * c.N + n]), n == 17) << "m " << m << " n " << n;
}

TEST(CudaGemv, RejectsBadArguments) {
  SKIP_WITHOUT_CUDA_DEVICE();
  DeviceBuffer<bf16> x(64 + 8);
  DeviceBuffer<uint8_t> w(mxfp4_gemv_code_bytes(16, 64)), s(mxfp4_gemv_scale_bytes(16, 64));
  DeviceBuffer<float> y(16);
  EXPECT_EQ(mxfp4_gemv_w4a16_cuda(x.get(), 1, 48, w.get(), s.get(), 16, y.get(), ElemType::f32, nullptr),
            cudaErrorInvalidValue);  // K not a multiple of 32
  EXPECT_EQ(mxfp4_gemv_w4a16_cuda(x.get() + 1, 1, 64, w.get(), s.get(), 16, y.get(), ElemType::f32, nullptr),
            cudaErrorInvalidValue);  // x not 16-byte aligned
  EXPECT_EQ(mxfp4_gemv_w4a16_cuda(x.get(), 1, (size_t{1} << 26) + 32, w.get(), s.get(), 16, y.get(), ElemType::f32,
                                  nullptr),
            cudaErrorInvalidValue);  // K past 2^26 (checked before anything is read)
  EXPECT_EQ(gemm_mxfp4_w4a16_sm80(x.get(), 1, 48, w.get(), s.get(), 16, y.get(), nullptr),
            cudaErrorInvalidValue);  // K not a multiple of 32
  EXPECT_EQ(gemm_mxfp4_w4a16_sm80(x.get() + 1, 1, 64, w.get(), s.get(), 16, y.get(), nullptr),
            cudaErrorInvalidValue);  // x not 16-byte aligned
  EXPECT_EQ(gemm_mxfp4_w4a16_sm80(x.get(), 1, 64, w.get() + 4, s.get(), 16, y.get(), nullptr),
            cudaErrorInvalidValue);  // codes not 16-byte aligned
  EXPECT_EQ(gemm_mxfp4_w4a16_sm80(x.get(), 1, 64, w.get(), s.get(), 16, y.get(), nullptr, 4),
            cudaErrorInvalidValue);  // no CTA shape of 4 row tiles
}

// ---------------------------------------------------------------------------------------------
// The sm_80 GEMM (gemm_mma_sm80.h) on the GEMV's repacked weights, with the GEMV's data (scale
// exponents over many binades, 2^-127, scales above 2^1 for the two-multiply path), through both CTA
// shapes (128 or 256 rows x 128 tokens): M = 33 (one partial token tile), 127, 512 (four whole), 2049
// (17 tiles, the last holding one token), and 1 and 7 (far below one tile); N = 2888, 129, 136, 40
// (partial 16-row tiles and partial slabs: 23 slabs of 128 rows for 2888, 12 of 256); K = 1056 and
// 4128 (odd numbers of 32-blocks: the last 64-K step half padding) and 2880. The CTA order's groups
// of 8 slabs: 23 slabs = 2 full groups and a partial one.
// ---------------------------------------------------------------------------------------------

const GemvCase kSm80Cases[] = {{33, 2880 + 8, 1056}, {127, 129, 4096 + 32}, {512, 136, 2880},
                               {2049, 40, 1056},     {1, 129, 96},          {7, 200, 160}};

constexpr GemvRun kSm80Runs[] = {{ElemType::f32, 8}, {ElemType::f32, 16}};

// The bound of CudaGemv.MatchesReferenceWithinSummationBound (the same exact bf16 operands, the same
// K f32 additions in another order): (K + 1) · 2^-23 · Σ|x||w|.
TEST(CudaGemmSm80, MatchesReferenceWithinSummationBound) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for_each_case(kSm80Cases, kSm80Runs, false, [](const GemvCase& c, ElemType, const GemvData& d,
                                                 const std::vector<float>& xf, const std::vector<float>& ref,
                                                 const std::vector<float>& got) {
    const OutputCheck r = check_outputs(got, ref, magnitude_sums(c, d, xf),
                                        (static_cast<double>(c.K) + 1.0) * 0x1p-23, false, c.N);
    EXPECT_EQ(0u, r.bad);
    EXPECT_GT(r.nonzero, ref.size() * 3 / 4);
  });
}

// Integer data (make_gemv_data): every partial sum is an integer below 2^24, so any order is exact.
TEST(CudaGemmSm80, BitExactOnIntegers) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for_each_case(kSm80Cases, kSm80Runs, true, [](const GemvCase& c, ElemType, const GemvData&,
                                                const std::vector<float>&, const std::vector<float>& ref,
                                                const std::vector<float>& got) {
    const OutputCheck r = check_outputs(got, ref, std::vector<float>(ref.size()), 0.0, true, c.N);
    EXPECT_EQ(0u, r.bad);
    EXPECT_GT(r.nonzero, ref.size() * 3 / 4) << "the integer data must give non-zero outputs";
  });
}

// ---------------------------------------------------------------------------------------------
// Activation quantization, bit for bit against act_fp8_quantize_row / act_mxfp4_quantize_row.
// ---------------------------------------------------------------------------------------------

// Gaussian rows over many binades, with an all-zero row and all-zero 32-blocks.
std::vector<float> make_activations(size_t M, size_t K, std::mt19937_64& rng) {
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> binade(-20, 20);
  std::vector<float> x(M * K);
  for (size_t m = 0; m < M; ++m) {
    const float row_scale = pow2f(binade(rng));
    for (size_t k = 0; k < K; ++k) x[m * K + k] = gauss(rng) * row_scale * pow2f(binade(rng) / 4);
  }
  if (M > 1) std::fill_n(x.begin() + K, K, 0.0f);  // row 1: all zeros
  for (size_t b = 0; b + kMxBlock <= M * K; b += 7 * kMxBlock) std::fill_n(x.begin() + b, kMxBlock, 0.0f);
  return x;
}

TEST(CudaActQuant, Fp8MatchesReferenceBitForBit) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  // K = 100 is not a multiple of 8: the element-by-element path.
  for (const auto& [M, K] : {std::pair<size_t, size_t>{1, 4096 + 32}, {3, 2880}, {33, 96}, {5, 100}}) {
    for (const ElemType xt : {ElemType::bf16, ElemType::f32}) {
      for (const float static_scale : {0.0f, 0.0371f}) {
        SCOPED_TRACE("M " + std::to_string(M) + " K " + std::to_string(K) +
                     (xt == ElemType::bf16 ? " bf16" : " f32") + " static " + std::to_string(static_scale));
        std::vector<float> x = make_activations(M, K, rng);
        const auto x_dev = activations_on_device(x, xt);
        GuardedOutput codes(M * K), scale(M * 4), values(M * K * 2);
        cuda_check(act_fp8_quantize_cuda(x_dev.get(), xt, M, K, static_scale,
                                         static_cast<uint8_t*>(codes.get()),
                                         static_cast<float*>(scale.get()), nullptr),
                   "act_fp8_quantize_cuda");
        // The variant writing each code's value as a bf16 (W4A8 through the W4A16 GEMV), without
        // its optional scales.
        cuda_check(act_fp8_values_bf16_cuda(x_dev.get(), xt, M, K, static_scale,
                                            static_cast<bf16*>(values.get()), nullptr, nullptr),
                   "act_fp8_values_bf16_cuda");
        const std::vector<uint8_t> got_codes = codes.download(), got_scale_bytes = scale.download();
        const std::vector<uint8_t> got_values = values.download();
        std::vector<float> xq(K);
        size_t bad = 0;
        for (size_t m = 0; m < M && bad < 5; ++m) {
          const float s = act_fp8_quantize_row(x.data() + m * K, K, static_scale, xq.data());
          float got_s;
          std::memcpy(&got_s, got_scale_bytes.data() + 4 * m, 4);
          EXPECT_EQ(f32_bits(got_s), f32_bits(s)) << "scale of row " << m;
          for (size_t k = 0; k < K && bad < 5; ++k) {
            const uint8_t want = e4m3_from_f32(x[m * K + k] / s);
            const uint8_t got = got_codes[m * K + k];
            // The code's value as a bf16 (exact), as act_fp8_codes_row writes it.
            bf16 got_q;
            std::memcpy(&got_q, got_values.data() + 2 * (m * K + k), 2);
            const bf16 want_q = bf16_from_f32(e4m3_to_f32(want));
            if (got != want || f32_bits(e4m3_to_f32(got) * s) != f32_bits(xq[k]) ||
                got_q.bits != want_q.bits) {
              ++bad;
              ADD_FAILURE() << "row " << m << " k " << k << ": code 0x" << std::hex << int{got}
                            << ", want 0x" << int{want} << "; bf16 0x" << got_q.bits << ", want 0x"
                            << want_q.bits << std::dec << " (x " << x[m * K + k] << ")";
            }
          }
        }
      }
    }
  }
}

TEST(CudaActQuant, Mxfp4MatchesReferenceBitForBit) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const auto& [M, K] : {std::pair<size_t, size_t>{1, 4096 + 32}, {3, 2880}, {33, 96}}) {
    for (const ElemType xt : {ElemType::bf16, ElemType::f32}) {
      SCOPED_TRACE("M " + std::to_string(M) + " K " + std::to_string(K) + (xt == ElemType::bf16 ? " bf16" : " f32"));
      std::vector<float> x = make_activations(M, K, rng);
      const auto x_dev = activations_on_device(x, xt);
      GuardedOutput codes(M * K / 2), scales(M * K / kMxBlock);
      cuda_check(act_mxfp4_quantize_cuda(x_dev.get(), xt, M, K, static_cast<uint8_t*>(codes.get()),
                                         static_cast<uint8_t*>(scales.get()), nullptr),
                 "act_mxfp4_quantize_cuda");
      const std::vector<uint8_t> got_codes = codes.download(), got_scales = scales.download();
      std::vector<float> xq(K), got_xq(K);
      for (size_t m = 0; m < M; ++m) {
        act_mxfp4_quantize_row(x.data() + m * K, K, xq.data());
        mxfp4_dequantize_row_ref(got_codes.data() + m * K / 2, got_scales.data() + m * K / kMxBlock, K,
                                 got_xq.data());
        for (size_t k = 0; k < K; ++k)
          ASSERT_EQ(f32_bits(got_xq[k]), f32_bits(xq[k])) << "row " << m << " k " << k << " x " << x[m * K + k];
      }
      // The bytes themselves: the reference quantizer under the same options.
      std::vector<uint8_t> ref_codes(K / 2), ref_scales(K / kMxBlock);
      const MxOptions opt{ScaleRule::ceil, TieRule::nearest_even, NonFinite::nan_scale};
      for (size_t m = 0; m < M; ++m) {
        mxfp4_quantize_row_ref(x.data() + m * K, K, ref_codes.data(), ref_scales.data(), opt);
        ASSERT_EQ(0, std::memcmp(ref_codes.data(), got_codes.data() + m * K / 2, K / 2)) << "codes of row " << m;
        ASSERT_EQ(0, std::memcmp(ref_scales.data(), got_scales.data() + m * K / kMxBlock, K / kMxBlock))
            << "scales of row " << m;
      }
    }
  }
}

}  // namespace
}  // namespace mxq
