// MXFP4 quantize / dequantize on the CPU: Highway SIMD (one copy of the kernels per target, the
// best one this CPU supports chosen at run time) over block-aligned chunks on many threads.
//
// Bit-identical to mxfp4_quantize_row_ref / mxfp4_dequantize_row_ref (src/format/format_ref.cpp):
// each block's scale exponent comes from the same constexpr functions of format.h, called once per
// block on the SIMD amax; each element code is the boundary count of e2m1_from_scaled, done N lanes
// at a time; ScaleRule::mse sums the same exact integer errors as mxfp4_mse_element_error. Blocks
// that need the reference's slow cases (the short last block, blocks holding NaN/Inf) are handed to
// the reference itself.

#ifndef MXQ_KERNELS_CPU_MX_CONVERT_SHARED
#define MXQ_KERNELS_CPU_MX_CONVERT_SHARED

#include "mxq/kernels/cpu/mx_convert.h"

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/parallel.h"

namespace mxq {
namespace {

// Blocks per threaded chunk: 32K elements, well above the cost of starting a thread.
constexpr size_t kBlocksPerTask = 1024;
constexpr size_t kCodeBytesPerBlock = kMxBlock / 2;

inline float to_f32(float v) { return v; }
inline float to_f32(bf16 v) { return bf16_to_f32(v); }
inline void store_f32(float v, float* y) { *y = v; }
inline void store_f32(float v, bf16* y) { *y = bf16_from_f32(v); }

// Block b (len <= 32 elements) by the reference, after widening to f32. Returns the row index of
// its first non-finite element (NonFinite::error) or kRowOk.
template <class T>
size_t quantize_block_ref(const T* x, size_t n, size_t b, uint8_t* codes, uint8_t* scales,
                          const MxOptions& opt) {
  const size_t begin = b * kMxBlock, len = std::min<size_t>(kMxBlock, n - begin);
  float xf[kMxBlock];
  for (size_t i = 0; i < len; ++i) xf[i] = to_f32(x[begin + i]);
  const size_t bad =
      mxfp4_quantize_row_ref(xf, len, codes + b * kCodeBytesPerBlock, scales + b, opt);
  return bad == kRowOk ? kRowOk : begin + bad;
}

template <class T>
void dequantize_block_ref(const uint8_t* codes, const uint8_t* scales, size_t n, size_t b, T* y) {
  const size_t begin = b * kMxBlock, len = std::min<size_t>(kMxBlock, n - begin);
  float yf[kMxBlock];
  mxfp4_dequantize_row_ref(codes + b * kCodeBytesPerBlock, scales + b, len, yf);
  for (size_t i = 0; i < len; ++i) store_f32(yf[i], y + begin + i);
}

}  // namespace
}  // namespace mxq

#endif  // MXQ_KERNELS_CPU_MX_CONVERT_SHARED

// foreach_target.h includes this file again once per target, each time with HWY_NAMESPACE set to
// that target's namespace (N_AVX3, N_AVX2, N_SSE4, ...).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/cpu/mx_convert.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace mxq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR

// Highway's one-lane target (its portable fallback where EMU128 is disabled, e.g. GCC < 12.3) has
// no lane pairs to pack: every block goes to the reference.
template <TieRule kTies, class T>
bool QuantizeBlock(const T*, uint8_t*, uint8_t*, const MxOptions&) { return false; }
template <class T>
bool DequantizeBlock(const uint8_t*, uint8_t, T*) { return false; }

#else

// N f32 lanes (16 on AVX-512, 8 on AVX2, 4 on SSE4/EMU128); N divides the 32-element block.
using DF = hn::CappedTag<float, kMxBlock>;
using DI = hn::RebindToSigned<DF>;

HWY_INLINE hn::Vec<DF> LoadAsF32(DF d, const float* p) { return hn::LoadU(d, p); }

// BF16 is the top half of an f32: widen the 16-bit patterns and shift them up (exact).
HWY_INLINE hn::Vec<DF> LoadAsF32(DF d, const bf16* p) {
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const auto h = hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p));
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du, h)));
}

