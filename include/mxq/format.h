// mxq/format.h — the one place that defines the numbers.
//
// Everything that decides a bit of an MXFP4 (or comparison-format) tensor lives here, as constexpr
// functions callable from host code, the CPU SIMD paths and CUDA device code alike:
//   * element and scale codecs: E2M1, E8M0, FP8 E4M3FN / E5M2, FP16, BF16;
//   * the MX block rule: a shared power-of-two scale per 32 elements, chosen by a named ScaleRule;
//   * element rounding (TieRule) and the sign of zero;
//   * the nibble order of packed E2M1 codes.
// The row-level reference implementations (`*_ref`, src/format/) and every fast path are built from
// these functions. docs/FORMAT.md explains each choice and how other implementations differ.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define MXQ_HD __host__ __device__ __forceinline__
#else
#define MXQ_HD inline
#endif

namespace mxq {

// ---------------------------------------------------------------------------------------------
// Bit access
// ---------------------------------------------------------------------------------------------

MXQ_HD constexpr uint32_t f32_bits(float x) { return __builtin_bit_cast(uint32_t, x); }
MXQ_HD constexpr float f32_from_bits(uint32_t b) { return __builtin_bit_cast(float, b); }
MXQ_HD constexpr bool f32_is_finite(float x) { return (f32_bits(x) & 0x7F800000u) != 0x7F800000u; }

// 2^k as a float32, exact for k in [-149, 127] (subnormal below -126).
MXQ_HD constexpr float pow2f(int k) {
  return k >= -126 ? f32_from_bits(static_cast<uint32_t>(k + 127) << 23)
                   : f32_from_bits(1u << (k + 149));
}

// floor(log2(a)) of a positive finite float32, exact, from its bits (subnormals included).
MXQ_HD constexpr int f32_floor_log2(float a) {
  const uint32_t b = f32_bits(a) & 0x7FFFFFFFu;
  const int field = static_cast<int>(b >> 23);
  if (field != 0) return field - 127;
  for (int i = 22; i >= 0; --i)
    if ((b >> i) & 1u) return i - 149;
  return -150;  // a == 0: below every representable exponent; callers treat zero separately
}

// ---------------------------------------------------------------------------------------------
// Small floats: one generic codec, parameterised by the layout of the type.
// ---------------------------------------------------------------------------------------------

// How the top of the exponent range is used.
enum class Specials : uint8_t {
  none,      // every code is finite (E2M1)
  fn,        // only the all-ones magnitude is NaN, no Inf (FP8 E4M3FN)
  ieee,      // all-ones exponent: mantissa 0 = Inf, else NaN (E5M2, FP16, BF16)
};

// What a value beyond the largest finite magnitude becomes.
enum class Overflow : uint8_t {
  saturate,     // clamp to ±max finite; ±Inf too (PTX satfinite, ModelOpt, MX element rule)
  to_special,   // IEEE: ±Inf where the type has it, else NaN (PyTorch's .to(float8_e4m3fn))
};

struct MinifloatSpec {
  int exp_bits;
  int man_bits;
  int bias;
  Specials specials;
  uint32_t max_code;  // largest finite magnitude code (sign bit clear)
  uint32_t nan_code;  // canonical NaN magnitude code (unused for Specials::none)
  uint32_t inf_code;  // Inf magnitude code (Specials::ieee only)
};

inline constexpr MinifloatSpec kE2M1{2, 1, 1, Specials::none, 0x7, 0x0, 0x0};
inline constexpr MinifloatSpec kE4M3FN{4, 3, 7, Specials::fn, 0x7E, 0x7F, 0x0};
inline constexpr MinifloatSpec kE5M2{5, 2, 15, Specials::ieee, 0x7B, 0x7E, 0x7C};
inline constexpr MinifloatSpec kFP16{5, 10, 15, Specials::ieee, 0x7BFF, 0x7E00, 0x7C00};
inline constexpr MinifloatSpec kBF16{8, 7, 127, Specials::ieee, 0x7F7F, 0x7FC0, 0x7F80};

// float32 -> small float, round to nearest, ties to even, on the type's exact grid (subnormals
// included). NaN -> the type's NaN (E2M1, which has none, gets ±max: callers never pass NaN).
MXQ_HD constexpr uint32_t minifloat_encode(float x, MinifloatSpec s, Overflow ov) {
  const uint32_t b = f32_bits(x);
  const uint32_t sign = (b >> 31) << (s.exp_bits + s.man_bits);
  const uint32_t mag = b & 0x7FFFFFFFu;
  const uint32_t overflow_code =
      ov == Overflow::saturate ? s.max_code
      : s.specials == Specials::ieee ? s.inf_code
      : s.specials == Specials::fn   ? s.nan_code
                                     : s.max_code;
  if (mag > 0x7F800000u) return sign | (s.specials == Specials::none ? s.max_code : s.nan_code);
  if (mag == 0x7F800000u) return sign | overflow_code;

  // mag = sig * 2^(exp - 23) with sig holding the implicit bit for normals.
  int exp = static_cast<int>(mag >> 23);
  uint32_t sig = mag & 0x7FFFFFu;
  if (exp == 0) exp = 1; else sig |= 0x800000u;
  exp -= 127;

  // Round to the grid 2^q: the type's ulp at this exponent (fixed below the smallest normal).
  const int emin = 1 - s.bias;
  int q = (exp < emin ? emin : exp) - s.man_bits;
  const int shift = q - (exp - 23);  // >= 23 - man_bits > 0
  uint32_t n = 0;
  if (shift < 25) {
    n = sig >> shift;
    const uint32_t rem = sig & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (n & 1u))) ++n;
  }  // shift >= 25: sig < 2^24 <= half, rounds to zero
  if (n == 0) return sign;

  uint32_t field = 0, man = n;  // subnormal unless n reached the implicit bit
  if (n >= (1u << s.man_bits)) {
    if (n >= (2u << s.man_bits)) { n >>= 1; ++q; }  // rounding carried into the next binade
    const int f = q + s.man_bits + s.bias;
    if (f >= (1 << s.exp_bits)) return sign | overflow_code;
    field = static_cast<uint32_t>(f);
    man = n - (1u << s.man_bits);
  }
  const uint32_t code = (field << s.man_bits) | man;
  if (code > s.max_code) return sign | overflow_code;
  return sign | code;
}

