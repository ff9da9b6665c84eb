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
#include <type_traits>
#include <vector>

#include <hwy/base.h>  // HWY_ARCH_X86

#include "mxq/kernels/cpu/gemm.h"

namespace mxq {
namespace {

// 2·E2M1 by code: codes 8..15 are the negatives of 0..7 (-0 is 0).
alignas(16) constexpr int8_t kE2m1Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12,
                                                 0, -1, -2, -3, -4, -6, -8, -12};

inline float mx_half_scale(uint8_t e) {
  return e == kE8M0Nan ? NAN : pow2f(static_cast<int>(e) - kE8M0Bias - 1);
}

// Runs fn(n0, n1) over the N output rows of an M-token product with K inputs, chunks of at least
// 32K multiply-adds each: far above the few microseconds a pool wake-up costs. The chunk count is a
// multiple of the pool's threads where there are enough rows, so no thread gets a chunk more than
// another (a 192 x 576 GEMV is 3 chunks of the minimum size, 2 of them on one of 2 threads, but 2
// chunks of 96 rows here): up to 4 per thread, 2 for a GEMV (M = 1), whose every chunk start is a
// cold DRAM round trip while the threads stream at one rate (a decode-shaped sequence of SmolLM2's
// GEMVs ran 3-8% faster with 2 than with 4 here; 1 was ~1% faster still, but leaves no chunk for
// the caller to take over from a descheduled thread). The pool gets a std::function of a
// one-pointer lambda, which std::function stores inline: no heap allocation per call.
template <class Fn>
void for_rows(size_t N, size_t M, size_t K, ThreadPool* pool, Fn&& fn) {
  const size_t min_rows = std::max<size_t>(1, (size_t{1} << 15) / std::max<size_t>(M * K, 1));
  if (pool == nullptr) {
    fn(size_t{0}, N);
    return;
  }
  const size_t threads = static_cast<size_t>(pool->size());
  const size_t per_thread = std::min<size_t>(M == 1 ? 2 : 4, N / min_rows / threads);
  const size_t grain = per_thread == 0 ? min_rows : N / (per_thread * threads);
  pool->parallel_for(N, grain, [&fn](size_t n0, size_t n1) { fn(n0, n1); });
}

#if HWY_ARCH_X86
constexpr size_t kStep = 4 * kMxBlock;  // the AVX-512 GEMV's 128 elements a step

// Whether this CPU has AVX512_BF16 (vdpbf16ps), which Highway's AVX3 target does not assume.
inline bool cpu_has_avx512_bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
}
#endif

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
#if HWY_TARGET == HWY_SCALAR
  for (int i = 0; i < kMxBlock / 2; ++i) {
    fn(size_t(2 * i), hn::Set(df, static_cast<float>(kE2m1Doubled[codes[i] & 0xF])));
    fn(size_t(2 * i + 1), hn::Set(df, static_cast<float>(kE2m1Doubled[codes[i] >> 4])));
  }
#else
  const DI di;
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