// E2M1 codes (0..15 in i32 lanes) of v = x / 2^s, as e2m1_from_scaled: the magnitude is the number
// of rounding boundaries below |v| (>= at 0.75, 1.75, 3.5 under nearest_even, where those ties
// round up to the even code), the sign as that function sets it.
template <TieRule kTies>
HWY_INLINE hn::Vec<DI> EncodeE2m1(DF d, hn::Vec<DF> v) {
  const DI di;
  const auto a = hn::Abs(v);
  auto m = hn::Zero(di);
  // VecFromMask is -1 in the lanes past a boundary: subtracting it counts them. AVX-512 compares
  // give mask registers, and a masked add counts them without moving each mask into a vector.
  const auto count = [&](auto past) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    m = hn::IfThenElse(hn::RebindMask(di, past), hn::Add(m, hn::Set(di, 1)), m);
#else
    m = hn::Sub(m, hn::BitCast(di, hn::VecFromMask(d, past)));
#endif
  };
  constexpr bool kEven = kTies == TieRule::nearest_even;
  count(hn::Gt(a, hn::Set(d, 0.25f)));
  count(kEven ? hn::Ge(a, hn::Set(d, 0.75f)) : hn::Gt(a, hn::Set(d, 0.75f)));
  count(hn::Gt(a, hn::Set(d, 1.25f)));
  count(kEven ? hn::Ge(a, hn::Set(d, 1.75f)) : hn::Gt(a, hn::Set(d, 1.75f)));
  count(hn::Gt(a, hn::Set(d, 2.5f)));
  count(kEven ? hn::Ge(a, hn::Set(d, 3.5f)) : hn::Gt(a, hn::Set(d, 3.5f)));
  count(hn::Gt(a, hn::Set(d, 5.0f)));
  if constexpr (kEven) {
    // The sign bit of v, -0 included: bit 31 moved to bit 3.
    return hn::Or(m, hn::And(hn::ShiftRight<28>(hn::BitCast(di, v)), hn::Set(di, 8)));
  } else {
    // ModelOpt's rule: every v <= 0 (+0 too) gets the sign bit.
    return hn::Or(m,
                  hn::IfThenElseZero(hn::RebindMask(di, hn::Le(v, hn::Zero(d))), hn::Set(di, 8)));
  }
}

// E2M1 code (i32 lanes, 0..15) -> f32, as e2m1_to_f32.
HWY_INLINE hn::Vec<DF> DecodeE2m1(DI di, hn::Vec<DI> code) {
  const DF d;
  const auto sign = hn::ShiftLeft<28>(hn::And(code, hn::Set(di, 8)));
  if constexpr (hn::MaxLanes(DF()) >= 8) {
    // A permute across one vector (vpermps) looks up the magnitude code, or with 16 lanes the whole
    // signed code; entries repeat every 16 lanes.
    static constexpr float kValues[32] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f,
                                          -2, -3, -4, -6, 0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f,
                                          -0.5f, -1, -1.5f, -2, -3, -4, -6};
    const auto idx = hn::And(code, hn::Set(di, static_cast<int32_t>(hn::Lanes(d) - 1)));
    const auto v = hn::TableLookupLanes(hn::LoadU(d, kValues), hn::IndicesFromVec(d, idx));
    return hn::BitCast(d, hn::Or(hn::BitCast(di, v), sign));
  } else {
    // Magnitude codes m = 2..7 (1, 1.5, 2, 3, 4, 6) are 2^(e-1)·(1 + man/2) with m = 2e + man,
    // whose f32 bits are (m << 22) + 0x3F000000; m = 1 is 0.5 (0x3F000000) and m = 0 is 0.
    const auto m = hn::And(code, hn::Set(di, 7));
    const auto half = hn::Set(di, 0x3F000000);
    const auto small = hn::IfThenElseZero(hn::Eq(m, hn::Set(di, 1)), half);
    const auto mag =
        hn::IfThenElse(hn::Lt(m, hn::Set(di, 2)), small, hn::Add(hn::ShiftLeft<22>(m), half));
    return hn::BitCast(d, hn::Or(mag, sign));
  }
}

