// The Hopper prefill GEMMs (W4A8 on FP8 wgmma, W4A16 on BF16 wgmma) against gemm_mxfp4_ref, and
// their weight repack as a bijection.
//
// Every GEMM test draws fresh random data (the seed is printed on failure), poisons y with NaN bytes
// and keeps guard bytes before and after it. Shapes: M over {1, 2, 3, 7, 16, 33, 127, 512, 2049},
// N = 200 (not a multiple of the 128-row tile), K = 352 (a multiple of 32, not of 128: the last
// K-tile is partial). Without an sm_90 device the GEMM tests skip and say why; the repack tests run
// anywhere.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "mxq/format.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/kernels/cuda/gemm_wgmma.h"
#include "cuda_test_util.h"

namespace mxq {
namespace {

constexpr size_t kN = 200, kK = 352;
constexpr size_t kMs[] = {1, 2, 3, 7, 16, 33, 127, 512, 2049};
constexpr Sm90Operand kOps[] = {Sm90Operand::e4m3, Sm90Operand::bf16};

const char* name_of(Sm90Operand op) { return op == Sm90Operand::e4m3 ? "w4a8" : "w4a16"; }

std::string sm90_unavailable_reason() {
  const std::string reason = cuda_device_unavailable_reason();
  if (!reason.empty()) return reason;
  int device = 0, major = 0, minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major != 9 || minor != 0)
    return "the wgmma kernels need sm_90a; device is sm_" + std::to_string(major * 10 + minor);
  return "";
}
#define SKIP_WITHOUT_SM90()                                  \
  do {                                                       \
    const std::string reason_ = sm90_unavailable_reason();   \
    if (!reason_.empty()) GTEST_SKIP() << reason_;           \
  } while (0)

// How block exponents are drawn.
enum class Scales {
  near,      // E8M0 in [120, 131]: every (row, K-tile) inside the FP8 window, a few zero blocks
  spread,    // E8M0 in [40, 210]: most FP8 K-tiles and BF16 rows need several passes
  integer,   // E8M0 in {128, 129}: every weight an integer (E2M1 · 2 or · 4)
};

struct Weight {
  std::vector<uint8_t> codes, scales;
};

Weight random_weight(size_t N, size_t K, Scales mode, std::mt19937_64& rng) {
  Weight w{std::vector<uint8_t>(N * K / 2), std::vector<uint8_t>(N * K / kMxBlock)};
  for (auto& c : w.codes) c = static_cast<uint8_t>(rng());
  for (size_t b = 0; b < w.scales.size(); ++b) {
    switch (mode) {
      case Scales::near: w.scales[b] = static_cast<uint8_t>(120 + rng() % 12); break;
      case Scales::spread: w.scales[b] = static_cast<uint8_t>(40 + rng() % 171); break;
      case Scales::integer: w.scales[b] = static_cast<uint8_t>(128 + rng() % 2); break;
    }
    // One block in 16 all ±0 with an exponent far above the rest: it carries no value, so it
    // must not become the base (its neighbours would leave the window).
    if (mode != Scales::integer && rng() % 16 == 0) {
      for (size_t i = 0; i < kMxBlock / 2; ++i) w.codes[b * 16 + i] &= 0x88;
      w.scales[b] = 250;
    }
  }
  return w;
}

// Activations: E4M3 bytes with per-token scales, or bf16; `integer` draws integers in [−2, 2] (and
// powers of two for the token scales) so every sum is exact in both paths.
struct Activations {
  std::vector<uint8_t> x8;
  std::vector<float> scale;
  std::vector<bf16> x16;
  std::vector<float> decoded;  // the f32 values the reference multiplies (FP8 without its scale)
};

Activations random_activations(Sm90Operand op, size_t M, size_t K, bool integer,
                               std::mt19937_64& rng) {
  Activations a;
  a.decoded.resize(M * K);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  if (op == Sm90Operand::e4m3) {
    a.x8.resize(M * K);
    for (size_t i = 0; i < M * K; ++i) {
      uint8_t q = static_cast<uint8_t>(rng());
      if (integer) q = e4m3_from_f32(static_cast<float>(static_cast<int>(rng() % 5) - 2));
      if ((q & 0x7F) == 0x7F) q ^= 1;  // no E4M3 NaN: 0x7F / 0xFF become ±448
      a.x8[i] = q;
      a.decoded[i] = e4m3_to_f32(q);
    }
    a.scale.resize(M);
    for (auto& s : a.scale)
      s = integer ? pow2f(static_cast<int>(rng() % 7) - 3)
                  : std::uniform_real_distribution<float>(0.5f, 1.0f)(rng) *
                        pow2f(static_cast<int>(rng() % 9) - 4);
  } else {
    a.x16.resize(M * K);
    for (size_t i = 0; i < M * K; ++i) {
      const float v = integer ? static_cast<float>(static_cast<int>(rng() % 5) - 2)
                              : gauss(rng) * pow2f(static_cast<int>(rng() % 5) - 2);
      a.x16[i] = bf16_from_f32(v);
      a.decoded[i] = bf16_to_f32(a.x16[i]);
    }
  }
  return a;
}

// y (f32 or bf16) through the kernel, with guard bytes before and after y checked and y poisoned
// with NaN bytes.
template <typename Out = float>
std::vector<Out> run_sm90(Sm90Operand op, const Activations& a, size_t M, size_t K, const Mxfp4Sm90Packed& p) {
  DeviceBuffer<uint8_t> codes(p.codes.size()), meta(p.meta.size()), passes(p.passes.size());
  codes.upload(p.codes.data(), p.codes.size());
  meta.upload(p.meta.data(), p.meta.size());
  passes.upload(p.passes.data(), p.passes.size());
  const Mxfp4Sm90Weights w{op, p.N, p.K, codes.get(), meta.get(), passes.get()};
  const size_t n_out = M * p.N;
  DeviceBuffer<Out> y(n_out + 2 * kGuard);
  y.fill_bytes(0xFF);
  if (op == Sm90Operand::e4m3) {
    DeviceBuffer<uint8_t> x(a.x8.size());
    DeviceBuffer<float> s(M);
    x.upload(a.x8.data(), a.x8.size());
    s.upload(a.scale.data(), M);
    cuda_check(gemm_mxfp4_w4a8_sm90(x.get(), s.get(), M, K, w, y.get() + kGuard, nullptr),
               "gemm_mxfp4_w4a8_sm90");
    cuda_check(cudaDeviceSynchronize(), "w4a8 kernel");
  } else {
    DeviceBuffer<bf16> x(a.x16.size());
    x.upload(a.x16.data(), a.x16.size());
    cuda_check(gemm_mxfp4_w4a16_sm90(x.get(), M, K, w, y.get() + kGuard, nullptr),
               "gemm_mxfp4_w4a16_sm90");
    cuda_check(cudaDeviceSynchronize(), "w4a16 kernel");
  }
  std::vector<Out> all(n_out + 2 * kGuard);
  y.download(all.data(), all.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(all.data());
  const size_t guard_bytes = kGuard * sizeof(Out), y_bytes = n_out * sizeof(Out);
  for (size_t i = 0; i < guard_bytes; ++i) {
    EXPECT_EQ(0xFF, bytes[i]) << "guard before y, byte " << i;
    EXPECT_EQ(0xFF, bytes[guard_bytes + y_bytes + i]) << "guard after y, byte " << i;
  }
  return {all.begin() + kGuard, all.begin() + kGuard + n_out};
}

// The reference: y0 = gemm_mxfp4_ref on the decoded activations, times the token's scale (FP8).
// bound = the same over |x| and |W| (codes with the sign bits cleared), times the token's scale.
void reference(Sm90Operand op, const Activations& a, size_t M, size_t K, const Weight& w, size_t N,
               std::vector<float>& y, std::vector<float>& abs_sum) {
  y.assign(M * N, 0.0f);
  abs_sum.assign(M * N, 0.0f);
  std::vector<float> ax(a.decoded.size());
  for (size_t i = 0; i < ax.size(); ++i) ax[i] = std::fabs(a.decoded[i]);
  std::vector<uint8_t> acodes(w.codes);
  for (auto& c : acodes) c &= 0x77;
  gemm_mxfp4_ref(a.decoded.data(), M, K, w.codes.data(), w.scales.data(), N, y.data());
  gemm_mxfp4_ref(ax.data(), M, K, acodes.data(), w.scales.data(), N, abs_sum.data());
  if (op == Sm90Operand::e4m3)
    for (size_t m = 0; m < M; ++m)
      for (size_t n = 0; n < N; ++n) {
        y[m * N + n] *= a.scale[m];
        abs_sum[m * N + n] *= a.scale[m];
      }
}

// Derived limit, as a fraction of Σ|x·w| (the reference's own rounding is 2^−24 of |y|):
//   products are exact in both paths (E4M3 · E4M3 and bf16 · bf16 fit the accumulator);
//   FP8: a K-tile's 128 products are summed by the tensor core, assumed to keep at least 13
//   fraction bits and maybe truncate: ≤ 127 · 2^−13 (the recursive-summation bound (n − 1)·u);
//   each K-tile's promotion is an f32 fma (exact power-of-two scale): ≤ KT · 2^−24; the epilogue's
//   token scale and the reference's rounding: 2 · 2^−24.
//   BF16: a pass sums all K products in the tensor core's f32 accumulator (maybe truncating):
//   ≤ (K − 1) · 2^−23; the first pass's scale is an exact power of two, each later pass (at most
//   2) adds with an f32 fma: 2 · 2^−24; the reference's rounding: 2^−24.
double tolerance_fraction(Sm90Operand op, size_t K) {
  if (op == Sm90Operand::bf16) return static_cast<double>(K - 1) * 0x1p-23 + 3.0 * 0x1p-24;
  const double kt = static_cast<double>((K + 127) / 128);
  return 127.0 * 0x1p-13 + (kt + 2.0) * 0x1p-24;
}

void check_gemm(Sm90Operand op, size_t M, Scales mode, bool integer, uint64_t seed,
                size_t N = kN, size_t K = kK) {
  SCOPED_TRACE(std::string(name_of(op)) + " M=" + std::to_string(M) + " N=" + std::to_string(N) +
               " K=" + std::to_string(K) + " seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const Weight w = random_weight(N, K, mode, rng);
  const Activations a = random_activations(op, M, K, integer, rng);
  const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, w.codes.data(), w.scales.data(), N, K);
  if (mode == Scales::spread) ASSERT_GT(p.out_of_window, 0u) << "the multi-pass path was not taken";
  const std::vector<float> got = run_sm90(op, a, M, K, p);
  std::vector<float> want, abs_sum;
  reference(op, a, M, K, w, N, want, abs_sum);
  const OutputCheck c = check_outputs(got, want, abs_sum, tolerance_fraction(op, K), integer, N);
  EXPECT_EQ(0u, c.bad);
  // Random data whose products all vanish would pass any kernel that writes zeros.
  EXPECT_GT(c.nonzero, want.size() * 9 / 10);
}

// A bf16 y is the f32 y rounded to nearest even, bit for bit, wherever one pass per tile writes
// it: every W4A8 tile (its passes are promoted in f32), and W4A16 tiles of one pass; an odd N
// takes the 2-byte stores instead of the paired ones. A W4A16 tile of several passes rounds once
// per pass, rn(rn(a) + b) against rn(a + b): at most one bf16 ulp apart. N = 3992, K = 1024: more
// tiles than SMs (the persistent CTAs store one tile and go on to the next), a partial last
// weight-row tile and, at M = 2049, a partial last token tile.
TEST(CudaGemmSm90, Bf16OutputIsTheF32OutputRounded) {
  SKIP_WITHOUT_SM90();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  // bf16 bits as a monotonic integer, so adjacent values differ by 1 across zero too.
  const auto ordered = [](uint16_t b) { return (b & 0x8000u) ? -static_cast<int>(b & 0x7FFFu) : static_cast<int>(b); };
  for (const Sm90Operand op : kOps)
    for (const Scales mode : {Scales::near, Scales::spread})
      for (const auto& [M, N, K] : {std::tuple<size_t, size_t, size_t>{1, kN, kK}, {33, kN, kK}, {2049, kN, kK},
                                    {1, kN - 1, kK}, {33, kN - 1, kK}, {2049, kN - 1, kK},
                                    {2000, 3992, 1024}, {2049, 3992, 1024}}) {
          SCOPED_TRACE(std::string(name_of(op)) + (mode == Scales::near ? " near" : " spread") + " M=" +
                       std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                       " seed=" + std::to_string(seed));
          const Weight w = random_weight(N, K, mode, rng);
          const Activations a = random_activations(op, M, K, false, rng);
          const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, w.codes.data(), w.scales.data(), N, K);
          const std::vector<float> f32 = run_sm90<float>(op, a, M, K, p);
          const std::vector<bf16> b16 = run_sm90<bf16>(op, a, M, K, p);
          const bool exact = op == Sm90Operand::e4m3 || mode == Scales::near;
          size_t bad = 0, nonzero = 0, first_bad = 0;
          for (size_t i = 0; i < f32.size(); ++i) {
            const int want = ordered(bf16_from_f32(f32[i]).bits), got = ordered(b16[i].bits);
            const bool ok = exact ? want == got : std::abs(want - got) <= 1;
            if (!ok && bad++ == 0) first_bad = i;
            nonzero += f32[i] != 0.0f;
          }
          EXPECT_EQ(0u, bad) << "first at (" << first_bad / N << ", " << first_bad % N << "): f32 " << f32[first_bad]
                             << ", bf16 bits 0x" << std::hex << b16[first_bad].bits;
          EXPECT_GT(nonzero, f32.size() * 9 / 10);
        }
}

TEST(CudaGemmSm90, RandomNearScalesEveryM) {
  SKIP_WITHOUT_SM90();
  for (const Sm90Operand op : kOps)
    for (const size_t M : kMs) check_gemm(op, M, Scales::near, false, fresh_seed());
}

// A long K (32 K-tiles, the pipeline wraps its stages many times) and several CTA columns.
TEST(CudaGemmSm90, RandomLongK) {
  SKIP_WITHOUT_SM90();
  for (const Sm90Operand op : kOps) check_gemm(op, 300, Scales::near, false, fresh_seed(), 520, 4096);
}

// More output tiles than an H100 or H200 has SMs (132), the last token and weight-row tiles partial:
// the persistent CTAs take several tiles, and their pipeline runs on across the tile boundaries.
// M = 2000, N = 4000: 32 weight-row tiles × 11 token tiles of 192 (W4A8) or × 8 of 256 (W4A16, whose
// 256 tiles fill 2 waves where 192-token tiles would need 3); M = 2200, N = 2000: W4A16 takes
// 192-token tiles (12 × 16 = 192 tiles in 2 waves against 256-token tiles' 9 × 16 = 144, also 2).
TEST(CudaGemmSm90, MoreTilesThanSms) {
  SKIP_WITHOUT_SM90();
  for (const Sm90Operand op : kOps) check_gemm(op, 2000, Scales::near, false, fresh_seed(), 4000, 416);
  check_gemm(Sm90Operand::bf16, 2200, Scales::near, false, fresh_seed(), 2000, 416);
}

TEST(CudaGemmSm90, IntegerInputsAreBitExact) {
  SKIP_WITHOUT_SM90();
  for (const Sm90Operand op : kOps)
    for (const size_t M : kMs) check_gemm(op, M, Scales::integer, true, fresh_seed());
}

TEST(CudaGemmSm90, BlocksOutsideTheWindowTakeASecondPass) {
  SKIP_WITHOUT_SM90();
  for (const Sm90Operand op : kOps)
    for (const size_t M : {size_t{7}, size_t{127}, size_t{512}})
      check_gemm(op, M, Scales::spread, false, fresh_seed());
}

// A K-tile whose codes are ±0 in every row (W4A8: no pass at all), and a whole 128-row tile of ±0
// rows (W4A16: one sweep that writes zeros).
TEST(CudaGemmSm90, ZeroKTilesAndZeroRows) {
  SKIP_WITHOUT_SM90();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr size_t N = 300, K = 416, M = 65;
  for (const Sm90Operand op : kOps) {
    Weight w = random_weight(N, K, Scales::near, rng);
    for (size_t n = 0; n < N; ++n)
      for (size_t k = 128; k < 256; k += 2) w.codes[n * K / 2 + k / 2] &= 0x88;
    for (size_t n = 128; n < 256; ++n)
      for (size_t i = 0; i < K / 2; ++i) w.codes[n * K / 2 + i] &= 0x88;
    const Activations a = random_activations(op, M, K, false, rng);
    const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, w.codes.data(), w.scales.data(), N, K);
    const std::vector<float> got = run_sm90(op, a, M, K, p);
    std::vector<float> want, abs_sum;
    reference(op, a, M, K, w, N, want, abs_sum);
    const OutputCheck c = check_outputs(got, want, abs_sum, tolerance_fraction(op, K), false, N);
    EXPECT_EQ(0u, c.bad) << name_of(op);
    EXPECT_GT(c.nonzero, M * (N - 128) * 9 / 10) << name_of(op);
    for (size_t m = 0; m < M; ++m)
      for (size_t n = 128; n < 256; ++n) ASSERT_EQ(0.0f, got[m * N + n]) << name_of(op) << " y[" << m << ", " << n << "]";
  }
}

