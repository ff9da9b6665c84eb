// MXFP4 quantize / dequantize on NVIDIA GPUs (sm_80, sm_90a): see mxq/kernels/cuda/mx_convert.h.
//
// Both kernels are memory-bound streams: a 14336 x 4096 bf16 tensor is 117 MB in and 31 MB out, so
// the work per element must stay at a few dozen instructions and every access must be coalesced.
//
// Thread layout. The unit of work is a quarter of an MX block: 8 consecutive elements.
//   x    : 8 bf16 = one 16-byte load (two for f32)
//   codes: 8 nibbles = one 32-bit word
//   scale: one byte per MX block, written (quantize) by the block's first lane
// A CTA of 256 threads owns a tile of kUnroll x 256 consecutive quarter-blocks; thread t handles
// quarter-blocks u * 256 + t of its tile, u = 0 .. kUnroll-1. So each load and store instruction
// of a warp covers one contiguous span (512 bytes of bf16, 128 bytes of codes), and a thread has
// kUnroll independent loads in flight before it touches the first: one 16-byte load per thread (the
// first version) kept too few bytes in flight for HBM3 and reached ~70% of the copy bandwidth.
// Lanes 4k .. 4k+3 of a warp hold one MX block and combine amax (and the mse errors) with two
// __shfl_xor steps, so a block never touches shared memory.
//
// Every numeric decision comes from mxq/format.h, the same constexpr functions the references call.
// This file is compiled with --fmad=false: the mse error of a candidate whose q * 2^s overflows to
// Inf is defined by the separately rounded product, which an FMA would not reproduce.
#include "mxq/kernels/cuda/mx_convert.h"

#include "mxq/format_ref.h"  // blocks_of

#include <cstdint>
#include <type_traits>

namespace mxq {
namespace {

constexpr int kThreads = 256;                                   // 8 warps
constexpr int kElemsPerThread = 8;                              // per quarter-block
constexpr int kThreadsPerBlock = kMxBlock / kElemsPerThread;    // 4 lanes per MX block

// Quarter-blocks per thread: 4 x 16 B of bf16 in flight per quantize thread (~96 KB per SM at the
// 1536 threads that 38 registers allow). Benchmark builds may override these to compare depths; the
// defaults are the best of 2/4/8 (quantize) and 4/8/16 (dequantize) measured on an H100
// (docs/BENCHMARKS.md).
#ifndef MXQ_CUDA_QUANTIZE_UNROLL
#define MXQ_CUDA_QUANTIZE_UNROLL 4
#endif
#ifndef MXQ_CUDA_DEQUANTIZE_UNROLL
#define MXQ_CUDA_DEQUANTIZE_UNROLL 4
#endif
constexpr int kQuantizeUnroll = MXQ_CUDA_QUANTIZE_UNROLL;
constexpr int kDequantizeUnroll = MXQ_CUDA_DEQUANTIZE_UNROLL;

// ---------------------------------------------------------------------------------------------
// Element loads and stores. "vec": all 8 elements lie inside [0, n) and the pointer is 16-byte
// aligned, so whole 16-byte vectors move; otherwise elements move one by one and the ones at or past
// n read as +0 (the references' padding) and are not written.
// ---------------------------------------------------------------------------------------------

// bf16 pairs live in 32-bit words little-endian: element 2k in the low half.
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }

// The raw bits of one quarter-block, loaded first and widened to float32 only when processed, so
// that a thread's kUnroll loads stay in flight together in few registers (4 per bf16 quarter).
template <typename T> struct Quarter;
template <> struct Quarter<bf16> { uint4 w; };
template <> struct Quarter<float> { uint4 w[2]; };

// x is read exactly once: the .cs (evict-first) hint keeps it from pushing codes out of L2.
__device__ __forceinline__ void load_quarter_vec(const bf16* x, size_t i0, Quarter<bf16>& q) {
  q.w = __ldcs(reinterpret_cast<const uint4*>(x + i0));
}
__device__ __forceinline__ void load_quarter_vec(const float* x, size_t i0, Quarter<float>& q) {
  q.w[0] = __ldcs(reinterpret_cast<const uint4*>(x + i0));
  q.w[1] = __ldcs(reinterpret_cast<const uint4*>(x + i0) + 1);
}
// Element by element; elements at or past n read as +0 (the references' padding).
__device__ __forceinline__ void load_quarter_any(const bf16* x, size_t i0, size_t n, Quarter<bf16>& q) {
  uint32_t h[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) h[k] = i0 + k < n ? x[i0 + k].bits : 0u;
  q.w = make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16);
}
__device__ __forceinline__ void load_quarter_any(const float* x, size_t i0, size_t n, Quarter<float>& q) {
  uint32_t f[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) f[k] = i0 + k < n ? __float_as_uint(x[i0 + k]) : 0u;
  q.w[0] = make_uint4(f[0], f[1], f[2], f[3]);
  q.w[1] = make_uint4(f[4], f[5], f[6], f[7]);
}

