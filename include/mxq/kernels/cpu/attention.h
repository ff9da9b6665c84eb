// mxq/kernels/cpu/attention.h — one query head's causal attention over a KV cache, on the CPU:
//
//   s_t = scale · (q · k_t)   for t = 0 .. T − 1 (the positions the query may see)
//   p   = softmax(s)          (the max subtracted first)
//   out = Σ_t p_t · v_t
//
// q, out: [hd] f32. k_t, v_t: [hd] f32 rows of the cache, row t at k + t·stride (stride ≥ hd: the
// model's cache rows hold every KV head, [T, kv_heads · hd], and k points at this head's columns).
//
// attention_head_ref defines the math: dot products, exponentials and sums in double, out rounded
// once to f32. attention_head: Highway SIMD, f32 lanes (hd along the vector), the exponentials by
// Highway's vector Exp (≤ 1 ulp); tests/test_runtime_kernels.cpp derives how far it may differ.
#pragma once

#include <cstddef>

namespace mxq {

void attention_head_ref(const float* q, const float* k, const float* v, size_t stride, size_t T,
                        size_t hd, float scale, float* out);

// scratch: at least T floats (the scores, then the probabilities).
void attention_head(const float* q, const float* k, const float* v, size_t stride, size_t T,
                    size_t hd, float scale, float* scratch, float* out);

}  // namespace mxq
