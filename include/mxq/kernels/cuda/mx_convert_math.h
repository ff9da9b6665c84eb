// mxq/kernels/cuda/mx_convert_math.h — format.h's E2M1 codec and ScaleRule::mse error term,
// rewritten for the GPU's integer pipes. Plain constexpr host+device code with no CUDA dependency,
// so that tests/test_cuda_convert_math.cpp checks it against format.h on the CPU (in CI, without a
// GPU) and tests/test_cuda_convert.cu on the device.
//
// Why: the convert kernels are streams at ~2.5 bytes per element, so on an H100 they may spend only
// ~30 issue slots per element before the math, not HBM, sets the pace. e2m1_from_scaled's seven
// compares cost ~21; mxfp4_mse_element_error's two float32 -> float64 conversions and its float64 ->
// uint64 conversion run on the 16/clk/SM conversion unit, 6 to 9 per element under ScaleRule::mse.
// Every function here returns exactly what its format.h counterpart returns.
#pragma once

#include <cstdint>

#include "mxq/format.h"

namespace mxq {

// e2m1_from_scaled(v, ties) for every non-NaN v, in ~10 instructions. |v| >= 1 lies on E2M1's
// normal grid (1 mantissa bit, exponent bias 1): rounding the float32 bits at bit 22 (adding half
// minus one, plus the kept bit under ties-to-even) and rebasing the exponent gives the code, clamped
// at 7 (saturation; the rounding carry walks into the exponent as it should). |v| < 1 is E2M1's
// subnormal step 0.5: adding 2^22, whose float32 ulp is 0.5, rounds to that step with ties to even,
// and the low bits are the code; round-half-down differs there only at 0.75.
MXQ_HD constexpr uint8_t e2m1_from_scaled_int(float v, TieRule ties) {
  const uint32_t bits = f32_bits(v);
  const uint32_t mag = bits & 0x7FFFFFFFu;
  const float a = f32_from_bits(mag);
  const uint32_t kept = ties == TieRule::nearest_even ? (mag >> 22) & 1u : 0u;
  const uint32_t normal = ((mag + 0x1FFFFFu + kept) >> 22) - 252u;  // 252 = (127 - 1) << 1
  uint32_t sub = f32_bits(a + 4194304.0f) - 0x4A800000u;            // 0x4A800000 = bits of 2^22
  if (ties == TieRule::toward_zero && a == 0.75f) sub = 1;
  const uint32_t m = a < 1.0f ? sub : (normal < 7u ? normal : 7u);
  const uint32_t sign = ties == TieRule::nearest_even ? (bits >> 28) & 0x8u
                                                      : (v <= 0.0f ? 0x8u : 0x0u);
  return static_cast<uint8_t>(m | sign);
}

// e2m1_to_f32(code), from bits: magnitudes 2..7 are float32 exponent 126 + (m >> 1) with mantissa
// bit m & 1, i.e. (m << 22) + 0x3F000000; 1 is 0.5 = 0x3F000000 and 0 is 0.
MXQ_HD constexpr float e2m1_to_f32_int(uint8_t code) {
  const uint32_t m = code & 0x7u;
  const uint32_t mag = m >= 2 ? (m << 22) + 0x3F000000u : m * 0x3F000000u;
  return f32_from_bits(mag | (uint32_t{code} & 0x8u) << 28);
}

namespace detail {
constexpr bool e2m1_to_f32_int_matches() {
  for (int c = 0; c < 16; ++c)
    if (f32_bits(e2m1_to_f32_int(static_cast<uint8_t>(c))) !=
        f32_bits(e2m1_to_f32(static_cast<uint8_t>(c))))
      return false;
  return true;
}
static_assert(e2m1_to_f32_int_matches(), "e2m1_to_f32_int must equal format.h's e2m1_to_f32");
}  // namespace detail

// The second half of mxfp4_mse_element_error: d = fl32(x - q·2^s) (computed by the caller exactly as
// format.h does, without contraction) -> trunc(d² · 2^(40 - 2·amax_log2)), capped at 2^51, in
// integers. Why it is the same number: d is ±m · 2^(e - 150) with m = the 24-bit significand (the
// implicit bit set for a normal) and e = max(exponent field, 1), so d² · 2^(40 - 2·amax_log2) is
// m² · 2^sh with sh = 2e - 260 - 2·amax_log2. format.h computes that product in float64 without any
// rounding (m² < 2^48 fits the 53-bit significand; for finite d and amax_log2 in [-149, 127] the
// exponent stays inside [-512, 594], far from float64's subnormals and overflow), so its truncation
// is floor(m² · 2^sh): m² >> -sh for sh < 0 (0 once -sh >= 48, as m² < 2^48), m² << sh for sh >= 0.
// The cap: format.h returns 2^51 when the product is >= 2^51 or when d = ±Inf (an overflowing
// q·2^s; d is never NaN for finite x). In the kernels sh <= -6 always (|d| <= amax < 2^(amax_log2+1)
// for every candidate: 0 is always a nearer-or-equal grid point, and a saturated q is below |x|),
// so the left shift only keeps this function total.
//
// Written without branches (selects and one shift each way, l or r being 0), because the kernels
// evaluate it 96 times per thread: a first version with if/return compiled to real branches (~80
// instructions per element and candidate) and was slower than the float64 form it replaced.
MXQ_HD constexpr uint64_t mxfp4_mse_error_units(float d, int amax_log2) {
  constexpr uint64_t kCap = uint64_t{1} << 51;
  const uint32_t mag = f32_bits(d) & 0x7FFFFFFFu;
  const uint32_t field = mag >> 23;
  const uint32_t m = (mag & 0x7FFFFFu) | (field != 0 ? 0x800000u : 0u);
  const int sh = 2 * static_cast<int>(field > 1u ? field : 1u) - 260 - 2 * amax_log2;
  const uint64_t m2 = uint64_t{m} * m;  // < 2^48: one 32x32 -> 64-bit multiply
  const uint32_t r = sh < 0 ? (-sh < 63 ? static_cast<uint32_t>(-sh) : 63u) : 0u;
  const uint32_t l = sh > 0 ? (sh < 51 ? static_cast<uint32_t>(sh) : 51u) : 0u;
  // m2 << l >= 2^51 iff m2 >> (51 - l) != 0 (never for l = 0: m2 < 2^48); l = 51 caps any m2 > 0.
  const bool cap = mag >= 0x7F800000u || (m2 >> (51u - l)) != 0;  // ±Inf, or too large
  return cap ? kCap : (m2 << l) >> r;
}

// mxfp4_mse_element_error(x, scale_exp, amax_log2, ties), bit for bit, for every finite x,
// scale_exp in [-127, 127] and amax_log2 in [-149, 127]. Like format.h, this expression must be
// compiled without floating-point contraction (--fmad=false, -ffp-contract=off).
MXQ_HD constexpr uint64_t mxfp4_mse_element_error_int(float x, int scale_exp, int amax_log2,
                                                      TieRule ties) {
  const uint8_t code = e2m1_from_scaled_int(x * pow2f(-scale_exp), ties);
  const float d = x - e2m1_to_f32_int(code) * pow2f(scale_exp);
  return mxfp4_mse_error_units(d, amax_log2);
}

}  // namespace mxq
