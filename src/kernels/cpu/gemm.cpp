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

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// AVX-512 GEMV (M = 1), kGemvRows rows at a time, 128 elements (4 blocks, 64 code bytes) a step.
//
// The 64 code bytes are 32 16-bit words; word w holds the nibbles of elements 4w .. 4w+3 (lowest
// first). vpermw looks up each word's low 5 bits in a 32-entry table of E2M1 values as BF16 (the 16
// entries twice, so bit 4 does not matter): the words shifted right by 0, 4, 8, 12 give the four
// nibbles. A BF16 value is the top half of an f32, so each u32 lane (two words) yields two f32 by a
// shift left by 16 (the low word) and a mask (the high word): 8 f32 vectors, no widening shuffles.
// Lane L of every one of them belongs to block L / 4 of the step, so each step's 8 products with x
// are summed in one register (the block's partial dot, unscaled), which is then multiplied by the
// block scales 2^(E8M0 − 127) (each spread over 4 lanes) and added to the row's accumulator. x is
// permuted once per call into the order in which the elements come out: vector j = 2·nibble + half,
// lane L holds element 8L + 4·half + nibble.
//
// Exactness: the decoded E2M1 values are those of the reference; multiplying a partial sum by a
// power of two is exact unless it under- or overflows, so a row with any scale below 2^-63, or NaN,
// takes DotMxfp4 (per element, as before) instead. The order of the f32 sums changes: per lane, two
// chains of 4 products, their sum, then one FMA per step into the accumulator (about K/128 + 8
// roundings on any product's path) — inside the tests' (K + 2)·2^-24·Σ|x·w| bound.
// K % 128 tail blocks (1..3): per block, the scaled 16-entry f32 table looked up by vpermps with x
// in even/odd order.
// Rows per call of GemvRowsAvx3: 1 measured as fast as 2 or 4 with the weights in L2 and faster
// from DRAM (one sequential stream per thread). Prefetch: 2 KB ahead of the code bytes, into L1.
constexpr size_t kGemvRows = 1;
constexpr size_t kGemvPrefetch = 2048;
constexpr size_t kStep = 4 * kMxBlock;  // 128 elements

// Scales 2^(e − 127) as f32 for `nb` blocks (nb a multiple of 16, e readable that far); false if
// any is below 2^-63 or NaN (the row then takes the per-element path).
HWY_INLINE bool ScalesToF32(const uint8_t* e, size_t nb, size_t valid, float* out) {
  bool ok = true;
  for (size_t b = 0; b < nb; b += 16) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(e + b)));
    const __mmask16 live = valid >= b + 16 ? __mmask16(0xFFFF)
                                           : __mmask16((1u << (valid - b)) - 1u);
    const __mmask16 bad = _mm512_mask_cmplt_epu32_mask(live, v, _mm512_set1_epi32(64)) |
                          _mm512_mask_cmpeq_epu32_mask(live, v, _mm512_set1_epi32(255));
    ok = ok && bad == 0;
    _mm512_storeu_ps(out + b, _mm512_castsi512_ps(_mm512_slli_epi32(v, 23)));
  }
  return ok;
}

