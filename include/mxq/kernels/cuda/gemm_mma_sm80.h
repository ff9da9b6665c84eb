// mxq/kernels/cuda/gemm_mma_sm80.h — the prefill W4A16 GEMM for GPUs without Hopper's wgmma (sm_80
// and later; issue 5's "sm_80 fallback"):
//
//   y[M, N] = x[M, K] · dequant(W)ᵀ     x bf16 [M, K] row-major, y f32 or bf16 (the f32 result
//                                       rounded to nearest even) [M, N] row-major, W MXFP4 (E2M1
//                                       codes, one E8M0 scale per 32 of K), FP32 accumulation
//
// The weights are the GEMV's (mxq/kernels/cuda/gemv.h): codes_rp / scales_rp as mxfp4_gemv_repack
// builds them, so a layer keeps one copy for both kernels. That layout is already the 16-row A operand
// of mma.m16n8k16 (one 16-byte code vector and one scale word per lane per 16-row tile and 64-K step),
// widened to BF16 in registers exactly as the GEMV widens it (the same device code), so the products
// are the same exact bf16 × bf16 values and only the f32 summation order differs from the reference.
// Where the GEMV reads the weights once per 32 tokens, each CTA here widens a slab of 128 or 256 rows
// once per 128 tokens (twice: once per 64-token half), with the activations staged in shared memory.
//
// x, codes_rp and scales_rp must be 16-byte aligned and K a multiple of 32; y is written whole (no
// accumulation into it). Any M >= 1 is correct (M <= 32 is the GEMV's range; the dispatcher in
// mxfp4_linear.h sends only larger M here). A CTA owns 128 tokens and 8 or 16 of the layout's 16-row
// tiles; cta_tiles 0 lets the launcher pick from N, M and the SM count (the source says how), 8 or 16
// forces that shape (tests run both). Returns cudaErrorInvalidValue for a bad K, alignment,
// cta_tiles or a grid too large, else the launch's error; does not synchronize.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mxq/format.h"

namespace mxq {

cudaError_t gemm_mxfp4_w4a16_sm80(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                                  const uint8_t* scales_rp, size_t N, float* y, cudaStream_t stream,
                                  int cta_tiles = 0);
cudaError_t gemm_mxfp4_w4a16_sm80(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                                  const uint8_t* scales_rp, size_t N, bf16* y, cudaStream_t stream,
                                  int cta_tiles = 0);

}  // namespace mxq
