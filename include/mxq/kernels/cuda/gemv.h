// mxq/kernels/cuda/gemv.h — the decode / small-M W4A16 product on NVIDIA GPUs (sm_90a; sm_80
// without the cluster split):
//
//   y[M, N] = x[M, K] · dequant(W)ᵀ     x bf16, W MXFP4 (E2M1 codes, one E8M0 scale per 32 of K),
//                                       y bf16 or f32, FP32 accumulation
//
// The weights are streamed once, in a tiled layout that mxfp4_gemv_repack builds from the checkpoint
// layout (codes U8 [N, K/2], element 2i in the low nibble of byte i; scales U8 [N, K/32]) once, at
// load. Fast for M <= 32 (one pass over the weights per 32 tokens); any M is correct.
//
// The repacked layout. The kernel runs mma.m16n8k16 (BF16 in, FP32 accumulate) with the weights as
// the 16-row A operand and up to 8 tokens as the B operand ("swap AB": tokens are the small
// dimension). Rows are cut into tiles of 16 (the last padded with zero codes), K into steps of 64 (the
// last padded with zero codes when K / 32 is odd). One (tile, step) is 512 code bytes, one 16-byte
// vector per lane of a warp, lane = 4·g + t, g, t in [0, 8) x [0, 4):
//   word 0: row g,     block 2·step,     k = 8t .. 8t+7 of the block
//   word 1: row g + 8, block 2·step,     same k
//   word 2: row g,     block 2·step + 1, same k
//   word 3: row g + 8, block 2·step + 1, same k
// and inside a word the 8 elements are not nibbles: elements 2r and 2r + 1 (one bf16x2 register of
// the MMA fragment) sit at the same bits of the word's low and high halves, laid out per half so
// that their magnitude bits (E2M1 bits 0-2: m, e0, e1) land on bf16's bits 6-8 and their sign on bit
// 15 in few integer ops: pair 0 at bits 0-2 and 9 (one shift left by 6, one mask), pair 1 at 3-5 and
// 12 (shift by 3, mask), pair 2 at 6-8 and 15 (mask only), pair 3 at 10, 11, 13 and 14 (the 4 bits
// left: three shifts and masks).
// The k order inside the MMA is permuted the same way for weights and activations (thread t's
// fragment columns are the block's k = 8t .. 8t+7), so each lane reads its activations as one
// 16-byte vector per block too.
// Scales: per (tile, step) 32 bytes, 4 per g: (row g, block 2s), (row g+8, 2s), (row g, 2s+1),
// (row g+8, 2s+1); padding blocks and rows get 127 (1.0).
// The sm_80 prefill GEMM (gemm_mma_sm80.h) reads this layout too, with the same device code for the
// fragments (src/kernels/cuda/mxfp4_mma_fragments.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mxq/format.h"
#include "mxq/kernels/cpu/mx_convert.h"  // ElemType

