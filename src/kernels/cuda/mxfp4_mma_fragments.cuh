// mxfp4_mma_fragments.cuh — the device pieces the W4A16 GEMV (gemv_w4a16.cu) and the sm_80 GEMM
// (gemm_mma_sm80.cu) share: both run mma.m16n8k16 (BF16 in, FP32 accumulate) with the weights, in
// the repacked layout of mxq/kernels/cuda/gemv.h, as the 16-row A operand, so one lane's 16-byte code
// vector and 4-byte scale word of a (16-row tile, 64-K step) widen to its A fragments the same way in
// both. The numerics (why E2M1 · 2^(e-127) enters the tensor cores exactly) are explained at the top
// of gemv_w4a16.cu. Included by those two files only: everything here is inline device code.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "mxq/format.h"
#include "mxq/kernels/cuda/mx_convert_math.h"  // bf16x2_mul

namespace mxq::mma_fragments {

inline constexpr uint32_t kBf16x2Pow126 = 0x7E807E80u;

// The bf16x2 register r (elements 2r, 2r+1 of a word's 8) as E2M1 · 2^-126: magnitude bits to bf16
// bits 6..8 (exponent LSBs and mantissa MSB), sign to bit 15, per half (layout in gemv.h): 2, 2, 1
// and 6 integer ops for r = 0..3.
template <int kR>
__device__ __forceinline__ uint32_t e2m1x2_bits(uint32_t w) {
  constexpr uint32_t kFields = 0x81C081C0u;  // bf16 bits 6-8 and 15 of both halves
  if constexpr (kR == 0) return (w << 6) & kFields;
  if constexpr (kR == 1) return (w << 3) & kFields;
  if constexpr (kR == 2) return w & kFields;
  return ((w >> 4) & 0x00C000C0u) | ((w >> 5) & 0x01000100u) | ((w << 1) & 0x80008000u);
}

// Byte i of the scale word as the bf16x2 factor 2^(e-1) (both halves): e + 126 in the exponent
// field, valid when every byte of the word is below 128 (so the add carries into no other byte).
__device__ __forceinline__ uint32_t scale_factor_folded(uint32_t sc_plus_126, int i) {
  return __byte_perm(sc_plus_126, 0u, 0x4040u + 0x0101u * static_cast<uint32_t>(i)) << 7;
}
// Byte i of the scale word as the bf16x2 2^(e-127) exactly: 2^-127 is the subnormal 0x0040, 0xFF NaN.
__device__ __forceinline__ uint32_t scale_factor_exact(uint32_t sc, int i) {
  const uint32_t e = (sc >> (8 * i)) & 0xFFu;
  const uint32_t h = e == 0 ? 0x0040u : e == kE8M0Nan ? 0x7FC0u : e << 7;
  return h * 0x00010001u;
}

// d += a · b, one m16n8k16 BF16 MMA with FP32 accumulation.
__device__ __forceinline__ void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                  uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One step (64 of K) of kTiles 16-row tiles: wq[u] = this lane's four code words of tile u (layout
// in gemv.h), sc[u] its four scale bytes, xq[b][j] the activations k = 8t .. 8t+7 of block b for
// token 8j + g, acc[u] tile u's accumulators. kFolded: every scale byte of the warp is below 128, so
// one multiply per register applies 2^126 · scale. Each (block, MMA half) widens all kTiles tiles'
// fragments, then issues their kTiles · kNT8 MMAs, which use independent accumulators.
template <int kTiles, int kNT8, bool kFolded>
__device__ __forceinline__ void tile_step(const uint4* wq, const uint32_t* sc, const uint4 (&xq)[2][kNT8],
                                          float (*acc)[kNT8][4]) {
  uint32_t factor[kTiles][4];  // (row g, block 0), (row g+8, block 0), (g, 1), (g+8, 1)
#pragma unroll
  for (int u = 0; u < kTiles; ++u)
#pragma unroll
    for (int i = 0; i < 4; ++i)
      factor[u][i] = kFolded ? scale_factor_folded(sc[u] + 0x7E7E7E7Eu, i) : scale_factor_exact(sc[u], i);
#pragma unroll
  for (int b = 0; b < 2; ++b) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t a[kTiles][4];
#pragma unroll
      for (int u = 0; u < kTiles; ++u) {
        const uint32_t w_lo = b == 0 ? wq[u].x : wq[u].z, w_hi = b == 0 ? wq[u].y : wq[u].w;  // rows g, g+8
        // Fragment A of MMA h: (row g, k pair 2h), (row g+8, 2h), (row g, 2h+1), (row g+8, 2h+1),
        // i.e. the block's k = 8t + 4h .. 8t + 4h + 3 (see gemv.h for the k permutation).
        a[u][0] = h == 0 ? e2m1x2_bits<0>(w_lo) : e2m1x2_bits<2>(w_lo);
        a[u][1] = h == 0 ? e2m1x2_bits<0>(w_hi) : e2m1x2_bits<2>(w_hi);
        a[u][2] = h == 0 ? e2m1x2_bits<1>(w_lo) : e2m1x2_bits<3>(w_lo);
        a[u][3] = h == 0 ? e2m1x2_bits<1>(w_hi) : e2m1x2_bits<3>(w_hi);
        if constexpr (!kFolded) {
#pragma unroll
          for (int r = 0; r < 4; ++r) a[u][r] = bf16x2_mul(a[u][r], kBf16x2Pow126);
        }
        a[u][0] = bf16x2_mul(a[u][0], factor[u][2 * b]);
        a[u][1] = bf16x2_mul(a[u][1], factor[u][2 * b + 1]);
        a[u][2] = bf16x2_mul(a[u][2], factor[u][2 * b]);
        a[u][3] = bf16x2_mul(a[u][3], factor[u][2 * b + 1]);
      }
#pragma unroll
      for (int u = 0; u < kTiles; ++u)
#pragma unroll
        for (int j = 0; j < kNT8; ++j) {
          const uint4& v = xq[b][j];
          mma_bf16_m16n8k16(acc[u][j], a[u], h == 0 ? v.x : v.z, h == 0 ? v.y : v.w);
        }
    }
  }
}