__device__ __forceinline__ void unpack(const Quarter<bf16>& q, float (&v)[8]) {
  v[0] = bf16_lo(q.w.x); v[1] = bf16_hi(q.w.x); v[2] = bf16_lo(q.w.y); v[3] = bf16_hi(q.w.y);
  v[4] = bf16_lo(q.w.z); v[5] = bf16_hi(q.w.z); v[6] = bf16_lo(q.w.w); v[7] = bf16_hi(q.w.w);
}
__device__ __forceinline__ void unpack(const Quarter<float>& q, float (&v)[8]) {
  v[0] = __uint_as_float(q.w[0].x); v[1] = __uint_as_float(q.w[0].y);
  v[2] = __uint_as_float(q.w[0].z); v[3] = __uint_as_float(q.w[0].w);
  v[4] = __uint_as_float(q.w[1].x); v[5] = __uint_as_float(q.w[1].y);
  v[6] = __uint_as_float(q.w[1].z); v[7] = __uint_as_float(q.w[1].w);
}

__device__ __forceinline__ void store8(float* y, size_t i0, size_t n, bool vec, const float (&v)[8]) {
  if (vec) {
    reinterpret_cast<float4*>(y + i0)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(y + i0)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (i0 + k < n) y[i0 + k] = v[k];
  }
}

// Dequantized values are exact in bf16 (two significant bits, float32's exponent range, the
// smallest 2^-128 above bf16's 2^-133 ulp), so the rounding in bf16_from_f32 never fires.
__device__ __forceinline__ void store8(bf16* y, size_t i0, size_t n, bool vec, const float (&v)[8]) {
  if (vec) {
    // Exact values: bf16_from_f32 is the top half of the float32 bits (its NaN 0x7FC00000 and
    // Inf keep theirs too), so one byte permute packs two elements.
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = __byte_perm(f32_bits(v[2 * k]), f32_bits(v[2 * k + 1]), 0x7632);
    *reinterpret_cast<uint4*>(y + i0) = make_uint4(w[0], w[1], w[2], w[3]);
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (i0 + k < n) y[i0 + k] = bf16_from_f32(v[k]);
  }
}

// Max / sum over the 4 lanes of one MX block (lanes 4k .. 4k+3); every lane of the warp must call.
__device__ __forceinline__ uint32_t block_max(uint32_t a) {
  a = max(a, __shfl_xor_sync(0xFFFFFFFFu, a, 1));
  return max(a, __shfl_xor_sync(0xFFFFFFFFu, a, 2));
}
__device__ __forceinline__ uint64_t block_sum(uint64_t e) {
  e += __shfl_xor_sync(0xFFFFFFFFu, static_cast<unsigned long long>(e), 1);
  return e + __shfl_xor_sync(0xFFFFFFFFu, static_cast<unsigned long long>(e), 2);
}

// ---------------------------------------------------------------------------------------------
// Quantize: x [n] -> codes [ceil(n/2)], scales [ceil(n/32)].
// Grid: ceil(quarter-blocks / (kQuantizeUnroll * kThreads)) CTAs, quarter-blocks = ceil(n/32) * 4.
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ void store_quarter(uint32_t word, int s, bool block_bad, size_t i0,
                                              size_t n, uint8_t* __restrict__ codes,
                                              bool codes_aligned, uint8_t* __restrict__ scales);

