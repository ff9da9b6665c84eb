// mxq/kernels/cuda/gemm_wgmma.h — prefill GEMMs with MXFP4 weights on Hopper's tensor cores (sm_90a):
//
//   y[M, N] = x[M, K] · W[N, K]ᵀ        (y f32 row-major; W MXFP4: codes [N, K/2], E8M0 [N, K/32])
//
//   W4A8  (gemm_mxfp4_w4a8_sm90):  x FP8 E4M3 [M, K] with a per-token f32 scale [M] (a static
//         per-tensor scale is the same array filled with one value); FP8 wgmma (QGMMA).
//   W4A16 (gemm_mxfp4_w4a16_sm90): x BF16 [M, K]; BF16 wgmma (HGMMA). The exact fallback: no
//         activation quantization.
//
// The weight is widened in registers, exactly, with its block exponent folded in relative to a base
// (blocks whose codes are all ±0 carry no value and are ignored): a block of exponent e enters the
// tensor core as E2M1 × 2^(e − base + off), which is exact while e − base ≥ −window.
//   FP8:  base per output row n and K-tile of 128 (four 32-blocks): the largest exponent of the row's
//         blocks in the tile. off = 6, window 14. E2M1 magnitudes are {1, 2, 3, 4, 6, 8, 12} · 2^−1, at
//         most two significant bits, so E2M1 · 2^j is exact in E4M3 iff its smallest non-zero value
//         2^(j−1) is at least E4M3's smallest subnormal 2^−9 (j ≥ −8) and its largest
//         6 · 2^j = 1.5 · 2^(j+2) is at most 448 = 1.75 · 2^8 (j ≤ 6); j = d + 6, d = e − base ∈ [−14, 0].
//         The tensor core sums one K-tile into a fresh accumulator (FP8 wgmma accumulates with fewer
//         mantissa bits than f32), which is then promoted, per row n, into an f32 total times
//         2^(base − 127 − off).
//   BF16: base per output row over all of K (bf16 has f32's exponent range). off = 0, window 125:
//         E2M1 · 2^d is a multiple of 2^(d−1) with at most 2 significant bits, so it is exact in bf16
//         (smallest subnormal 2^−133) for d ≥ −132 and a normal bf16 for d ≥ −125 (its smallest value
//         0.5 · 2^−125 = 2^−126); the window keeps the tensor core's weights normal. The accumulator
//         then sums the whole K in f32 and is scaled once, by 2^(base − 127), in the epilogue. (Folding
//         the exponent relative to the base also keeps E8M0 253 and 254, whose E2M1 · 2^(e − 127) would
//         overflow bf16, exact.) Real weights span far fewer than 125 binades in a row.
// The per-token activation scale (FP8) multiplies y in the epilogue.
//
// Blocks below the window are not flushed: the repack splits a base's span into passes, greedily —
// pass 0 takes the blocks within the window of the largest exponent, pass 1 the blocks within the
// window of the largest exponent left, and so on. Each pass runs the tensor core with only that
// pass's blocks non-zero and is scaled by its own base:
//   FP8:  per (row, K-tile), at most 4 passes (4 blocks); each 64-row tile of the kernel records the
//         number of passes of its K-tile (its rows' maximum), and a K-tile with two runs the tensor
//         core twice on it, promoting each pass with its base.
//   BF16: per row over all of K, at most 3 passes (pass p's base is at most 255 − 126·p and the
//         exponents are ≥ 0); each 128-row tile records its rows' maximum, and the kernel sweeps
//         the tile's whole K once per pass, adding each pass's scaled accumulator into y.
// An E8M0 of 0xFF (NaN) is its own base, whose scale is NaN, so the rows it touches come out NaN as
// in the reference.
//
// Repacked weight layout (mxfp4_sm90_repack; N padded to a multiple of 128, K to a multiple of 128
// with zero codes; KT = K-tiles):
//   codes  [N/128][KT][8][2][32][16] bytes: for the 128-row tile holding row n, K-tile kt, 16-row
//          group (n % 128) / 16, half (n % 16) / 8 and lane 4 · (n % 8) + t, the 16 bytes that thread
//          t of the warp widens into its wgmma A fragments for the tile's steps (a tile's K-tile is
//          8 KB in one piece, one bulk copy); the element order is mxfp4_sm90_code_bits'. Each 4
//          bytes are one word of 8 values: FP8, one k32 step (k 4t..4t+3 of its first half, then
//          of its second); BF16, two k16 steps (k 2t, 2t+1, 8+2t, 9+2t of each). Value v's
//          magnitude is in bits 4v..4v+2, its sign at bit 8v + 7 (v < 4) or 8(v − 4) + 3 (v ≥ 4),
//          so one PRMT on the masked word looks up 4 magnitudes (as E4M3 bytes, or as the low and
//          high bytes of bf16s) and the signs need one AND (values 0-3) or a shift and an AND
//          (values 4-7) to reach bit 7 of their byte.
//   meta   [N/128][KT][128] × 8 bytes, per (row, K-tile):
//          FP8:  4 block bytes (14 − (base − e)) << 3 | pass (the byte offset of the block's
//                widening table, and its pass) and the 4 pass bases (E8M0; 0 where unused).
//          BF16: 4 block bytes 127 − (base − e) (the exponent field of the bf16 multiplier
//                2^(−(base − e)); 0 for a block that carries no value), the row's 3 pass bases
//                (the same in every K-tile; 0 where unused) and a byte of the 4 blocks' passes
//                (2 bits each, block j at bits 2j).
//   passes FP8:  [N/64][KT]: the number of passes of a 64-row tile's K-tile (0 where every block is
//                zero).
//          BF16: [N/128]: the number of passes (K sweeps) of a 128-row tile, at least 1.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mxq/format.h"

