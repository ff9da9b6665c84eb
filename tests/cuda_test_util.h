// tests/cuda_test_util.h — what every CUDA test file shares: the skip with a reason on machines
// without a device (CI), a checked-call assertion, a fresh seed per test (printed on failure by the
// caller), device outputs with guard bytes checked on both sides, and test inputs moved to the device.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mxq/format.h"
#include "mxq/kernels/cpu/mx_convert.h"  // ElemType
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

// A device output of `bytes` with kGuard poison bytes before and after (64: keeps 16-byte alignment).
class GuardedOutput {
 public:
  explicit GuardedOutput(size_t bytes) : bytes_(bytes), buf_(bytes + 2 * kGuard) { buf_.fill_bytes(0xFF); }
  void* get() const { return buf_.get() + kGuard; }
  // The outputs, after checking that no guard byte changed.
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> all(bytes_ + 2 * kGuard);
    buf_.download(all.data(), all.size());
    for (size_t i = 0; i < kGuard; ++i) {
      EXPECT_EQ(all[i], 0xFF) << "guard byte " << i << " before the output was written";
      EXPECT_EQ(all[kGuard + bytes_ + i], 0xFF) << "guard byte " << i << " past the output was written";
    }
    return {all.begin() + kGuard, all.end() - kGuard};
  }

 private:
  size_t bytes_;
  DeviceBuffer<uint8_t> buf_;
};

// A GEMM's outputs y [M, N] against the reference: bit for bit where `exact` (integer inputs; +0
// and -0 equal), else |got - want| <= frac · mag[i] (mag: the output's Σ|products|). The first 5
// mismatches are reported as failures; returns how many were wrong and how many reference outputs
// were non-zero (the caller's guard against data whose products all vanish, which any kernel that
// writes zeros would pass).
struct OutputCheck {
  size_t bad = 0, nonzero = 0;
};
inline OutputCheck check_outputs(const std::vector<float>& got, const std::vector<float>& want,
                                 const std::vector<float>& mag, double frac, bool exact, size_t N) {
  OutputCheck c;
  for (size_t i = 0; i < want.size(); ++i) {
    c.nonzero += want[i] != 0.0f;
    const bool ok = exact ? f32_bits(got[i]) == f32_bits(want[i]) || (got[i] == 0.0f && want[i] == 0.0f)
                          : std::fabs(static_cast<double>(got[i]) - want[i]) <= frac * mag[i];
    if (!ok && ++c.bad <= 5)
      ADD_FAILURE() << "y[" << i / N << ", " << i % N << "] = " << got[i] << ", want " << want[i]
                    << " (limit " << frac * mag[i] << ")";
  }
  return c;
}

template <typename T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> d(host.size());
  d.upload(host.data(), host.size());
  return d;
}

// x widened from bf16 to f32.
inline std::vector<float> widen(const std::vector<bf16>& x) {
  std::vector<float> f(x.size());
  for (size_t i = 0; i < x.size(); ++i) f[i] = bf16_to_f32(x[i]);
  return f;
}

// The device copy of activations x as xt (f32 or bf16); when xt is bf16, x becomes the bf16 values
// (what the references must see).
inline DeviceBuffer<uint8_t> activations_on_device(std::vector<float>& x, ElemType xt) {
  if (xt == ElemType::f32) {
    DeviceBuffer<uint8_t> d(x.size() * 4);
    d.upload(reinterpret_cast<const uint8_t*>(x.data()), x.size() * 4);
    return d;
  }
  std::vector<bf16> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = bf16_to_f32(h[i] = bf16_from_f32(x[i]));
  DeviceBuffer<uint8_t> d(x.size() * 2);
  d.upload(reinterpret_cast<const uint8_t*>(h.data()), x.size() * 2);
  return d;
}

}  // namespace mxq
