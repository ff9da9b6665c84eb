// mxq/kernels/cpu/gemm.h — the linear layer's GEMM on the CPU, for each weight format and
// activation mode:
//
//   y[M, N] = x[M, K] · W[N, K]ᵀ        (row-major; W as the checkpoint stores it, K last)
//
// Weights stay in their stored format: BF16 (or F32) values, or MXFP4 codes [N, K/2] (element 2i in
// the low nibble of byte i) with E8M0 scales [N, K/32]. K must be a multiple of 32 for MXFP4.
//
// The *_ref functions define the math: every weight and activation is decoded exactly to f32
// (E2M1 × 2^(E8M0 − 127), BF16 → f32, FP8 × its scale), products and sums are formed in double and
// the sum is rounded once to f32. The SIMD versions decode the same values and accumulate in f32
// lanes (fused multiply-adds, or vdpbf16ps on BF16 operands, whose products are exact), so they
// differ from the references only by f32 summation order (tests/test_runtime_kernels.cpp derives
// the bound). The MXFP4 GEMM's activations are rounded to BF16 first (W4A16's "16"), by both paths
// through act_bf16_round_row; so are W4A8's and W4A4's fake-quantized activations, which are
// already BF16 values for W4A4 (E2M1 × 2^e) but not for W4A8 (E4M3 × an f32 scale: one more
// rounding, relative 2^-9 at most). Activation quantization is bit-identical between the two
// paths: both call the same row quantizers below.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mxq/format.h"
#include "mxq/kernels/cpu/thread_pool.h"

namespace mxq {

// ---- activation quantizers (fake-quant: they write the dequantized values the GEMM consumes) ----

// FP8 E4M3 of one row of K activations, RNE, saturating at ±448:
//   static_scale > 0: q = e4m3(x / static_scale), x̂ = q · static_scale (a checkpoint's input_scale);
//   static_scale = 0: per-token dynamic, s = fl32(amax(row) / 448) (1 for an all-zero row).
// act_fp8_codes_row writes the E4M3 values q themselves (as f32; every one is also exact in BF16)
// and returns s; act_fp8_quantize_row writes x̂ = fl32(q · s) and returns s.
float act_fp8_codes_row(const float* x, size_t K, float static_scale, float* q);
float act_fp8_quantize_row(const float* x, size_t K, float static_scale, float* xq);
// W4A8's epilogue: y[m, :] *= row_scales[m] for the M × N outputs.
void act_fp8_scale_outputs(const float* row_scales, size_t M, size_t N, float* y);

// MXFP4 of one row of K activations (K a multiple of 32), per 32-block, as ModelOpt's W4A4
// run-time quantizer does: the ceil scale rule, ties to even. x̂ = E2M1 × 2^(E8M0 − 127).
void act_mxfp4_quantize_row(const float* x, size_t K, float* xq);

// W4A16's activations: BF16 of one row of K activations, RNE (as bf16_from_f32: subnormals kept,
// NaN stays NaN), written back as f32: x̂ = bf16(x). The "16" of W4A16 is BF16, so the SIMD GEMV
// can multiply BF16 by BF16 (vdpbf16ps) with no widening.
void act_bf16_round_row(const float* x, size_t K, float* xr);

// ---- references ----

void gemm_f32_ref(const float* x, size_t M, size_t K, const float* w, size_t N, float* y);
void gemm_bf16_ref(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y);
// W4A16: MXFP4 weights × the activations through act_bf16_round_row.
void gemm_mxfp4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                    const uint8_t* scales, size_t N, float* y);
// W4A8: each row's E4M3 values q through act_fp8_codes_row (input_scale as there), then
// y[m, n] = fl32(s_m · gemm_mxfp4_ref(q)[m, n]): the scale applied once per output, as a W4A8
// kernel's epilogue does (q is exact in BF16, so W4A16's rounding leaves it unchanged).
void gemm_mxfp4_w4a8_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                         const uint8_t* scales, size_t N, float input_scale, float* y);
// W4A4: the activations through act_mxfp4_quantize_row, then gemm_mxfp4_ref.
void gemm_mxfp4_w4a4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                         const uint8_t* scales, size_t N, float* y);

