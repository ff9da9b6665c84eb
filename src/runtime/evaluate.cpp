#include "mxq/runtime/evaluate.h"

#include <cmath>

#include "mxq/error.h"
#include "mxq/runtime/sampler.h"

namespace mxq::runtime {
namespace {

// log-softmax of one row of logits, in double.
void log_softmax(const float* z, size_t n, std::vector<double>& out) {
  out.resize(n);
  double m = z[0];
  for (size_t i = 1; i < n; ++i) m = std::max(m, double(z[i]));
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(double(z[i]) - m);
  const double lse = m + std::log(s);
  for (size_t i = 0; i < n; ++i) out[i] = double(z[i]) - lse;
}

// Running mean and variance (Welford), for the standard errors.
struct Moments {
  size_t n = 0;
  double mean = 0, m2 = 0;
  void add(double x) {
    ++n;
    const double d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  double se() const { return n > 1 ? std::sqrt(m2 / (n - 1) / n) : 0.0; }
};

}  // namespace

EvalResult evaluate(Model& model, Model* reference, std::span<const int32_t> tokens, const EvalOptions& opt,
                    const EvalProgress& progress) {
  if (opt.ctx < 2) fail("evaluate: the context must hold at least 2 tokens, not {}", opt.ctx);
  if (opt.ctx > model.max_seq()) fail("evaluate: context {} exceeds the model's KV cache of {} positions", opt.ctx, model.max_seq());
  if (reference && reference->config().vocab != model.config().vocab)
    fail("evaluate: the reference's vocabulary ({}) differs from the model's ({})", reference->config().vocab, model.config().vocab);
  size_t windows = tokens.size() / opt.ctx;
  if (opt.max_windows) windows = std::min(windows, opt.max_windows);
  if (windows == 0) fail("evaluate: the text has {} tokens, fewer than one window of {}", tokens.size(), opt.ctx);

  const size_t vocab = model.config().vocab;
  Moments nll, kl;
  size_t agree = 0;
  EvalResult r;
  std::vector<double> lp, lq;
  for (size_t w = 0; w < windows; ++w) {
    const auto win = tokens.subspan(w * opt.ctx, opt.ctx);
    const Tensor logits = model.forward(win, 0, true);
    Tensor ref_logits;
    if (reference) ref_logits = reference->forward(win, 0, true);
    for (size_t t = 0; t + 1 < opt.ctx; ++t) {
      log_softmax(logits.row(t), vocab, lq);
      nll.add(-lq[win[t + 1]]);
      if (!reference) continue;
      log_softmax(ref_logits.row(t), vocab, lp);
      double d = 0;
      for (size_t i = 0; i < vocab; ++i) d += std::exp(lp[i]) * (lp[i] - lq[i]);
      kl.add(d);
      agree += argmax({ref_logits.row(t), vocab}) == argmax({logits.row(t), vocab});
    }
    r.windows = w + 1, r.tokens = nll.n;
    r.nll = nll.mean, r.nll_se = nll.se();
    r.ppl = std::exp(nll.mean), r.ppl_se = r.ppl * r.nll_se;
    if (reference) r.kl = kl.mean, r.kl_se = kl.se(), r.top1 = double(agree) / kl.n;
    if (progress) progress(w + 1, windows, r);
  }
  return r;
}

}  // namespace mxq::runtime
