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
// lanes with fused multiply-adds, so they differ from the references only by f32 summation order
// (tests/test_runtime_kernels.cpp derives the bound). Activation quantization (W4A8, W4A4) is
// bit-identical between the two paths: both call the same row quantizers below.
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
// Returns the scale used.
float act_fp8_quantize_row(const float* x, size_t K, float static_scale, float* xq);

// MXFP4 of one row of K activations (K a multiple of 32), per 32-block, as ModelOpt's W4A4
// run-time quantizer does: the ceil scale rule, ties to even. x̂ = E2M1 × 2^(E8M0 − 127).
void act_mxfp4_quantize_row(const float* x, size_t K, float* xq);

// ---- references ----

void gemm_f32_ref(const float* x, size_t M, size_t K, const float* w, size_t N, float* y);
void gemm_bf16_ref(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y);
// W4A16: MXFP4 weights × f32 activations.
void gemm_mxfp4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                    const uint8_t* scales, size_t N, float* y);
// W4A8: the activations through act_fp8_quantize_row (input_scale as there), then gemm_mxfp4_ref.
void gemm_mxfp4_w4a8_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                         const uint8_t* scales, size_t N, float input_scale, float* y);
// W4A4: the activations through act_mxfp4_quantize_row, then gemm_mxfp4_ref.
void gemm_mxfp4_w4a4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                         const uint8_t* scales, size_t N, float* y);

// ---- SIMD (Highway, dynamic dispatch), threads over N ----
//
// M = 1 is a fused GEMV: each weight row is decoded in registers and consumed at once (the 4-bit
// codes are the only weight bytes read). M > 1 decodes each weight row once into a per-thread f32
// row and takes its dot product with all M activation rows. pool = nullptr runs on the caller.

void gemm_f32(const float* x, size_t M, size_t K, const float* w, size_t N, float* y,
              ThreadPool* pool);
void gemm_bf16(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y,
               ThreadPool* pool);
void gemm_mxfp4(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
                size_t N, float* y, ThreadPool* pool);

}  // namespace mxq
