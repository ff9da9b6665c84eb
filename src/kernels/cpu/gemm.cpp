// The SIMD GEMM / GEMV of mxq/kernels/cpu/gemm.h: Highway, one copy per target, the best one this
// CPU supports chosen at run time (the pattern of mx_convert.cpp), threads over the N output rows.
//
// MXFP4 decode of one 32-element block (16 code bytes + 1 E8M0 byte), in registers:
//   the 16 bytes are split into low and high nibbles, each nibble is looked up in a 16-entry byte
//   table holding 2·E2M1 as int8 (0, 1, 2, 3, 4, 6, 8, 12 and their negatives: integers, so the
//   table fits bytes), and InterleaveLower / InterleaveUpper put element 2i (low nibble) before
//   element 2i+1 (high nibble). The 32 int8 values are widened to f32 lanes and multiplied by
//   2^(E8M0 − 128) (the ½ undoes the table's doubling). Every step is exact: the product of a small
//   integer and a power of two is an f32 (subnormal at worst for E8M0 near 0), so the decoded
//   weights equal mxfp4_dequantize_row_ref's. E8M0 0xFF (NaN) decodes to NaN, as there.

#ifndef MXQ_KERNELS_CPU_GEMM_SHARED
#define MXQ_KERNELS_CPU_GEMM_SHARED

#include <algorithm>
#include <cmath>
#include <vector>

#include "mxq/kernels/cpu/gemm.h"

namespace mxq {
namespace {

// 2·E2M1 by code: codes 8..15 are the negatives of 0..7 (-0 is 0).
alignas(16) constexpr int8_t kE2m1Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12,
                                                 0, -1, -2, -3, -4, -6, -8, -12};

inline float mx_half_scale(uint8_t e) {
  return e == kE8M0Nan ? NAN : pow2f(static_cast<int>(e) - kE8M0Bias - 1);
}

// Runs fn(n0, n1) over the N output rows, chunks of about 32K multiply-adds each: far above the
// few microseconds a pool wake-up costs.
template <class Fn>
void for_rows(size_t N, size_t work_per_row, ThreadPool* pool, Fn&& fn) {
  const size_t grain = std::max<size_t>(1, (size_t{1} << 15) / std::max<size_t>(work_per_row, 1));
  if (pool == nullptr) {
    fn(size_t{0}, N);
    return;
  }
  pool->parallel_for(N, grain, fn);
}

}  // namespace
}  // namespace mxq

#endif  // MXQ_KERNELS_CPU_GEMM_SHARED

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/cpu/gemm.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace mxq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// N f32 lanes (16 on AVX-512, 8 on AVX2, 4 on SSE4/EMU128, 1 on SCALAR); N divides 32.
using DF = hn::CappedTag<float, kMxBlock>;
using DI = hn::RebindToSigned<DF>;
using D8 = hn::Rebind<int8_t, DF>;

// Calls fn(j, w) for each chunk of N lanes of one block (j = 0, N, 2N, ...): w = the 2·E2M1
// values of elements j .. j + N − 1 as f32. On AVX-512 and AVX2 the two 16-byte vectors of decoded
// int8 are widened straight from registers (vpmovsxbd); other targets go through a stack buffer.
template <class Fn>
HWY_INLINE void ForEachChunk(const uint8_t* codes, Fn&& fn) {
  const DF df;
  const DI di;
#if HWY_TARGET == HWY_SCALAR
  for (int i = 0; i < kMxBlock / 2; ++i) {
    fn(size_t(2 * i), hn::Set(df, static_cast<float>(kE2m1Doubled[codes[i] & 0xF])));
    fn(size_t(2 * i + 1), hn::Set(df, static_cast<float>(kE2m1Doubled[codes[i] >> 4])));
  }
#else
  const hn::Full128<uint8_t> d8;
  const hn::Full128<int8_t> ds8;
  const auto bytes = hn::LoadU(d8, codes);
  const auto table = hn::LoadU(d8, reinterpret_cast<const uint8_t*>(kE2m1Doubled));
  const auto lo = hn::TableLookupBytes(table, hn::And(bytes, hn::Set(d8, 0x0F)));
  const auto hi = hn::TableLookupBytes(table, hn::ShiftRight<4>(bytes));
  const auto e0 = hn::BitCast(ds8, hn::InterleaveLower(d8, lo, hi));  // elements 0..15
  const auto e1 = hn::BitCast(ds8, hn::InterleaveUpper(d8, lo, hi));  // elements 16..31
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  fn(size_t{0}, hn::ConvertTo(df, hn::PromoteTo(di, e0)));
  fn(size_t{16}, hn::ConvertTo(df, hn::PromoteTo(di, e1)));
#elif HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
  const hn::Half<decltype(ds8)> dh;
  fn(size_t{0}, hn::ConvertTo(df, hn::PromoteTo(di, hn::LowerHalf(dh, e0))));
  fn(size_t{8}, hn::ConvertTo(df, hn::PromoteTo(di, hn::UpperHalf(dh, e0))));
  fn(size_t{16}, hn::ConvertTo(df, hn::PromoteTo(di, hn::LowerHalf(dh, e1))));
  fn(size_t{24}, hn::ConvertTo(df, hn::PromoteTo(di, hn::UpperHalf(dh, e1))));
#else
  alignas(16) int8_t v[kMxBlock];
  hn::Store(e0, ds8, v);
  hn::Store(e1, ds8, v + 16);
  const D8 d8n;
  for (size_t j = 0; j < kMxBlock; j += hn::Lanes(df))
    fn(j, hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8n, v + j))));