// y[m, n] for every m, weight row n, per element: the fused DotMxfp4 for M = 1, else the row
// decoded once into `row` (resized to K here) and dotted with each activation row.
void MxRowGeneric(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
                  size_t N, size_t n, float* y, std::vector<float>& row) {
  const uint8_t* c = codes + n * (K / 2);
  const uint8_t* s = scales + n * (K / kMxBlock);
  if (M == 1) {
    y[n] = DotMxfp4(c, s, x, K);
    return;
  }
  row.resize(K);
  DecodeRowMxfp4(c, s, K, row.data());
  for (size_t m = 0; m < M; ++m) y[m * N + n] = Dot(row.data(), x + m * K, K);
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// AVX-512 BF16 kernel (M ≥ 1; on CPUs with AVX512_BF16, which Highway's AVX3 target does not
// assume, so it is a function of its own with that target added and a CPUID check before the
// call). 4 weight rows at a time against 1 activation row (M = 1), or 1 weight row against 1 or 4
// activation rows, 128 elements (4 blocks, 64 code bytes) a step.
//
// The 64 code bytes are 32 16-bit words; word w holds the nibbles of elements 4w .. 4w+3 (lowest
// first). vpermw looks up each word's low 5 bits in a 32-entry table of E2M1 values as BF16 (the 16
// entries twice, so bit 4 does not matter): nibbles 0..3 brought to the bottom of each word give
// four vectors of 32 BF16 weights, and vdpbf16ps multiplies each with 32 BF16 activations and adds
// the products in pairs into 16 f32 lanes — no widening to f32 lanes at all. Lane L of all four
// belongs to block L / 4 of the step (elements 8L .. 8L+7), so the step's partial dot per lane is
// unscaled, then multiplied by the block scales (each spread over 4 lanes) and added to the
// accumulator. The activations come prepared by PrepareGemvX (BF16, prescaled by 2^t, in the
// order the weights come out), the scales by ScalesToF32 (2^(e − 127 − t)). The K % 128 tail
// (1..3 blocks) is one more step with the code bytes past the row masked to 0 (weight +0) against
// zero padding of x'.
//
// vdpbf16ps treats subnormal inputs as zero and flushes subnormal results; the prescale keeps
// every operand and every partial sum normal (see PrepareGemvX), so it sums exactly the products
// x̂·w that the reference does, in another order: per lane ≤ 8 additions in the step, one FMA per
// step into the accumulator (K/128 of them), a 16-lane reduction (SumLanes4's tree for 4 rows)
// — inside the tests' (K + 2)·2^-24·Σ|x·w| bound. Rows whose scales 2^(e − 127 − t) would not be
// normal f32 (or are NaN) take MxRowGeneric instead; activations that no t fits take it for the
// whole call.

// Software prefetch of the code bytes, per row and step: into L1 8 KB ahead, and into L2 16 KB
// ahead. Decode streams every weight from DRAM, and these hide what the hardware prefetcher does
// not: 1.2-1.4x on 49152 x 576 and 4096 x 1536 from DRAM against none (bench_gemv_cpu, 1 and 2
// threads). The distances: a 60 MB 196608 x 576 GEMV from DRAM streamed at 14.6 / 17.3 / 18.8 GB/s
// on one thread and 27.0 / 29.6 / 31.8 on two with the L1 one 2 / 4 / 8 KB ahead (L2 16 KB; 12 KB
// ahead in L1 fell back to 17.4 / 27.8), and SmolLM2's decode-shaped sequence of GEMVs took 2.80 ms
// at 8 / 16 KB against 3.40 at 2 / 8 KB (same process, interleaved).
constexpr size_t kGemvPrefetchL1 = 8192, kGemvPrefetchL2 = 16384;

// Prefetches [p, p + bytes) into L2, a cache line at a time.
HWY_INLINE void PrefetchL2(const uint8_t* p, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p) + off, _MM_HINT_T1);
}

// The activations of the kernel, M rows: x' = x̂ · 2^t as BF16, one t for all rows, chosen so
// max|x'| lies in [2^64, 2^65), in the order the weights come out of a step (GemvRowsBf16): word m
// of vector j of step i of a row holds element 128i + 4m + j. Zero past K, to whole steps.
//
// Why the prescale: vdpbf16ps treats subnormal inputs as zero and flushes subnormal results. With
// every nonzero |x'| ≥ 2^-118, x' (8 significant bits) is a multiple of 2^-125, every product with
// an E2M1 value (a multiple of ½) a multiple of 2^-126, and so is every partial sum: nonzero ones
// are normal, nothing is flushed. |x'| < 2^65 keeps a step's sum (128 products ≤ 6·2^65) far from
// overflow. ok = false when x̂ has a non-finite value or a nonzero |x̂| below 2^-182·max|x̂| (a
// dynamic range that no single t fits): the caller then takes the per-element path.
struct GemvActivations {
  const uint16_t* words = nullptr;  // row m at m · stride
  size_t stride = 0;
  int t = 0;
  bool ok = false;
};