// small float -> float32, exact for every type above.
MXQ_HD constexpr float minifloat_decode(uint32_t code, MinifloatSpec s) {
  const uint32_t sign_bit = 1u << (s.exp_bits + s.man_bits);
  const uint32_t mag = code & (sign_bit - 1u);
  const bool neg = (code & sign_bit) != 0;
  const uint32_t field = mag >> s.man_bits;
  const uint32_t man = mag & ((1u << s.man_bits) - 1u);
  float v = 0.0f;
  if (s.specials == Specials::fn && mag == s.nan_code) {
    v = f32_from_bits(0x7FC00000u);
  } else if (s.specials == Specials::ieee && field == (1u << s.exp_bits) - 1u) {
    v = f32_from_bits(man == 0 ? 0x7F800000u : 0x7FC00000u);
  } else if (field == 0) {
    v = static_cast<float>(man) * pow2f(1 - s.bias - s.man_bits);
  } else {
    v = static_cast<float>(man | (1u << s.man_bits)) *
        pow2f(static_cast<int>(field) - s.bias - s.man_bits);
  }
  return neg ? -v : v;
}

// ---------------------------------------------------------------------------------------------
// Storage types (bit containers; arithmetic happens in float32)
// ---------------------------------------------------------------------------------------------

struct bf16 { uint16_t bits; };
struct fp16 { uint16_t bits; };

// BF16 <-> float32. Encoding is RNE with overflow to Inf and NaN quieted: the same function as
// minifloat_encode(x, kBF16, Overflow::to_special), written as the usual add-and-shift.
MXQ_HD constexpr float bf16_to_f32(bf16 v) { return f32_from_bits(static_cast<uint32_t>(v.bits) << 16); }
MXQ_HD constexpr bf16 bf16_from_f32(float x) {
  const uint32_t b = f32_bits(x);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return bf16{static_cast<uint16_t>((b >> 16) | 0x0040u)};
  return bf16{static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16)};
}
MXQ_HD constexpr float fp16_to_f32(fp16 v) { return minifloat_decode(v.bits, kFP16); }
MXQ_HD constexpr fp16 fp16_from_f32(float x) {
  return fp16{static_cast<uint16_t>(minifloat_encode(x, kFP16, Overflow::to_special))};
}

