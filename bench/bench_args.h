// Command-line flags shared by the CPU benchmarks: --reps N --rows R --cols C --threads T --target NAME.
// Parsing also checks them and forces the named SIMD target; a bad flag exits with status 2.
#pragma once

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "mxq/format.h"
#include "mxq/kernels/cpu/mx_convert.h"

namespace mxq::bench {

struct BenchArgs {
  int reps = 1;
  size_t rows = 14336, cols = 4096;  // Llama-3-8B's MLP up/gate projection
  int threads = 0;                   // 0: every hardware thread
  std::string target;                // a Highway target to force, e.g. AVX2; empty: automatic
};

inline BenchArgs parse_bench_args(int argc, char** argv, int default_reps) {
  BenchArgs a;
  a.reps = default_reps;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!v) { fmt::print(stderr, "missing value after {}\n", k); std::exit(2); }
    if (k == "--reps") a.reps = std::max(1, std::atoi(v));
    else if (k == "--rows") a.rows = std::strtoull(v, nullptr, 10);
    else if (k == "--cols") a.cols = std::strtoull(v, nullptr, 10);
    else if (k == "--threads") a.threads = std::atoi(v);
    else if (k == "--target") a.target = v;
    else { fmt::print(stderr, "unknown flag {} (flags: --reps --rows --cols --threads --target)\n", k); std::exit(2); }
    ++i;
  }
  if (a.cols % kMxBlock != 0 || a.rows == 0) {
    fmt::print(stderr, "--cols must be a multiple of {} and --rows > 0\n", kMxBlock);
    std::exit(2);
  }
  if (!a.target.empty() && !cpu_simd_force_target(a.target)) {
    fmt::print(stderr, "target {} is not available here; choose one of:", a.target);
    for (const auto& t : cpu_simd_targets()) fmt::print(stderr, " {}", t);
    fmt::print(stderr, "\n");
    std::exit(2);
  }
  return a;
}

}  // namespace mxq::bench