#endif
#endif
}

// BF16 is the top half of an f32: widen the 16-bit patterns and shift them up (exact).
HWY_INLINE hn::Vec<DF> LoadBf16(const bf16* p) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const auto h = hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p));
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, h)));
}

// Σ a[k]·b[k] over K in f32 lanes (two accumulators), the tail < N lanes in scalar f32 FMA.
HWY_INLINE float Dot(const float* a, const float* b, size_t K) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
  size_t k = 0;
  for (; k + 2 * N <= K; k += 2 * N) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + k), hn::LoadU(df, b + k), acc0);
    acc1 = hn::MulAdd(hn::LoadU(df, a + k + N), hn::LoadU(df, b + k + N), acc1);
  }
  for (; k + N <= K; k += N) acc0 = hn::MulAdd(hn::LoadU(df, a + k), hn::LoadU(df, b + k), acc0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
  for (; k < K; ++k) s = std::fma(a[k], b[k], s);
  return s;
}

// ---- weight rows decoded to f32 (the M > 1 path) ----

void DecodeRowMxfp4(const uint8_t* codes, const uint8_t* scales, size_t K, float* out) {
  const DF df;
  for (size_t b = 0; b < K / kMxBlock; ++b) {
    const auto s = hn::Set(df, mx_half_scale(scales[b]));
    float* o = out + b * kMxBlock;
    ForEachChunk(codes + b * (kMxBlock / 2), [&](size_t j, auto w) { hn::StoreU(hn::Mul(w, s), df, o + j); });
  }
}

void DecodeRowBf16(const bf16* w, size_t K, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t k = 0;
  for (; k + N <= K; k += N) hn::StoreU(LoadBf16(w + k), df, out + k);
  for (; k < K; ++k) out[k] = bf16_to_f32(w[k]);
}

// ---- fused GEMV (M = 1) ----

float DotMxfp4(const uint8_t* codes, const uint8_t* scales, const float* x, size_t K) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
  for (size_t b = 0; b < K / kMxBlock; ++b) {
    const auto s = hn::Set(df, mx_half_scale(scales[b]));
    const float* xb = x + b * kMxBlock;
    // Even chunks into acc0, odd into acc1: the order of DotBf16 on the same values.
    ForEachChunk(codes + b * (kMxBlock / 2), [&](size_t j, auto w) {
      if ((j / N) % 2 == 0) acc0 = hn::MulAdd(hn::Mul(w, s), hn::LoadU(df, xb + j), acc0);
      else acc1 = hn::MulAdd(hn::Mul(w, s), hn::LoadU(df, xb + j), acc1);
    });
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
}

float DotBf16(const bf16* w, const float* x, size_t K) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
  size_t k = 0;
  for (; k + 2 * N <= K; k += 2 * N) {
    acc0 = hn::MulAdd(LoadBf16(w + k), hn::LoadU(df, x + k), acc0);
    acc1 = hn::MulAdd(LoadBf16(w + k + N), hn::LoadU(df, x + k + N), acc1);
  }
  for (; k + N <= K; k += N) acc0 = hn::MulAdd(LoadBf16(w + k), hn::LoadU(df, x + k), acc0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
  for (; k < K; ++k) s = std::fma(bf16_to_f32(w[k]), x[k], s);
  return s;
}

// ---- the GEMMs ----

void GemmF32(const float* x, size_t M, size_t K, const float* w, size_t N, float* y,
             ThreadPool* pool) {
  for_rows(N, M * K, pool, [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n)
      for (size_t m = 0; m < M; ++m) y[m * N + n] = Dot(w + n * K, x + m * K, K);
  });
}

void GemmBf16(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y,
              ThreadPool* pool) {
  for_rows(N, M * K, pool, [&](size_t n0, size_t n1) {
    if (M == 1) {
      for (size_t n = n0; n < n1; ++n) y[n] = DotBf16(w + n * K, x, K);
      return;
    }
    std::vector<float> row(K);
    for (size_t n = n0; n < n1; ++n) {
      DecodeRowBf16(w + n * K, K, row.data());
      for (size_t m = 0; m < M; ++m) y[m * N + n] = Dot(row.data(), x + m * K, K);
    }
  });
}

void GemmMxfp4(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
               size_t N, float* y, ThreadPool* pool) {
  const size_t row_bytes = K / 2, row_scales = K / kMxBlock;
  for_rows(N, M * K, pool, [&](size_t n0, size_t n1) {
    if (M == 1) {
      for (size_t n = n0; n < n1; ++n)
        y[n] = DotMxfp4(codes + n * row_bytes, scales + n * row_scales, x, K);
      return;
    }
    std::vector<float> row(K);
    for (size_t n = n0; n < n1; ++n) {
      DecodeRowMxfp4(codes + n * row_bytes, scales + n * row_scales, K, row.data());
      for (size_t m = 0; m < M; ++m) y[m * N + n] = Dot(row.data(), x + m * K, K);
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace mxq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace mxq {

HWY_EXPORT(GemmF32);
HWY_EXPORT(GemmBf16);
HWY_EXPORT(GemmMxfp4);

void gemm_f32(const float* x, size_t M, size_t K, const float* w, size_t N, float* y,
              ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(GemmF32)(x, M, K, w, N, y, pool);
}

void gemm_bf16(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y,
               ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(GemmBf16)(x, M, K, w, N, y, pool);
}

void gemm_mxfp4(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
                size_t N, float* y, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(GemmMxfp4)(x, M, K, codes, scales, N, y, pool);
}

}  // namespace mxq
#endif  // HWY_ONCE
