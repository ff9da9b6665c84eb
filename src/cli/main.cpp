// mxq — the command-line program. One file per subcommand; this one wires them together.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <exception>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"mxq: MXFP4 (OCP microscaling FP4) for whole language models"};
  app.set_version_flag("--version", fmt::format("mxq {}", MXQ_VERSION_STRING));
  app.require_subcommand(1);
  mxq::cli::add_import(app);
  mxq::cli::add_quantize(app);
  mxq::cli::add_inspect(app);
  mxq::cli::add_eval(app);
  mxq::cli::add_generate(app);
  mxq::cli::add_roundtrip(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "mxq: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
