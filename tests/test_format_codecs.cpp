// Element and scale codecs of format.h against independent definitions: every code decoded from
// the bit fields by a separate formula, and encoding checked against a brute-force nearest-value
// search over all codes (ties to the even code), on every midpoint ± 1 ulp and on random floats.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "mxq/format.h"

namespace mxq {
namespace {

// Independent decode of a (sign, exponent, mantissa) code with the IEEE-style layout.
double decode_fields(uint32_t code, int ebits, int mbits, int bias) {
  const uint32_t mag = code & ((1u << (ebits + mbits)) - 1u);
  const int e = static_cast<int>(mag >> mbits);
  const double m = static_cast<double>(mag & ((1u << mbits) - 1u)) / (1u << mbits);
  const double v = e == 0 ? std::ldexp(m, 1 - bias) : std::ldexp(1.0 + m, e - bias);
  return (code >> (ebits + mbits)) & 1u ? -v : v;
}

struct TypeCase {
  const char* name;
  MinifloatSpec spec;
  bool has_inf, has_nan;
};
const TypeCase kTypes[] = {
    {"e2m1", kE2M1, false, false}, {"e4m3fn", kE4M3FN, false, true},
    {"e5m2", kE5M2, true, true},   {"fp16", kFP16, true, true},
    {"bf16", kBF16, true, true},
};

bool is_nan_code(const TypeCase& t, uint32_t mag) {
  if (t.spec.specials == Specials::fn) return mag == t.spec.nan_code;
  if (t.spec.specials == Specials::ieee) return (mag >> t.spec.man_bits) == (1u << t.spec.exp_bits) - 1u && (mag & ((1u << t.spec.man_bits) - 1u));
  return false;
}
bool is_inf_code(const TypeCase& t, uint32_t mag) {
  return t.spec.specials == Specials::ieee && mag == t.spec.inf_code;
}

TEST(Codecs, EveryCodeDecodes) {
  for (const auto& t : kTypes) {
    const int bits = 1 + t.spec.exp_bits + t.spec.man_bits;
    for (uint32_t c = 0; c < (1u << bits); ++c) {
      const uint32_t mag = c & ((1u << (bits - 1)) - 1u);
      const float got = minifloat_decode(c, t.spec);
      if (is_nan_code(t, mag)) {
        EXPECT_TRUE(std::isnan(got)) << t.name << " " << c;
      } else if (is_inf_code(t, mag)) {
        EXPECT_TRUE(std::isinf(got)) << t.name << " " << c;
      } else {
        EXPECT_EQ(static_cast<double>(got), decode_fields(c, t.spec.exp_bits, t.spec.man_bits, t.spec.bias))
            << t.name << " " << c;
        EXPECT_EQ(std::signbit(got), (c >> (bits - 1)) != 0) << t.name << " " << c;
      }
    }
  }
}

TEST(Codecs, E2M1Table) {
  const float want[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                          -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(f32_bits(e2m1_to_f32(static_cast<uint8_t>(c))), f32_bits(want[c])) << c;
    EXPECT_EQ(e2m1_from_scaled(want[c], TieRule::nearest_even), c);  // every code round-trips
  }
}

// Midpoints at scale 1: RNE picks the even code; toward_zero the smaller magnitude; both saturate.
TEST(Codecs, E2M1Midpoints) {
  struct Row { float v; uint8_t rne, tz; };
  const Row rows[] = {{.25f, 0x0, 0x0}, {.75f, 0x2, 0x1}, {1.25f, 0x2, 0x2}, {1.75f, 0x4, 0x3},
                      {2.5f, 0x4, 0x4}, {3.5f, 0x6, 0x5}, {5.f, 0x6, 0x6},   {6.5f, 0x7, 0x7},
                      {1e30f, 0x7, 0x7}, {INFINITY, 0x7, 0x7}};
  for (const auto& r : rows) {
    EXPECT_EQ(e2m1_from_scaled(r.v, TieRule::nearest_even), r.rne) << r.v;
    EXPECT_EQ(e2m1_from_scaled(-r.v, TieRule::nearest_even), r.rne | 8) << r.v;
    EXPECT_EQ(e2m1_from_scaled(r.v, TieRule::toward_zero), r.tz) << r.v;
    EXPECT_EQ(e2m1_from_scaled(-r.v, TieRule::toward_zero), r.tz | 8) << r.v;
    // One ulp either side of a midpoint is no tie: both rules agree with the nearest value.
    const float up = std::nextafter(r.v, INFINITY), down = std::nextafter(r.v, 0.f);
    EXPECT_EQ(e2m1_from_scaled(up, TieRule::nearest_even), e2m1_from_scaled(up, TieRule::toward_zero));
    EXPECT_EQ(e2m1_from_scaled(down, TieRule::nearest_even), e2m1_from_scaled(down, TieRule::toward_zero));
  }
  // Sign of zero: the spec keeps it; ModelOpt's exporter sets the sign bit on every x <= 0.
  EXPECT_EQ(e2m1_from_scaled(0.f, TieRule::nearest_even), 0x0);
  EXPECT_EQ(e2m1_from_scaled(-0.f, TieRule::nearest_even), 0x8);
  EXPECT_EQ(e2m1_from_scaled(-0.1f, TieRule::nearest_even), 0x8);
  EXPECT_EQ(e2m1_from_scaled(0.f, TieRule::toward_zero), 0x8);
  EXPECT_EQ(e2m1_from_scaled(0.1f, TieRule::toward_zero), 0x0);
}

// Brute force: the nearest finite code (ties to the even code), with the type's overflow rule.
// Positive codes 0..max_code decode to increasing values, so the candidates are the two codes
// around x in that sorted list.
uint32_t nearest_code_ref(float x, const TypeCase& t, Overflow ov) {
  const int bits = 1 + t.spec.exp_bits + t.spec.man_bits;
  const uint32_t sign = std::signbit(x) ? 1u << (bits - 1) : 0u;
  if (std::isnan(x)) return sign | (t.has_nan ? t.spec.nan_code : t.spec.max_code);
  const double a = std::fabs(static_cast<double>(x));
  const double maxv = decode_fields(t.spec.max_code, t.spec.exp_bits, t.spec.man_bits, t.spec.bias);
  const uint32_t special = ov == Overflow::saturate ? t.spec.max_code
                           : t.has_inf              ? t.spec.inf_code
                           : t.has_nan              ? t.spec.nan_code
                                                    : t.spec.max_code;
  if (std::isinf(x)) return sign | special;
  // Beyond max: rounds to max only if below the midpoint to the next (virtual) step.
  const int max_e = static_cast<int>(t.spec.max_code >> t.spec.man_bits) - t.spec.bias;
  const double step_at_max = std::ldexp(1.0, max_e - t.spec.man_bits);
  if (a > maxv) {
    const bool max_is_even = (t.spec.max_code & 1u) == 0;
    const double mid = maxv + step_at_max / 2;
    if (a < mid || (a == mid && max_is_even)) return sign | t.spec.max_code;
    return sign | special;
  }
  uint32_t lo = 0, hi = t.spec.max_code;  // largest code with value <= a
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) / 2;
    if (decode_fields(mid, t.spec.exp_bits, t.spec.man_bits, t.spec.bias) <= a) lo = mid; else hi = mid - 1;
  }
  if (lo == t.spec.max_code) return sign | lo;
  const double below = a - decode_fields(lo, t.spec.exp_bits, t.spec.man_bits, t.spec.bias);
  const double above = decode_fields(lo + 1, t.spec.exp_bits, t.spec.man_bits, t.spec.bias) - a;
  const uint32_t best = below < above ? lo : (above < below ? lo + 1 : ((lo & 1u) == 0 ? lo : lo + 1));
  return sign | best;
}

