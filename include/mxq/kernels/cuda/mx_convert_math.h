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

// ScaleRule::ceil without the division: mx_scale_exp(amax, ScaleRule::ceil, kMxE2M1) for every finite
// amax >= 0. Why: let amax = M·2^e be normal, M in [1, 2) on the 2^-23 grid, and d = fl32(amax / 6).
// While amax >= 2^-123, amax / 6 >= 2^-126 is normal, and d is a power of two 2^k only if amax / 6
// lies in [2^k (1 - 2^-25), 2^k (1 + 2^-24)] (the round-to-nearest interval of 2^k), i.e. only if
// M lies within 1.5·2^-24 of 1.5: M = 1.5 exactly. For M >= 1.5, amax / 6 is in [2^(e-2),
// 2^(e-2)·4/3), so floor(log2 d) = e - 2; for M < 1.5 it is in [2^(e-2)·2/3, 2^(e-2)(1 - 2^-25))
// and cannot round up to 2^(e-2), so floor(log2 d) = e - 3 and d is no power of two. Hence
// ceil(log2 d) = e - 1 if M > 1.5 and e - 2 otherwise, inside [-125, 126]: no clamp. Below 2^-123
// (d subnormal, where rounding widens the power-of-two windows) the division is kept; blocks there
// are rare, and tests/test_cuda_convert_math.cpp checks every positive finite float32.
MXQ_HD constexpr int mx_scale_exp_ceil_int(float amax) {
  const uint32_t b = f32_bits(amax) & 0x7FFFFFFFu;
  if (b >= 0x02000000u)  // exponent field >= 4: amax >= 2^-123
    return static_cast<int>(b >> 23) - 129 + ((b & 0x7FFFFFu) > 0x400000u ? 1 : 0);
  return mx_scale_exp(amax, ScaleRule::ceil, kMxE2M1);
}

// ---------------------------------------------------------------------------------------------
// Two bf16 elements at a time (bf16 input, TieRule::nearest_even). A 32-bit word holds elements 2k
// (low half) and 2k + 1 (high half); every step below either uses the GPU's bf16x2 arithmetic
// (fma.rn.bf16x2: one rounding, subnormals kept) or integer operations that never carry or borrow
// across the halves. On the host the same steps are emulated half by half, so that
// tests/test_cuda_convert_math.cpp checks the algorithm against e2m1_from_scaled exhaustively.
// ---------------------------------------------------------------------------------------------

namespace detail {
MXQ_HD constexpr uint32_t half_lo(uint32_t w) { return w & 0xFFFFu; }
MXQ_HD constexpr uint32_t half_hi(uint32_t w) { return w >> 16; }
MXQ_HD constexpr uint32_t halves(uint32_t lo, uint32_t hi) { return (lo & 0xFFFFu) | (hi << 16); }
MXQ_HD constexpr float bf16_bits_to_f32(uint32_t h) { return f32_from_bits(h << 16); }
// The host's model of fma.rn.bf16x2(a, b, c) for the operands used here: a·b (or a + c) is exact
// in float32 whenever the result is at least 2^-126 (8-bit significands), so one RNE step to bf16
// gives the device's single rounding; below that the values only ever encode as magnitude 0.
MXQ_HD constexpr uint32_t emul_mul(uint32_t a, uint32_t b) {
  return bf16_from_f32(bf16_bits_to_f32(a) * bf16_bits_to_f32(b)).bits;
}
MXQ_HD constexpr uint32_t emul_add(uint32_t a, uint32_t b) {
  return bf16_from_f32(bf16_bits_to_f32(a) + bf16_bits_to_f32(b)).bits;
}
}  // namespace detail

// a·b per half, rounded to nearest even (operands non-negative here).
MXQ_HD uint32_t bf16x2_mul(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
  return d;
#else
  return detail::halves(detail::emul_mul(detail::half_lo(a), detail::half_lo(b)),
                        detail::emul_mul(detail::half_hi(a), detail::half_hi(b)));
#endif
}
// a + b per half, rounded to nearest even.
MXQ_HD uint32_t bf16x2_add(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(0x3F803F80u), "r"(b));
  return d;