// One quarter-block whose elements (padding zeros included) are v, starting at element i0. Every lane
// of the warp must call (the block reductions shuffle); lanes past n compute on zeros and write
// nothing.
template <ScaleRule kRule, TieRule kTies>
__device__ __forceinline__ void quantize_quarter(float (&v)[kElemsPerThread], size_t i0, size_t n,
                                                 uint8_t* __restrict__ codes, bool codes_aligned,
                                                 uint8_t* __restrict__ scales, NonFinite nonfinite,
                                                 unsigned long long* __restrict__ first_bad) {

  // Block amax on the magnitude bits: for non-negative floats the unsigned order of the bits is the
  // numeric order, and NaN/Inf bits lie above every finite one, so one integer max per element finds
  // amax and whether the block holds a non-finite value (2 instructions, no compare-and-select).
  uint32_t amax_bits = 0;
#pragma unroll
  for (int k = 0; k < kElemsPerThread; ++k) amax_bits = max(amax_bits, f32_bits(v[k]) & 0x7FFFFFFFu);
  amax_bits = block_max(amax_bits);
  const bool block_bad = amax_bits >= 0x7F800000u;
  float amax = f32_from_bits(amax_bits);
  if (block_bad) {
    // Either policy stores scale 0xFF and zero codes; the rest of the block's arithmetic runs on
    // zeros so that no lane leaves the shuffles below.
    if (nonfinite == NonFinite::error && first_bad != nullptr) {
#pragma unroll
      for (int k = kElemsPerThread - 1; k >= 0; --k)
        if (!f32_is_finite(v[k])) atomicMin(first_bad, static_cast<unsigned long long>(i0 + k));
    }
    amax = 0.0f;
#pragma unroll
    for (int k = 0; k < kElemsPerThread; ++k) v[k] = 0.0f;
  }

  // 8 codes -> 4 bytes -> one 32-bit word (element i0 in the low nibble of the lowest byte).
  // mxfp4_encode(x, s, ties) is e2m1_from_scaled(x * 2^-s, ties).
  int s = 0;
  uint32_t word = 0;
  if constexpr (kRule == ScaleRule::mse) {
    // mxfp4_mse_scale_exp, split over the block's 4 lanes: each lane sums its 8 elements' integer
    // errors per candidate (mxfp4_mse_element_error_int, equal to format.h's term), then the exact
    // sums are added across lanes (any order gives the same total). Padding zeros add 0 to every
    // candidate. The codes of each candidate are packed as they are computed, and the winner's
    // word is kept, so no element is encoded a fourth time.
    const int centre = mx_scale_exp(amax, ScaleRule::ocp_floor, kMxE2M1);
    const int amax_log2 = f32_floor_log2(amax);
    // The float64 error path below equals mxfp4_mse_error_units inside the kernel's domain, where
    // |d| <= |x| <= amax (0 is a grid point nearer than any other, a saturated q is below |x|, and
    // d = x - q·2^sc is exact: it is a multiple of x's ulp no wider than x). It needs
    // amax_log2 in [-106, 126]: then every candidate sc lies in [-109, 125], so 0.5·2^sc and
    // 6·2^sc are normal and finite (no overflowing candidate, whose d is -Inf), and a zero or
    // subnormal d, which the bit construction reads as a value below 1, truly contributes 0
    // (|d|·2^(20 - amax_log2) < 2^(-106 - amax_log2) <= 1). Blocks outside (tiny, or near FLT_MAX)
    // take the integer form; the branch is uniform over a block's 4 lanes.
    const bool fast = amax_log2 >= -106 && amax_log2 <= 126;
    s = centre;
    uint64_t best_err = ~uint64_t{0};
#pragma unroll
    for (int c = 0; c < kMseCandidates; ++c) {
      const int sc = mx_mse_candidate(centre, c);
      const float inv_scale = pow2f(-sc), scale = pow2f(sc);
      uint64_t err = 0;
      uint32_t cand_word = 0;
      if (fast) {
        // |d| = ||x| - |q|·2^sc|, exact (see above), with |q|·2^sc built from the code's bits;
        // t = |d|·2^(20 - amax_log2) as a float64 built from |d|'s bits (exponent rebased by
        // 896 + 20 - amax_log2), t² exact (48-bit significand), and RD(t² + 2^52) =
        // 2^52 + floor(t²) = 0x4330000000000000 + the error units, added as an integer.
        const uint32_t half_bits = 0x3F000000u + (static_cast<uint32_t>(sc) << 23);  // 0.5·2^sc
        const uint32_t t_bias = static_cast<uint32_t>(896 + 20 - amax_log2) << 20;
#pragma unroll
        for (int k = 0; k < kElemsPerThread; ++k) {
          const uint8_t code = e2m1_from_scaled_int(v[k] * inv_scale, kTies);
          cand_word |= uint32_t{code} << (4 * k);
          const uint32_t m = code & 0x7u;
          const uint32_t q_bits = m >= 2 ? (m << 22) + half_bits : (m != 0 ? half_bits : 0u);
          const uint32_t d_mag = f32_bits(fabsf(v[k]) - f32_from_bits(q_bits)) & 0x7FFFFFFFu;
          const double t = __hiloint2double(static_cast<int>((d_mag >> 3) + t_bias),
                                            static_cast<int>(d_mag << 29));
          err += static_cast<uint64_t>(__double_as_longlong(__dadd_rd(__dmul_rn(t, t), 0x1p52)));
        }
        err -= uint64_t{kElemsPerThread} * 0x4330000000000000ull;
      } else {
#pragma unroll
        for (int k = 0; k < kElemsPerThread; ++k) {
          const uint8_t code = e2m1_from_scaled_int(v[k] * inv_scale, kTies);
          cand_word |= uint32_t{code} << (4 * k);
          err += mxfp4_mse_error_units(v[k] - e2m1_to_f32_int(code) * scale, amax_log2);
        }
      }
      err = block_sum(err);
      if (err < best_err) { best_err = err; s = sc; word = cand_word; }
    }
    // An all-zero block: every candidate ties at 0 and the first (centre = kScaleExpMin) won; the
    // codes of zeros do not depend on the scale.
    if (!(amax > 0.0f)) s = kScaleExpMin;
  } else {
    s = kRule == ScaleRule::ceil ? mx_scale_exp_ceil_int(amax) : mx_scale_exp(amax, kRule, kMxE2M1);
    const float inv_scale = pow2f(-s);
#pragma unroll
    for (int k = 0; k < kElemsPerThread; k += 2)
      word |= uint32_t{e2m1_pack(e2m1_from_scaled_int(v[k] * inv_scale, kTies),
                                 e2m1_from_scaled_int(v[k + 1] * inv_scale, kTies))}
              << (4 * k);
  }
  store_quarter(word, s, block_bad, i0, n, codes, codes_aligned, scales);
}

