// Command-line flags shared by the CPU benchmarks: --reps N --rows R --cols C --threads T --target NAME.
#pragma once

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace mxq::bench {

struct BenchArgs {
  int reps;
  size_t rows = 14336, cols = 4096;  // Llama-3-8B's MLP up/gate projection
  int threads = 0;                   // 0: every hardware thread
  std::string target;                // a Highway target to force, e.g. AVX2; empty: automatic
};

inline BenchArgs parse_bench_args(int argc, char** argv, int default_reps) {
  BenchArgs a{default_reps};
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
  return a;
}

}  // namespace mxq::bench
