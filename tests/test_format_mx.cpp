// MX block formats against hand-derived golden blocks (reference/numerics.md §10, re-derived there
// from each implementation's rule), exhaustive decodes, idempotence, and per-rule error bounds.
#include <gtest/gtest.h>

#include <array>
#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "mxq/format_ref.h"

namespace mxq {
namespace {

constexpr MxOptions kOcp{ScaleRule::ocp_floor, TieRule::nearest_even};
constexpr MxOptions kCeil{ScaleRule::ceil, TieRule::nearest_even};
constexpr MxOptions kEven{ScaleRule::even, TieRule::nearest_even};
constexpr MxOptions kModelOpt{ScaleRule::ceil, TieRule::toward_zero};  // ModelOpt's exporter

struct GoldenBlock {
  const char* name;
  std::vector<std::pair<int, float>> x;  // non-zero elements; the rest are +0
  MxOptions opt;
  uint8_t scale;
  std::array<uint8_t, 16> codes;
};

// A byte pattern of 16 codes bytes: the listed bytes, then `fill` up to 16.
std::array<uint8_t, 16> bytes(std::initializer_list<uint8_t> head, uint8_t fill = 0x00) {
  std::array<uint8_t, 16> b{};
  b.fill(fill);
  int i = 0;
  for (uint8_t v : head) b[i++] = v;
  return b;
}

std::vector<std::pair<int, float>> ramp(float start, float step) {
  std::vector<std::pair<int, float>> v;
  for (int i = 0; i < 32; ++i) v.emplace_back(i, start + step * i);
  return v;
}

const std::vector<std::pair<int, float>> kMidpoints = {
    {0, 6.f},    {1, .25f},   {2, .75f},   {3, 1.25f},  {4, 1.75f},  {5, 2.5f},   {6, 3.5f},
    {7, 5.f},    {8, -.25f},  {9, -.75f},  {10, -1.25f}, {11, -1.75f}, {12, -2.5f}, {13, -3.5f},
    {14, -5.f}};
const std::vector<std::pair<int, float>> kRealistic = {
    {0, 0.0390625f}, {1, -0.01171875f}, {2, 0.0048828125f},
    {3, -0.025390625f}, {4, 0.0009765625f}, {5, 0.017578125f}};
const std::vector<std::pair<int, float>> kHuge = {{0, FLT_MAX}, {1, 1.0e38f}, {2, -2.0e38f}};
const float kBelow8 = std::nextafter(8.0f, 0.0f);

const std::vector<GoldenBlock> kGolden = {
    // V01 all zeros: the smallest scale; ModelOpt encodes +0 with the sign bit.
    {"zeros", {}, kOcp, 0x00, bytes({})},
    {"zeros", {}, kCeil, 0x00, bytes({})},
    {"zeros", {}, kModelOpt, 0x00, bytes({}, 0x88)},
    // V02 a lone power of two.
    {"one", {{0, 1.f}}, kOcp, 0x7D, bytes({0x06})},
    {"one", {{0, 1.f}}, kCeil, 0x7D, bytes({0x06})},
    {"one", {{0, 1.f}}, kModelOpt, 0x7D, bytes({0x86}, 0x88)},
    // V03, V04: maxima 6·2^k (significand 1.5): every rule agrees.
    {"six", {{0, 6.f}, {1, -1.f}, {2, .5f}}, kOcp, 0x7F, bytes({0xA7, 0x01})},
    {"six", {{0, 6.f}, {1, -1.f}, {2, .5f}}, kEven, 0x7F, bytes({0xA7, 0x01})},
    {"six", {{0, 6.f}, {1, -1.f}, {2, .5f}}, kModelOpt, 0x7F, bytes({0xA7, 0x81}, 0x88)},
    {"three", {{0, 3.f}, {1, -1.5f}, {2, .75f}, {3, .1f}}, kOcp, 0x7E, bytes({0xD7, 0x03})},
    {"three", {{0, 3.f}, {1, -1.5f}, {2, .75f}, {3, .1f}}, kCeil, 0x7E, bytes({0xD7, 0x03})},
    {"three", {{0, 3.f}, {1, -1.5f}, {2, .75f}, {3, .1f}}, kModelOpt, 0x7E, bytes({0xD7, 0x03}, 0x88)},
    // V05 significand 1.75: floor saturates 7 -> 6; ceil and even move up a binade.
    {"seven", {{0, 7.f}, {1, 1.f}}, kOcp, 0x7F, bytes({0x27})},
    {"seven", {{0, 7.f}, {1, 1.f}}, kCeil, 0x80, bytes({0x16})},
    {"seven", {{0, 7.f}, {1, 1.f}}, kEven, 0x80, bytes({0x16})},
    {"seven", {{0, 7.f}, {1, 1.f}}, kModelOpt, 0x80, bytes({0x15}, 0x88)},
    // V06 ties 2.5 and 3.5 at scale 1.
    {"ties", {{0, 4.f}, {1, 2.5f}, {2, -2.5f}, {3, 3.5f}}, kOcp, 0x7F, bytes({0x46, 0x6C})},
    {"ties", {{0, 4.f}, {1, 2.5f}, {2, -2.5f}, {3, 3.5f}}, kCeil, 0x7F, bytes({0x46, 0x6C})},
    {"ties", {{0, 4.f}, {1, 2.5f}, {2, -2.5f}, {3, 3.5f}}, kModelOpt, 0x7F, bytes({0x46, 0x5C}, 0x88)},
    // V07 every midpoint, both signs (-0.25 -> -0 keeps its sign).
    {"midpoints", kMidpoints, kOcp, 0x7F,
     bytes({0x07, 0x22, 0x44, 0x66, 0xA8, 0xCA, 0xEC, 0x0E})},
    {"midpoints", kMidpoints, kEven, 0x7F,
     bytes({0x07, 0x22, 0x44, 0x66, 0xA8, 0xCA, 0xEC, 0x0E})},
    {"midpoints", kMidpoints, kModelOpt, 0x7F,
     bytes({0x07, 0x21, 0x43, 0x65, 0x98, 0xBA, 0xDC, 0x8E}, 0x88)},
    // V08 ramp (i - 16) / 4, amax 4.
    {"ramp_signed", ramp(-4.f, .25f), kOcp, 0x7F,
     {0xEE, 0xDE, 0xDD, 0xCC, 0xCC, 0xAB, 0xAA, 0x89, 0x00, 0x21, 0x22, 0x43, 0x44, 0x54, 0x55, 0x66}},
    {"ramp_signed", ramp(-4.f, .25f), kCeil, 0x7F,
     {0xEE, 0xDE, 0xDD, 0xCC, 0xCC, 0xAB, 0xAA, 0x89, 0x00, 0x21, 0x22, 0x43, 0x44, 0x54, 0x55, 0x66}},
    {"ramp_signed", ramp(-4.f, .25f), kModelOpt, 0x7F,
     {0xEE, 0xDD, 0xDD, 0xCC, 0xBC, 0xAB, 0x9A, 0x89, 0x08, 0x11, 0x22, 0x33, 0x44, 0x54, 0x55, 0x65}},
    // V09 ramp i / 4, amax 7.75 (significand 1.9375): floor saturates from 5.25 up.
    {"ramp", ramp(0.f, .25f), kOcp, 0x7F,
     {0x00, 0x21, 0x22, 0x43, 0x44, 0x54, 0x55, 0x66, 0x66, 0x66, 0x76, 0x77, 0x77, 0x77, 0x77, 0x77}},
    {"ramp", ramp(0.f, .25f), kCeil, 0x80,
     {0x00, 0x10, 0x11, 0x22, 0x22, 0x32, 0x33, 0x44, 0x44, 0x44, 0x54, 0x55, 0x55, 0x55, 0x66, 0x66}},
    {"ramp", ramp(0.f, .25f), kEven, 0x80,
     {0x00, 0x10, 0x11, 0x22, 0x22, 0x32, 0x33, 0x44, 0x44, 0x44, 0x54, 0x55, 0x55, 0x55, 0x66, 0x66}},
    {"ramp", ramp(0.f, .25f), kModelOpt, 0x80,
     {0x08, 0x10, 0x11, 0x21, 0x22, 0x32, 0x33, 0x43, 0x44, 0x44, 0x54, 0x55, 0x55, 0x55, 0x65, 0x66}},
    // V10 negative zeros and tiny negatives keep the sign bit.
    {"neg_zero", {{0, 6.f}, {1, -0.f}, {2, -.1f}, {3, .1f}, {4, -.2f}}, kOcp, 0x7F,
     bytes({0x87, 0x08, 0x08})},
    {"neg_zero", {{0, 6.f}, {1, -0.f}, {2, -.1f}, {3, .1f}, {4, -.2f}}, kModelOpt, 0x7F,
     bytes({0x87, 0x08}, 0x88)},
    // V13 float32 subnormals: the scale clamps at 2^-127 and they round to zero.
    {"subnormal", ramp(1e-40f, 0.f), kOcp, 0x00, bytes({})},
    {"subnormal", ramp(1e-40f, 0.f), kCeil, 0x00, bytes({})},
    {"subnormal", ramp(1e-40f, 0.f), kEven, 0x00, bytes({})},
    // V14 the bottom of the scale range.
    {"bottom", {{0, 0x1p-126f}, {1, 0x1p-127f}}, kOcp, 0x00, bytes({0x24})},
    {"bottom", {{0, 0x1p-126f}, {1, 0x1p-127f}}, kCeil, 0x00, bytes({0x24})},
    {"bottom", {{0, 0x1p-126f}, {1, 0x1p-127f}}, kModelOpt, 0x00, bytes({0x24}, 0x88)},
    // V15 near FLT_MAX: floor saturates; ceil's 4·2^126 decodes to 2^128 (Inf in float32).
    {"huge", kHuge, kOcp, 0xFC, bytes({0x47, 0x0E})},
    {"huge", kHuge, kCeil, 0xFD, bytes({0x26, 0x0C})},
    {"huge", kHuge, kEven, 0xFD, bytes({0x26, 0x0C})},
    {"huge", kHuge, kModelOpt, 0xFD, bytes({0x26, 0x8C}, 0x88)},
    // V16 one ulp below 8.
    {"below8", {{0, kBelow8}, {1, 1.f}}, kOcp, 0x7F, bytes({0x27})},
    {"below8", {{0, kBelow8}, {1, 1.f}}, kCeil, 0x80, bytes({0x16})},
    {"below8", {{0, kBelow8}, {1, 1.f}}, kEven, 0x80, bytes({0x16})},
    {"below8", {{0, kBelow8}, {1, 1.f}}, kModelOpt, 0x80, bytes({0x16}, 0x88)},
    // V17 just above 6·2^-1: floor and even saturate, ceil moves up.
    {"above3", {{0, 3.0001f}, {1, 1.f}}, kOcp, 0x7E, bytes({0x47})},
    {"above3", {{0, 3.0001f}, {1, 1.f}}, kEven, 0x7E, bytes({0x47})},
    {"above3", {{0, 3.0001f}, {1, 1.f}}, kCeil, 0x7F, bytes({0x25})},
    {"above3", {{0, 3.0001f}, {1, 1.f}}, kModelOpt, 0x7F, bytes({0x25}, 0x88)},
    // V18 significand exactly 1.75: even moves up (ties up), ModelOpt ties 3.5 down.
    {"sig175", {{0, 3.5f}, {1, 1.f}}, kOcp, 0x7E, bytes({0x47})},
    {"sig175", {{0, 3.5f}, {1, 1.f}}, kCeil, 0x7F, bytes({0x26})},
    {"sig175", {{0, 3.5f}, {1, 1.f}}, kEven, 0x7F, bytes({0x26})},
    {"sig175", {{0, 3.5f}, {1, 1.f}}, kModelOpt, 0x7F, bytes({0x25}, 0x88)},
    // V19 the maximum comes from a negative element.
    {"neg_max", {{0, -6.f}, {1, 1.f}, {2, -.5f}}, kOcp, 0x7F, bytes({0x2F, 0x09})},
    {"neg_max", {{0, -6.f}, {1, 1.f}, {2, -.5f}}, kModelOpt, 0x7F, bytes({0x2F, 0x89}, 0x88)},
    // V20 realistic bf16 weights, amax 1.25·2^-5 (5.0 ties down to 4.0).
    {"bf16_weights", kRealistic, kOcp, 0x78, bytes({0xB6, 0xD1, 0x40})},
    {"bf16_weights", kRealistic, kCeil, 0x78, bytes({0xB6, 0xD1, 0x40})},
    {"bf16_weights", kRealistic, kEven, 0x78, bytes({0xB6, 0xD1, 0x40})},
    {"bf16_weights", kRealistic, kModelOpt, 0x78, bytes({0xB6, 0xD1, 0x40}, 0x88)},
};

TEST(MxFp4Golden, HandDerivedBlocks) {
  for (const auto& g : kGolden) {
    std::array<float, 32> x{};
    for (auto [i, v] : g.x) x[i] = v;
    std::array<uint8_t, 16> codes{};
    uint8_t scale = 0xAA;
    ASSERT_EQ(mxfp4_quantize_row_ref(x.data(), 32, codes.data(), &scale, g.opt), kRowOk) << g.name;
    const std::string what = std::string(g.name) + " / " + scale_rule_name(g.opt.scale) +
                             (g.opt.ties == TieRule::toward_zero ? " / toward_zero" : "");
    EXPECT_EQ(scale, g.scale) << what;
    EXPECT_EQ(codes, g.codes) << what;
  }
}

TEST(MxFp4Golden, NonFiniteIsAnErrorNamingTheElement) {
  for (float bad : {INFINITY, -INFINITY, NAN}) {
    std::vector<float> x(70, 1.0f);
    x[45] = bad;
    std::vector<uint8_t> codes(35), scales(3);
    EXPECT_EQ(mxfp4_quantize_row_ref(x.data(), x.size(), codes.data(), scales.data(), kOcp), 45u);
    // The spec's alternative: that block's scale is NaN, its codes zero, the others untouched.
    MxOptions nan_scale = kOcp;
    nan_scale.nonfinite = NonFinite::nan_scale;
    ASSERT_EQ(mxfp4_quantize_row_ref(x.data(), x.size(), codes.data(), scales.data(), nan_scale),
              kRowOk);
    EXPECT_EQ(scales[1], kE8M0Nan);
    EXPECT_EQ(scales[0], 0x7D);
    EXPECT_EQ(scales[2], 0x7D);
    for (int i = 16; i < 32; ++i) EXPECT_EQ(codes[i], 0) << i;
    std::vector<float> y(x.size());
    mxfp4_dequantize_row_ref(codes.data(), scales.data(), x.size(), y.data());
    EXPECT_TRUE(std::isnan(y[40]));
    EXPECT_EQ(y[0], 1.0f);
  }
}

TEST(MxFp4, ExhaustiveDecodeOfEveryScaleAndCode) {
  static constexpr float kMag[8] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  for (int s = 0; s < 256; ++s) {
    for (int c = 0; c < 16; ++c) {
      const uint8_t codes = static_cast<uint8_t>(c | (c << 4));
      const uint8_t scale = static_cast<uint8_t>(s);
      float y[2];
      mxfp4_dequantize_row_ref(&codes, &scale, 2, y);
      const double want = (c & 8 ? -1.0 : 1.0) * kMag[c & 7] * std::ldexp(1.0, s - 127);
      if (s == 0xFF) {
        EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1])) << c;
      } else if (std::fabs(want) > FLT_MAX) {
        EXPECT_TRUE(std::isinf(y[0])) << s << " " << c;  // 4·2^126 and above overflow float32
      } else {
        EXPECT_EQ(y[0], static_cast<float>(want)) << s << " " << c;
        EXPECT_EQ(static_cast<double>(y[1]), want) << s << " " << c;  // exact, no rounding
        EXPECT_EQ(std::signbit(y[0]), (c & 8) != 0);
      }
    }
  }
}

