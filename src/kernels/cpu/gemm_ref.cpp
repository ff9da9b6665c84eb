// The scalar definitions of mxq/kernels/cpu/gemm.h and the activation quantizers both paths share.
#include <algorithm>
#include <cmath>
#include <vector>

#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/gemm.h"

namespace mxq {

float act_fp8_codes_row(const float* x, size_t K, float static_scale, float* q) {
  float s = static_scale;
  if (!(s > 0.0f)) {
    float amax = 0.0f;
    for (size_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
    s = amax > 0.0f ? amax / 448.0f : 1.0f;
  }
  for (size_t k = 0; k < K; ++k) q[k] = e4m3_to_f32(e4m3_from_f32(x[k] / s));
  return s;
}

float act_fp8_quantize_row(const float* x, size_t K, float static_scale, float* xq) {
  const float s = act_fp8_codes_row(x, K, static_scale, xq);
  for (size_t k = 0; k < K; ++k) xq[k] *= s;
  return s;
}

void act_fp8_scale_outputs(const float* row_scales, size_t M, size_t N, float* y) {
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < N; ++n) y[m * N + n] *= row_scales[m];
}

void act_mxfp4_quantize_row(const float* x, size_t K, float* xq) {
  const MxOptions opt{ScaleRule::ceil, TieRule::nearest_even, NonFinite::nan_scale};
  std::vector<uint8_t> codes(K / 2), scales(K / kMxBlock);
  mxfp4_quantize_row_ref(x, K, codes.data(), scales.data(), opt);
  mxfp4_dequantize_row_ref(codes.data(), scales.data(), K, xq);
}

void act_bf16_round_row(const float* x, size_t K, float* xr) {
  for (size_t k = 0; k < K; ++k) xr[k] = bf16_to_f32(bf16_from_f32(x[k]));
}

namespace {

// y[m, n] = Σ_k x[m, k] · w(n, k) in double, one rounding to f32 at the end; wrow(n, buf) writes
// weight row n decoded to f32.
template <class RowDecoder>
void gemm_ref_impl(const float* x, size_t M, size_t K, size_t N, float* y, RowDecoder wrow) {
  std::vector<float> w(K);
  for (size_t n = 0; n < N; ++n) {
    wrow(n, w.data());
    for (size_t m = 0; m < M; ++m) {
      double acc = 0.0;
      for (size_t k = 0; k < K; ++k) acc += static_cast<double>(x[m * K + k]) * w[k];
      y[m * N + n] = static_cast<float>(acc);
    }
  }
}

}  // namespace

void gemm_f32_ref(const float* x, size_t M, size_t K, const float* w, size_t N, float* y) {
  gemm_ref_impl(x, M, K, N, y, [&](size_t n, float* r) { std::copy_n(w + n * K, K, r); });
}

void gemm_bf16_ref(const float* x, size_t M, size_t K, const bf16* w, size_t N, float* y) {
  gemm_ref_impl(x, M, K, N, y, [&](size_t n, float* r) {
    for (size_t k = 0; k < K; ++k) r[k] = bf16_to_f32(w[n * K + k]);
  });
}

void gemm_mxfp4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                    const uint8_t* scales, size_t N, float* y) {
  std::vector<float> xr(M * K);
  for (size_t m = 0; m < M; ++m) act_bf16_round_row(x + m * K, K, xr.data() + m * K);
  gemm_ref_impl(xr.data(), M, K, N, y, [&](size_t n, float* r) {
    mxfp4_dequantize_row_ref(codes + n * (K / 2), scales + n * (K / kMxBlock), K, r);
  });
}

void gemm_mxfp4_w4a8_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                         const uint8_t* scales, size_t N, float input_scale, float* y) {
  std::vector<float> q(M * K), s(M);
  for (size_t m = 0; m < M; ++m) s[m] = act_fp8_codes_row(x + m * K, K, input_scale, q.data() + m * K);
  gemm_mxfp4_ref(q.data(), M, K, codes, scales, N, y);
  act_fp8_scale_outputs(s.data(), M, N, y);
}

void gemm_mxfp4_w4a4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                         const uint8_t* scales, size_t N, float* y) {
  std::vector<float> xq(M * K);
  for (size_t m = 0; m < M; ++m) act_mxfp4_quantize_row(x + m * K, K, xq.data() + m * K);
  gemm_mxfp4_ref(xq.data(), M, K, codes, scales, N, y);
}

}  // namespace mxq