// FP8 codecs. E4M3FN saturates by default (the MX element rule and PTX satfinite); PyTorch's cast is
// Overflow::to_special (results above 464 become NaN).
MXQ_HD constexpr uint8_t e4m3_from_f32(float x, Overflow ov = Overflow::saturate) {
  return static_cast<uint8_t>(minifloat_encode(x, kE4M3FN, ov));
}
MXQ_HD constexpr float e4m3_to_f32(uint8_t c) { return minifloat_decode(c, kE4M3FN); }
MXQ_HD constexpr uint8_t e5m2_from_f32(float x, Overflow ov = Overflow::saturate) {
  return static_cast<uint8_t>(minifloat_encode(x, kE5M2, ov));
}
MXQ_HD constexpr float e5m2_to_f32(uint8_t c) { return minifloat_decode(c, kE5M2); }

// ---------------------------------------------------------------------------------------------
// E2M1 (FP4) elements
// ---------------------------------------------------------------------------------------------

// Code bits: s e1 e0 m. Magnitudes by code 0..7: 0, 0.5, 1, 1.5, 2, 3, 4, 6.
MXQ_HD constexpr float e2m1_to_f32(uint8_t code) { return minifloat_decode(code & 0xFu, kE2M1); }

// How an element that lies exactly between two E2M1 magnitudes is rounded.
enum class TieRule : uint8_t {
  nearest_even,  // the spec: ties to the even code; the sign of x is kept (-0 -> 0x8)
  toward_zero,   // ModelOpt's exporter (MXFP4QTensor.quantize), reproduced whole: ties go to the
                 // smaller magnitude and every x <= 0 (so +0 too) gets the sign bit, as it does
};

// Encodes v = x / X (the element already divided by its block scale). |v| >= 6 saturates to 6.
// The code magnitude is the number of rounding boundaries below |v|; under nearest_even the
// boundaries at 0.75, 1.75 and 3.5 count when |v| equals them (those ties round up to an even
// code), the ones at 0.25, 1.25, 2.5 and 5 do not (those ties round down to an even code).
// NaN is never passed: quantizers reject or special-case it first.
MXQ_HD constexpr uint8_t e2m1_from_scaled(float v, TieRule ties) {
  const float a = v < 0.0f ? -v : v;
  uint8_t m = 0;
  if (ties == TieRule::nearest_even) {
    m = static_cast<uint8_t>((a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) +
                             (a > 2.5f) + (a >= 3.5f) + (a > 5.0f));
    return static_cast<uint8_t>(m | ((f32_bits(v) >> 28) & 0x8u));
  }
  m = static_cast<uint8_t>((a > 0.25f) + (a > 0.75f) + (a > 1.25f) + (a > 1.75f) + (a > 2.5f) +
                           (a > 3.5f) + (a > 5.0f));
  return static_cast<uint8_t>(m | (v <= 0.0f ? 0x8u : 0x0u));
}

// ---------------------------------------------------------------------------------------------
// E8M0 scales
// ---------------------------------------------------------------------------------------------

inline constexpr uint8_t kE8M0Nan = 0xFF;
inline constexpr int kE8M0Bias = 127;
inline constexpr int kScaleExpMin = -127;  // byte 0x00 = 2^-127 (a float32 subnormal)
inline constexpr int kScaleExpMax = 127;   // byte 0xFE

// Byte b in [0, 254] is 2^(b - 127); 0xFF is NaN (the spec's only special value).
MXQ_HD constexpr float e8m0_to_f32(uint8_t b) {
  return b == kE8M0Nan ? f32_from_bits(0x7FC00000u) : pow2f(static_cast<int>(b) - kE8M0Bias);
}

