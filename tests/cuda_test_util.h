// tests/cuda_test_util.h — what every CUDA test file shares: the skip with a reason on machines
// without a device (CI), a checked-call assertion, a fresh seed per test (printed on failure by the
// caller), and the guard-byte count checked past the end of every output.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

#include "mxq/kernels/cuda/device_buffer.h"

namespace mxq {

constexpr size_t kGuard = 64;  // poison bytes checked past the end of each output

#define SKIP_WITHOUT_CUDA_DEVICE()                                      \
  do {                                                                  \
    const std::string reason_ = mxq::cuda_device_unavailable_reason();  \
    if (!reason_.empty()) GTEST_SKIP() << reason_;                      \
  } while (0)

#define CUDA_ASSERT(expr) ASSERT_EQ(cudaSuccess, (expr)) << #expr

inline uint64_t fresh_seed() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

}  // namespace mxq
