// mxq/runtime/evaluate.h — the accuracy measures: perplexity over non-overlapping windows of a
// tokenized text, and, against a reference model run on the same windows, the mean KL divergence
// KL(reference || model) and the top-1 agreement of the next-token distributions.
//
// Protocol: the text is tokenized once; windows of `ctx` tokens start at 0, ctx, 2·ctx, ...; in each
// window every position but the last predicts the next token (ctx − 1 scored tokens per window).
// The standard error of the mean NLL is std(NLL)/sqrt(n); perplexity's is ppl · se (delta method).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "mxq/runtime/model.h"

namespace mxq::runtime {

struct EvalOptions {
  size_t ctx = 512;
  size_t max_windows = 0;  // 0: every full window of the text
};

struct EvalResult {
  size_t windows = 0, tokens = 0;     // scored tokens
  double nll = 0, nll_se = 0;         // mean negative log-likelihood (nats) and its standard error
  double ppl = 0, ppl_se = 0;
  std::optional<double> kl, kl_se;    // vs the reference, nats per token
  std::optional<double> top1;         // share of positions where both argmaxes agree
};

// Called after each window with (windows done, windows in all, running result).
using EvalProgress = std::function<void(size_t, size_t, const EvalResult&)>;

EvalResult evaluate(Model& model, Model* reference, std::span<const int32_t> tokens, const EvalOptions& opt,
                    const EvalProgress& progress = {});

}  // namespace mxq::runtime
