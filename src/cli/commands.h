// The subcommands of the mxq program; each add_* registers its options and callback.
#pragma once

#include <CLI/CLI.hpp>

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
  cmd->add_option_function<std::string>(
         "--kv-cache", [&type](const std::string& name) { type = *runtime::kv_cache_type_from_name(name); },
         "KV cache element type: f32 (exact, the default) or bf16 (half the bytes a decode step reads)")
      ->check(CLI::IsMember({runtime::kv_cache_type_name(runtime::KvCacheType::f32),
                             runtime::kv_cache_type_name(runtime::KvCacheType::bf16)},
                            CLI::ignore_case));
}

void add_roundtrip(CLI::App& app);
void add_import(CLI::App& app);
void add_quantize(CLI::App& app);
void add_inspect(CLI::App& app);
void add_eval(CLI::App& app);
void add_generate(CLI::App& app);

}  // namespace mxq::cli