// xr: M × K activations already rounded to BF16 (so x' = xr·2^t is exact whenever it is normal,
// and its BF16 bits are the top half of its f32 bits). K is a multiple of 32. The words go to
// `storage`, the caller's scratch (resized here; a decode step's calls reuse its capacity).
GemvActivations PrepareGemvX(const float* xr, size_t M, size_t K, std::vector<uint16_t>& storage) {
  constexpr int kTopExp = 64;
  GemvActivations a;
  __m512 vmax = _mm512_setzero_ps();
  __mmask16 nonfinite = 0;
  for (size_t k = 0; k < M * K; k += 16) {
    const __m512 v = _mm512_abs_ps(_mm512_loadu_ps(xr + k));
    nonfinite |= _mm512_cmp_ps_mask(v, _mm512_set1_ps(INFINITY), _CMP_NLT_UQ);
    vmax = _mm512_max_ps(vmax, v);
  }
  if (nonfinite != 0) return a;
  const float amax = _mm512_reduce_max_ps(vmax);
  a.t = amax > 0.0f ? kTopExp - f32_floor_log2(amax) : 0;
  // t is in [-63, 197]: two factors, each a normal power of two, both with t's sign, so the first
  // product underflows only where x' is below 2^-126 anyway (and is then rejected).
  const __m512 s1 = _mm512_set1_ps(pow2f(a.t / 2)), s2 = _mm512_set1_ps(pow2f(a.t - a.t / 2));
  const size_t steps = (K + kStep - 1) / kStep;
  a.stride = steps * kStep;
  storage.resize(M * a.stride);
  a.words = storage.data();
  // Word 2q + 1 of the 64 (two operands of 16 f32): the top half of f32 q.
  const __m512i top_halves = _mm512_set_epi16(
      63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33,
      31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  const __m512i stride4 = _mm512_set_epi32(60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0);
  __mmask16 tiny = 0;
  for (size_t r = 0; r < M * steps; ++r)
    for (size_t j = 0; j < 4; ++j) {
      const size_t m = r / steps, i = r % steps;
      __m512 half[2];
      for (size_t h = 0; h < 2; ++h) {
        // Elements 128i + 64h + 4m' + j, m' = 0..15; those past K read as 0.
        const size_t first = i * kStep + 64 * h + j;
        const __m512i idx = _mm512_add_epi32(stride4, _mm512_set1_epi32(static_cast<int>(first)));
        const __mmask16 live = _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(static_cast<int>(K)));
        const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, idx, xr + m * K, 4);
        half[h] = _mm512_mul_ps(_mm512_mul_ps(v, s1), s2);
        tiny |= _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_OQ),
                                        _mm512_abs_ps(half[h]), _mm512_set1_ps(0x1p-118f), _CMP_LT_OQ);
      }
      _mm512_storeu_si512(storage.data() + m * a.stride + i * kStep + 32 * j,
                          _mm512_permutex2var_epi16(_mm512_castps_si512(half[0]), top_halves,
                                                    _mm512_castps_si512(half[1])));
    }
  a.ok = tiny == 0;
  return a;
}

// E8M0 scales e[0 .. count) (the rows of a block, back to back) as f32 2^(e − 127 − t), then 4
// zeros: a row's last step reads up to 3 scales past its own (the next row's, or these), which
// multiply partial dots that are exactly 0 and so must only be finite. A scale that is NaN or
// whose 2^(e − 127 − t) is not a normal f32 is written as 0 (a valid one never is), and the
// result is false: the caller finds those rows by their zeros. out: count + 16 floats.
HWY_INLINE bool ScalesToF32(const uint8_t* e, size_t count, int t, float* out) {
  // Usable scales are those with 1 ≤ e − t ≤ 254 and e ≠ 255 (NaN): one check of the whole block in
  // bytes, 64 at a time, so that the common case converts without per-scale masks.
  const int lo = std::max(t + 1, 0), hi = std::min(t + 254, 254);  // usable: lo ≤ e ≤ hi
  bool all_usable = lo <= hi;
  if (all_usable) {
    __mmask64 outside = 0;
    for (size_t b = 0; b < count; b += 64) {
      const __mmask64 live = count - b >= 64 ? ~__mmask64{0} : (__mmask64{1} << (count - b)) - 1;
      const __m512i v = _mm512_maskz_loadu_epi8(live, e + b);
      outside |= _mm512_mask_cmplt_epu8_mask(live, v, _mm512_set1_epi8(static_cast<char>(lo))) |
                 _mm512_mask_cmpgt_epu8_mask(live, v, _mm512_set1_epi8(static_cast<char>(hi)));
    }
    all_usable = outside == 0;
  }
  if (all_usable) {
    for (size_t b = 0; b < count; b += 16) {
      const __mmask16 live = count - b >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (count - b)) - 1u);
      const __m512i field = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, e + b)), _mm512_set1_epi32(t));
      _mm512_mask_storeu_ps(out + b, live, _mm512_castsi512_ps(_mm512_slli_epi32(field, 23)));
    }
    _mm_storeu_ps(out + count, _mm_setzero_ps());
    return true;
  }
  __mmask16 any_bad = 0;
  for (size_t b = 0; b < count; b += 16) {
    const __mmask16 live = count - b >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (count - b)) - 1u);
    const __m512i v = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, e + b));
    const __m512i field = _mm512_sub_epi32(v, _mm512_set1_epi32(t));
    const __mmask16 bad = _mm512_mask_cmplt_epi32_mask(live, field, _mm512_set1_epi32(1)) |
                          _mm512_mask_cmpgt_epi32_mask(live, field, _mm512_set1_epi32(254)) |
                          _mm512_mask_cmpeq_epi32_mask(live, v, _mm512_set1_epi32(kE8M0Nan));
    any_bad |= bad;
    _mm512_storeu_ps(out + b, _mm512_maskz_mov_ps(live & ~bad, _mm512_castsi512_ps(_mm512_slli_epi32(field, 23))));
  }
  _mm_storeu_ps(out + count, _mm_setzero_ps());
  return any_bad == 0;
}

