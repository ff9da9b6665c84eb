// The subcommands of the mxq program; each add_* registers its options and callback.
#pragma once

#include <CLI/CLI.hpp>

namespace mxq::cli {

void add_roundtrip(CLI::App& app);
void add_import(CLI::App& app);
void add_quantize(CLI::App& app);
void add_inspect(CLI::App& app);
void add_eval(CLI::App& app);
void add_generate(CLI::App& app);

}  // namespace mxq::cli
