// attention_group and silu_mul (SIMD, every target) against their references on random data:
// awkward sizes (tails shorter than a vector, a last K tile partly past T), groups of 1 to 5
// queries (more than one pass of 4), scores from small to large (a peaked softmax), SiLU inputs
// whose exponential overflows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "mxq/kernels/cpu/activation.h"
#include "mxq/kernels/cpu/attention.h"
#include "simd_targets.h"

namespace mxq {
namespace {

// Bound on |out_simd − out_ref| per element, from the reference's own values (u = 2^-24):
//   scores: an f32 dot product of hd terms (a chain of FMAs per lane) is off by at most
//     (hd + 2)·u·Σ_i|q_i k_ti| and the scale multiply adds u·|s_t|: call the largest, times scale,
//     εs (an absolute error of the exponent);
//   p_t = exp(s_t − max): relative error ≤ 2εs (s_t and the max) + u·|s_t − max| (the
//     subtraction) + 2u (Highway's Exp is ≤ 1 ulp, the f32 rounding of the result);
//   out = Σ p_t v_t / Σ p_t: the weights' relative error doubles through the normalization, and
//     the two f32 sums of T terms and the final multiply add (2T + 4)·u relative to Σ w_t|v_t|.
// So |Δout_i| ≤ (2·(2εs + u·D + 2u) + (2T + 4)·u) · Σ_t w_t |v_ti|, D = max_t |s_t − max|. The
// test allows twice that; a wrong index, a lost tail or a missing max subtraction is off by O(1).
// q: one query [hd]; k, v: row-major [T, hd].
double bound(const float* q, const std::vector<float>& k, const std::vector<float>& v, size_t T,
             size_t hd, float scale, size_t i) {
  const size_t stride = hd;
  const double u = std::ldexp(1.0, -24);
  std::vector<double> s(T);
  double eps = 0, mx = -INFINITY;
  for (size_t t = 0; t < T; ++t) {
    double dot = 0, mag = 0;
    for (size_t j = 0; j < hd; ++j) {
      dot += double(q[j]) * k[t * stride + j];
      mag += std::fabs(double(q[j]) * k[t * stride + j]);
    }
    s[t] = dot * scale;
    mx = std::max(mx, s[t]);
    eps = std::max(eps, ((double(hd) + 2) * u * mag + u * std::fabs(dot)) * scale);
  }
  double sum = 0, d = 0;
  for (size_t t = 0; t < T; ++t) {
    d = std::max(d, mx - s[t]);
    sum += std::exp(s[t] - mx);
  }
  double wv = 0;
  for (size_t t = 0; t < T; ++t) wv += std::exp(s[t] - mx) / sum * std::fabs(v[t * stride + i]);
  return 2.0 * ((2 * (2 * eps + u * d + 2 * u) + (2.0 * double(T) + 4) * u) * wv);
}

// Both cache element types: a bf16 cache holds k and v rounded to bf16, and the bound is taken on
// those rounded values, which both sides compute with exactly (the kernel widens them losslessly).
template <class E>
void check_group_against_reference() {
  std::mt19937 rng(2024);
  std::normal_distribution<float> g(0.f, 1.f);
  for_each_simd_target([&](const std::string&) {
    for (size_t hd : {2, 6, 24, 40, 64, 72, 128})
      for (size_t T : {1, 3, 17, 64, 193})
        for (size_t G : {1, 3, 5})
          for (float amp : {0.3f, 3.0f}) {  // q·k / √hd of O(0.1) and O(10): flat and peaked softmax
            SCOPED_TRACE(testing::Message() << "hd " << hd << " T " << T << " g " << G << " amp " << amp);
            const size_t capacity = T + 21;  // room past T, as a cache has
            std::vector<float> q(G * hd), k(T * hd), v(T * hd);
            for (float& x : q) x = amp * g(rng);
            for (float& x : k) x = kv_to_f32(kv_from_f32<E>(g(rng)));
            for (float& x : v) x = kv_to_f32(kv_from_f32<E>(g(rng)));
            // The cache: positions ≥ T hold NaN, which no output may see.
            std::vector<E> kc(kv_k_elements(capacity, hd), kv_from_f32<E>(NAN)), vc(capacity * hd, kv_from_f32<E>(NAN));
            for (size_t t = 0; t < T; ++t)
              for (size_t i = 0; i < hd; ++i) {
                kc[kv_k_index(t, i, hd)] = kv_from_f32<E>(k[t * hd + i]);
                vc[t * hd + i] = kv_from_f32<E>(v[t * hd + i]);
              }
            const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
            std::vector<float> out(G * hd), ref(G * hd), scratch(attention_scratch_floats(G, T));
            attention_group(q.data(), G, kc.data(), vc.data(), T, hd, scale, scratch.data(), out.data());
            attention_group_ref(q.data(), G, kc.data(), vc.data(), T, hd, scale, ref.data());
            // The same split into parts of 16 positions (the last one short), merged. The merge
            // weighs each part by e^(max_r − max) (Exp ≤ 1 ulp + a rounding) and adds `parts` terms
            // to the sums and the outputs: ≤ (2·3 + 2·parts)·u more relative to Σ_t w_t|v_t|, which
            // the bound's factor 2 covers (it is far below the (2T + 4)·u term at T ≥ 17).
            const size_t parts = (T + kKvTile - 1) / kKvTile;
            std::vector<float> outs(parts * G * hd), maxes(parts * G), sums(parts * G), merged(G * hd);
            for (size_t r = 0; r < parts; ++r)
              attention_group_part(q.data(), G, kc.data(), vc.data(), r * kKvTile, std::min(T, (r + 1) * kKvTile),
                                   hd, scale, scratch.data(), outs.data() + r * G * hd, maxes.data() + r * G,
                                   sums.data() + r * G);
            attention_merge(outs.data(), maxes.data(), sums.data(), parts, G, hd, merged.data());
            double largest = 0;
            for (size_t j = 0; j < G; ++j)
              for (size_t i = 0; i < hd; ++i) {
                const size_t o = j * hd + i;
                const double b = bound(q.data() + j * hd, k, v, T, hd, scale, i);
                ASSERT_LE(std::fabs(double(out[o]) - ref[o]), b)
                    << "query " << j << " i " << i << " out " << out[o] << " ref " << ref[o];
                ASSERT_LE(std::fabs(double(merged[o]) - ref[o]), b)
                    << "split: query " << j << " i " << i << " out " << merged[o] << " ref " << ref[o];
                largest = std::max(largest, std::fabs(double(ref[o])));
              }
            EXPECT_GT(largest, 0.0);
          }
  });
}

TEST(Attention, GroupMatchesReference) { check_group_against_reference<float>(); }
TEST(Attention, GroupOnBf16CacheMatchesReference) { check_group_against_reference<bf16>(); }

// silu_mul against silu_mul_ref. The SIMD value is fl(fl(g / fl(1 + Exp(−g))) · up): Exp is
// within 1 ulp (≤ 2u relative, u = 2^-24) and passes through 1 + e with at most that relative
// weight, then one rounding each for the add, the division and the multiply: ≤ 5u relative, allowed
// 6u·|ref|. Where e^−g overflows f32 (g < −88.7) both sides are a tiny or zero multiple of up,
// hence the absolute floor of 1e-30.
TEST(Activation, SiluMulMatchesReference) {
  std::mt19937 rng(77);
  std::normal_distribution<float> g(0.f, 3.f);
  for_each_simd_target([&](const std::string&) {
    for (size_t n : {1, 7, 17, 100, 1537}) {
      SCOPED_TRACE(testing::Message() << "n " << n);
      std::vector<float> gate(n), up(n), out(n), ref(n);
      for (float& x : gate) x = g(rng);
      for (float& x : up) x = g(rng);
      gate[0] = -100.0f;  // e^100 overflows
      if (n > 3) gate[3] = 95.0f;
      silu_mul(gate.data(), up.data(), n, out.data());
      silu_mul_ref(gate.data(), up.data(), n, ref.data());
      for (size_t i = 0; i < n; ++i)
        ASSERT_LE(std::fabs(double(out[i]) - ref[i]), 6 * std::ldexp(1.0, -24) * std::fabs(ref[i]) + 1e-30)
            << "i " << i << " gate " << gate[i] << " out " << out[i] << " ref " << ref[i];
      // In place (out = gate), as the model calls it.
      std::vector<float> inplace = gate;
      silu_mul(inplace.data(), up.data(), n, inplace.data());
      EXPECT_EQ(inplace, out);
    }
  });
}

}  // namespace
}  // namespace mxq