// Writes one quarter-block's code word and (from the block's first lane) its scale byte.
__device__ __forceinline__ void store_quarter(uint32_t word, int s, bool block_bad, size_t i0,
                                              size_t n, uint8_t* __restrict__ codes,
                                              bool codes_aligned, uint8_t* __restrict__ scales) {
  const bool full = i0 + kElemsPerThread <= n;
  // Padding elements keep code 0, as in the reference (toward_zero would encode +0 as 0x8).
  if (!full) word &= i0 < n ? (1u << (4 * (n - i0))) - 1u : 0u;
  if (block_bad) word = 0;

  if (i0 >= n) return;  // past the end: lanes of a short last block that hold only padding
  uint8_t* out = codes + i0 / 2;
  if (full && codes_aligned) {
    *reinterpret_cast<uint32_t*>(out) = word;
  } else {
    // Byte j holds elements 2j, 2j+1: it exists while 2j < n (codes has ceil(n/2) bytes).
#pragma unroll
    for (int j = 0; j < kElemsPerThread / 2; ++j)
      if (i0 + 2 * j < n) out[j] = static_cast<uint8_t>(word >> (8 * j));
  }
  if (threadIdx.x % kThreadsPerBlock == 0)
    scales[i0 / kMxBlock] = block_bad ? kE8M0Nan : static_cast<uint8_t>(s + kE8M0Bias);
}