// Random blocks over many binades, some of them bf16-rounded so that ties are common.
std::vector<float> random_row(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::uniform_int_distribution<int> binade(-30, 30);
  std::vector<float> x(n);
  float block_scale = 1.f;
  bool round_bf16 = false;
  for (size_t i = 0; i < n; ++i) {
    if (i % kMxBlock == 0) {
      block_scale = std::ldexp(1.f, binade(rng));
      round_bf16 = rng() & 1;
    }
    const float v = g(rng) * block_scale;
    x[i] = round_bf16 ? bf16_to_f32(bf16_from_f32(v)) : v;
  }
  return x;
}

struct Quantized {
  std::vector<uint8_t> codes, scales;
  std::vector<float> values;
};

Quantized quantize(const std::vector<float>& x, const MxOptions& o) {
  Quantized q{std::vector<uint8_t>(blocks_of(x.size(), 2)),
              std::vector<uint8_t>(blocks_of(x.size(), kMxBlock)), std::vector<float>(x.size())};
  EXPECT_EQ(mxfp4_quantize_row_ref(x.data(), x.size(), q.codes.data(), q.scales.data(), o), kRowOk);
  mxfp4_dequantize_row_ref(q.codes.data(), q.scales.data(), x.size(), q.values.data());
  return q;
}