// A non-negative, integer-valued double below 2^52 as an int64: added to 2^52 it is exact and sits
// in the mantissa bits (cheaper than the emulated double -> int64 conversion before AVX-512).
template <class DL, class V>
HWY_INLINE hn::Vec<DL> TruncToInt(DL dl, V y) {
  const hn::Rebind<double, DL> dd;
  const auto biased = hn::BitCast(dl, hn::Add(hn::Floor(y), hn::Set(dd, 0x1p52)));
  return hn::Sub(biased, hn::BitCast(dl, hn::Set(dd, 0x1p52)));
}

// ScaleRule::mse for one full block of finite values: mxfp4_mse_scale_exp with the element errors
// evaluated N at a time. Each error is an exact integer (see mxfp4_mse_element_error), so the sum
// of the per-lane partial sums equals the scalar, in-order sum.
template <TieRule kTies, class T>
HWY_INLINE int MseScaleExp(const T* x, float amax) {
  if (!(amax > 0.0f)) return kScaleExpMin;
  const DF d;
  const DI di;
  const hn::Half<DF> dh;
  const hn::Rebind<double, decltype(dh)> dd;  // N/2 f64 lanes
  const hn::RebindToSigned<decltype(dd)> dl;
  const int amax_log2 = f32_floor_log2(amax);
  const int centre = mx_scale_exp(amax, ScaleRule::ocp_floor, kMxE2M1);
  // d² is counted in units of 2^(2·amax_log2 - 40), truncated, capped at 2^51.
  const auto unit = hn::Set(
      dd, __builtin_bit_cast(double, static_cast<uint64_t>(40 - 2 * amax_log2 + 1023) << 52));
  const auto cap = hn::Set(dd, 0x1p51);
  const size_t N = hn::Lanes(d);
  int best = centre;
  uint64_t best_err = ~UINT64_C(0);
  for (int c = 0; c < kMseCandidates; ++c) {
    const int s = mx_mse_candidate(centre, c);
    const auto inv_scale = hn::Set(d, pow2f(-s));
    const auto scale = hn::Set(d, pow2f(s));
    auto sum = hn::Zero(dl);
    for (size_t i = 0; i < kMxBlock; i += N) {
      const auto xv = LoadAsF32(d, x + i);
      const auto q = DecodeE2m1(di, EncodeE2m1<kTies>(d, hn::Mul(xv, inv_scale)));
      const auto diff = hn::Sub(xv, hn::Mul(q, scale));  // inf only when q·2^s overflows
      const auto lo = hn::PromoteTo(dd, hn::LowerHalf(dh, diff));
      const auto hi = hn::PromoteTo(dd, hn::UpperHalf(dh, diff));
      sum = hn::Add(sum, TruncToInt(dl, hn::Min(hn::Mul(hn::Mul(lo, lo), unit), cap)));
      sum = hn::Add(sum, TruncToInt(dl, hn::Min(hn::Mul(hn::Mul(hi, hi), unit), cap)));
    }
    const auto err = static_cast<uint64_t>(hn::GetLane(hn::SumOfLanes(dl, sum)));
    if (err < best_err) { best_err = err; best = s; }
  }
  return best;
}