// quantize_quarter for bf16 input under TieRule::nearest_even and the closed-form rules, on the
// raw bf16 pairs: the amax is a per-half 16-bit max of the magnitude bits (4 + 3 instructions for
// 8 elements instead of 8 unpacks, 8 masks and 4 maxes), and the codes come two at a time from
// mxfp4_encode_bf16x2_ne (checked against e2m1_from_scaled on every bf16 and scale on the CPU),
// packed with three byte permutes. Padding elements are +0 and encode as 0, like the reference's.
template <ScaleRule kRule>
__device__ __forceinline__ void quantize_quarter_bf16_ne(const uint4& w, size_t i0, size_t n,
                                                         uint8_t* __restrict__ codes,
                                                         bool codes_aligned,
                                                         uint8_t* __restrict__ scales,
                                                         NonFinite nonfinite,
                                                         unsigned long long* __restrict__ first_bad) {
  const uint32_t m01 = u16x2_max(w.x & 0x7FFF7FFFu, w.y & 0x7FFF7FFFu);
  const uint32_t m23 = u16x2_max(w.z & 0x7FFF7FFFu, w.w & 0x7FFF7FFFu);
  const uint32_t m = u16x2_max(m01, m23);
  uint32_t amax_bits = max(m & 0xFFFFu, m >> 16) << 16;
  amax_bits = block_max(amax_bits);
  const bool block_bad = amax_bits >= 0x7F800000u;
  if (block_bad) {
    if (nonfinite == NonFinite::error && first_bad != nullptr) {
      float v[kElemsPerThread];
      unpack(Quarter<bf16>{w}, v);
#pragma unroll
      for (int k = kElemsPerThread - 1; k >= 0; --k)
        if (!f32_is_finite(v[k])) atomicMin(first_bad, static_cast<unsigned long long>(i0 + k));
    }
    store_quarter(0u, 0, true, i0, n, codes, codes_aligned, scales);
    return;
  }
  const float amax = f32_from_bits(amax_bits);
  const int s = kRule == ScaleRule::ceil ? mx_scale_exp_ceil_int(amax)
                                         : mx_scale_exp(amax, kRule, kMxE2M1);
  const uint32_t inv2 = bf16x2_pow2_neg(s);
  constexpr bool kClamp = kRule == ScaleRule::ocp_floor;  // ceil: <= 6, even: < 7 (mx_convert_math.h)
  const uint32_t b0 = mxfp4_encode_bf16x2_ne(w.x, inv2, kClamp);
  const uint32_t b1 = mxfp4_encode_bf16x2_ne(w.y, inv2, kClamp);
  const uint32_t b2 = mxfp4_encode_bf16x2_ne(w.z, inv2, kClamp);
  const uint32_t b3 = mxfp4_encode_bf16x2_ne(w.w, inv2, kClamp);
  const uint32_t word = __byte_perm(__byte_perm(b0, b1, 0x0040), __byte_perm(b2, b3, 0x0040), 0x5410);
  store_quarter(word, s, false, i0, n, codes, codes_aligned, scales);
}