TEST(CudaGemmSm90, NanScaleGivesNanRows) {
  SKIP_WITHOUT_SM90();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const Sm90Operand op : kOps) {
    Weight w = random_weight(kN, kK, Scales::near, rng);
    const size_t row = rng() % kN, block = rng() % (kK / kMxBlock);
    w.scales[row * (kK / kMxBlock) + block] = kE8M0Nan;
    const Activations a = random_activations(op, 33, kK, false, rng);
    const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, w.codes.data(), w.scales.data(), kN, kK);
    const std::vector<float> got = run_sm90(op, a, 33, kK, p);
    for (size_t m = 0; m < 33; ++m)
      for (size_t n = 0; n < kN; ++n)
        EXPECT_EQ(n == row, std::isnan(got[m * kN + n])) << name_of(op) << " y[" << m << ", " << n << "]";
  }
}

// ---- repack (host only) ----

// The 4 bits of every element, over all of them, hit each bit of the non-padding codes once.
TEST(Sm90Repack, CodeBitsAreABijectionOntoTheLiveBits) {
  for (const Sm90Operand op : kOps) {
    for (const auto& [N, K] : {std::pair<size_t, size_t>{kN, kK}, {128, 128}, {17, 32}, {300, 4096}}) {
      const Weight w = Weight{std::vector<uint8_t>(N * K / 2, 0), std::vector<uint8_t>(N * K / 32, 127)};
      const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, w.codes.data(), w.scales.data(), N, K);
      std::vector<uint8_t> seen(p.codes.size() * 8, 0);
      for (size_t n = 0; n < N; ++n)
        for (size_t k = 0; k < K; ++k) {
          const CodeBits bits = mxfp4_sm90_code_bits(op, n, k, K);
          ASSERT_LT(bits.magnitude + 2, seen.size()) << name_of(op) << " (" << n << ", " << k << ")";
          ASSERT_LT(bits.sign, seen.size()) << name_of(op) << " (" << n << ", " << k << ")";
          ASSERT_EQ(bits.magnitude / 8, (bits.magnitude + 2) / 8) << "magnitude straddles a byte";
          for (const size_t bit : {bits.magnitude, bits.magnitude + 1, bits.magnitude + 2, bits.sign})
            ASSERT_EQ(0, seen[bit]++) << name_of(op) << " (" << n << ", " << k << ") lands on a taken bit";
        }
      // Padding: the bits no element reaches are exactly the padded rows and K columns.
      const size_t padded = ((N + 127) / 128 * 128) * ((K + 127) / 128 * 128);
      EXPECT_EQ(padded * 4, seen.size());
    }
  }
}