// Inputs that exercise rounding: every code's value, midpoints and ±1 ulp of each, beyond max,
// specials, and random floats across the type's range (and float32 subnormals).
std::vector<float> probe_values(const TypeCase& t, uint32_t seed) {
  std::vector<float> v = {0.f, -0.f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX, 1e-40f, -1e-40f,
                          FLT_MIN, std::numeric_limits<float>::denorm_min()};
  for (uint32_t c = 0; c <= t.spec.max_code; ++c) {
    const double a = decode_fields(c, t.spec.exp_bits, t.spec.man_bits, t.spec.bias);
    const double b = decode_fields(c + 1, t.spec.exp_bits, t.spec.man_bits, t.spec.bias);
    for (double base : {a, (a + b) / 2}) {
      const float f = static_cast<float>(base);
      for (float g : {f, std::nextafter(f, INFINITY), std::nextafter(f, 0.f)}) {
        v.push_back(g);
        v.push_back(-g);
      }
    }
  }
  std::mt19937 rng(seed);
  const int lo = 1 - t.spec.bias - t.spec.man_bits - 2;
  const int hi = static_cast<int>(t.spec.max_code >> t.spec.man_bits) - t.spec.bias + 2;
  std::uniform_int_distribution<int> e(lo, std::min(hi, 127));
  std::uniform_real_distribution<float> m(1.f, 2.f);
  for (int i = 0; i < 20000; ++i) v.push_back((rng() & 1 ? -1.f : 1.f) * std::ldexp(m(rng), e(rng)));
  return v;
}

TEST(Codecs, EncodeIsRoundToNearestEven) {
  for (const auto& t : kTypes) {
    for (Overflow ov : {Overflow::saturate, Overflow::to_special}) {
      for (float x : probe_values(t, 5)) {
        const uint32_t got = minifloat_encode(x, t.spec, ov);
        const uint32_t want = nearest_code_ref(x, t, ov);
        ASSERT_EQ(got, want) << t.name << " x=" << x << " (bits " << std::hex << f32_bits(x)
                             << ") overflow=" << static_cast<int>(ov);
      }
    }
  }
}

