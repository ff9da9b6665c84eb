// `mxq import MODEL.gguf -o DIR`: a GGUF model as a Hugging Face-style checkpoint (BF16 safetensors,
// config.json, tokenizer files) that transformers and `mxq quantize` read.
#include <fmt/core.h>

#include <chrono>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/progress.h"
#include "mxq/io/gguf_import.h"

namespace mxq::cli {

void add_import(CLI::App& app) {
  struct Args { std::string gguf, out; bool force = false; };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("import", "Convert a GGUF model into a Hugging Face-style BF16 checkpoint directory");
  cmd->add_option("gguf", a->gguf, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a->out, "Output directory (must not exist unless --force)")->required();
  cmd->add_flag("--force", a->force, "Replace an existing output directory (only once the import has succeeded)");
  cmd->callback([a] {
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<Progress> bar;
    const auto sum = io::import_gguf(a->gguf, a->out, a->force, [&](size_t done, size_t all, const std::string& name) {
      if (!bar) bar = std::make_unique<Progress>(all);
      bar->update(done, name);
    });
    if (bar) bar->finish();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("imported {} -> {}: {}, {} tensors, {:.1f} M parameters, {:.1f} MB BF16, {:.1f} s\n", a->gguf,
               a->out, sum.architecture, sum.tensors, sum.parameters / 1e6, sum.bytes_written / 1e6, s);
  });
}

}  // namespace mxq::cli