namespace mxq {

enum class Sm90Operand { e4m3, bf16 };  // what the weight is widened to (the activation's type)

// Weight rows per CTA tile (two consumer warpgroups of 64); the repacked layout pads N to it.
inline constexpr size_t kSm90TileRows = 128;

// An MXFP4 weight in the kernels' layout, on the host (what the repack returns).
struct Mxfp4Sm90Packed {
  Sm90Operand op = Sm90Operand::e4m3;
  size_t N = 0, K = 0;
  std::vector<uint8_t> codes, meta, passes;
  size_t out_of_window = 0;  // (row, K-tile) pairs with a block outside pass 0
};

// The same, in device memory (pointers owned by the caller).
struct Mxfp4Sm90Weights {
  Sm90Operand op = Sm90Operand::e4m3;
  size_t N = 0, K = 0;
  const uint8_t* codes = nullptr;
  const uint8_t* meta = nullptr;
  const uint8_t* passes = nullptr;
};

// Where the code of element (n, k) of the weight lands in Mxfp4Sm90Packed::codes, as bit indices
// (byte · 8 + bit): its 3 magnitude bits at [magnitude, magnitude + 3), its sign bit at sign. A
// bijection from [N, K] × 4 bits onto the non-padding bits (tests check it).
struct CodeBits {
  size_t magnitude, sign;
};
CodeBits mxfp4_sm90_code_bits(Sm90Operand op, size_t n, size_t k, size_t K);

// Canonical MXFP4 (codes [N, K/2], scales [N, K/32]; K a multiple of 32) -> the kernels' layout.
// Host code, run once when the weights are loaded (process_weights_after_loading).
Mxfp4Sm90Packed mxfp4_sm90_repack(Sm90Operand op, const uint8_t* codes, const uint8_t* scales,
                                  size_t N, size_t K);

// Launchers: enqueue one kernel on `stream`, return the launch error (cudaErrorInvalidValue for a
// weight packed for the other operand or a K that differs; cudaErrorNoKernelImageForDevice off
// sm_90a). x: x8 [M, K] E4M3 bytes with act_scale [M], or x16 [M, K] bf16, 16-byte aligned (the
// copy engine reads it; cudaErrorInvalidValue otherwise); y [M, N] f32, or bf16: the f32 result
// rounded to nearest even (half the bytes to store; N even and y 4-byte aligned store whole
// sectors). A W4A16 tile whose rows need several passes (gemm_wgmma.h) adds each pass into y,
// so a bf16 y is rounded once per pass there.
cudaError_t gemm_mxfp4_w4a8_sm90(const uint8_t* x8, const float* act_scale, size_t M, size_t K,
                                 const Mxfp4Sm90Weights& w, float* y, cudaStream_t stream);
cudaError_t gemm_mxfp4_w4a8_sm90(const uint8_t* x8, const float* act_scale, size_t M, size_t K,
                                 const Mxfp4Sm90Weights& w, bf16* y, cudaStream_t stream);
cudaError_t gemm_mxfp4_w4a16_sm90(const bf16* x16, size_t M, size_t K, const Mxfp4Sm90Weights& w,
                                  float* y, cudaStream_t stream);
cudaError_t gemm_mxfp4_w4a16_sm90(const bf16* x16, size_t M, size_t K, const Mxfp4Sm90Weights& w,
                                  bf16* y, cudaStream_t stream);

}  // namespace mxq