TEST(Codecs, FixedFp8Facts) {
  EXPECT_EQ(e4m3_from_f32(448.f), 0x7E);
  EXPECT_EQ(e4m3_from_f32(1e9f), 0x7E);                          // satfinite
  EXPECT_EQ(e4m3_from_f32(-INFINITY), 0xFE);
  EXPECT_EQ(e4m3_from_f32(464.f, Overflow::to_special), 0x7E);   // tie to even stays finite
  EXPECT_EQ(e4m3_from_f32(465.f, Overflow::to_special), 0x7F);   // PyTorch's cast: NaN
  EXPECT_EQ(e4m3_from_f32(0x1p-10f), 0x00);                      // tie at half the min subnormal
  EXPECT_EQ(e4m3_from_f32(std::nextafter(0x1p-10f, 1.f)), 0x01);
  EXPECT_EQ(e5m2_from_f32(57344.f), 0x7B);
  EXPECT_EQ(e5m2_from_f32(1e9f, Overflow::to_special), 0x7C);   // Inf
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7F)) && std::isnan(e4m3_to_f32(0xFF)));
  // Every E2M1 magnitude times 2^k is exact in E4M3 iff k is in [-8, 6] (the Hopper W4A8 window).
  for (int k = -10; k <= 8; ++k) {
    bool all_exact = true;
    for (int c = 1; c < 8; ++c) {
      const float v = e2m1_to_f32(static_cast<uint8_t>(c)) * pow2f(k);
      all_exact = all_exact && e4m3_to_f32(e4m3_from_f32(v)) == v;
    }
    EXPECT_EQ(all_exact, k >= -8 && k <= 6) << k;
  }
}

TEST(Codecs, Bf16ShortcutEqualsGenericCodec) {
  std::mt19937 rng(9);
  for (int i = 0; i < 200000; ++i) {
    const float x = f32_from_bits(static_cast<uint32_t>(rng()));
    const uint16_t got = bf16_from_f32(x).bits;
    const uint32_t want = minifloat_encode(x, kBF16, Overflow::to_special);
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(bf16{got})));
      EXPECT_EQ(got >> 15, f32_bits(x) >> 31);
    } else {
      ASSERT_EQ(got, want) << std::hex << f32_bits(x);
    }
  }
}

TEST(Codecs, E8M0) {
  for (int b = 0; b < 255; ++b) {
    const float v = e8m0_to_f32(static_cast<uint8_t>(b));
    EXPECT_EQ(static_cast<double>(v), std::ldexp(1.0, b - 127)) << b;
    EXPECT_EQ(e8m0_from_f32(v), b) << b;  // every scale round-trips
  }
  EXPECT_EQ(f32_bits(e8m0_to_f32(0)), 0x00400000u);  // 2^-127 is a float32 subnormal
  EXPECT_TRUE(std::isnan(e8m0_to_f32(0xFF)));
  EXPECT_EQ(e8m0_from_f32(NAN), 0xFF);
  EXPECT_EQ(e8m0_from_f32(INFINITY), 0xFF);
  EXPECT_EQ(e8m0_from_f32(1.5f), 128);                     // the linear midpoint rounds up
  EXPECT_EQ(e8m0_from_f32(std::nextafter(1.5f, 0.f)), 127);
  EXPECT_EQ(e8m0_from_f32(0.f), 0);
  EXPECT_EQ(e8m0_from_f32(1e-40f), 0);
}

TEST(Codecs, ScaleRulesFromSignificand) {
  // The three closed-form rules differ only by the significand m of amax (numerics.md §3.2):
  // ceil = floor + [m > 1.5], even = floor + [m >= 1.75].
  std::mt19937 rng(1);
  for (int i = 0; i < 100000; ++i) {
    const float amax = std::ldexp(1.f + (rng() & 0x7FFFFF) * 0x1p-23f, static_cast<int>(rng() % 200) - 100);
    const int fl = mx_scale_exp(amax, ScaleRule::ocp_floor, kMxE2M1);
    const float m = amax / pow2f(f32_floor_log2(amax));
    EXPECT_EQ(fl, f32_floor_log2(amax) - 2);
    EXPECT_EQ(mx_scale_exp(amax, ScaleRule::ceil, kMxE2M1), fl + (m > 1.5f ? 1 : 0)) << amax;
    EXPECT_EQ(mx_scale_exp(amax, ScaleRule::even, kMxE2M1), fl + (m >= 1.75f ? 1 : 0)) << amax;
  }
  EXPECT_EQ(mx_scale_exp(0.f, ScaleRule::ceil, kMxE2M1), kScaleExpMin);
  EXPECT_EQ(mx_scale_exp(FLT_MAX, ScaleRule::ocp_floor, kMxE2M1), 125);
}

}  // namespace
}  // namespace mxq
