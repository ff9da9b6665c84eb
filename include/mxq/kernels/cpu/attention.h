// mxq/kernels/cpu/attention.h — causal attention of the g query heads that share one KV head
// (grouped-query attention), over that head's KV cache, on the CPU. For each query j < g:
//
//   s_jt = scale · (q_j · k_t)   for t = 0 .. T − 1 (the positions the queries may see)
//   p_j  = softmax(s_j)          (the max subtracted first)
//   out_j = Σ_t p_jt · v_t
//
// q, out: [g, hd] f32 (the group's heads side by side, as they sit in a token's q row).
// One KV head's cache, f32 or bf16 elements (every function comes for both), room for `capacity`
// positions:
//   K tiled [⌈capacity / kKvTile⌉, hd, kKvTile]: tiles of 16 positions, each stored transposed,
//     so a tile's 16 scores are hd multiply-adds of 16 lanes (no horizontal sum per position);
//     element (t, i) at kv_k_index(t, i, hd);
//   V row-major [capacity, hd].
// The g queries share one pass over K and V: a KV head's cache is read once per token, not g times.
//
// A bf16 cache holds the values rounded to bf16 when written (the model's choice,
// ModelOptions::kv_cache): half the bytes a decode step streams. The functions widen its elements
// to f32 exactly, so for either type they compute the same math on the values the cache holds.
//
// attention_group_ref defines the math: dot products, exponentials and sums in double, out rounded
// once to f32. attention_group: Highway SIMD (scores with lanes along t, the weighted sum of V with
// lanes along hd, the exponentials by Highway's vector Exp, ≤ 1 ulp); tests/test_kernels_attention.cpp
// derives how far it may differ.
#pragma once

#include <cstddef>
#include <type_traits>

#include "mxq/format.h"

namespace mxq {

constexpr size_t kKvTile = 16;  // positions per K tile

// A cache element of type E (float or bf16) from an f32 value (bf16: rounded to nearest even), and
// back to f32 (exact): the one conversion the model's writes, the kernels and the tests share.
template <class E>
constexpr E kv_from_f32(float x) {
  if constexpr (std::is_same_v<E, bf16>) return bf16_from_f32(x);
  else return x;
}
constexpr float kv_to_f32(float x) { return x; }
constexpr float kv_to_f32(bf16 x) { return bf16_to_f32(x); }

// Index of K element (position t, dimension i) in a tiled K cache of head size hd.
constexpr size_t kv_k_index(size_t t, size_t i, size_t hd) {
  return (t / kKvTile) * hd * kKvTile + i * kKvTile + t % kKvTile;
}
// Elements of one KV head's tiled K cache with room for `capacity` positions (whole tiles).
constexpr size_t kv_k_elements(size_t capacity, size_t hd) {
  return (capacity + kKvTile - 1) / kKvTile * kKvTile * hd;
}
// Floats of attention_group's scratch for g queries over T positions.
constexpr size_t attention_scratch_floats(size_t g, size_t T) {
  return g * ((T + kKvTile - 1) / kKvTile * kKvTile);
}

void attention_group_ref(const float* q, size_t g, const float* k, const float* v, size_t T, size_t hd,
                         float scale, float* out);
void attention_group_ref(const float* q, size_t g, const bf16* k, const bf16* v, size_t T, size_t hd,
                         float scale, float* out);

// scratch: at least attention_scratch_floats(g, T) floats (the scores, then the probabilities).
// Reads K's whole last tile (positions T .. ⌈T/16⌉·16 − 1 too; their scores are not used).
void attention_group(const float* q, size_t g, const float* k, const float* v, size_t T, size_t hd,
                     float scale, float* scratch, float* out);
void attention_group(const float* q, size_t g, const bf16* k, const bf16* v, size_t T, size_t hd,
                     float scale, float* scratch, float* out);

// The same over positions [t0, t1) only (t0 a multiple of kKvTile), so that one KV head's
// positions can be split between threads (decode has fewer KV heads than work for every thread):
// out [g, hd] gets the part's unnormalized Σ_t e^(s_jt − max_j) v_t, max [g] its max_j and sum
// [g] its Σ_t e^(s_jt − max_j). scratch: attention_scratch_floats(g, t1 − t0). g ≤ kMaxGroupPart.
constexpr size_t kMaxGroupPart = 64;
void attention_group_part(const float* q, size_t g, const float* k, const float* v, size_t t0,
                          size_t t1, size_t hd, float scale, float* scratch, float* out, float* max,
                          float* sum);
void attention_group_part(const float* q, size_t g, const bf16* k, const bf16* v, size_t t0,
                          size_t t1, size_t hd, float scale, float* scratch, float* out, float* max,
                          float* sum);

// Combines `parts` results of attention_group_part over disjoint ranges that cover 0 .. T − 1
// (part r's out at outs + r·g·hd, its max and sum at r·g) into attention_group's out [g, hd]:
// each part weighted by e^(max_r − max), then divided by the weighted sum.
void attention_merge(const float* outs, const float* maxes, const float* sums, size_t parts, size_t g,
                     size_t hd, float* out);

}  // namespace mxq
