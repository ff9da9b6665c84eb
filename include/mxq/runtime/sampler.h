// mxq/runtime/sampler.h — picks the next token from a row of logits: greedy, or temperature with
// top-k and top-p (nucleus) filtering, from a seeded generator so that runs repeat.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace mxq::runtime {

struct SamplerOptions {
  float temperature = 0.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: no limit
  float top_p = 1.0f;        // 1: no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& o) : opt_(o), rng_(o.seed) {}
  // The next token id from logits [vocab].
  int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions opt_;
  std::mt19937_64 rng_;
};

// The index of the largest logit (the first one on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace mxq::runtime