// Float -> E8M0 as PyTorch's float8_e8m0fnu cast does (checked against it and ml_dtypes in
// tests/golden): the sign is ignored; a normal rounds to the nearest power of two in the linear
// domain (the 1.5·2^e midpoint rounds up); a subnormal gives 2^-126 (0x01) if it is above 2^-127 and
// 0x00 otherwise (so (2^-127, 1.5·2^-127) rounds up, not to the nearer 2^-127); NaN, Inf and
// values that would round past 2^127 give 0xFF. Used for casts, not by the MX block rules.
MXQ_HD constexpr uint8_t e8m0_from_f32(float x) {
  const uint32_t b = f32_bits(x) & 0x7FFFFFFFu;
  if (b >= 0x7F800000u) return kE8M0Nan;
  if (b < 0x00800000u) return b > 0x00400000u ? 1 : 0;
  const int r = static_cast<int>(b >> 23) - kE8M0Bias + ((b & 0x7FFFFFu) >= 0x400000u ? 1 : 0);
  if (r > kScaleExpMax) return kE8M0Nan;
  return static_cast<uint8_t>(r + kE8M0Bias);
}

// ---------------------------------------------------------------------------------------------
// MX block scale rules
// ---------------------------------------------------------------------------------------------

// How a block's shared exponent is chosen from its values.
enum class ScaleRule : uint8_t {
  ocp_floor,  // OCP MX v1.0: floor(log2 amax) - emax_elem; the block max may saturate (up to 2X)
  ceil,       // ModelOpt export, triton_kernels default: ceil(log2(fl32(amax / max_elem))); never
              // saturates, may waste a binade on the small elements
  even,       // AMD Quark / torchao EVEN: amax rounded to the element's mantissa width (ties up)
              // first, then floor: saturates only where that rounding stays below the next binade
  mse,        // per block, the candidate among ocp_floor - 1, ocp_floor, ocp_floor + 1 with the
              // least squared error (ties prefer ocp_floor, then + 1); any MX reader decodes it
};

// The names the CLI, recipes, logs and docs use for the rules.
inline constexpr ScaleRule kScaleRules[] = {ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even, ScaleRule::mse};
MXQ_HD constexpr const char* scale_rule_name(ScaleRule r) {
  switch (r) {
    case ScaleRule::ocp_floor: return "ocp_floor";
    case ScaleRule::ceil: return "ceil";
    case ScaleRule::even: return "even";
    case ScaleRule::mse: return "mse";
  }
  return "?";
}
MXQ_HD constexpr const char* tie_rule_name(TieRule t) {
  return t == TieRule::nearest_even ? "nearest_even" : "toward_zero";
}

// The element type inside an MX block, as the scale rules see it.
struct MxElement {
  int emax;           // exponent of the largest normal element (2 for E2M1, 8 for E4M3)
  float max_value;    // largest element magnitude (6, 448)
  int man_bits;       // element mantissa bits (1, 3)
};
inline constexpr MxElement kMxE2M1{2, 6.0f, 1};
inline constexpr MxElement kMxE4M3{8, 448.0f, 3};

MXQ_HD constexpr int clamp_scale_exp(int e) {
  return e < kScaleExpMin ? kScaleExpMin : (e > kScaleExpMax ? kScaleExpMax : e);
}

// Shared exponent for a block whose largest magnitude is amax (finite, >= 0), for the three closed-
// form rules (ScaleRule::mse needs the block: see mx_mse_candidate_error). An all-zero block gets
// the smallest scale, byte 0x00.
MXQ_HD constexpr int mx_scale_exp(float amax, ScaleRule rule, MxElement el) {
  if (!(amax > 0.0f)) return kScaleExpMin;
  const int e = f32_floor_log2(amax);
  switch (rule) {
    case ScaleRule::ceil: {
      // fl32(amax / max) as every ceil implementation computes it; then an exact ceil(log2(.)).
      const float d = amax / el.max_value;
      if (!(d > 0.0f)) return kScaleExpMin;
      const int fd = f32_floor_log2(d);
      const bool pow2 = d == pow2f(fd);
      return clamp_scale_exp(fd + (pow2 ? 0 : 1));
    }
    case ScaleRule::even: {
      // Round amax to the element's mantissa width with ties up: the binade moves up iff the
      // significand is >= 2 - 2^-(man_bits+1) (1.75 for E2M1). Subnormal amax clamps anyway.
      const uint32_t man = f32_bits(amax) & 0x7FFFFFu;
      const uint32_t up = 0x800000u - (0x400000u >> el.man_bits);
      const bool normal = (f32_bits(amax) >> 23) != 0;
      return clamp_scale_exp(e + (normal && man >= up ? 1 : 0) - el.emax);
    }
    case ScaleRule::ocp_floor:
    case ScaleRule::mse:  // the centre candidate
    default:
      return clamp_scale_exp(e - el.emax);
  }
}

