// The CUDA kernels' integer-pipe codec and ScaleRule::mse error term (mxq/kernels/cuda/
// mx_convert_math.h) against format.h, on the CPU: runs in CI without a GPU. The device build of the
// same functions is checked again in tests/test_cuda_convert.cu. This file is compiled with
// -ffp-contract=off, as format.h's error term requires.
#include <gtest/gtest.h>

#include <cfloat>
#include <cstdint>
#include <random>
#include <vector>

#include "mxq/format.h"
#include "mxq/kernels/cuda/mx_convert_math.h"

namespace mxq {
namespace {

uint64_t fresh_seed() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

float bf16_bits_to_f32_for_test(uint32_t h) { return f32_from_bits(h << 16); }

float finite_from_bits(uint32_t b) {
  const float f = f32_from_bits(b);
  return f32_is_finite(f) ? f : f32_from_bits(b & 0xFF7FFFFFu);  // clear an exponent bit
}

// Inputs that reach each branch of mxfp4_mse_error_units and each rounding case of the encoder: E2M1
// grid points and midpoints (and their float neighbours) times 2^s, subnormals, zeros of both signs,
// values near FLT_MAX (q·2^s overflows), and random bit patterns.
std::vector<float> edge_values(int s) {
  static constexpr float kPoints[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f,
                                      2.5f, 3.0f,  3.5f, 4.0f,  5.0f, 6.0f,  7.0f, 8.0f,  12.0f};
  std::vector<float> out;
  for (const float p : kPoints) {
    const float v = p * pow2f(s);  // exact or rounded at the ends of the range: both are inputs
    for (const uint32_t delta : {0u, 1u, 2u}) {
      for (const float sign : {1.0f, -1.0f}) {
        const uint32_t b = f32_bits(v);
        out.push_back(sign * finite_from_bits(b + delta));
        if (b >= delta) out.push_back(sign * finite_from_bits(b - delta));
      }
    }
  }
  for (const uint32_t b : {0x00000001u, 0x00000002u, 0x003FFFFFu, 0x00400000u, 0x007FFFFFu,
                           0x00800000u, 0x00800001u, 0x7E000000u, 0x7EFFFFFFu, 0x7F000000u,
                           0x7F400000u, 0x7F7FFFFFu}) {
    out.push_back(f32_from_bits(b));
    out.push_back(f32_from_bits(b | 0x80000000u));
  }
  out.push_back(-0.0f);
  return out;
}

TEST(CudaConvertMath, MseErrorUnitsEqualsFormatOnEdges) {
  for (const TieRule ties : {TieRule::nearest_even, TieRule::toward_zero})
    for (int s = kScaleExpMin; s <= kScaleExpMax; ++s) {
      const std::vector<float> xs = edge_values(s);
      for (const float x : xs)
        for (const int amax_log2 : {-149, -127, -126, s - 1, s, s + 1, s + 2, s + 3, s + 4, 127}) {
          if (amax_log2 < -149 || amax_log2 > 127) continue;
          ASSERT_EQ(mxfp4_mse_element_error_int(x, s, amax_log2, ties),
                    mxfp4_mse_element_error(x, s, amax_log2, ties))
              << "x bits 0x" << std::hex << f32_bits(x) << std::dec << " s " << s << " amax_log2 "
              << amax_log2 << " ties " << int(ties);
        }
    }
}

// Random finite x with amax_log2 and s as the quantizer produces them (amax_log2 >= floor_log2|x|,
// s one of the three candidates), plus fully random (x, s, amax_log2) triples: the function is total
// over finite x, s in [-127, 127] and amax_log2 in [-149, 127].
TEST(CudaConvertMath, MseErrorUnitsEqualsFormatOnRandom) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 4'000'000; ++i) {
    const float x = finite_from_bits(static_cast<uint32_t>(rng()));
    const TieRule ties = (rng() & 1) ? TieRule::nearest_even : TieRule::toward_zero;
    int s = 0, amax_log2 = 0;
    if (i % 2 == 0) {
      const int floor_x = x == 0.0f ? -149 : f32_floor_log2(x);
      amax_log2 = floor_x + static_cast<int>(rng() % 4);
      if (amax_log2 > 127) amax_log2 = 127;
      const int centre = mx_scale_exp(pow2f(amax_log2), ScaleRule::ocp_floor, kMxE2M1);
      s = mx_mse_candidate(centre, static_cast<int>(rng() % kMseCandidates));
    } else {
      s = static_cast<int>(rng() % 255) - 127;
      amax_log2 = static_cast<int>(rng() % 277) - 149;
    }
    ASSERT_EQ(mxfp4_mse_element_error_int(x, s, amax_log2, ties),
              mxfp4_mse_element_error(x, s, amax_log2, ties))
        << "x bits 0x" << std::hex << f32_bits(x) << std::dec << " s " << s << " amax_log2 "
        << amax_log2 << " ties " << int(ties);
  }
}

