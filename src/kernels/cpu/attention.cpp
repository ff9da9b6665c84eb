// The attention of mxq/kernels/cpu/attention.h and the MLP activation of activation.h (both need
// the vector Exp): the double-precision references, and the Highway versions (one copy per target,
// the best one chosen at run time, as gemm.cpp).
//
// Decode cost (SmolLM2-135M at 192 cached positions: 30 layers × 3 KV heads × 3 queries each × T =
// 192 × hd = 64): 3.3 M multiply-adds each for the scores and for the weighted sum, plus 52 K
// exponentials per token, over a KV cache of 30 × 2 × 3 × 192 × 64 floats = 8.8 MB (295 KB per
// layer) that the weights streamed since the last token have evicted to DRAM: each KV head's K and
// V are read once for its 3 queries, and V's stream starts while the scores are computed.

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

namespace {

template <class E>
void AttentionGroupRef(const float* q, size_t g, const E* k, const E* v, size_t T, size_t hd, float scale,
                       float* out) {
  std::vector<double> p(T);
  for (size_t j = 0; j < g; ++j) {
    const float* qj = q + j * hd;
    double mx = -INFINITY;
    for (size_t t = 0; t < T; ++t) {
      double s = 0;
      for (size_t i = 0; i < hd; ++i) s += static_cast<double>(qj[i]) * kv_to_f32(k[kv_k_index(t, i, hd)]);
      p[t] = s * scale;
      mx = std::max(mx, p[t]);
    }
    double sum = 0;
    for (size_t t = 0; t < T; ++t) sum += (p[t] = std::exp(p[t] - mx));
    for (size_t i = 0; i < hd; ++i) {
      double o = 0;
      for (size_t t = 0; t < T; ++t) o += p[t] * kv_to_f32(v[t * hd + i]);
      out[j * hd + i] = static_cast<float>(o / sum);
    }
  }
}

}  // namespace