// {Σ a[0], Σ a[1], Σ a[2], Σ a[3]} over the 16 lanes of each: two rounds of unpack + add leave
// the four sums' partials side by side in every 128-bit lane, then the lanes are added — one
// shared tree instead of four _mm512_reduce_add_ps.
HWY_INLINE __m128 SumLanes4(const __m512 (&a)[4]) {
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a[0], a[1]), _mm512_unpackhi_ps(a[0], a[1]));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a[2], a[3]), _mm512_unpackhi_ps(a[2], a[3]));
  const __m512d d01 = _mm512_castps_pd(s01), d23 = _mm512_castps_pd(s23);
  const __m512 s = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d01, d23)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(d01, d23)));
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// NR weight rows (back to back from `codes`) against MR activation rows: y[m · y_stride + r] =
// Σ over steps of (the step's partial dots of row r with x'_m) · (its block scales). Row r's
// scales are sc[r · K/32 ...] as ScalesToF32 wrote them (finite, and readable 3 past the row);
// x'_m is at xw + m · xw_stride (128·ceil(K/128) BF16 words). Each weight step is decoded once for
// all MR activation rows; NR rows at once give the core independent chains to overlap and share
// the final reduction (SumLanes4). MR = 4 (M > 1) or NR = 4 (M = 1) keep the decoded weights,
// partial sums and accumulators in registers.
//
// Nibbles 0 and 1 of each word come from the 64 code bytes w (bits 0-3, and bits 4-7 after a
// shift); nibbles 2 and 3 from the same bytes loaded one byte later (w1: word m's low byte is byte
// 2m+1), which saves a shift per step. The row's last step loads both masked to the row's bytes
// (so no load reads past the row; masked bytes decode to +0).
template <size_t MR, size_t NR>
__attribute__((target(HWY_TARGET_STR ",avx512bf16"))) void GemvRowsBf16(
    const uint8_t* codes, size_t K, const float* sc, const uint16_t* xw, size_t xw_stride,
    float* y, size_t y_stride) {
  static_assert(NR == 1 || NR == 4, "SumLanes4 reduces 4 rows");
  alignas(64) static constexpr uint16_t kE2m1Bf16[32] = {
      0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0,
      0x8000, 0xBF00, 0xBF80, 0xBFC0, 0xC000, 0xC040, 0xC080, 0xC0C0,
      0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0,
      0x8000, 0xBF00, 0xBF80, 0xBFC0, 0xC000, 0xC040, 0xC080, 0xC0C0};
  const __m512i table = _mm512_load_si512(kE2m1Bf16);
  const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const size_t row_bytes = K / 2, row_scales = K / kMxBlock;
  __m512 acc[MR][NR];
  for (size_t m = 0; m < MR; ++m)
    for (size_t r = 0; r < NR; ++r) acc[m][r] = _mm512_setzero_ps();
  // One step of row r from its code bytes w and the same bytes one later, w1: 512-bit vectors, or
  // 256-bit ones for a last step of ≤ 32 bytes (its first 64 elements: words 0-15 of every vector,
  // scales 0-1 in lanes 0-7), which then costs half (K = 576, SmolLM2's width, ends on one).
  const auto step = [&](size_t r, auto w, auto w1, size_t i) {
    constexpr bool kFull = sizeof(w) == 64;
    const auto decode = [&](auto idx) {  // vpermw on 16 words reads index bits 0-3
      if constexpr (kFull) return _mm512_permutexvar_epi16(idx, table);
      else return _mm256_permutexvar_epi16(idx, _mm512_castsi512_si256(table));
    };
    const auto high_nibbles = [](auto v) {
      if constexpr (kFull) return _mm512_srli_epi16(v, 4);
      else return _mm256_srli_epi16(v, 4);
    };
    const decltype(w) wv[4] = {decode(w), decode(high_nibbles(w)), decode(w1), decode(high_nibbles(w1))};
    const __m512 s = _mm512_permutexvar_ps(
        spread, _mm512_castps128_ps512(_mm_loadu_ps(sc + r * row_scales + 4 * i)));
    for (size_t m = 0; m < MR; ++m) {
      const uint16_t* x = xw + m * xw_stride + i * kStep;
      __m512 p = _mm512_setzero_ps();
      if constexpr (kFull) {
        for (size_t j = 0; j < 4; ++j)
          p = _mm512_dpbf16_ps(p, (__m512bh)wv[j], (__m512bh)_mm512_loadu_si512(x + 32 * j));
      } else {
        __m256 h = _mm256_setzero_ps();
        for (size_t j = 0; j < 4; ++j)
          h = _mm256_dpbf16_ps(h, (__m256bh)wv[j], (__m256bh)_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * j)));
        p = _mm512_zextps256_ps512(h);
      }
      acc[m][r] = _mm512_fmadd_ps(p, s, acc[m][r]);
    }
  };
  const size_t last = (row_bytes - 1) / (kStep / 2);
  for (size_t i = 0; i < last; ++i)
    for (size_t r = 0; r < NR; ++r) {
      const uint8_t* c = codes + r * row_bytes + i * (kStep / 2);
      _mm_prefetch(reinterpret_cast<const char*>(c) + kGemvPrefetchL2, _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(c) + kGemvPrefetchL1, _MM_HINT_T0);
      step(r, _mm512_loadu_si512(c), _mm512_loadu_si512(c + 1), i);
    }
  const size_t n = row_bytes - last * (kStep / 2);  // 16 .. 64 bytes
  const __mmask64 all = ~__mmask64{0};
  for (size_t r = 0; r < NR; ++r) {
    const uint8_t* c = codes + r * row_bytes + last * (kStep / 2);
    if (n <= 32)
      step(r, _mm256_maskz_loadu_epi8(static_cast<__mmask32>(all >> (64 - n)), c),
           _mm256_maskz_loadu_epi8(static_cast<__mmask32>(all >> (65 - n)), c + 1), last);
    else
      step(r, _mm512_maskz_loadu_epi8(all >> (64 - n), c), _mm512_maskz_loadu_epi8(all >> (65 - n), c + 1), last);
  }
  for (size_t m = 0; m < MR; ++m) {
    if constexpr (NR == 4) _mm_storeu_ps(y + m * y_stride, SumLanes4(acc[m]));
    else y[m * y_stride] = _mm512_reduce_add_ps(acc[m][0]);
  }
}

