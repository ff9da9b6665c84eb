// mxq/kernels/cuda/act_quant.h — run-time activation quantization on NVIDIA GPUs, the inputs of the
// W4A8 and W4A4 products. Bit-identical to the CPU row quantizers in mxq/kernels/cpu/gemm.h, which
// write the dequantized values; these write the codes and scales that the GEMMs consume
// (tests/test_cuda_gemv.cu checks codes · scale against them), and the BF16 operands of the exact
// W4A8 / W4A4 routes through the W4A16 kernels (tests/test_cuda_gemv.cu, test_cuda_mxfp4_linear.cu).
//
// Launchers take raw device pointers and a stream, enqueue one kernel and return the launch error.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mxq/format.h"
#include "mxq/kernels/cpu/mx_convert.h"  // ElemType

namespace mxq {

// x [M, K] (xt: bf16 or f32, row-major) -> FP8 E4M3 codes [M, K] (round to nearest even,
// saturating at ±448) and scale [M] (the scale used per row, x ≈ e4m3(code) · scale):
//   static_scale > 0: every row uses static_scale (a checkpoint's input_scale);
//   static_scale = 0: per token, scale = fl32(amax(row) / 448), 1 for an all-zero row.
// As act_fp8_quantize_row: code = e4m3(fl32(x / scale)). scale may be null under a static scale.
cudaError_t act_fp8_quantize_cuda(const void* x, ElemType xt, size_t M, size_t K, float static_scale,
                                  uint8_t* codes, float* scale, cudaStream_t stream);

// x [M, K] (K a multiple of 32) -> MXFP4 codes [M, K/2] and E8M0 scales [M, K/32], per 32 elements
// with the ceil scale rule and ties to even, as act_mxfp4_quantize_row (ModelOpt's W4A4 run-time
// quantizer); a block holding NaN/Inf gets scale 0xFF. Rows of whole blocks are contiguous, so this
// is mxfp4_quantize_cuda over M·K elements under those options.
cudaError_t act_mxfp4_quantize_cuda(const void* x, ElemType xt, size_t M, size_t K, uint8_t* codes,
                                    uint8_t* scales, cudaStream_t stream);

// ---- BF16 outputs: what the W4A16 kernels consume for the exact W4A4 and W4A8 routes ----
//
// With these, a W4A16 kernel (bf16 × widened MXFP4, f32 accumulation) computes gemm_mxfp4_w4a4_ref /
// gemm_mxfp4_w4a8_ref exactly up to f32 summation order. x and the bf16 output must be 16-byte
// aligned (cudaErrorInvalidValue otherwise).

// W4A4: MXFP4 per 32 (ceil rule, ties to even) as act_mxfp4_quantize_row, x̂ = E2M1 × 2^(e − 127), then
// bf16 — the last step exact: E2M1 has two significant bits and E8M0 spans float32's (and bf16's)
// exponents, so every finite x̂, from 0.5 · 2^-127 = 2^-128 (a bf16 subnormal; bf16's smallest is
// 2^-133) up to 3 · 2^126, is a bf16. The extremes: a block of amax below 6 · 2^-127 gets the
// smallest scale 2^-127 and its elements of magnitude <= 2^-129 become 0, as in the reference; at
// the top the ceil rule overflows as the reference does — a block whose amax exceeds 1.5 · 2^127
// gets scale 2^126, and its elements of magnitude >= 1.75 · 2^127 (bf16's largest finite values
// included) round to 4 · 2^126 = 2^128, +-Inf in float32 and bf16 alike. A block holding NaN or Inf
// gets the NaN scale and decodes all NaN. K must be a multiple of 32. One fused pass: 2 (bf16) or 4
// (f32) bytes in, 2 out per element; no codes or scales reach memory. gemm_mxfp4_w4a4_ref is
// gemm_mxfp4_ref on x̂, which is what a W4A16 kernel computes on this output.
cudaError_t act_mxfp4_fake_quantize_cuda(const void* x, ElemType xt, size_t M, size_t K, bf16* xq,
                                         cudaStream_t stream);

// W4A8's first half ahead of a W4A16 kernel, as gemm_mxfp4_w4a8_ref: y = fl32(s_m · W4A16(q)), the
// GEMV applying s_m (mxfp4_gemv_w4a16_cuda's row_scales). act_fp8_values_bf16_cuda: FP8 E4M3 as
// act_fp8_quantize_cuda (per token when static_scale = 0, else static_scale), writing each code's
// value q [M, K] as a bf16 (exact: 3 mantissa bits, exponents -9 .. 8), as act_fp8_codes_row; scale
// [M] receives each row's s (may be null).
cudaError_t act_fp8_values_bf16_cuda(const void* x, ElemType xt, size_t M, size_t K,
                                     float static_scale, bf16* q, float* scale, cudaStream_t stream);

}  // namespace mxq
