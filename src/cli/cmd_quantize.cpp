// `mxq quantize IN -o OUT --recipe NAME|FILE`: print the plan (every tensor, the rule that decided
// it, its format, bytes before -> after), quantize tensor by tensor with an SQNR per tensor, and
// end with a summary. --dry-run stops after the plan.
#include <fmt/core.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/text.h"
#include "cli/progress.h"
#include "mxq/error.h"
#include "mxq/io/hf_checkpoint.h"
#include "mxq/quant/quantize_checkpoint.h"

namespace mxq::cli {
namespace {

struct QuantizeArgs {
  std::string in, out, recipe = "MXFP4_WEIGHT_ONLY", scale_rule;
  bool dry_run = false, force = false, quantize_lm_head = false, allow_unquantized_k = false;
  int threads = 0;
  double max_shard_gb = 5.0;
};

std::string format_str(const quant::Decision& d) {
  if (!d.quantize) return "keep";
  std::string f(quant::weight_format_name(d.format.weight));
  if (d.format.activation != quant::ActivationFormat::none)
    f += " / " + std::string(quant::activation_format_name(d.format.activation));
  if (d.format.weight == quant::WeightFormat::mxfp4 || d.format.weight == quant::WeightFormat::mxfp8_e4m3)
    f += fmt::format(" ({}{})", scale_rule_name(d.format.mx.scale),
                     d.format.mx.ties == TieRule::toward_zero ? ", ties toward zero" : "");
  return f;
}

void run_quantize(const QuantizeArgs& a) {
  quant::Recipe recipe = std::filesystem::exists(a.recipe) ? quant::recipe_from_file(a.recipe) : quant::recipe_preset(a.recipe);
  if (!a.scale_rule.empty()) {
    const auto rule = quant::scale_rule_from_name(a.scale_rule);
    if (!rule) fail("--scale-rule '{}' is not one of ocp_floor, ceil, even, mse", a.scale_rule);
    recipe = quant::with_scale_rule(recipe, *rule);
  }
  if (a.quantize_lm_head) recipe.quantize_lm_head = true;
  const io::HfCheckpoint in(a.in);
  const quant::Plan plan = quant::make_plan(in, recipe, a.allow_unquantized_k);

  fmt::print("plan: {} with recipe {} ({})\n\n", a.in, recipe.name, recipe.quant_algo);
  fmt::print("{:<52} {:<16} {:<5} {:<40} {:>10} {:>10}  {}\n", "tensor", "shape", "dtype", "format", "MB before", "MB after", "because");
  for (const auto& e : plan.entries)
    fmt::print("{:<52} {:<16} {:<5} {:<40} {:>10.2f} {:>10.2f}  {}\n", e.name, shape_str(e.source->shape),
               io::dtype_info(e.source->dtype).name, format_str(e.decision), e.bytes_before / 1e6, e.bytes_after / 1e6,
               e.decision.reason);
  fmt::print("\n{} tensors: {} quantized, {} kept; {:.1f} MB -> {:.1f} MB ({:.2f}x smaller)\n", plan.entries.size(),
             plan.quantized, plan.entries.size() - plan.quantized, plan.bytes_before / 1e6, plan.bytes_after / 1e6,
             double(plan.bytes_before) / plan.bytes_after);
  if (a.dry_run) {
    fmt::print("dry run: nothing written\n");
    return;
  }
  if (plan.quantized == 0) fail("recipe {} quantizes no tensor of {}: nothing to do", recipe.name, a.in);

  fmt::print("\n");
  Progress bar(plan.entries.size());
  double sqnr_sum = 0, worst = INFINITY;
  std::string worst_name;
  const auto sum = quant::quantize_checkpoint(
      in, plan, recipe, a.out, {a.force, a.threads, static_cast<uint64_t>(a.max_shard_gb * 1e9)},
      [&](size_t i, const quant::PlanEntry& e, double sqnr) {
        if (e.decision.quantize) {
          fmt::print("{:<52} {:<24} SQNR {:6.2f} dB\n", e.name, quant::weight_format_name(e.decision.format.weight), sqnr);
          sqnr_sum += sqnr;
          if (sqnr < worst) worst = sqnr, worst_name = e.name;
        }
        bar.update(i + 1, e.name);
      });
  bar.finish();
  fmt::print("\nwrote {}: {} shard(s), {} tensors quantized and {} kept, {:.1f} MB -> {:.1f} MB in {:.1f} s "
             "({:.2f} GB/s read)\nSQNR mean {:.2f} dB, worst {:.2f} dB ({})\n",
             a.out, sum.shards, plan.quantized, plan.entries.size() - plan.quantized, sum.bytes_read / 1e6,
             sum.bytes_written / 1e6, sum.seconds, sum.bytes_read / sum.seconds / 1e9, sqnr_sum / plan.quantized, worst,
             worst_name);
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a Hugging Face checkpoint with a recipe (ModelOpt export layout)");
  cmd->add_option("input", a->in, "Checkpoint directory (config.json + safetensors)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--output", a->out, "Output directory (must not exist unless --force)");
  cmd->add_option("--recipe", a->recipe,
                  "Preset (MXFP4_DEFAULT_CFG, W4A8_MXFP4_FP8_CFG, MXFP4_MLP_WEIGHT_ONLY_CFG, MXFP4_WEIGHT_ONLY, "
                  "NVFP4_DEFAULT_CFG, FP8_DEFAULT_CFG) or a recipe JSON file")
      ->capture_default_str();
  cmd->add_option("--scale-rule", a->scale_rule, "Override the MX scale rule: ocp_floor, ceil, even, mse (ties become nearest_even)");
  cmd->add_flag("--dry-run", a->dry_run, "Print the plan and stop");
  cmd->add_flag("--force", a->force, "Replace an existing output directory (only once quantization has succeeded)");
  cmd->add_flag("--quantize-lm-head", a->quantize_lm_head, "Quantize lm_head too (excluded by default, as in ModelOpt); a head tied to the embedding becomes an lm_head.weight of its own and the output config is untied");
  cmd->add_flag("--allow-unquantized-k", a->allow_unquantized_k,
                "Keep tensors whose K is not a multiple of the block size unquantized instead of failing");
  cmd->add_option("--threads", a->threads, "Worker threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--max-shard-size", a->max_shard_gb, "Largest shard in GB")->check(CLI::Range(0.001, 1000.0))->capture_default_str();
  cmd->callback([a] {
    if (a->out.empty() && !a->dry_run) fail("quantize: -o/--output is required unless --dry-run");
    run_quantize(*a);
  });
}

}  // namespace mxq::cli