// xr: the M × K activations rounded to BF16 (act_bf16_round_row). False (nothing written) if x'
// cannot be formed exactly (PrepareGemvX): the caller takes the per-element path.
bool GemmMxfp4Bf16(const float* xr, size_t M, size_t K, const uint8_t* codes,
                   const uint8_t* scales, size_t N, float* y, ThreadPool* pool) {
  constexpr size_t kActRowsPerCall = 4, kWeightRowsPerCall = 4;  // GemvRowsBf16's MR, NR
  // Rows are taken in blocks whose f32 scales (≤ 8 KB) are converted in one pass and stay in L1.
  constexpr size_t kBlockScales = 2048;
  thread_local std::vector<uint16_t> x_words;
  const GemvActivations xa = PrepareGemvX(xr, M, K, x_words);
  if (!xa.ok) return false;
  const size_t row_bytes = K / 2, row_scales = K / kMxBlock;
  // Whole groups of kWeightRowsPerCall (a block's leftover row would take the 1-row kernel).
  const size_t block_rows =
      std::max<size_t>(kWeightRowsPerCall, kBlockScales / row_scales / kWeightRowsPerCall * kWeightRowsPerCall);
  for_rows(N, M, K, pool, [&](size_t n0, size_t n1) {
    thread_local std::vector<float> sc;  // this thread's: no allocation per call or chunk
    sc.resize(block_rows * row_scales + 16);
    std::vector<float> row;  // MxRowGeneric's, allocated only if a row takes it
    // The rows' own prefetch runs kGemvPrefetchL2 ahead of them: here the chunk's first
    // kGemvPrefetchL2 bytes, which nothing else fetches ahead (most of a q/k/v/o chunk at SmolLM2's
    // sizes: 72 rows of 288 bytes), and each block's scales one block ahead. The first block's
    // scales go first: they are converted before any row runs.
    PrefetchL2(scales + n0 * row_scales, std::min(n1 - n0, block_rows) * row_scales);
    PrefetchL2(codes + n0 * row_bytes, std::min((n1 - n0) * row_bytes, kGemvPrefetchL2));
    for (size_t b0 = n0; b0 < n1; b0 += block_rows) {
      const size_t rows = std::min(block_rows, n1 - b0);
      if (b0 + rows < n1)
        PrefetchL2(scales + (b0 + rows) * row_scales, std::min(block_rows, n1 - b0 - rows) * row_scales);
      const bool all_fit = ScalesToF32(scales + b0 * row_scales, rows * row_scales, xa.t, sc.data());
      const auto run = [&](auto mr, auto nr, size_t r, size_t m) {
        GemvRowsBf16<decltype(mr)::value, decltype(nr)::value>(
            codes + (b0 + r) * row_bytes, K, sc.data() + r * row_scales,
            xa.words + m * xa.stride, xa.stride, y + m * N + b0 + r, N);
      };
      size_t r = 0;
      if (M == 1)
        for (; r + kWeightRowsPerCall <= rows; r += kWeightRowsPerCall)
          run(std::integral_constant<size_t, 1>{}, std::integral_constant<size_t, kWeightRowsPerCall>{}, r, 0);
      for (; r < rows; ++r) {
        size_t m = 0;
        for (; m + kActRowsPerCall <= M; m += kActRowsPerCall)
          run(std::integral_constant<size_t, kActRowsPerCall>{}, std::integral_constant<size_t, 1>{}, r, m);
        for (; m < M; ++m) run(std::integral_constant<size_t, 1>{}, std::integral_constant<size_t, 1>{}, r, m);
      }
      if (all_fit) continue;
      // The rows with a scale ScalesToF32 zeroed (their kernel results are finite garbage).
      for (r = 0; r < rows; ++r) {
        const float* s = sc.data() + r * row_scales;
        if (std::find(s, s + row_scales, 0.0f) != s + row_scales)
          MxRowGeneric(xr, M, K, codes, scales, N, b0 + r, y, row);
      }
    }
  });
  return true;
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

// ---- W4A8's activations ----

// e4m3_to_f32(e4m3_from_f32(v)) (saturating, RNE) without the generic codec's branches. E4M3's
// normals keep 3 mantissa bits, so from 2^-6 up the f32 bits are rounded at bit 20 (half minus one
// plus the kept bit: ties to even) and cut; below 2^-6 the grid is the fixed step 2^-9, the ulp of
// 2^14, so (a + 2^14) − 2^14 rounds there with the FPU's ties to even. |v| is first capped at 480
// (everything from 464 up saturates to 448 anyway), which keeps the rounding add from carrying into
// the exponent of huge values. NaN gives the quiet NaN with v's sign, as the codec's decode does.
HWY_INLINE hn::Vec<DF> E4m3Values(hn::Vec<DF> v) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const auto sign = hn::And(hn::BitCast(du, v), hn::Set(du, 0x80000000u));
  const auto a = hn::Min(hn::Abs(v), hn::Set(df, 480.0f));
  const auto bits = hn::BitCast(du, a);
  const auto kept = hn::And(hn::ShiftRight<20>(bits), hn::Set(du, 1u));
  const auto normal = hn::BitCast(
      df, hn::And(hn::Add(hn::Add(bits, hn::Set(du, 0x7FFFFu)), kept), hn::Set(du, 0xFFF00000u)));
  const auto step = hn::Set(df, 16384.0f);
  const auto subnormal = hn::Sub(hn::Add(a, step), step);
  const auto q = hn::Min(hn::IfThenElse(a < hn::Set(df, 0x1p-6f), subnormal, normal), hn::Set(df, 448.0f));
  const auto quiet_nan = hn::BitCast(df, hn::Or(hn::Set(du, 0x7FC00000u), sign));
  return hn::IfThenElse(hn::IsNaN(v), quiet_nan, hn::BitCast(df, hn::Or(hn::BitCast(du, q), sign)));
}