// ---- SIMD (Highway, dynamic dispatch), threads over N ----
//
// M = 1 is a fused GEMV: each weight row is decoded in registers and consumed at once (the 4-bit
// codes are the only weight bytes read). M > 1 decodes each weight row once into a per-thread f32
// row and takes its dot product with all M activation rows; on CPUs with AVX512_BF16 the MXFP4
// GEMM instead decodes each weight row in registers once per 4 activation rows. pool = nullptr
// runs on the caller.

void gemm_f32(const float* x, size_t M, size_t K, const float* w, size_t N, float* y,
              ThreadPool* pool);
void gemm_bf16(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y,
               ThreadPool* pool);
void gemm_mxfp4(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
                size_t N, float* y, ThreadPool* pool);

// act_fp8_codes_row on each of M rows of x [M, K] (SIMD, bit-identical: the same division by the
// same scale, then the E4M3 rounding without the generic codec's branches): q [M, K], the scales
// [M]. The runtime's W4A8 path; act_fp8_codes_row stays its definition.
void act_fp8_codes(const float* x, size_t M, size_t K, float static_scale, float* q,
                   float* row_scales);

// ---- NVFP4, for comparison (src/kernels/cpu/gemm_nvfp4.cpp) ----
//
// Weights as ModelOpt exports NVFP4: codes [N, K/2] (E2M1, element 2i in the low nibble of byte i),
// E4M3 block scales [N, K/16] and one FP32 tensor scale s2 (`weight_scale_2`); K a multiple of 16.
// A weight is format.h's nvfp4_decode, fl32(fl32(E2M1 · E4M3) · s2) (the inner product is exact),
// so the reference decodes like nvfp4_dequantize_row_ref and then sums as the references above.

// NVFP4 of one row of K activations (K a multiple of 16), fake-quantized through format.h's NVFP4
// encoder (nvfp4_quantize_row_ref): per 16-block, E4M3 scale e4m3(amax_block / (6 · s2)), elements
// RNE to E2M1 — ModelOpt's NVFP4 input quantizer. The second-level scale s2:
//   input_scale > 0: s2 = input_scale, the checkpoint's calibrated amax / (6 · 448) (ModelOpt's
//                    export; engines keep it fixed and scale blocks per token at run time). Inputs
//                    beyond 6 · 448 · s2 saturate.
//   input_scale = 0: s2 = nvfp4_tensor_scale(amax(row)) = amax(row) / (6 · 448), per token. Used
//                    where a checkpoint has no calibrated input_scale (mxq quantize writes none): a
//                    token's values then do not depend on the other tokens in the batch (prefill and
//                    one-token decode agree), and its largest block gets the top E4M3 scale (448)
//                    rather than a smaller one set by another token's outlier.
// A row holding NaN or Inf comes out all NaN (the encoder rejects such input; the model has diverged
// and its logits should say so). Returns s2.
float act_nvfp4_quantize_row(const float* x, size_t K, float input_scale, float* xq);

// W4A16: NVFP4 weights × f32 activations (W4A4 quantizes x with act_nvfp4_quantize_row first).
void gemm_nvfp4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                    const uint8_t* scales, float tensor_scale, size_t N, float* y);
// The same values: weight rows decoded once each (the E2M1 codes through the SIMD MXFP4 decoder at
// unit scale, then × E4M3 × s2) and their dot products with all M rows taken by gemm_f32; threads
// over N. pool = nullptr runs on the caller.
void gemm_nvfp4(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
                float tensor_scale, size_t N, float* y, ThreadPool* pool);

}  // namespace mxq
