// `mxq generate MODEL -p TEXT`: streams the continuation as it is produced (greedy by default;
// --temperature, --top-k, --top-p, --seed), --chat wraps the prompt in the model's ChatML template,
// and the end prints prefill and decode speed.
#include <fmt/core.h>

#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "mxq/error.h"
#include "mxq/io/hf_checkpoint.h"
#include "mxq/runtime/model.h"
#include "mxq/runtime/sampler.h"
#include "mxq/runtime/tokenizer.h"

namespace mxq::cli {
namespace {

struct GenerateArgs {
  std::string model, prompt, system, mode;
  size_t max_tokens = 64;
  bool chat = false;
  runtime::SamplerOptions sampling;
  int threads = 0;
  runtime::KvCacheType kv_cache = runtime::KvCacheType::f32;
};

// ChatML, as SmolLM2's and Qwen's templates write it. The system prompt is --system, else the one
// the model's chat template inserts by default (SmolLM2 has one), else none.
std::string chatml(const std::string& model_dir, const std::string& system, const std::string& user) {
  std::string sys = system;
  if (sys.empty()) {
    const auto cfg = io::read_json_file(model_dir + "/tokenizer_config.json");
    const std::string tmpl = cfg.value("chat_template", "");
    if (tmpl.find("<|im_start|>") == std::string::npos)
      fail("{}: --chat needs a ChatML chat template (<|im_start|>), which this tokenizer does not have", model_dir);
    std::smatch m;
    if (std::regex_search(tmpl, m, std::regex(R"(<\|im_start\|>system\n([^<']*)<\|im_end\|>)"))) sys = m[1];
  }
  std::string s = sys.empty() ? "" : "<|im_start|>system\n" + sys + "<|im_end|>\n";
  return s + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_generate(const GenerateArgs& a) {
  runtime::ModelOptions mo;
  mo.threads = a.threads;
  mo.kv_cache = a.kv_cache;
  if (!a.mode.empty()) mo.mode = runtime::mxfp4_mode_from_name(a.mode);
  runtime::Model model(a.model, mo);
  const auto tok = runtime::Tokenizer::from_hf_dir(a.model);
  const std::string text = a.chat ? chatml(a.model, a.system, a.prompt) : a.prompt;
  const std::vector<int32_t> prompt = tok.encode(text, tok.adds_bos());
  if (prompt.empty()) fail("generate: the prompt is empty");
  if (prompt.size() + a.max_tokens > model.max_seq())
    fail("generate: prompt of {} tokens plus {} new tokens exceeds the context of {} positions", prompt.size(),
         a.max_tokens, model.max_seq());
  std::vector<int32_t> stops;
  if (tok.eos_id() >= 0) stops.push_back(tok.eos_id());
  if (auto end = tok.added_token("<|im_end|>")) stops.push_back(*end);

  runtime::Sampler sampler(a.sampling);
  if (!a.chat) fmt::print("{}", a.prompt);
  const auto t0 = std::chrono::steady_clock::now();
  runtime::Tensor logits = model.forward(prompt, 0, false);
  const double prefill_s = since(t0);
  std::vector<int32_t> out;
  std::string shown;
  const auto t1 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < a.max_tokens; ++i) {
    const int32_t next = sampler.sample(logits.span());
    if (std::find(stops.begin(), stops.end(), next) != stops.end()) break;
    out.push_back(next);
    // Print the newly completed text: a token may end in the middle of a UTF-8 character.
    const std::string now = tok.decode(out);
    if (now.size() > shown.size() && (static_cast<unsigned char>(now.back()) & 0xC0) != 0x80) {
      fmt::print("{}", now.substr(shown.size()));
      std::fflush(stdout);
      shown = now;
    }
    if (i + 1 < a.max_tokens) logits = model.forward({&next, 1}, prompt.size() + i, false);
  }
  const double decode_s = since(t1);
  fmt::print("{}\n\n", tok.decode(out).substr(shown.size()));
  std::fflush(stdout);  // the text first, then the figures on stderr
  fmt::print(stderr, "prefill: {} tokens in {:.3f} s ({:.1f} tokens/s); decode: {} tokens in {:.3f} s ({:.1f} tokens/s)\n",
             prompt.size(), prefill_s, prompt.size() / prefill_s, out.size(), decode_s,
             out.empty() ? 0.0 : out.size() / decode_s);
}

}  // namespace

void add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt, streaming tokens");
  cmd->add_option("model", a->model, "Checkpoint directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text")->required();
  cmd->add_option("-n,--max-tokens", a->max_tokens, "New tokens at most")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  cmd->add_flag("--chat", a->chat, "Wrap the prompt in the model's ChatML chat template");
  cmd->add_option("--system", a->system, "System prompt for --chat (default: the template's own)");
  cmd->add_option("--temperature", a->sampling.temperature, "0 = greedy")->check(CLI::Range(0.0, 10.0))->capture_default_str();
  cmd->add_option("--top-k", a->sampling.top_k, "Sample among the k most likely (0 = all)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--top-p", a->sampling.top_p, "Nucleus sampling mass")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--seed", a->sampling.seed, "Random seed for sampling");
  add_mode_option(cmd, a->mode);
  add_kv_cache_option(cmd, a->kv_cache);
  cmd->add_option("--threads", a->threads, "Worker threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace mxq::cli