template <ScaleRule kRule, TieRule kTies, typename T>
__global__ void __launch_bounds__(kThreads)
mxfp4_quantize_kernel(const T* __restrict__ x, size_t n, bool x_aligned, uint8_t* __restrict__ codes,
                      bool codes_aligned, uint8_t* __restrict__ scales, NonFinite nonfinite,
                      unsigned long long* __restrict__ first_bad) {
  // Quarter-block u of this thread starts at element (tile + u * kThreads + threadIdx.x) * 8.
  const size_t tile = size_t{blockIdx.x} * kQuantizeUnroll * kThreads;
  const size_t tile_end = (tile + size_t{kQuantizeUnroll} * kThreads) * kElemsPerThread;

  // All loads first: kUnroll independent 16-byte loads per thread in flight at once. The whole
  // tile takes the vector path or none of it does (only the last CTA, or a misaligned x, does not).
  Quarter<T> raw[kQuantizeUnroll];
  if (x_aligned && tile_end <= n) {
#pragma unroll
    for (int u = 0; u < kQuantizeUnroll; ++u)
      load_quarter_vec(x, (tile + u * kThreads + threadIdx.x) * kElemsPerThread, raw[u]);
  } else {
#pragma unroll
    for (int u = 0; u < kQuantizeUnroll; ++u)
      load_quarter_any(x, (tile + u * kThreads + threadIdx.x) * kElemsPerThread, n, raw[u]);
  }

#pragma unroll
  for (int u = 0; u < kQuantizeUnroll; ++u) {
    const size_t i0 = (tile + u * kThreads + threadIdx.x) * kElemsPerThread;
    if constexpr (std::is_same_v<T, bf16> && kTies == TieRule::nearest_even &&
                  kRule != ScaleRule::mse) {
      quantize_quarter_bf16_ne<kRule>(raw[u].w, i0, n, codes, codes_aligned, scales, nonfinite,
                                      first_bad);
    } else {
      float v[kElemsPerThread];
      unpack(raw[u], v);
      quantize_quarter<kRule, kTies>(v, i0, n, codes, codes_aligned, scales, nonfinite, first_bad);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dequantize: codes [ceil(n/2)], scales [ceil(n/32)] -> y [n].
// Grid: ceil(quarter-blocks / (kDequantizeUnroll * kThreads)) CTAs, quarter-blocks = ceil(n/8).
// ---------------------------------------------------------------------------------------------

template <typename T>
__global__ void __launch_bounds__(kThreads)
mxfp4_dequantize_kernel(const uint8_t* __restrict__ codes, bool codes_aligned,
                        const uint8_t* __restrict__ scales, size_t n, T* __restrict__ y,
                        bool y_aligned) {
  const size_t tile = size_t{blockIdx.x} * kDequantizeUnroll * kThreads;
  const size_t tile_end = (tile + size_t{kDequantizeUnroll} * kThreads) * kElemsPerThread;

  // All loads first: a code word and a scale byte per quarter-block. A warp's code loads cover 128
  // contiguous bytes; the 4 lanes of a block read the same scale byte, which one L1 sector serves.
  uint32_t words[kDequantizeUnroll];
  uint8_t scale_bytes[kDequantizeUnroll];
  if (codes_aligned && tile_end <= n) {
#pragma unroll
    for (int u = 0; u < kDequantizeUnroll; ++u) {
      const size_t i0 = (tile + u * kThreads + threadIdx.x) * kElemsPerThread;
      words[u] = __ldcs(reinterpret_cast<const unsigned int*>(codes + i0 / 2));
      scale_bytes[u] = __ldg(scales + i0 / kMxBlock);
    }
  } else {
#pragma unroll
    for (int u = 0; u < kDequantizeUnroll; ++u) {
      const size_t i0 = (tile + u * kThreads + threadIdx.x) * kElemsPerThread;
      words[u] = 0;
      scale_bytes[u] = i0 < n ? __ldg(scales + i0 / kMxBlock) : uint8_t{0};
#pragma unroll
      for (int j = 0; j < kElemsPerThread / 2; ++j)
        if (i0 + 2 * j < n) words[u] |= uint32_t{codes[i0 / 2 + j]} << (8 * j);
    }
  }

#pragma unroll
  for (int u = 0; u < kDequantizeUnroll; ++u) {
    const size_t i0 = (tile + u * kThreads + threadIdx.x) * kElemsPerThread;
    if (i0 >= n) break;  // later quarter-blocks of this thread lie further out
    const float scale = e8m0_to_f32(scale_bytes[u]);
    // A NaN scale decodes to the quiet NaN 0x7FC00000: IEEE leaves the payload of NaN * x open, the
    // GPU returns 0x7FFFFFFF and x86 returns the NaN operand, which is what the reference stores.
    float v[kElemsPerThread];
#pragma unroll
    for (int k = 0; k < kElemsPerThread; ++k) {
      const uint8_t code = static_cast<uint8_t>((words[u] >> (4 * k)) & 0xFu);
      v[k] = scale_bytes[u] == kE8M0Nan ? __uint_as_float(0x7FC00000u)
                                        : e2m1_to_f32_int(code) * scale;
    }
    store8(y, i0, n, i0 + kElemsPerThread <= n && y_aligned, v);
  }
}

// ---------------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------------

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <ScaleRule kRule, TieRule kTies, typename T>
void launch_quantize(const void* x, size_t n, uint8_t* codes, uint8_t* scales, NonFinite nonfinite,
                     unsigned long long* first_bad, cudaStream_t stream) {
  const size_t quarters = blocks_of(n, kMxBlock) * kThreadsPerBlock;
  const unsigned grid = static_cast<unsigned>(blocks_of(quarters, size_t{kQuantizeUnroll} * kThreads));
  mxfp4_quantize_kernel<kRule, kTies, T><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(x), n, aligned(x, 16), codes, aligned(codes, 4), scales, nonfinite,
      first_bad);
}

template <ScaleRule kRule, TieRule kTies>
void dispatch_dtype(const void* x, ElemType xt, size_t n, uint8_t* codes, uint8_t* scales,
                     NonFinite nonfinite, unsigned long long* first_bad, cudaStream_t stream) {
  if (xt == ElemType::bf16)
    launch_quantize<kRule, kTies, bf16>(x, n, codes, scales, nonfinite, first_bad, stream);
  else
    launch_quantize<kRule, kTies, float>(x, n, codes, scales, nonfinite, first_bad, stream);
}

template <ScaleRule kRule>
void dispatch_ties(const void* x, ElemType xt, size_t n, uint8_t* codes, uint8_t* scales,
                     const MxOptions& opt, unsigned long long* first_bad, cudaStream_t stream) {
  if (opt.ties == TieRule::nearest_even)
    dispatch_dtype<kRule, TieRule::nearest_even>(x, xt, n, codes, scales, opt.nonfinite, first_bad,
                                                  stream);
  else
    dispatch_dtype<kRule, TieRule::toward_zero>(x, xt, n, codes, scales, opt.nonfinite, first_bad,
                                                 stream);
}

}  // namespace

cudaError_t mxfp4_quantize_cuda(const void* x, ElemType xt, size_t n, uint8_t* codes,
                                uint8_t* scales, const MxOptions& opt,
                                unsigned long long* first_bad, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (opt.scale) {
    case ScaleRule::ocp_floor:
      dispatch_ties<ScaleRule::ocp_floor>(x, xt, n, codes, scales, opt, first_bad, stream);
      break;
    case ScaleRule::ceil:
      dispatch_ties<ScaleRule::ceil>(x, xt, n, codes, scales, opt, first_bad, stream);
      break;
    case ScaleRule::even:
      dispatch_ties<ScaleRule::even>(x, xt, n, codes, scales, opt, first_bad, stream);
      break;
    case ScaleRule::mse:
      dispatch_ties<ScaleRule::mse>(x, xt, n, codes, scales, opt, first_bad, stream);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t mxfp4_dequantize_cuda(const uint8_t* codes, const uint8_t* scales, size_t n, void* y,
                                  ElemType yt, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(
      blocks_of(blocks_of(n, kElemsPerThread), size_t{kDequantizeUnroll} * kThreads));
  if (yt == ElemType::bf16)
    mxfp4_dequantize_kernel<bf16><<<grid, kThreads, 0, stream>>>(
        codes, aligned(codes, 4), scales, n, static_cast<bf16*>(y), aligned(y, 16));
  else
    mxfp4_dequantize_kernel<float><<<grid, kThreads, 0, stream>>>(
        codes, aligned(codes, 4), scales, n, static_cast<float*>(y), aligned(y, 16));
  return cudaGetLastError();
}

}  // namespace mxq