const MxOptions kAllOptions[] = {
    {ScaleRule::ocp_floor, TieRule::nearest_even}, {ScaleRule::ceil, TieRule::nearest_even},
    {ScaleRule::even, TieRule::nearest_even},      {ScaleRule::mse, TieRule::nearest_even},
    {ScaleRule::ocp_floor, TieRule::toward_zero},  {ScaleRule::ceil, TieRule::toward_zero},
    {ScaleRule::even, TieRule::toward_zero},       {ScaleRule::mse, TieRule::toward_zero},
};

// Re-quantizing dequantized values never changes a value under any rule. The bytes are identical at
// once for ocp_floor and even with nearest_even ties (a decoded block's max has significand 1 or
// 1.5, so those rules pick the same scale). ceil can not be byte-idempotent: a block whose max code
// is 3.0 decodes to a max of 3·2^s, for which ceil picks 2^(s-1) (max code 6.0). mse may likewise
// move to a tied candidate. Both reach a fixed point after one more round.
TEST(MxFp4, RequantizationIsIdempotent) {
  const auto x = random_row(32 * 4096, 7);
  for (const auto& o : kAllOptions) {
    const Quantized q1 = quantize(x, o);
    const Quantized q2 = quantize(q1.values, o);
    const Quantized q3 = quantize(q2.values, o);
    const std::string what = std::string(scale_rule_name(o.scale)) +
                             (o.ties == TieRule::toward_zero ? "/toward_zero" : "/nearest_even");
    // toward_zero encodes +0 as -0 (ModelOpt), so there values are compared, not their bits.
    for (size_t i = 0; i < x.size(); ++i) {
      if (o.ties == TieRule::nearest_even)
        ASSERT_EQ(f32_bits(q2.values[i]), f32_bits(q1.values[i])) << what << " at " << i;
      else
        ASSERT_EQ(q2.values[i], q1.values[i]) << what << " at " << i;
    }
    const bool immediate = o.ties == TieRule::nearest_even &&
                           (o.scale == ScaleRule::ocp_floor || o.scale == ScaleRule::even);
    if (immediate) {
      EXPECT_EQ(q2.codes, q1.codes) << what;
      EXPECT_EQ(q2.scales, q1.scales) << what;
    }
    EXPECT_EQ(q3.codes, q2.codes) << what;
    EXPECT_EQ(q3.scales, q2.scales) << what;
  }
}