// ---------------------------------------------------------------------------------------------
// MXFP4 blocks: 32 E2M1 codes (16 bytes, element 2i in the low nibble of byte i) + 1 E8M0 byte
// ---------------------------------------------------------------------------------------------

inline constexpr int kMxBlock = 32;
inline constexpr int kNvfp4Block = 16;

// Packs two codes: element 2i (low nibble) and 2i + 1 (high nibble). GGUF's j / j+16 order is
// converted at the GGUF boundary only.
MXQ_HD constexpr uint8_t e2m1_pack(uint8_t even, uint8_t odd) {
  return static_cast<uint8_t>((even & 0xFu) | ((odd & 0xFu) << 4));
}
MXQ_HD constexpr uint8_t e2m1_unpack(uint8_t byte, int which /*0 low, 1 high*/) {
  return static_cast<uint8_t>(which ? byte >> 4 : byte & 0xFu);
}

// One element of an MXFP4 block: x divided by 2^scale_exp (exact: a power of two, and the result is
// far from overflow because scale_exp >= floor(log2 amax) - 3), then encoded.
MXQ_HD constexpr uint8_t mxfp4_encode(float x, int scale_exp, TieRule ties) {
  return e2m1_from_scaled(x * pow2f(-scale_exp), ties);
}

// ScaleRule::mse error of one element under a candidate exponent, as an integer so that a block's
// sum is exact and independent of summation order (the scalar, SIMD and CUDA paths agree bit for
// bit). d = fl32(x - fl32(q·2^s)): the product is exact unless it overflows to Inf (e.g. q = 6,
// s = 126), and then a fused multiply-add would give a finite d instead of -Inf, so every compiled
// path must disable contraction (the CUDA target is built with --fmad=false, the host format
// library with -ffp-contract=off). d² is exact in double and is counted in units of
// 2^(2·floor_log2(amax) - 40), truncated. |d| < 2^(log2 amax + 3), so an element contributes < 2^46
// and a block < 2^51; only an overflowing q·2^s (a block near FLT_MAX) makes d infinite, and that
// candidate then counts as 2^51.
MXQ_HD constexpr uint64_t mxfp4_mse_element_error(float x, int scale_exp, int amax_log2,
                                                  TieRule ties) {
  const float q = e2m1_to_f32(mxfp4_encode(x, scale_exp, ties));
  const float d = x - q * pow2f(scale_exp);
  const double d2 = static_cast<double>(d) * static_cast<double>(d);
  // 2^(40 - 2·amax_log2): amax_log2 in [-149, 127] keeps the exponent inside double's range.
  const int k = 40 - 2 * amax_log2;
  const double unit = __builtin_bit_cast(double, static_cast<uint64_t>(k + 1023) << 52);
  const double scaled = d2 * unit;
  return scaled < 0x1p51 ? static_cast<uint64_t>(scaled) : (UINT64_C(1) << 51);
}

// The ScaleRule::mse candidates in order of preference (first = ocp_floor); duplicates after
// clamping are harmless because an earlier equal candidate wins ties.
MXQ_HD constexpr int mx_mse_candidate(int ocp_exp, int i) {
  return clamp_scale_exp(i == 0 ? ocp_exp : (i == 1 ? ocp_exp + 1 : ocp_exp - 1));
}
inline constexpr int kMseCandidates = 3;