// One full block of 32 elements -> 16 code bytes and one scale byte. Returns false, writing
// nothing, when the block holds NaN or Inf: the reference then decides what it becomes.
template <TieRule kTies, class T>
HWY_INLINE bool QuantizeBlock(const T* x, uint8_t* codes, uint8_t* scale, const MxOptions& opt) {
  const DF d;
  const DI di;
  const size_t N = hn::Lanes(d);
  // |x| as integers orders like |x| as floats; bits >= 0x7F800000 are Inf or NaN.
  auto abs_max = hn::Zero(di);
  for (size_t i = 0; i < kMxBlock; i += N)
    abs_max =
        hn::Max(abs_max, hn::And(hn::BitCast(di, LoadAsF32(d, x + i)), hn::Set(di, 0x7FFFFFFF)));
  const int32_t amax_bits = hn::GetLane(hn::MaxOfLanes(di, abs_max));
  if (amax_bits >= 0x7F800000) return false;
  const float amax = f32_from_bits(static_cast<uint32_t>(amax_bits));

  const int s = opt.scale == ScaleRule::mse ? MseScaleExp<kTies>(x, amax)
                                            : mx_scale_exp(amax, opt.scale, kMxE2M1);
  *scale = static_cast<uint8_t>(s + kE8M0Bias);
  const auto inv_scale = hn::Set(d, pow2f(-s));  // exact: x / 2^s
  const hn::Repartition<uint64_t, DF> d64;       // N/2 lanes, each holding two i32 codes
  const hn::Rebind<uint8_t, decltype(d64)> d8;   // N/2 code bytes
  for (size_t i = 0; i < kMxBlock; i += N) {
    const auto code = EncodeE2m1<kTies>(d, hn::Mul(LoadAsF32(d, x + i), inv_scale));
    // A u64 lane is code[2j] | code[2j+1] << 32; shifted right by 28 the odd code lands in
    // bits 4..7, so the low byte becomes the packed pair (element 2j low nibble, 2j+1 high nibble).
    const auto pairs = hn::BitCast(d64, code);
    hn::StoreU(hn::TruncateTo(d8, hn::Or(pairs, hn::ShiftRight<28>(pairs))), d8, codes + i / 2);
  }
  return true;
}

// One full block: 16 code bytes and a scale byte -> 32 values (f32, or BF16 by truncation, which
// is exact: e2m1·2^k has at most two significant bits, and scale 0xFF gives the quiet NaN
// 0x7FC00000, whose top half 0x7FC0 is still a NaN and equals bf16_from_f32 of it). Returns true
// (the one-lane stub above returns false).
template <class T>
HWY_INLINE bool DequantizeBlock(const uint8_t* codes, uint8_t scale_byte, T* y) {
  const DF d;
  const DI di;
  const hn::Rebind<uint8_t, hn::Half<DF>> d8h;    // N/2 code bytes
  const hn::Rebind<uint16_t, hn::Half<DF>> d16h;  // one byte per u16 lane
  const hn::Rebind<uint8_t, DF> d8;               // N codes, one per byte
  const size_t N = hn::Lanes(d);
  const auto scale = hn::Set(d, e8m0_to_f32(scale_byte));
  for (size_t i = 0; i < kMxBlock; i += N) {
    const auto w = hn::PromoteTo(d16h, hn::LoadU(d8h, codes + i / 2));
    // Low nibble (element 2j) to the low byte, high nibble (element 2j + 1) to the high byte.
    const auto split = hn::Or(hn::And(w, hn::Set(d16h, 0x0F)),
                              hn::ShiftLeft<4>(hn::And(w, hn::Set(d16h, 0xF0))));
    const auto code = hn::PromoteTo(di, hn::BitCast(d8, split));
    const auto v = hn::Mul(DecodeE2m1(di, code), scale);
    if constexpr (std::is_same_v<T, float>) {
      hn::StoreU(v, d, y + i);
    } else {
      const hn::RebindToUnsigned<DF> du;
      const hn::Rebind<uint16_t, DF> d16;
      hn::StoreU(hn::TruncateTo(d16, hn::ShiftRight<16>(hn::BitCast(du, v))), d16,
                 reinterpret_cast<uint16_t*>(y + i));
    }
  }
  return true;
}

#endif  // HWY_TARGET == HWY_SCALAR

// Blocks [b0, b1) of a row of n elements. Returns the row index of the first non-finite element
// (NonFinite::error) or kRowOk.
template <TieRule kTies, class T>
size_t QuantizeBlocks(const T* x, size_t n, size_t b0, size_t b1, uint8_t* codes,
                      uint8_t* scales, const MxOptions& opt) {
  const size_t full_blocks = n / kMxBlock;
  for (size_t b = b0; b < b1; ++b) {
    if (b < full_blocks &&
        QuantizeBlock<kTies>(x + b * kMxBlock, codes + b * kCodeBytesPerBlock, scales + b, opt))
      continue;
    if (const size_t bad = quantize_block_ref(x, n, b, codes, scales, opt); bad != kRowOk)
      return bad;
  }
  return kRowOk;
}

