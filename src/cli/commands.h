// The subcommands of the mxq program; each add_* registers its options and callback.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <string>

#include "mxq/runtime/model.h"

namespace mxq::cli {

// --mode of the commands that run a model (eval, generate): the quantized layers' activation mode,
// overriding the checkpoint's; "" keeps the checkpoint's.
inline void add_mode_option(CLI::App* cmd, std::string& mode) {
  cmd->add_option("--mode", mode, "Activation mode of the quantized layers, overriding the checkpoint's: W4A16, W4A8, W4A4")
      ->check(CLI::IsMember({"W4A16", "W4A8", "W4A4"}, CLI::ignore_case));
}

// --kv-cache of the same commands (for eval, the --ref model's cache too).
inline void add_kv_cache_option(CLI::App* cmd, runtime::KvCacheType& type) {
  const std::map<std::string, runtime::KvCacheType> names{{"f32", runtime::KvCacheType::f32},
                                                          {"bf16", runtime::KvCacheType::bf16}};
  cmd->add_option("--kv-cache", type, "KV cache element type: f32 (exact) or bf16 (half the bytes per decode step)")
      ->transform(CLI::CheckedTransformer(names, CLI::ignore_case))
      ->default_str("f32");
}

void add_roundtrip(CLI::App& app);
void add_import(CLI::App& app);
void add_quantize(CLI::App& app);
void add_inspect(CLI::App& app);
void add_eval(CLI::App& app);
void add_generate(CLI::App& app);

}  // namespace mxq::cli
