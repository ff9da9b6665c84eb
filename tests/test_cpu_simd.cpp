// The CPU SIMD converters against the scalar references, bit for bit, on every Highway target this
// CPU has (each one forced in turn), every MX option, both input and output dtypes, lengths that
// end mid-block and mid-vector, and one and two threads. Output buffers carry sentinel bytes behind
// them.
#include <gtest/gtest.h>

#include "simd_targets.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/format_traits.h"
#include "mxq/kernels/cpu/mx_convert.h"

namespace mxq {
namespace {

// 1<<20 + 17 elements: many 1024-block chunks, so two threads really split the row.
const size_t kLengths[] = {1, 2, 31, 33, 63, 95, 1000, 4097, 100003, (size_t{1} << 20) + 17};
constexpr ScaleRule kRules[] = {ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even,
                                ScaleRule::mse};
constexpr TieRule kTies[] = {TieRule::nearest_even, TieRule::toward_zero};
constexpr int kThreadCounts[] = {1, 2};
constexpr size_t kPad = 64;           // sentinel bytes behind every output buffer
constexpr uint8_t kSentinel = 0xA5;



// Finite test data, built block by block so that each 32-element block has one character: gaussian
// at a random binade, BF16-rounded gaussian (ties at the E2M1 midpoints after scaling), exact E2M1
// values and midpoints times a power of two, subnormals, values near FLT_MAX, random finite bit
// patterns; ±0 sprinkled everywhere.
std::vector<float> make_data(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> kind_of(0, 5), bit(0, 1), zero(0, 31);
  static constexpr float kGrid[] = {0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f,
                                    2.5f,  3.0f, 3.5f,  4.0f, 5.0f,  6.0f, 7.0f,  12.0f};
  std::vector<float> x(n);
  for (size_t b = 0; b < n; b += kMxBlock) {
    const int kind = kind_of(rng);
    const int e = std::uniform_int_distribution<int>(-40, 40)(rng);
    const int e_wide = std::uniform_int_distribution<int>(-135, 120)(rng);
    for (size_t i = b; i < std::min(n, b + kMxBlock); ++i) {
      const float sign = bit(rng) ? -1.0f : 1.0f;
      float v = 0.0f;
      switch (kind) {
        case 0: v = std::ldexp(gauss(rng), e); break;
        case 1: v = bf16_to_f32(bf16_from_f32(std::ldexp(gauss(rng), e))); break;
        case 2: v = sign * std::ldexp(kGrid[rng() % 16], e_wide); break;
        case 3: v = sign * f32_from_bits(static_cast<uint32_t>(rng() % 0x7FFFFF) + 1); break;
        case 4:
          v = sign * (bit(rng) ? FLT_MAX * std::uniform_real_distribution<float>(0.5f, 1.0f)(rng)
                               : std::ldexp(gauss(rng), 120));
          break;
        default: v = f32_from_bits(static_cast<uint32_t>(rng() % 0xFF000000u) & 0xFF7FFFFFu); break;
      }
      x[i] = zero(rng) == 0 ? sign * 0.0f : v;
    }
  }
  return x;
}

// BF16 copies of the data, finite (a value that rounds to Inf is kept at ±max BF16), and their
// exact f32 values, which are what the reference sees.
std::vector<bf16> to_bf16(const std::vector<float>& x) {
  std::vector<bf16> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    h[i] = bf16_from_f32(x[i]);
    if (!f32_is_finite(bf16_to_f32(h[i])))
      h[i].bits = static_cast<uint16_t>((h[i].bits & 0x8000u) | 0x7F7Fu);
  }
  return h;
}
std::vector<float> widen(const std::vector<bf16>& h) {
  std::vector<float> x(h.size());
  for (size_t i = 0; i < h.size(); ++i) x[i] = bf16_to_f32(h[i]);
  return x;
}

// An output buffer of `bytes` followed by kPad sentinel bytes; every byte starts as the sentinel so
// a byte the converter forgets to write shows up too.
struct Guarded {
  explicit Guarded(size_t bytes) : n(bytes), buf(bytes + kPad, kSentinel) {}
  uint8_t* data() { return buf.data(); }
  bool tail_intact() const {
    for (size_t i = n; i < buf.size(); ++i)
      if (buf[i] != kSentinel) return false;
    return true;
  }
  size_t n;
  std::vector<uint8_t> buf;
};

bool same_bytes(const uint8_t* a, const uint8_t* b, size_t n) { return std::memcmp(a, b, n) == 0; }

// Index of the first differing byte (for messages), or n.
size_t first_diff(const uint8_t* a, const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return i;
  return n;
}

struct RefResult {
  size_t ret;
  std::vector<uint8_t> codes, scales;
};

RefResult quantize_ref(const std::vector<float>& x, const MxOptions& opt) {
  RefResult r{0, std::vector<uint8_t>(blocks_of(x.size(), 2)),
              std::vector<uint8_t>(blocks_of(x.size(), kMxBlock))};
  r.ret = mxfp4_quantize_row_ref(x.data(), x.size(), r.codes.data(), r.scales.data(), opt);
  return r;
}

// Quantizes with the current target and checks the result against the reference.
void expect_quantize_matches(const void* x, ElemType xt, size_t n, const MxOptions& opt,
                             int threads, const RefResult& ref) {
  Guarded codes(blocks_of(n, 2)), scales(blocks_of(n, kMxBlock));
  const size_t ret = mxfp4_quantize(x, xt, n, codes.data(), scales.data(), opt, threads);
  EXPECT_EQ(ret, ref.ret);
  EXPECT_TRUE(codes.tail_intact()) << "codes written past the end";
  EXPECT_TRUE(scales.tail_intact()) << "scales written past the end";
  if (ret != kRowOk || ref.ret != kRowOk) return;  // outputs are undefined after an error
  EXPECT_TRUE(same_bytes(codes.data(), ref.codes.data(), codes.n))
      << "first differing code byte " << first_diff(codes.data(), ref.codes.data(), codes.n);
  EXPECT_TRUE(same_bytes(scales.data(), ref.scales.data(), scales.n))
      << "first differing scale " << first_diff(scales.data(), ref.scales.data(), scales.n);
}

// Dequantizes with the current target to f32 and BF16 and checks both against the reference.
void expect_dequantize_matches(const std::vector<uint8_t>& codes,
                               const std::vector<uint8_t>& scales, size_t n, int threads) {
  std::vector<float> ref(n);
  mxfp4_dequantize_row_ref(codes.data(), scales.data(), n, ref.data());
  std::vector<uint16_t> ref_bf16(n);
  for (size_t i = 0; i < n; ++i) ref_bf16[i] = bf16_from_f32(ref[i]).bits;

  Guarded y32(n * sizeof(float)), y16(n * sizeof(bf16));
  mxfp4_dequantize(codes.data(), scales.data(), n, y32.data(), ElemType::f32, threads);
  mxfp4_dequantize(codes.data(), scales.data(), n, y16.data(), ElemType::bf16, threads);
  const auto* r32 = reinterpret_cast<const uint8_t*>(ref.data());
  const auto* r16 = reinterpret_cast<const uint8_t*>(ref_bf16.data());
  EXPECT_TRUE(same_bytes(y32.data(), r32, y32.n))
      << "f32 byte " << first_diff(y32.data(), r32, y32.n);
  EXPECT_TRUE(same_bytes(y16.data(), r16, y16.n))
      << "bf16 byte " << first_diff(y16.data(), r16, y16.n);
  EXPECT_TRUE(y32.tail_intact()) << "f32 output written past the end";
  EXPECT_TRUE(y16.tail_intact()) << "bf16 output written past the end";
}

TEST(CpuSimd, TargetsCanBeForcedAndRestored) {
  const std::vector<std::string> targets = cpu_simd_targets();
  ASSERT_FALSE(targets.empty());
  const std::string automatic = cpu_simd_active_target();
  EXPECT_EQ(automatic, targets.front());  // best first
  for (const std::string& t : targets) {
    ASSERT_TRUE(cpu_simd_force_target(t));
    EXPECT_EQ(cpu_simd_active_target(), t);
    EXPECT_EQ(cpu_simd_targets(), targets);  // the list does not shrink while one is forced
  }
  EXPECT_FALSE(cpu_simd_force_target("NO_SUCH_TARGET"));
  EXPECT_TRUE(cpu_simd_force_target(""));
  EXPECT_EQ(cpu_simd_active_target(), automatic);
  std::printf("SIMD targets:");
  for (const auto& t : targets) std::printf(" %s", t.c_str());
  std::printf(" (automatic: %s)\n", automatic.c_str());
}

TEST(CpuSimd, QuantizeEqualsRefAllOptions) {
  uint64_t seed = 1;
  for (const size_t n : kLengths) {
    const std::vector<float> x32 = make_data(n, seed++);
    const std::vector<bf16> x16 = to_bf16(x32);
    const std::vector<float> x16_wide = widen(x16);
    for (const ScaleRule rule : kRules) {
      for (const TieRule ties : kTies) {
        const MxOptions opt{rule, ties, NonFinite::error};
        const RefResult ref32 = quantize_ref(x32, opt), ref16 = quantize_ref(x16_wide, opt);
        ASSERT_EQ(ref32.ret, kRowOk);
        ASSERT_EQ(ref16.ret, kRowOk);
        SCOPED_TRACE(testing::Message() << "n " << n << " " << scale_rule_name(rule) << " " << tie_rule_name(ties));
        for_each_simd_target([&](const std::string&) {
          for (const int threads : kThreadCounts) {
            SCOPED_TRACE(testing::Message() << "threads " << threads);
            expect_quantize_matches(x32.data(), ElemType::f32, n, opt, threads, ref32);
            expect_quantize_matches(x16.data(), ElemType::bf16, n, opt, threads, ref16);
          }
        });
        // Round trip: the reference's codes decode the same on every target.
        if (rule == ScaleRule::ocp_floor) {
          for_each_simd_target([&](const std::string&) {
            for (const int threads : kThreadCounts)
              expect_dequantize_matches(ref32.codes, ref32.scales, n, threads);
          });
        }
      }
    }
  }
}

TEST(CpuSimd, DequantizeEqualsRefEveryByte) {
  // Every code byte and every scale byte, 0x00 (2^-127, subnormal products), 0xFE and 0xFF (NaN).
  uint64_t seed = 100;
  for (const size_t n : kLengths) {
    std::mt19937_64 rng(seed++);
    std::vector<uint8_t> codes(blocks_of(n, 2)), scales(blocks_of(n, kMxBlock));
    for (auto& c : codes) c = static_cast<uint8_t>(rng());
    for (size_t b = 0; b < scales.size(); ++b)
      scales[b] = b < 256 ? static_cast<uint8_t>(b) : static_cast<uint8_t>(rng());
    SCOPED_TRACE(testing::Message() << "n " << n);
    for_each_simd_target([&](const std::string&) {
      for (const int threads : kThreadCounts) expect_dequantize_matches(codes, scales, n, threads);
    });
  }
}

TEST(CpuSimd, NonFiniteIndexAndNanScaleEqualRef) {
  const float kBad[] = {std::nanf(""), -std::nanf(""), INFINITY, -INFINITY};
  uint64_t seed = 200;
  for (const size_t n : kLengths) {
    std::mt19937_64 rng(seed++);
    std::vector<float> x32 = make_data(n, seed++);
    // A few bad values anywhere (the last one in the second half, which a second thread handles),
    // more than one per block sometimes.
    for (int k = 0; k < 3; ++k) x32[rng() % n] = kBad[rng() % 4];
    x32[n / 2 + rng() % (n - n / 2)] = kBad[rng() % 4];
    std::vector<bf16> x16(n);
    for (size_t i = 0; i < n; ++i) x16[i] = bf16_from_f32(x32[i]);
    const std::vector<float> x16_wide = widen(x16);
    for (const ScaleRule rule : kRules) {
      for (const NonFinite policy : {NonFinite::error, NonFinite::nan_scale}) {
        const MxOptions opt{rule, TieRule::nearest_even, policy};
        const RefResult ref32 = quantize_ref(x32, opt), ref16 = quantize_ref(x16_wide, opt);
        ASSERT_EQ(ref32.ret == kRowOk, policy == NonFinite::nan_scale);
        SCOPED_TRACE(testing::Message() << "n " << n << " " << scale_rule_name(rule) << " policy "
                                        << static_cast<int>(policy));
        for_each_simd_target([&](const std::string&) {
          for (const int threads : kThreadCounts) {
            expect_quantize_matches(x32.data(), ElemType::f32, n, opt, threads, ref32);
            expect_quantize_matches(x16.data(), ElemType::bf16, n, opt, threads, ref16);
          }
        });
        if (policy == NonFinite::nan_scale) {
          for_each_simd_target([&](const std::string&) {
            expect_dequantize_matches(ref32.codes, ref32.scales, n, 2);
          });
        }
      }
    }
  }
}

TEST(CpuSimd, OneAndTwoThreadsAgree) {
  const size_t n = (size_t{1} << 20) + 17;
  const std::vector<float> x = make_data(n, 300);
  for (const ScaleRule rule : kRules) {
    const MxOptions opt{rule, TieRule::nearest_even, NonFinite::error};
    std::vector<uint8_t> c1(blocks_of(n, 2)), s1(blocks_of(n, kMxBlock)), c2 = c1, s2 = s1;
    ASSERT_EQ(mxfp4_quantize(x.data(), ElemType::f32, n, c1.data(), s1.data(), opt, 1), kRowOk);
    ASSERT_EQ(mxfp4_quantize(x.data(), ElemType::f32, n, c2.data(), s2.data(), opt, 2), kRowOk);
    EXPECT_EQ(c1, c2) << scale_rule_name(rule);
    EXPECT_EQ(s1, s2) << scale_rule_name(rule);
    std::vector<float> y1(n), y2(n);
    mxfp4_dequantize(c1.data(), s1.data(), n, y1.data(), ElemType::f32, 1);
    mxfp4_dequantize(c1.data(), s1.data(), n, y2.data(), ElemType::f32, 2);
    EXPECT_EQ(std::memcmp(y1.data(), y2.data(), n * sizeof(float)), 0) << scale_rule_name(rule);
  }
}

// Each row of the format table: its fast quantize / dequantize equals its reference.
TEST(CpuSimd, FormatTraitsFastEqualsRef) {
  for (const FormatTraits& f : format_traits_table()) {
    for (const size_t n : {size_t{33}, size_t{4097}, (size_t{1} << 18) + 5}) {
      const std::vector<float> x32 = make_data(n, 400 + n);
      const std::vector<bf16> x16 = to_bf16(x32);
      const std::vector<float> x16_wide = widen(x16);
      for (const ScaleRule rule : kRules) {
        if (f.has_tensor_scale && rule != ScaleRule::ocp_floor) continue;  // NVFP4 has one rule
        SCOPED_TRACE(testing::Message() << f.name << " n " << n << " " << scale_rule_name(rule));
        for (const bool use_bf16 : {false, true}) {
          const std::vector<float>& xr = use_bf16 ? x16_wide : x32;
          QuantParams p;
          p.mx.scale = rule;
          float amax = 0.0f;
          for (const float v : xr) amax = std::max(amax, std::fabs(v));
          p.tensor_scale = nvfp4_tensor_scale(amax);

          std::vector<uint8_t> rc(f.code_bytes(n)), rs(f.scale_count(n) * f.scale_bytes);
          ASSERT_EQ(f.quantize_ref(xr.data(), n, rc.data(), rs.data(), p), kRowOk);
          Guarded c(rc.size()), s(rs.size());
          const void* x = use_bf16 ? static_cast<const void*>(x16.data()) : x32.data();
          EXPECT_EQ(
              f.quantize(x, use_bf16 ? ElemType::bf16 : ElemType::f32, n, c.data(), s.data(), p, 2),
              kRowOk);
          EXPECT_TRUE(same_bytes(c.data(), rc.data(), rc.size()));
          EXPECT_TRUE(same_bytes(s.data(), rs.data(), rs.size()));
          EXPECT_TRUE(c.tail_intact() && s.tail_intact());

          std::vector<float> ry(n);
          f.dequantize_ref(rc.data(), rs.data(), n, ry.data(), p);
          Guarded y(n * sizeof(float));
          f.dequantize(rc.data(), rs.data(), n, y.data(), ElemType::f32, p, 2);
          EXPECT_TRUE(same_bytes(y.data(), reinterpret_cast<const uint8_t*>(ry.data()), y.n));
          EXPECT_TRUE(y.tail_intact());
        }
      }
    }
  }
}

}  // namespace
}  // namespace mxq