template <size_t R>
HWY_INLINE void GemvRowsAvx3(const uint8_t* codes, size_t row_bytes, const float* sc,
                             size_t sc_stride, const float* xp, size_t K, float* y) {
  alignas(64) static constexpr uint16_t kE2m1Bf16[32] = {
      0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0,
      0x8000, 0xBF00, 0xBF80, 0xBFC0, 0xC000, 0xC040, 0xC080, 0xC0C0,
      0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0,
      0x8000, 0xBF00, 0xBF80, 0xBFC0, 0xC000, 0xC040, 0xC080, 0xC0C0};
  alignas(64) static constexpr float kE2m1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,
                                                  4.0f,  6.0f,  -0.0f, -0.5f, -1.0f, -1.5f,
                                                  -2.0f, -3.0f, -4.0f, -6.0f};
  const __m512i table = _mm512_load_si512(kE2m1Bf16);
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  __m512 acc[R];
  for (size_t r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const size_t steps = K / kStep;
  for (size_t i = 0; i < steps; ++i) {
    const float* xs = xp + i * kStep;
    for (size_t r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(codes + r * row_bytes + i * (kStep / 2)) + kGemvPrefetch, _MM_HINT_T0);
      const __m512i w = _mm512_loadu_si512(codes + r * row_bytes + i * (kStep / 2));
      const __m512i n0 = _mm512_permutexvar_epi16(w, table);
      const __m512i n1 = _mm512_permutexvar_epi16(_mm512_srli_epi16(w, 4), table);
      const __m512i n2 = _mm512_permutexvar_epi16(_mm512_srli_epi16(w, 8), table);
      const __m512i n3 = _mm512_permutexvar_epi16(_mm512_srli_epi16(w, 12), table);
      // Two chains of 4 (latency), one rounding more when they are added.
      __m512 p = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(n0, 16)), _mm512_loadu_ps(xs));
      __m512 q = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_and_si512(n0, hi_mask)), _mm512_loadu_ps(xs + 16));
      p = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(n1, 16)), _mm512_loadu_ps(xs + 32), p);
      q = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(n1, hi_mask)), _mm512_loadu_ps(xs + 48), q);
      p = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(n2, 16)), _mm512_loadu_ps(xs + 64), p);
      q = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(n2, hi_mask)), _mm512_loadu_ps(xs + 80), q);
      p = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(n3, 16)), _mm512_loadu_ps(xs + 96), p);
      q = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(n3, hi_mask)), _mm512_loadu_ps(xs + 112), q);
      p = _mm512_add_ps(p, q);
      const __m512 s = _mm512_permutexvar_ps(
          spread, _mm512_castps128_ps512(_mm_loadu_ps(sc + r * sc_stride + 4 * i)));
      acc[r] = _mm512_fmadd_ps(p, s, acc[r]);
    }
  }
  // Tail blocks: x in even/odd order after the full steps.
  const __m512 ftable = _mm512_load_ps(kE2m1);
  __m512 acc1[R];
  for (size_t r = 0; r < R; ++r) acc1[r] = _mm512_setzero_ps();
  for (size_t b = steps * 4; b < K / kMxBlock; ++b) {
    const __m512 xe = _mm512_loadu_ps(xp + b * kMxBlock);
    const __m512 xo = _mm512_loadu_ps(xp + b * kMxBlock + 16);
    for (size_t r = 0; r < R; ++r) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(codes + r * row_bytes + b * (kMxBlock / 2))));
      const __m512 t = _mm512_mul_ps(ftable, _mm512_set1_ps(sc[r * sc_stride + b]));
      acc[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, t), xe, acc[r]);
      acc1[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), t), xo, acc1[r]);
    }
  }
  for (size_t r = 0; r < R; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r], acc1[r]));
}

float DotMxfp4(const uint8_t* codes, const uint8_t* scales, const float* x, size_t K);

void GemvMxfp4Avx3(const float* x, size_t K, const uint8_t* codes, const uint8_t* scales,
                   size_t N, float* y, ThreadPool* pool) {
  const size_t row_bytes = K / 2, row_scales = K / kMxBlock, steps = K / kStep;
  std::vector<float> xp(K);
  for (size_t i = 0; i < steps; ++i)
    for (size_t j = 0; j < 8; ++j)
      for (size_t L = 0; L < 16; ++L)
        xp[i * kStep + j * 16 + L] = x[i * kStep + 8 * L + 4 * (j % 2) + j / 2];
  for (size_t b = steps * kStep; b < K; b += kMxBlock)
    for (size_t i = 0; i < kMxBlock / 2; ++i) {
      xp[b + i] = x[b + 2 * i];
      xp[b + kMxBlock / 2 + i] = x[b + 2 * i + 1];
    }
  const size_t sc_stride = (row_scales + 15) / 16 * 16;
  for_rows(N, K, pool, [&](size_t n0, size_t n1) {
    std::vector<float> sc(kGemvRows * sc_stride);
    std::vector<uint8_t> e(sc_stride);
    // Returns false if the row must take DotMxfp4.
    const auto convert = [&](size_t n, size_t r) {
      const uint8_t* src = scales + n * row_scales;
      if (row_scales % 16 != 0) {
        std::copy_n(src, row_scales, e.begin());
        src = e.data();
      }
      return ScalesToF32(src, sc_stride, row_scales, sc.data() + r * sc_stride);
    };
    size_t n = n0;
    for (; n + kGemvRows <= n1; n += kGemvRows) {
      bool ok[kGemvRows];
      for (size_t r = 0; r < kGemvRows; ++r) ok[r] = convert(n + r, r);
      GemvRowsAvx3<kGemvRows>(codes + n * row_bytes, row_bytes, sc.data(), sc_stride, xp.data(),
                              K, y + n);
      for (size_t r = 0; r < kGemvRows; ++r)
        if (!ok[r]) y[n + r] = DotMxfp4(codes + (n + r) * row_bytes, scales + (n + r) * row_scales, x, K);
    }
    for (; n < n1; ++n) {
      if (convert(n, 0))
        GemvRowsAvx3<1>(codes + n * row_bytes, row_bytes, sc.data(), sc_stride, xp.data(), K, y + n);
      else
        y[n] = DotMxfp4(codes + n * row_bytes, scales + n * row_scales, x, K);
    }
  });
}
#endif

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
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if (M == 1) {
    GemvMxfp4Avx3(x, K, codes, scales, N, y, pool);
    return;
  }
#endif
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
