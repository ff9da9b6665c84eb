// `mxq eval MODEL [--ref MODEL]`: perplexity on WikiText-2 (or --text FILE) over non-overlapping
// windows, with standard errors; with --ref, mean KL divergence and top-1 agreement against the
// reference model. A progress line while it runs, a table at the end, --json for machines.
#include <fmt/core.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/progress.h"
#include "mxq/error.h"
#include "mxq/io/hf_checkpoint.h"
#include "mxq/runtime/evaluate.h"
#include "mxq/runtime/tokenizer.h"

namespace mxq::cli {
namespace {

struct EvalArgs {
  std::string model, ref, text, json, mode;
  size_t ctx = 512, max_windows = 0;
  int threads = 0;
  runtime::KvCacheType kv_cache = runtime::KvCacheType::f32;
};

// The evaluation text: --text, else WikiText-2's test split from the shared data beside the repo.
std::string default_text() {
  for (const char* p : {"../shared/data/wikitext-2-raw/wiki.test.raw", "shared/data/wikitext-2-raw/wiki.test.raw"})
    if (std::filesystem::exists(p)) return p;
  fail("no --text given and wikitext-2-raw/wiki.test.raw not found under ../shared/data or shared/data");
}

void run_eval(const EvalArgs& a) {
  const std::string text_path = a.text.empty() ? default_text() : a.text;
  const auto t0 = std::chrono::steady_clock::now();
  runtime::ModelOptions mo;
  mo.threads = a.threads;
  mo.kv_cache = a.kv_cache;
  mo.max_seq = a.ctx;
  std::unique_ptr<runtime::Model> ref;
  if (!a.ref.empty()) ref = std::make_unique<runtime::Model>(a.ref, mo);  // as its config says
  if (!a.mode.empty()) mo.mode = runtime::mxfp4_mode_from_name(a.mode);
  runtime::Model model(a.model, mo);
  const runtime::QuantConfig& qc = model.quant_config();
  const std::string quant = qc.quant_algo.empty() ? "none" : fmt::format("{} {} ({})", qc.quant_algo,
                                                                           runtime::mxfp4_mode_name(qc.mode), qc.mode_reason);
  const auto tok = runtime::Tokenizer::from_hf_dir(a.model);
  const auto tokens = tok.encode(io::read_text_file(text_path), false);
  fmt::print(stderr, "{}: {} tokens; windows of {}\n", text_path, tokens.size(), a.ctx);

  const size_t all = tokens.size() / a.ctx;
  Progress bar(a.max_windows ? std::min(all, a.max_windows) : all);
  const auto r = runtime::evaluate(model, ref.get(), tokens, {a.ctx, a.max_windows},
                                   [&](size_t done, size_t, const runtime::EvalResult& cur) {
                                     bar.update(done, fmt::format("ppl {:.3f}", cur.ppl));
                                   });
  bar.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("\n{:<40} {}\n", "model", a.model);
  fmt::print("{:<40} {}\n", "quantization", quant);
  if (ref) fmt::print("{:<40} {}\n", "reference", a.ref);
  fmt::print("{:<40} {} (ctx {}, {} windows, {} scored tokens)\n", "text", text_path, a.ctx, r.windows, r.tokens);
  fmt::print("{:<40} {:.4f} ± {:.4f}\n", "perplexity", r.ppl, r.ppl_se);
  fmt::print("{:<40} {:.5f} ± {:.5f}\n", "mean NLL (nats)", r.nll, r.nll_se);
  if (r.kl) {
    fmt::print("{:<40} {:.6f} ± {:.6f}\n", "mean KL(reference || model) (nats)", *r.kl, *r.kl_se);
    fmt::print("{:<40} {:.4f}\n", "top-1 agreement", *r.top1);
  }
  fmt::print("{:<40} {:.1f} s ({:.0f} tokens/s)\n", "time", secs, r.windows * a.ctx * (ref ? 2.0 : 1.0) / secs);
  if (!a.json.empty()) {
    nlohmann::ordered_json j = {{"model", a.model}, {"quantization", quant}, {"text", text_path}, {"ctx", a.ctx}, {"windows", r.windows},
                                {"tokens", r.tokens}, {"ppl", r.ppl}, {"ppl_se", r.ppl_se}, {"nll", r.nll},
                                {"nll_se", r.nll_se}, {"seconds", secs}};
    if (ref) j["reference"] = a.ref, j["kl"] = *r.kl, j["kl_se"] = *r.kl_se, j["top1"] = *r.top1;
    std::ofstream(a.json) << j.dump(2) << "\n";
  }
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Perplexity (and KL / top-1 against --ref) on WikiText-2 or --text");
  cmd->add_option("model", a->model, "Checkpoint directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--ref", a->ref, "Reference checkpoint (e.g. the BF16 model) for KL and top-1")->check(CLI::ExistingDirectory);
  cmd->add_option("--text", a->text, "Evaluation text (default: ../shared/data/wikitext-2-raw/wiki.test.raw)")->check(CLI::ExistingFile);
  cmd->add_option("--ctx", a->ctx, "Window length in tokens")->check(CLI::Range(2, 1 << 17))->capture_default_str();
  add_mode_option(cmd, a->mode);
  add_kv_cache_option(cmd, a->kv_cache);
  cmd->add_option("--max-windows", a->max_windows, "Score only the first N windows (0 = all)");
  cmd->add_option("--threads", a->threads, "Worker threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--json", a->json, "Also write the results to this JSON file");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace mxq::cli
