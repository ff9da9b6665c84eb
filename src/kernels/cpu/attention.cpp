// The attention of mxq/kernels/cpu/attention.h and the MLP activation of activation.h (both need
// the vector Exp): the double-precision references, and the Highway versions (one copy per target,
// the best one chosen at run time, as gemm.cpp).
//
// Decode cost (SmolLM2-135M at 192 cached positions: 30 layers × 9 heads × T = 192 × hd = 64):
// 3.3 M multiply-adds each for the scores and for the weighted sum, plus 52 K exponentials per
// token, over a KV cache of 30 × 2 × 192 × 192 floats = 8.8 MB (295 KB per layer) that the
// weights streamed since the last token have evicted to DRAM. Lanes along hd (16 on AVX-512) take
// ~16× fewer steps than scalar loops.

#ifndef MXQ_KERNELS_CPU_ATTENTION_SHARED
#define MXQ_KERNELS_CPU_ATTENTION_SHARED

#include <algorithm>
#include <cmath>
#include <vector>

#include "mxq/kernels/cpu/activation.h"
#include "mxq/kernels/cpu/attention.h"

namespace mxq {

void silu_mul_ref(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void attention_head_ref(const float* q, const float* k, const float* v, size_t stride, size_t T,
                        size_t hd, float scale, float* out) {
  std::vector<double> p(T);
  double mx = -INFINITY;
  for (size_t t = 0; t < T; ++t) {
    double s = 0;
    for (size_t i = 0; i < hd; ++i) s += static_cast<double>(q[i]) * k[t * stride + i];
    p[t] = s * scale;
    mx = std::max(mx, p[t]);
  }
  double sum = 0;
  for (size_t t = 0; t < T; ++t) sum += (p[t] = std::exp(p[t] - mx));
  for (size_t i = 0; i < hd; ++i) {
    double o = 0;
    for (size_t t = 0; t < T; ++t) o += p[t] * v[t * stride + i];
    out[i] = static_cast<float>(o / sum);
  }
}

}  // namespace mxq

#endif  // MXQ_KERNELS_CPU_ATTENTION_SHARED

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/cpu/attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace mxq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

void AttentionHead(const float* q, const float* k, const float* v, size_t stride, size_t T,
                   size_t hd, float scale, float* p, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const size_t hd_vec = hd / N * N;
  // Scores: one dot product of hd per position, lanes along hd, the tail (hd % N) in scalar FMA.
  float mx = -INFINITY;
  for (size_t t = 0; t < T; ++t) {
    const float* kt = k + t * stride;
    auto acc = hn::Zero(df);
    for (size_t i = 0; i < hd_vec; i += N) acc = hn::MulAdd(hn::LoadU(df, q + i), hn::LoadU(df, kt + i), acc);
    float s = hn::GetLane(hn::SumOfLanes(df, acc));
    for (size_t i = hd_vec; i < hd; ++i) s = std::fma(q[i], kt[i], s);
    p[t] = s * scale;
    mx = std::max(mx, p[t]);
  }
  // p_t = exp(s_t − max), lanes along t.
  const auto vmx = hn::Set(df, mx);
  auto vsum = hn::Zero(df);
  size_t t = 0;
  for (; t + N <= T; t += N) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, p + t), vmx));
    hn::StoreU(e, df, p + t);
    vsum = hn::Add(vsum, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; t < T; ++t) sum += (p[t] = std::exp(p[t] - mx));
  // out = Σ p_t v_t / Σ p_t, lanes along hd: 4 vectors of out per pass over the rows (hd = 64 on
  // AVX-512 is one pass), then single vectors.
  const float inv = 1.0f / sum;
  const auto vinv = hn::Set(df, inv);
  size_t i = 0;
  for (; i + 4 * N <= hd_vec; i += 4 * N) {
    auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
    for (size_t tt = 0; tt < T; ++tt) {
      const auto w = hn::Set(df, p[tt]);
      const float* vt = v + tt * stride + i;
      a0 = hn::MulAdd(w, hn::LoadU(df, vt), a0);
      a1 = hn::MulAdd(w, hn::LoadU(df, vt + N), a1);
      a2 = hn::MulAdd(w, hn::LoadU(df, vt + 2 * N), a2);
      a3 = hn::MulAdd(w, hn::LoadU(df, vt + 3 * N), a3);
    }
    hn::StoreU(hn::Mul(a0, vinv), df, out + i);
    hn::StoreU(hn::Mul(a1, vinv), df, out + i + N);
    hn::StoreU(hn::Mul(a2, vinv), df, out + i + 2 * N);
    hn::StoreU(hn::Mul(a3, vinv), df, out + i + 3 * N);
  }
  for (; i < hd_vec; i += N) {
    auto acc = hn::Zero(df);
    for (size_t tt = 0; tt < T; ++tt) acc = hn::MulAdd(hn::Set(df, p[tt]), hn::LoadU(df, v + tt * stride + i), acc);
    hn::StoreU(hn::Mul(acc, vinv), df, out + i);
  }
  for (size_t i = hd_vec; i < hd; ++i) {
    float acc = 0;
    for (size_t tt = 0; tt < T; ++tt) acc = std::fma(p[tt], v[tt * stride + i], acc);
    out[i] = acc * inv;
  }
}

void SiluMul(const float* gate, const float* up, size_t n, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto one = hn::Set(df, 1.0f);
  // Exp is valid up to 104; e^104 is already beyond f32 (inf), so clamping there changes nothing.
  const auto exp_max = hn::Set(df, 104.0f);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto g = hn::LoadU(df, gate + i);
    const auto silu = hn::Div(g, hn::Add(one, hn::Exp(df, hn::Min(hn::Neg(g), exp_max))));
    hn::StoreU(hn::Mul(silu, hn::LoadU(df, up + i)), df, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace HWY_NAMESPACE
}  // namespace mxq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace mxq {

HWY_EXPORT(AttentionHead);
HWY_EXPORT(SiluMul);

void silu_mul(const float* gate, const float* up, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n, out);
}

void attention_head(const float* q, const float* k, const float* v, size_t stride, size_t T,
                    size_t hd, float scale, float* scratch, float* out) {
  HWY_DYNAMIC_DISPATCH(AttentionHead)(q, k, v, stride, T, hd, scale, scratch, out);
}

}  // namespace mxq
#endif  // HWY_ONCE