// The encoder on a strided sample of every float32 (the device test covers all 2^32).
TEST(CudaConvertMath, IntegerEncoderEqualsFormatOnSample) {
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 997) {
    const uint32_t bits = static_cast<uint32_t>(b);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) continue;
    const float v = f32_from_bits(bits);
    for (const TieRule ties : {TieRule::nearest_even, TieRule::toward_zero})
      ASSERT_EQ(e2m1_from_scaled_int(v, ties), e2m1_from_scaled(v, ties))
          << "bits 0x" << std::hex << bits;
  }
}

// The division-free ScaleRule::ceil exponent on every non-negative finite float32.
TEST(CudaConvertMath, CeilScaleExpEqualsFormatOnEveryFloat) {
  for (uint32_t b = 0; b <= 0x7F7FFFFFu; ++b) {
    const float amax = f32_from_bits(b);
    const int want = mx_scale_exp(amax, ScaleRule::ceil, kMxE2M1);
    if (mx_scale_exp_ceil_int(amax) != want)
      FAIL() << "amax bits 0x" << std::hex << b << std::dec << " want " << want << " got "
             << mx_scale_exp_ceil_int(amax);
  }
}

// The two-at-a-time bf16 encoder on every bf16 bit pattern (both halves, both signs, finite) and
// every scale exponent a bf16 block can get, against e2m1_from_scaled on the float32 product (what
// mxfp4_encode computes): with the clamp everywhere, without it where |x|·2^-s < 7.
TEST(CudaConvertMath, Bf16x2EncoderEqualsFormatOnEveryBf16) {
  for (int s = kScaleExpMin; s <= 126; ++s) {
    const uint32_t inv2 = bf16x2_pow2_neg(s);
    ASSERT_EQ(bf16_bits_to_f32_for_test(inv2 & 0xFFFFu), pow2f(-s));
    for (uint32_t h = 0; h < 0x10000u; h += 2) {
      const uint32_t lo = h, hi = h + 1;  // neighbours in the two halves
      const float xl = f32_from_bits(lo << 16), xh = f32_from_bits(hi << 16);
      if (!f32_is_finite(xl) || !f32_is_finite(xh)) continue;
      const uint32_t w = lo | hi << 16;
      const uint8_t want = e2m1_pack(e2m1_from_scaled(xl * pow2f(-s), TieRule::nearest_even),
                                     e2m1_from_scaled(xh * pow2f(-s), TieRule::nearest_even));
      ASSERT_EQ(mxfp4_encode_bf16x2_ne(w, inv2, true) & 0xFFu, want)
          << "bf16 0x" << std::hex << lo << ", 0x" << hi << std::dec << " s " << s;
      const uint32_t swapped = hi | lo << 16;  // every pattern in both halves
      ASSERT_EQ(mxfp4_encode_bf16x2_ne(swapped, inv2, true) & 0xFFu,
                static_cast<uint32_t>((want >> 4) | ((want & 0xFu) << 4)))
          << "swapped, bf16 0x" << std::hex << lo << ", 0x" << hi << std::dec << " s " << s;
      const float lim = 7.0f * pow2f(s);
      if ((xl < 0 ? -xl : xl) < lim && (xh < 0 ? -xh : xh) < lim)
        ASSERT_EQ(mxfp4_encode_bf16x2_ne(w, inv2, false) & 0xFFu, want)
            << "no clamp, bf16 0x" << std::hex << lo << ", 0x" << hi << std::dec << " s " << s;
    }
  }
}

}  // namespace
}  // namespace mxq