void attention_group_ref(const float* q, size_t g, const float* k, const float* v, size_t T, size_t hd,
                         float scale, float* out) {
  AttentionGroupRef(q, g, k, v, T, hd, scale, out);
}
void attention_group_ref(const float* q, size_t g, const bf16* k, const bf16* v, size_t T, size_t hd,
                         float scale, float* out) {
  AttentionGroupRef(q, g, k, v, T, hd, scale, out);
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

// The lanes never exceed a K tile's 16 positions (a scores vector is one tile or a part of one).
using DT = hn::CappedTag<float, kKvTile>;

// N cache elements from p as f32 lanes: bf16 widened exactly.
HWY_INLINE hn::Vec<DT> LoadKv(DT dt, const float* p) { return hn::LoadU(dt, p); }
HWY_INLINE hn::Vec<DT> LoadKv(DT dt, const bf16* p) {
  const hn::Rebind<hwy::bfloat16_t, DT> dbf;
  return hn::PromoteTo(dt, hn::LoadU(dbf, reinterpret_cast<const hwy::bfloat16_t*>(p)));
}

// attention_group_part: positions [t0, t1), t0 a multiple of kKvTile; p: the scratch. E: the cache's
// element type (float or bf16).
template <class E>
void AttentionGroupPart(const float* q, size_t g, const E* k, const E* v, size_t t0, size_t t1,
                        size_t hd, float scale, float* p, float* out, float* max, float* sum) {
  const DT dt;
  const size_t N = hn::Lanes(dt);
  const size_t T = t1 - t0;  // positions of this part; p[j·Tp + t − t0]
  const size_t tiles = (T + kKvTile - 1) / kKvTile, Tp = tiles * kKvTile;
  k += t0 / kKvTile * hd * kKvTile;
  v += t0 * hd;
  constexpr size_t kQ = 4;  // queries per pass over the cache (their accumulators stay in registers)

  // Scores s_jt · scale into p[j·Tp + t], a tile at a time: for each of the tile's vectors of N
  // positions, hd multiply-adds of K's row i times q_j[i] for up to kQ queries. V is needed once
  // the scores are done: each tile prefetches (into L2) as many bytes of V as it reads of K.
  const char* vb = reinterpret_cast<const char*>(v);
  const size_t v_bytes = T * hd * sizeof(E), tile_bytes = hd * kKvTile * sizeof(E);
  for (size_t j0 = 0; j0 < g; j0 += kQ) {
    const size_t nq = std::min(kQ, g - j0);
    for (size_t b = 0; b < tiles; ++b) {
      if (j0 == 0)
        for (size_t off = b * tile_bytes; off < std::min(v_bytes, (b + 1) * tile_bytes); off += 64)
          __builtin_prefetch(vb + off, 0, 2);
      for (size_t l = 0; l < kKvTile; l += N) {
        const E* kt = k + b * hd * kKvTile + l;
        auto a0 = hn::Zero(dt), a1 = hn::Zero(dt), a2 = hn::Zero(dt), a3 = hn::Zero(dt);
        for (size_t i = 0; i < hd; ++i) {
          const auto kv = LoadKv(dt, kt + i * kKvTile);
          const float* qi = q + j0 * hd + i;
          a0 = hn::MulAdd(hn::Set(dt, qi[0]), kv, a0);
          if (nq > 1) a1 = hn::MulAdd(hn::Set(dt, qi[hd]), kv, a1);
          if (nq > 2) a2 = hn::MulAdd(hn::Set(dt, qi[2 * hd]), kv, a2);
          if (nq > 3) a3 = hn::MulAdd(hn::Set(dt, qi[3 * hd]), kv, a3);
        }
        const auto vs = hn::Set(dt, scale);
        float* pj = p + j0 * Tp + b * kKvTile + l;
        hn::StoreU(hn::Mul(a0, vs), dt, pj);
        if (nq > 1) hn::StoreU(hn::Mul(a1, vs), dt, pj + Tp);
        if (nq > 2) hn::StoreU(hn::Mul(a2, vs), dt, pj + 2 * Tp);
        if (nq > 3) hn::StoreU(hn::Mul(a3, vs), dt, pj + 3 * Tp);
      }
    }
  }

  for (size_t j0 = 0; j0 < g; j0 += kQ) {
    const size_t nq = std::min(kQ, g - j0);
    // Per query: p_jt = exp(s_jt − max_j) over the part's positions, lanes along t; Σ_t p_jt.
    for (size_t j = 0; j < nq; ++j) {
      float* pj = p + (j0 + j) * Tp;
      float mx = -INFINITY;
      for (size_t t = 0; t < T; ++t) mx = std::max(mx, pj[t]);
      const auto vmx = hn::Set(dt, mx);
      auto vsum = hn::Zero(dt);
      size_t t = 0;
      for (; t + N <= T; t += N) {
        const auto e = hn::Exp(dt, hn::Sub(hn::LoadU(dt, pj + t), vmx));
        hn::StoreU(e, dt, pj + t);
        vsum = hn::Add(vsum, e);
      }
      float sm = hn::GetLane(hn::SumOfLanes(dt, vsum));
      for (; t < T; ++t) sm += (pj[t] = std::exp(pj[t] - mx));
      max[j0 + j] = mx;
      sum[j0 + j] = sm;
    }

    // out_j = Σ_t p_jt v_t, lanes along hd: up to kQ queries × 4 vectors of hd per pass over V's
    // rows; the hd % N tail in scalar.
    const size_t hd_vec = hd / N * N;
    for (size_t i0 = 0; i0 < hd_vec; i0 += 4 * N) {
      const size_t nv = std::min<size_t>(4, (hd_vec - i0) / N);
      decltype(hn::Zero(dt)) acc[kQ][4];
      for (auto& a : acc)
        for (auto& x : a) x = hn::Zero(dt);
      for (size_t t = 0; t < T; ++t) {
        const E* vt = v + t * hd + i0;
        decltype(hn::Zero(dt)) vv[4];
        for (size_t c = 0; c < 4; ++c) vv[c] = c < nv ? LoadKv(dt, vt + c * N) : hn::Zero(dt);
        for (size_t j = 0; j < kQ; ++j) {
          if (j >= nq) break;
          const auto w = hn::Set(dt, p[(j0 + j) * Tp + t]);
          for (size_t c = 0; c < 4; ++c) acc[j][c] = hn::MulAdd(w, vv[c], acc[j][c]);
        }
      }
      for (size_t j = 0; j < nq; ++j)
        for (size_t c = 0; c < nv; ++c) hn::StoreU(acc[j][c], dt, out + (j0 + j) * hd + i0 + c * N);
    }
    for (size_t j = 0; j < nq; ++j)
      for (size_t i = hd_vec; i < hd; ++i) {
        float a = 0;
        for (size_t t = 0; t < T; ++t) a = std::fma(p[(j0 + j) * Tp + t], kv_to_f32(v[t * hd + i]), a);
        out[(j0 + j) * hd + i] = a;
      }
  }
}

void AttentionGroupPartF32(const float* q, size_t g, const float* k, const float* v, size_t t0, size_t t1,
                           size_t hd, float scale, float* p, float* out, float* max, float* sum) {
  AttentionGroupPart(q, g, k, v, t0, t1, hd, scale, p, out, max, sum);
}
void AttentionGroupPartBf16(const float* q, size_t g, const bf16* k, const bf16* v, size_t t0, size_t t1,
                            size_t hd, float scale, float* p, float* out, float* max, float* sum) {
  AttentionGroupPart(q, g, k, v, t0, t1, hd, scale, p, out, max, sum);
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

HWY_EXPORT(AttentionGroupPartF32);
HWY_EXPORT(AttentionGroupPartBf16);
HWY_EXPORT(SiluMul);

void silu_mul(const float* gate, const float* up, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n, out);
}

void attention_group_part(const float* q, size_t g, const float* k, const float* v, size_t t0,
                          size_t t1, size_t hd, float scale, float* scratch, float* out, float* max,
                          float* sum) {
  HWY_DYNAMIC_DISPATCH(AttentionGroupPartF32)(q, g, k, v, t0, t1, hd, scale, scratch, out, max, sum);
}
void attention_group_part(const float* q, size_t g, const bf16* k, const bf16* v, size_t t0,
                          size_t t1, size_t hd, float scale, float* scratch, float* out, float* max,
                          float* sum) {
  HWY_DYNAMIC_DISPATCH(AttentionGroupPartBf16)(q, g, k, v, t0, t1, hd, scale, scratch, out, max, sum);
}

namespace {
template <class E>
void AttentionGroup(const float* q, size_t g, const E* k, const E* v, size_t T, size_t hd, float scale,
                    float* scratch, float* out) {
  float max[kMaxGroupPart], sum[kMaxGroupPart];
  for (size_t j0 = 0; j0 < g; j0 += kMaxGroupPart) {  // the part's statistics come in bounded arrays
    const size_t n = std::min(kMaxGroupPart, g - j0);
    attention_group_part(q + j0 * hd, n, k, v, 0, T, hd, scale, scratch, out + j0 * hd, max, sum);
    for (size_t j = 0; j < n; ++j)
      for (size_t i = 0; i < hd; ++i) out[(j0 + j) * hd + i] /= sum[j];
  }
}
}  // namespace

void attention_group(const float* q, size_t g, const float* k, const float* v, size_t T, size_t hd,
                     float scale, float* scratch, float* out) {
  AttentionGroup(q, g, k, v, T, hd, scale, scratch, out);
}
void attention_group(const float* q, size_t g, const bf16* k, const bf16* v, size_t T, size_t hd,
                     float scale, float* scratch, float* out) {
  AttentionGroup(q, g, k, v, T, hd, scale, scratch, out);
}

void attention_merge(const float* outs, const float* maxes, const float* sums, size_t parts, size_t g,
                     size_t hd, float* out) {
  for (size_t j = 0; j < g; ++j) {
    float m = -INFINITY;
    for (size_t r = 0; r < parts; ++r) m = std::max(m, maxes[r * g + j]);
    float l = 0;
    float* o = out + j * hd;
    std::fill_n(o, hd, 0.0f);
    for (size_t r = 0; r < parts; ++r) {
      const float c = std::exp(maxes[r * g + j] - m);  // 1 for the part holding the max
      l += c * sums[r * g + j];
      const float* op = outs + r * g * hd + j * hd;
      for (size_t i = 0; i < hd; ++i) o[i] += c * op[i];
    }
    for (size_t i = 0; i < hd; ++i) o[i] /= l;
  }
}

}  // namespace mxq
#endif  // HWY_ONCE
