// `mxq inspect PATH`: what a checkpoint (directory) or GGUF file holds — architecture, quantization
// config, and per format the tensors, parameters and bytes; --tensors lists every tensor;
// --dequantize -o DIR writes a BF16 copy of a quantized checkpoint.
#include <fmt/core.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/text.h"
#include "mxq/error.h"
#include "mxq/io/gguf.h"
#include "mxq/io/quantized_checkpoint.h"

namespace mxq::cli {
namespace {

struct InspectArgs {
  std::string path, out;
  bool tensors = false, dequantize = false, force = false;
};

struct Totals { size_t tensors = 0; uint64_t params = 0, bytes = 0; };

void print_totals(const std::map<std::string, Totals>& by) {
  fmt::print("{:<14} {:>8} {:>12} {:>10} {:>12}\n", "format", "tensors", "params M", "MB", "bits/param");
  for (const auto& [f, t] : by)
    fmt::print("{:<14} {:>8} {:>12.2f} {:>10.2f} {:>12.2f}\n", f, t.tensors, t.params / 1e6, t.bytes / 1e6,
               t.params ? 8.0 * t.bytes / t.params : 0.0);
}

void inspect_gguf(const InspectArgs& a) {
  const io::GgufFile g(a.path);
  fmt::print("{}: GGUF v{}, architecture {}, {} tensors\n\n", a.path, g.version(), g.get_string("general.architecture"),
             g.tensors().size());
  std::map<std::string, Totals> by;
  for (const auto& t : g.tensors()) {
    auto& s = by[t.type->name];
    s.tensors += 1, s.params += t.elements(), s.bytes += t.data.size();
    if (a.tensors) fmt::print("{:<48} {:<6} {}\n", t.name, t.type->name, shape_str(t.shape()));
  }
  if (a.tensors) fmt::print("\n");
  print_totals(by);
}

void inspect_checkpoint(const InspectArgs& a) {
  const io::HfCheckpoint ck(a.path);
  const auto& cfg = ck.config();
  const std::string arch = cfg.contains("architectures") && cfg["architectures"].is_array() && !cfg["architectures"].empty()
                               ? cfg["architectures"][0].get<std::string>() : "(none)";
  fmt::print("{}: {}\n", a.path, arch);
  if (cfg.contains("quantization_config")) {
    const auto& q = cfg["quantization_config"];
    fmt::print("quantization: method {}, algorithm {}\n", q.value("quant_method", "?"), q.value("quant_algo", "-"));
  } else {
    fmt::print("quantization: none\n");
  }
  fmt::print("\n");
  const auto tensors = io::logical_tensors(ck);
  std::map<std::string, Totals> by;
  for (const auto& t : tensors) {
    const std::string f = t.format == io::StoredFormat::dense ? io::dtype_info(t.data->dtype).name : io::stored_format_name(t.format);
    uint64_t n = 1;
    for (auto d : t.shape) n *= d;
    auto& s = by[f];
    s.tensors += 1, s.params += n, s.bytes += t.stored_bytes();
    if (a.tensors) fmt::print("{:<60} {:<11} {:<18} {:>9.3f} MB\n", t.name, f, shape_str(t.shape), t.stored_bytes() / 1e6);
  }
  if (a.tensors) fmt::print("\n");
  print_totals(by);
  if (a.dequantize) {
    io::dequantize_checkpoint(ck, a.out, a.force);
    fmt::print("\nwrote {}: {} tensors in BF16 (dequantized), no quantization_config\n", a.out, tensors.size());
  }
}

}  // namespace

void add_inspect(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Show what a checkpoint directory or GGUF file holds; optionally dequantize it");
  cmd->add_option("path", a->path, "Checkpoint directory or .gguf file")->required()->check(CLI::ExistingPath);
  cmd->add_flag("--tensors", a->tensors, "List every tensor");
  cmd->add_flag("--dequantize", a->dequantize, "Write a BF16 copy of the checkpoint to -o DIR");
  cmd->add_option("-o,--output", a->out, "Output directory for --dequantize");
  cmd->add_flag("--force", a->force, "Replace an existing output directory");
  cmd->callback([a] {
    if (a->dequantize && a->out.empty()) fail("inspect: --dequantize needs -o DIR");
    if (std::filesystem::is_directory(a->path)) {
      inspect_checkpoint(*a);
    } else {
      if (a->dequantize) fail("inspect: --dequantize reads checkpoint directories; use `mxq import` for GGUF");
      inspect_gguf(*a);
    }
  });
}

}  // namespace mxq::cli