#else
  return detail::halves(detail::emul_add(detail::half_lo(a), detail::half_lo(b)),
                        detail::emul_add(detail::half_hi(a), detail::half_hi(b)));
#endif
}
// Unsigned 16-bit max / min per half.
MXQ_HD uint32_t u16x2_max(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __vmaxu2(a, b);
#else
  const uint32_t lo = detail::half_lo(a) > detail::half_lo(b) ? detail::half_lo(a) : detail::half_lo(b);
  const uint32_t hi = detail::half_hi(a) > detail::half_hi(b) ? detail::half_hi(a) : detail::half_hi(b);
  return detail::halves(lo, hi);
#endif
}
MXQ_HD uint32_t u16x2_min(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __vminu2(a, b);
#else
  const uint32_t lo = detail::half_lo(a) < detail::half_lo(b) ? detail::half_lo(a) : detail::half_lo(b);
  const uint32_t hi = detail::half_hi(a) < detail::half_hi(b) ? detail::half_hi(a) : detail::half_hi(b);
  return detail::halves(lo, hi);
#endif
}

// 2^-s as bf16 in both halves, for the scale exponents a bf16 block can get (s <= 126, so 2^-s is
// a normal bf16; s = 127 would need amax >= 2^129).
MXQ_HD constexpr uint32_t bf16x2_pow2_neg(int s) {
  return (static_cast<uint32_t>(127 - s) << 7) * 0x00010001u;
}

// mxfp4_encode(x, s, nearest_even) of the two bf16 elements of w, with inv2 = bf16x2_pow2_neg(s):
// returns a word whose low byte is code(low half) | code(high half) << 4 (the packed byte of
// format.h's nibble order); the other bytes are not specified. clamp_at_6 must be set unless
// every scaled magnitude is below 7 (ceil gives <= 6 and even < 7; ocp_floor and mse do not).
//
// Per half, with A = |x|·2^-s (exact in bf16 down to 2^-126; smaller A encode as magnitude 0
// either way, and the sign comes from x's own bit, which is v's):
//  * A >= 1 lies on E2M1's normal grid (1 mantissa bit): rounding A's bits at bit 6 (add 31 plus
//    the kept bit) gives 2·field + m = code + 252 in bits 6..; the constant adds 4 << 6 more, so
//    bits 6..8 hold code mod 8 and the value is 256 + code: T.
//  * A < 1 is E2M1's subnormal step 0.5: 64 + A rounds A to that step in one bf16 rounding (the
//    ulp of 64 is 0.5), so its low 2 bits are round_half_even(2A) mod 4 = c, and Tsub = (256 + c)
//    << 6. For A < 1, T >> 6 <= 256 + c (T rounds on a finer grid that never passes c's value),
//    for 1 <= A < 2 both give 256 + code, and for A >= 2, T >> 6 >= 260 > Tsub >> 6 (c < 4):
//    max(T, Tsub) is right everywhere. The clamp at 6.0 makes A >= 7 (and Inf) encode as 7.
MXQ_HD uint32_t mxfp4_encode_bf16x2_ne(uint32_t w, uint32_t inv2, bool clamp_at_6) {
  uint32_t a = bf16x2_mul(w & 0x7FFF7FFFu, inv2);
  if (clamp_at_6) a = u16x2_min(a, 0x40C040C0u);                // 6.0: positive bf16 order = u16
  const uint32_t sub = bf16x2_add(a, 0x42804280u);               // 64 + A
  const uint32_t tsub = (sub & 0x00030003u) * 64u + 0x40004000u;
  const uint32_t t = a + ((a >> 6) & 0x00010001u) + 0x011F011Fu;  // < 0x10000 per half: no carry
  const uint32_t m = u16x2_max(t, tsub);
  const uint32_t y = ((m >> 6) & 0x00070007u) | ((w >> 12) & 0x00080008u);  // code | sign, per half
  return y | (y >> 12);
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