namespace mxq {

inline constexpr size_t kGemvTileRows = 16;   // rows of W per MMA tile
inline constexpr size_t kGemvStepK = 64;      // K per lane-vector (two MX blocks)
inline constexpr size_t kGemvStepCodeBytes = 512;
inline constexpr size_t kGemvStepScaleBytes = 32;
inline constexpr uint8_t kGemvPadScale = 127;  // padding blocks decode as zeros times 1.0

MXQ_HD constexpr size_t mxfp4_gemv_tiles(size_t N) { return (N + kGemvTileRows - 1) / kGemvTileRows; }
MXQ_HD constexpr size_t mxfp4_gemv_steps(size_t K) { return (K + kGemvStepK - 1) / kGemvStepK; }
inline constexpr size_t mxfp4_gemv_code_bytes(size_t N, size_t K) {
  return mxfp4_gemv_tiles(N) * mxfp4_gemv_steps(K) * kGemvStepCodeBytes;
}
inline constexpr size_t mxfp4_gemv_scale_bytes(size_t N, size_t K) {
  return mxfp4_gemv_tiles(N) * mxfp4_gemv_steps(K) * kGemvStepScaleBytes;
}

// Where weight (n, k) lives in the repacked codes: the byte offset of its 32-bit word (n < N,
// k < K), and the bit of that word that holds bit i (0: m, 1: e0, 2: e1, 3: sign) of its E2M1
// code. The layout above, written once; the repack and its test use it.
inline constexpr size_t mxfp4_gemv_code_word(size_t n, size_t k, size_t K) {
  const size_t tile = n / kGemvTileRows, r = n % kGemvTileRows, g = r % 8, hi = r / 8;
  const size_t step = k / kGemvStepK, b = (k % kGemvStepK) / kMxBlock, t = (k % kMxBlock) / 8;
  const size_t lane = 4 * g + t, word = 2 * b + hi;
  return ((tile * mxfp4_gemv_steps(K) + step) * 32 + lane) * 16 + word * 4;
}
inline constexpr unsigned mxfp4_gemv_code_bit(size_t k, unsigned i) {
  constexpr unsigned kBit[4][4] = {{0, 1, 2, 9}, {3, 4, 5, 12}, {6, 7, 8, 15}, {10, 11, 13, 14}};
  const size_t j = k % 8;  // the element's place in its word
  return kBit[j / 2][i] + 16 * static_cast<unsigned>(j % 2);
}
// Where the scale of block kb (k in [32·kb, 32·kb + 32)) of row n lives in the repacked scales.
inline constexpr size_t mxfp4_gemv_scale_byte(size_t n, size_t kb, size_t K) {
  const size_t tile = n / kGemvTileRows, r = n % kGemvTileRows, g = r % 8, hi = r / 8;
  const size_t step = kb / 2, b = kb % 2;
  return ((tile * mxfp4_gemv_steps(K) + step) * 8 + g) * 4 + 2 * b + hi;
}

// Host memory to host memory: checkpoint codes [N, K/2] and scales [N, K/32] -> codes_rp
// [mxfp4_gemv_code_bytes], scales_rp [mxfp4_gemv_scale_bytes], padding as described above. K must
// be a multiple of 32 (throws mxq::Error otherwise). Called once per weight at load time.
void mxfp4_gemv_repack(const uint8_t* codes, const uint8_t* scales, size_t N, size_t K,
                       uint8_t* codes_rp, uint8_t* scales_rp);

// y [M, N] (yt: bf16 or f32, row-major) = x [M, K] · Wᵀ on `stream`, with codes_rp / scales_rp the
// repacked weights in device memory. x must be 16-byte aligned and K a multiple of 32, at most 2^26;
// y is written whole (no accumulation into it). row_scales: null, or [M] f32 in device memory, and
// then each output is the f32 sum times its row's scale (one f32 multiply, before a bf16 y's
// rounding: W4A8's per-token scale). Enqueues one launch per 32 rows of x and returns the
// first launch error (cudaErrorInvalidValue for a bad K, alignment or type); does not synchronize.
// On sm_90 the launches use programmatic dependent launch: a launch may start while the kernel
// before it in the stream still runs and stream weights, but it reads x and row_scales and writes y
// only once that kernel has completed (stream order as usual for everything the caller sees).
//
// Work split: each CTA (8 warps) owns 1-8 row tiles (up to 16 with two per warp: at 25-32 tokens,
// and at 9-24 on large matrices) and a range of K steps; its warps take the tiles' steps in turn
// (one warp per tile, or pair of tiles, when it owns 8 or 16) and reduce their FP32 partials
// through shared memory. Where K is long and N
// leaves CTA slots free, a cluster of 2, 4 or 8 CTAs splits K and the partials meet in the first
// CTA's shared memory over the cluster's distributed shared memory: no FP32 partials in global
// memory, one launch, no second pass. The split is chosen per launch by a cost model from M, N, K,
// the SM count and the kernel's occupancy (plan_gemv in the source).
cudaError_t mxfp4_gemv_w4a16_cuda(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                                  const uint8_t* scales_rp, size_t N, void* y, ElemType yt,
                                  cudaStream_t stream, const float* row_scales = nullptr);

}  // namespace mxq
