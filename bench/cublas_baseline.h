// bench/cublas_baseline.h — the cuBLAS products every GPU GEMM benchmark compares with, for
// y[M, N] = x[M, K] · W[N, K]ᵀ (both K-major, as the MXFP4 kernels take them):
//   cublas_bf16_us: cublasGemmEx, BF16 in, f32 accumulation, BF16 out;
//   cublas_fp8_us:  cublasLtMatmul, E4M3 in (unit per-tensor scales), f32 accumulation with cuBLAS's
//                   default (precise, not FAST_ACCUM) mode, BF16 out.
// Each call allocates its own operands (filled with non-zero bytes), times the product with the
// caller's Timer (median, cold L2) and frees them. Where cuBLASLt has no FP8 algorithm for a shape
// (it may refuse small M), cublas_fp8_us says so on stderr and returns NaN.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cuda_bench.h"

#define CUBLAS_CHECK(expr)                                                               \
  do {                                                                                   \
    const cublasStatus_t st_ = (expr);                                                   \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                  \
      std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #expr,   \
                   static_cast<int>(st_));                                               \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)

namespace mxq::bench {

// Device operands of a baseline product: x [M, K], W [N, K] of in_bytes each, y [M, N] BF16.
struct BaselineOperands {
  void *x = nullptr, *w = nullptr, *y = nullptr;
  BaselineOperands(int M, int N, int K, size_t in_bytes) {
    CUDA_CHECK(cudaMalloc(&x, static_cast<size_t>(M) * K * in_bytes));
    CUDA_CHECK(cudaMalloc(&w, static_cast<size_t>(N) * K * in_bytes));
    CUDA_CHECK(cudaMalloc(&y, static_cast<size_t>(M) * N * 2));
    // 0x3C: bf16 0x3C3C ≈ 0.0115, E4M3 0x3C = 1.5; never zeros (they can time faster).
    CUDA_CHECK(cudaMemset(x, 0x3C, static_cast<size_t>(M) * K * in_bytes));
    CUDA_CHECK(cudaMemset(w, 0x3C, static_cast<size_t>(N) * K * in_bytes));
  }
  ~BaselineOperands() {
    cudaFree(x);
    cudaFree(w);
    cudaFree(y);
  }
  BaselineOperands(const BaselineOperands&) = delete;
  BaselineOperands& operator=(const BaselineOperands&) = delete;
};

// Enqueues the BF16 product on h's stream. Column-major view: y as C [N × M] = Wᵀ-op(A [K × N]) ·
// B [K × M] (TN, the layout FP8 needs).
inline void cublas_bf16_gemm(cublasHandle_t h, int M, int N, int K, const BaselineOperands& ops) {
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, ops.w, CUDA_R_16BF, K, ops.x,
                            CUDA_R_16BF, K, &beta, ops.y, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

inline double cublas_bf16_us(Timer& timer, int M, int N, int K) {
  BaselineOperands ops(M, N, K, 2);
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  const double us = timer.median_us([&](int) { cublas_bf16_gemm(h, M, N, K, ops); });
  CUBLAS_CHECK(cublasDestroy(h));
  return us;
}

inline double cublas_fp8_us(Timer& timer, int M, int N, int K) {
  BaselineOperands ops(M, N, K, 1);
  cublasLtHandle_t lt = nullptr;
  CUBLAS_CHECK(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t op = nullptr;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_8F_E4M3, K, N, K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_8F_E4M3, K, M, K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c, CUDA_R_16BF, N, M, N));
  size_t ws_bytes = size_t{64} << 20;
  void* ws = nullptr;
  CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &ws_bytes, sizeof ws_bytes));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, c, c, pref, 1, &heur, &found) !=
      CUBLAS_STATUS_SUCCESS)
    found = 0;
  if (found == 0)
    std::fprintf(stderr, "cublas_fp8_us: no cuBLASLt algorithm for M %d N %d K %d\n", M, N, K);
  const float alpha = 1.0f, beta = 0.0f;
  const double us = found == 0 ? std::nan("") : timer.median_us([&](int) {
    CUBLAS_CHECK(cublasLtMatmul(lt, op, &alpha, ops.w, a, ops.x, b, &beta, ops.y, c, ops.y, c,
                                &heur.algo, ws, ws_bytes, nullptr));
  });
  CUDA_CHECK(cudaFree(ws));
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(c);
  cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(lt);
  return us;
}

}  // namespace mxq::bench
