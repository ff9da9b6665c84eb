#include "mxq/runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace mxq::runtime {

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (opt_.temperature <= 0.0f) return argmax(logits);
  // Candidates sorted by logit, cut to top_k, softmax at the temperature, cut to the smallest set
  // whose probability reaches top_p, then one draw.
  std::vector<int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  const size_t k = opt_.top_k > 0 ? std::min<size_t>(opt_.top_k, idx.size()) : idx.size();
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  idx.resize(k);
  std::vector<double> p(k);
  const double top = logits[idx[0]];
  double sum = 0;
  for (size_t i = 0; i < k; ++i) sum += p[i] = std::exp((logits[idx[i]] - top) / opt_.temperature);
  size_t keep = k;
  double cum = 0;
  for (size_t i = 0; i < k; ++i) {
    cum += p[i] / sum;
    if (cum >= opt_.top_p) { keep = i + 1; break; }
  }
  std::discrete_distribution<size_t> pick(p.begin(), p.begin() + keep);
  return idx[pick(rng_)];
}

}  // namespace mxq::runtime