// Per element: |x/X| is at most 8 (floor), 6 (ceil: never saturates) or 7 (even); an element inside
// [-6X, 6X] is off by at most half the E2M1 step at its magnitude (0.25X below 2X, 0.5X below 4X,
// X above); a saturated one is off by |x| - 6X.
TEST(MxFp4, ErrorBoundsPerRule) {
  const auto x = random_row(32 * 8192, 11);
  for (const auto& o : kAllOptions) {
    const Quantized q = quantize(x, o);
    double max_ratio = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double X = std::ldexp(1.0, q.scales[i / kMxBlock] - 127);
      const double v = std::fabs(x[i]) / X;
      max_ratio = std::max(max_ratio, v);
      const double err = std::fabs(static_cast<double>(x[i]) - q.values[i]) / X;
      const double bound = v > 6 ? v - 6 : (v < 2 ? .25 : (v < 4 ? .5 : 1.0));
      ASSERT_LE(err, bound) << scale_rule_name(o.scale) << " at " << i << " x=" << x[i];
    }
    const double limit = o.scale == ScaleRule::ceil ? 6.0 : (o.scale == ScaleRule::even ? 7.0 : 8.0);
    EXPECT_LT(max_ratio, limit + (o.scale == ScaleRule::ceil ? 1e-9 : 0.0)) << scale_rule_name(o.scale);
  }
}