// QuantizeBlocks with the tie rule as a compile-time constant.
template <class T>
size_t QuantizeChunk(const T* x, size_t n, size_t b0, size_t b1, uint8_t* codes, uint8_t* scales,
                     const MxOptions& opt) {
  return opt.ties == TieRule::nearest_even
             ? QuantizeBlocks<TieRule::nearest_even>(x, n, b0, b1, codes, scales, opt)
             : QuantizeBlocks<TieRule::toward_zero>(x, n, b0, b1, codes, scales, opt);
}

size_t QuantizeRow(const void* x, ElemType xt, size_t n, uint8_t* codes, uint8_t* scales,
                   const MxOptions& opt, int threads) {
  std::atomic<size_t> first_bad{kRowOk};
  parallel_for(blocks_of(n, kMxBlock), kBlocksPerTask, threads, [&](size_t b0, size_t b1) {
    const size_t bad =
        xt == ElemType::f32
            ? QuantizeChunk(static_cast<const float*>(x), n, b0, b1, codes, scales, opt)
            : QuantizeChunk(static_cast<const bf16*>(x), n, b0, b1, codes, scales, opt);
    // Chunks are disjoint and each reports its own first bad index: the row's is the smallest.
    size_t cur = first_bad.load();
    while (bad < cur && !first_bad.compare_exchange_weak(cur, bad)) {}
  });
  return first_bad.load();
}

template <class T>
void DequantizeBlocks(const uint8_t* codes, const uint8_t* scales, size_t n, size_t b0, size_t b1,
                      T* y) {
  const size_t full_blocks = n / kMxBlock;
  for (size_t b = b0; b < b1; ++b) {
    if (!(b < full_blocks &&
          DequantizeBlock(codes + b * kCodeBytesPerBlock, scales[b], y + b * kMxBlock)))
      dequantize_block_ref(codes, scales, n, b, y);
  }
}

void DequantizeRow(const uint8_t* codes, const uint8_t* scales, size_t n, void* y, ElemType yt,
                   int threads) {
  parallel_for(blocks_of(n, kMxBlock), kBlocksPerTask, threads, [&](size_t b0, size_t b1) {
    if (yt == ElemType::f32)
      DequantizeBlocks(codes, scales, n, b0, b1, static_cast<float*>(y));
    else
      DequantizeBlocks(codes, scales, n, b0, b1, static_cast<bf16*>(y));
  });
}

int64_t ThisTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace mxq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace mxq {

HWY_EXPORT(QuantizeRow);
HWY_EXPORT(DequantizeRow);
HWY_EXPORT(ThisTarget);

size_t mxfp4_quantize(const void* x, ElemType xt, size_t n, uint8_t* codes, uint8_t* scales,
                      const MxOptions& opt, int threads) {
  return HWY_DYNAMIC_DISPATCH(QuantizeRow)(x, xt, n, codes, scales, opt, threads);
}

void mxfp4_dequantize(const uint8_t* codes, const uint8_t* scales, size_t n, void* y, ElemType yt,
                      int threads) {
  HWY_DYNAMIC_DISPATCH(DequantizeRow)(codes, scales, n, y, yt, threads);
}

namespace {

// The targets compiled here and supported by this CPU, read once before any target is forced
// (while one is, SupportedTargets() reports only that one).
const std::vector<int64_t>& available_targets() {
  static const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  return targets;
}

}  // namespace

std::vector<std::string> cpu_simd_targets() {
  std::vector<std::string> names;
  for (const int64_t t : available_targets()) names.emplace_back(hwy::TargetName(t));
  return names;
}

std::string cpu_simd_active_target() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(ThisTarget)()); }

bool cpu_simd_force_target(const std::string& name) {
  if (name.empty()) {
    hwy::SetSupportedTargetsForTest(0);
    return true;
  }
  for (const int64_t t : available_targets()) {
    if (name == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      return true;
    }
  }
  return false;  // dispatch unchanged
}

}  // namespace mxq
#endif  // HWY_ONCE