// tile_step with the scale path chosen per warp: one multiply per register when every scale byte of
// the warp's kTiles words is below 128, else two (tile_step's kFolded). The branch is warp-uniform.
template <int kTiles, int kNT8>
__device__ __forceinline__ void tile_step_any_scales(const uint4* wq, const uint32_t* sc,
                                                     const uint4 (&xq)[2][kNT8], float (*acc)[kNT8][4]) {
  uint32_t high = 0;
#pragma unroll
  for (int u = 0; u < kTiles; ++u) high |= sc[u] & 0x80808080u;
  if (__all_sync(0xFFFFFFFFu, high == 0))
    tile_step<kTiles, kNT8, true>(wq, sc, xq, acc);
  else
    tile_step<kTiles, kNT8, false>(wq, sc, xq, acc);
}

// Copies global -> shared (cp.async: no registers held while in flight). Codes bypass L1 (.cg):
// each byte is read once.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(
                   static_cast<unsigned>(__cvta_generic_to_shared(dst))),
               "l"(src)
               : "memory");
}
__device__ __forceinline__ void cp_async_4(void* dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(
                   static_cast<unsigned>(__cvta_generic_to_shared(dst))),
               "l"(src)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// cp_async_16 that writes 16 zero bytes instead of reading when !valid (src is then not read).
__device__ __forceinline__ void cp_async_16_or_zero(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(
                   static_cast<unsigned>(__cvta_generic_to_shared(dst))),
               "l"(src), "r"(valid ? 16u : 0u)
               : "memory");
}

}  // namespace mxq::mma_fragments