double sqnr_db(const std::vector<float>& x, const std::vector<float>& y) {
  double s = 0, e = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    s += double(x[i]) * x[i];
    e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  }
  return 10 * std::log10(s / e);
}

// Error budgets on N(0, 1) data (a regression fence, not a spec): the block-wise SQNR of each rule.
// mse can only be at least as good as the best of its candidates, so it must beat the others.
TEST(MxFp4, GaussianSqnrBudget) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(32 * 16384);
  for (auto& v : x) v = g(rng);
  double sq[4];
  const ScaleRule rules[4] = {ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even, ScaleRule::mse};
  for (int r = 0; r < 4; ++r) {
    sq[r] = sqnr_db(x, quantize(x, MxOptions{rules[r], TieRule::nearest_even}).values);
    std::printf("[ sqnr    ] mxfp4 %-9s N(0,1): %.2f dB\n", scale_rule_name(rules[r]), sq[r]);
    EXPECT_GT(sq[r], 15.0) << scale_rule_name(rules[r]);
  }
  EXPECT_GE(sq[3], std::max({sq[0], sq[1], sq[2]}));
}

TEST(MxFp8, SpotChecks) {
  std::array<float, 32> x{};
  std::array<uint8_t, 32> c{};
  uint8_t s = 0;
  x[0] = 448.f, x[1] = 1.f, x[2] = 0.001f;
  ASSERT_EQ(mxfp8_quantize_row_ref(x.data(), 32, c.data(), &s, kOcp), kRowOk);
  EXPECT_EQ(s, 127);
  EXPECT_EQ(c[0], 0x7E);
  EXPECT_EQ(c[1], 0x38);
  EXPECT_EQ(c[2], 0x01);  // 0.001 = 0.512·2^-9 rounds up to the smallest subnormal
  x = {};
  x[0] = 500.f, x[1] = 1.f;
  ASSERT_EQ(mxfp8_quantize_row_ref(x.data(), 32, c.data(), &s, kOcp), kRowOk);
  EXPECT_EQ(s, 127);
  EXPECT_EQ(c[0], 0x7E);  // saturates to 448
  ASSERT_EQ(mxfp8_quantize_row_ref(x.data(), 32, c.data(), &s, kCeil), kRowOk);
  EXPECT_EQ(s, 128);
  EXPECT_EQ(c[0], 0x78);  // 250 -> 256
  EXPECT_EQ(c[1], 0x30);  // 0.5
}