void ActFp8Codes(const float* x, size_t M, size_t K, float static_scale, float* q, float* row_scales) {
  const DF df;
  const size_t L = hn::Lanes(df);
  for (size_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    float* qr = q + m * K;
    float s = static_scale;
    if (!(s > 0.0f)) {  // per-token: amax over the row, NaN skipped as std::max skips it
      auto vmax = hn::Zero(df);
      size_t k = 0;
      for (; k + L <= K; k += L) {
        const auto a = hn::Abs(hn::LoadU(df, xr + k));
        vmax = hn::Max(vmax, hn::IfThenZeroElse(hn::IsNaN(a), a));
      }
      float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
      for (; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
      s = amax > 0.0f ? amax / 448.0f : 1.0f;
    }
    row_scales[m] = s;
    const auto vs = hn::Set(df, s);
    size_t k = 0;
    for (; k + L <= K; k += L) hn::StoreU(E4m3Values(hn::Div(hn::LoadU(df, xr + k), vs)), df, qr + k);
    for (; k < K; ++k) qr[k] = e4m3_to_f32(e4m3_from_f32(xr[k] / s));
  }
}

// ---- the GEMMs ----

void GemmF32(const float* x, size_t M, size_t K, const float* w, size_t N, float* y,
             ThreadPool* pool) {
  for_rows(N, M, K, pool, [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n)
      for (size_t m = 0; m < M; ++m) y[m * N + n] = Dot(w + n * K, x + m * K, K);
  });
}