// What a quantizer does with NaN or Inf input.
enum class NonFinite : uint8_t {
  error,      // default: the quantizer reports the first such element (tensor and index)
  nan_scale,  // the spec's answer: the block gets scale 0xFF (NaN) and zero codes
};

// Every choice that decides the bits of an MX block.
struct MxOptions {
  ScaleRule scale = ScaleRule::ocp_floor;
  TieRule ties = TieRule::nearest_even;
  NonFinite nonfinite = NonFinite::error;
};

// Largest magnitude of n floats; NaN-aware callers check finiteness first.
MXQ_HD constexpr float block_amax(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float a = x[i] < 0.0f ? -x[i] : x[i];
    m = a > m ? a : m;
  }
  return m;
}

// ScaleRule::mse: the candidate exponent with the least summed element error over the block.
MXQ_HD constexpr int mxfp4_mse_scale_exp(const float* x, int n, float amax, TieRule ties) {
  if (!(amax > 0.0f)) return kScaleExpMin;
  const int amax_log2 = f32_floor_log2(amax);
  const int centre = mx_scale_exp(amax, ScaleRule::ocp_floor, kMxE2M1);
  int best = centre;
  uint64_t best_err = ~UINT64_C(0);
  for (int c = 0; c < kMseCandidates; ++c) {
    const int s = mx_mse_candidate(centre, c);
    uint64_t err = 0;
    for (int i = 0; i < n; ++i) err += mxfp4_mse_element_error(x[i], s, amax_log2, ties);
    if (err < best_err) { best_err = err; best = s; }
  }
  return best;
}

// The shared exponent of one MXFP4 block of n <= 32 finite values (a short last block is padded
// with zeros, which change neither amax nor any candidate's error).
MXQ_HD constexpr int mxfp4_block_scale_exp(const float* x, int n, const MxOptions& o) {
  const float amax = block_amax(x, n);
  return o.scale == ScaleRule::mse ? mxfp4_mse_scale_exp(x, n, amax, o.ties)
                                   : mx_scale_exp(amax, o.scale, kMxE2M1);
}

// ---------------------------------------------------------------------------------------------
// NVFP4 blocks (for comparison): 16 E2M1 codes + an E4M3 block scale + one FP32 tensor scale
// ---------------------------------------------------------------------------------------------

// The tensor scale s2 = global_amax / (6 · 448), as ModelOpt computes it (1 for an all-zero tensor).
MXQ_HD constexpr float nvfp4_tensor_scale(float global_amax) {
  return global_amax > 0.0f ? global_amax / (6.0f * 448.0f) : 1.0f;
}
// The block scale byte: e4m3(block_amax / (6 · s2)), as ModelOpt computes it: a quotient of 0 (an
// all-zero block, or one that underflows) becomes 1.0 (0x38), and the quotient is clamped to
// [2^-9, 448] before the cast, so a block far below the tensor's amax gets the smallest scale
// (0x01) rather than 0x00, which would divide its elements by zero.
MXQ_HD constexpr uint8_t nvfp4_block_scale(float block_amax, float tensor_scale) {
  float s = block_amax / (6.0f * tensor_scale);
  if (s == 0.0f) s = 1.0f;
  return e4m3_from_f32(s < 0x1p-9f ? 0x1p-9f : s);  // e4m3_from_f32 saturates above 448
}
// One element: RNE_E2M1(x / fl32(scale · s2)), in ModelOpt's order of operations. ModelOpt's sign bit
// is (quotient < 0), so -0 (and a negative quotient that underflows to -0) encodes as +0.
MXQ_HD constexpr uint8_t nvfp4_encode(float x, uint8_t block_scale, float tensor_scale) {
  const float v = x / (e4m3_to_f32(block_scale) * tensor_scale);
  const uint8_t code = e2m1_from_scaled(v, TieRule::nearest_even);
  return v < 0.0f ? code : static_cast<uint8_t>(code & 0x7u);
}
MXQ_HD constexpr float nvfp4_decode(uint8_t code, uint8_t block_scale, float tensor_scale) {
  return e2m1_to_f32(code) * e4m3_to_f32(block_scale) * tensor_scale;
}

}  // namespace mxq