TEST(Nvfp4, TensorAndBlockScales) {
  // Global amax 6·448 gives tensor scale 1; a block with amax 6 gets E4M3 scale 1.0 (0x38).
  std::vector<float> x(32, 0.f);
  x[0] = 6.f * 448.f, x[16] = 6.f, x[17] = -3.f, x[18] = 0.7f;
  const float ts = nvfp4_tensor_scale(6.f * 448.f);
  EXPECT_EQ(ts, 1.0f);
  std::vector<uint8_t> codes(16), scales(2);
  ASSERT_EQ(nvfp4_quantize_row_ref(x.data(), 32, ts, codes.data(), scales.data()), kRowOk);
  EXPECT_EQ(scales[0], 0x7E);  // 448
  EXPECT_EQ(scales[1], 0x38);  // 1.0
  EXPECT_EQ(codes[0], 0x07);
  EXPECT_EQ(codes[8], 0xD7);   // 6 -> 0x7, -3 -> 0xD
  EXPECT_EQ(codes[9], 0x01);   // 0.7 -> 0.5
  std::vector<float> y(32);
  nvfp4_dequantize_row_ref(codes.data(), scales.data(), 32, ts, y.data());
  EXPECT_EQ(y[0], 6.f * 448.f);
  EXPECT_EQ(y[17], -3.f);
  EXPECT_EQ(y[18], .5f);
  // Non-finite input is always an error, reported by index.
  x[20] = NAN;
  EXPECT_EQ(nvfp4_quantize_row_ref(x.data(), 32, ts, codes.data(), scales.data()), 20u);
}

}  // namespace
}  // namespace mxq