TEST(Sm90Repack, CodesAndExponentsRoundTrip) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const Sm90Operand op : kOps)
    for (const Scales mode : {Scales::near, Scales::spread}) {
      const Weight w = random_weight(kN, kK, mode, rng);
      const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, w.codes.data(), w.scales.data(), kN, kK);
      // Every code read back through the bit map; every bit it does not reach is zero.
      std::vector<uint8_t> rebuilt(p.codes.size(), 0);
      const auto bit_of = [](const std::vector<uint8_t>& bytes, size_t bit) { return (bytes[bit / 8] >> (bit % 8)) & 1; };
      for (size_t n = 0; n < kN; ++n)
        for (size_t k = 0; k < kK; ++k) {
          const CodeBits bits = mxfp4_sm90_code_bits(op, n, k, kK);
          const int code = bit_of(p.codes, bits.magnitude) | bit_of(p.codes, bits.magnitude + 1) << 1 |
                           bit_of(p.codes, bits.magnitude + 2) << 2 | bit_of(p.codes, bits.sign) << 3;
          ASSERT_EQ((w.codes[n * kK / 2 + k / 2] >> (4 * (k % 2))) & 0xF, code) << name_of(op) << " (" << n << ", " << k << ")";
          for (const size_t bit : {bits.magnitude, bits.magnitude + 1, bits.magnitude + 2, bits.sign})
            rebuilt[bit / 8] |= static_cast<uint8_t>(bit_of(p.codes, bit) << (bit % 8));
        }
      EXPECT_EQ(rebuilt, p.codes);
      // Every block that carries a value: e = base[pass] − shift, within the operand's window,
      // pass below its tile's pass count; pass 0's base is the largest live exponent of the
      // row's K-tile (FP8) or of the whole row (BF16, whose every K-tile repeats the row's bases).
      const size_t KT = (kK + 127) / 128, blocks = kK / 32;
      const bool fp8 = op == Sm90Operand::e4m3;
      const int window = fp8 ? 14 : 125;
      for (size_t n = 0; n < kN; ++n) {
        int row_largest = -1;
        const uint8_t* first = &p.meta[((n / 128) * KT * 128 + n % 128) * 8];  // K-tile 0
        for (size_t kt = 0; kt < KT; ++kt) {
          const uint8_t* m = &p.meta[(((n / 128) * KT + kt) * 128 + n % 128) * 8];
          if (!fp8) EXPECT_TRUE(std::equal(m + 4, m + 7, first + 4)) << "row " << n << " K-tile " << kt;
          int largest = -1;
          for (size_t j = 0; j < 4 && kt * 4 + j < blocks; ++j) {
            const size_t b = kt * 4 + j;
            bool live = false;
            for (size_t i = 0; i < 16; ++i) live |= (w.codes[n * kK / 2 + b * 16 + i] & 0x77) != 0;
            if (!live) {
              if (!fp8) EXPECT_EQ(0, m[j]) << "row " << n << " block " << b;  // widens to ±0
              continue;
            }
            const int e = w.scales[n * blocks + b];
            const int pass = fp8 ? m[j] & 3 : (m[7] >> (2 * j)) & 3;
            const int shift = fp8 ? 14 - (m[j] >> 3) : 127 - m[j];
            largest = std::max(largest, e);
            EXPECT_GE(shift, 0);
            EXPECT_LE(shift, window);
            EXPECT_EQ(e, m[4 + pass] - shift) << "row " << n << " block " << b;
            EXPECT_LT(pass, fp8 ? p.passes[(n / 64) * KT + kt] : p.passes[n / 128]);
          }
          if (fp8 && largest >= 0) EXPECT_EQ(largest, m[4]) << "row " << n << " K-tile " << kt;
          row_largest = std::max(row_largest, largest);
        }
        if (!fp8 && row_largest >= 0) EXPECT_EQ(row_largest, first[4]) << "row " << n;
      }
      if (mode == Scales::spread) EXPECT_GT(p.out_of_window, 0u);
    }
}

TEST(Sm90Repack, RejectsKNotAMultipleOf32) {
  const std::vector<uint8_t> codes(8 * 24, 0), scales(8, 127);
  EXPECT_THROW(mxfp4_sm90_repack(Sm90Operand::e4m3, codes.data(), scales.data(), 8, 48), Error);
}

}  // namespace
}  // namespace mxq