void GemmBf16(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y,
              ThreadPool* pool) {
  for_rows(N, M, K, pool, [&](size_t n0, size_t n1) {
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
  // W4A16 consumes the activations rounded to BF16 (gemm.h), as the reference does. The caller
  // thread's scratch (its capacity kept across a decode step's calls); the pool's threads read it
  // through xr, never by name (a thread_local named there would be their own).
  thread_local std::vector<float> xr_storage;
  xr_storage.resize(M * K);
  const float* xr = xr_storage.data();
  for (size_t m = 0; m < M; ++m) act_bf16_round_row(x + m * K, K, xr_storage.data() + m * K);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if (cpu_has_avx512_bf16() && GemmMxfp4Bf16(xr, M, K, codes, scales, N, y, pool)) return;
#endif
  for_rows(N, M, K, pool, [&](size_t n0, size_t n1) {
    std::vector<float> row;
    for (size_t n = n0; n < n1; ++n) MxRowGeneric(xr, M, K, codes, scales, N, n, y, row);
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
HWY_EXPORT(ActFp8Codes);

void gemm_f32(const float* x, size_t M, size_t K, const float* w, size_t N, float* y,
              ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(GemmF32)(x, M, K, w, N, y, pool);
}

void gemm_bf16(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y,
               ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(GemmBf16)(x, M, K, w, N, y, pool);
}

void act_fp8_codes(const float* x, size_t M, size_t K, float static_scale, float* q,
                   float* row_scales) {
  HWY_DYNAMIC_DISPATCH(ActFp8Codes)(x, M, K, static_scale, q, row_scales);
}

void gemm_mxfp4(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
                size_t N, float* y, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(GemmMxfp4)(x, M, K, codes, scales, N, y, pool);
}

}  // namespace mxq
#endif  // HWY_ONCE
