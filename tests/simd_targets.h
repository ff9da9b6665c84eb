// Shared by the CPU kernel tests: run a check once per SIMD target this build and CPU have.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mxq/kernels/cpu/mx_convert.h"

namespace mxq {

// Runs fn(target name) with each Highway target forced in turn, then restores automatic dispatch.
template <class Fn>
void for_each_simd_target(Fn fn) {
  const std::vector<std::string> targets = cpu_simd_targets();
  ASSERT_FALSE(targets.empty());
  for (const std::string& t : targets) {
    ASSERT_TRUE(cpu_simd_force_target(t)) << t;
    SCOPED_TRACE("target " + t);
    fn(t);
  }
  cpu_simd_force_target("");
}

}  // namespace mxq
