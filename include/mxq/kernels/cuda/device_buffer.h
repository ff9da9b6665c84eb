// mxq/kernels/cuda/device_buffer.h — the GPU backend's host-side basics: a checked CUDA call, an
// owning device allocation, and the reason a machine has no usable device.
//
// Kernel launchers return cudaError_t and never throw (DESIGN.md: raw-pointer launchers return an
// error); the code that owns buffers and streams turns errors into mxq::Error with cuda_check, which
// names the call that failed.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "mxq/error.h"

namespace mxq {

// Throws mxq::Error "what: <CUDA's message> (<error name>)" unless err is cudaSuccess. (Plain string
// concatenation: fmt's compile-time format checks do not compile under nvcc.)
inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw Error(std::string(what) + ": " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
}

// The error of the last launch on this thread, checked (launches report bad configurations only
// through cudaGetLastError).
inline void cuda_check_launch(const char* kernel) { cuda_check(cudaGetLastError(), kernel); }

// Empty when a CUDA device is usable; otherwise why not, for a test's skip message.
inline std::string cuda_device_unavailable_reason() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(e);
  if (count == 0) return std::string("no CUDA device: ") + cudaGetErrorString(cudaErrorNoDevice);
  return "";
}

// count elements of T in device memory (cudaMalloc: 256-byte aligned), freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count > 0) cuda_check(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T)),
                              "cudaMalloc");
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

  void upload(const T* host, size_t count, cudaStream_t stream = nullptr) {
    if (count > count_) throw Error("DeviceBuffer::upload: " + std::to_string(count) +
                                    " elements into a buffer of " + std::to_string(count_));
    cuda_check(cudaMemcpyAsync(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync H2D");
  }
  void download(T* host, size_t count, cudaStream_t stream = nullptr) const {
    if (count > count_) throw Error("DeviceBuffer::download: " + std::to_string(count) +
                                    " elements from a buffer of " + std::to_string(count_));
    cuda_check(cudaMemcpyAsync(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost, stream),
               "cudaMemcpyAsync D2H");
    cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
  // Every byte set to `byte` (poison before a kernel writes, so unwritten outputs show).
  void fill_bytes(int byte, cudaStream_t stream = nullptr) {
    cuda_check(cudaMemsetAsync(ptr_, byte, bytes(), stream), "cudaMemsetAsync");
  }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

}  // namespace mxq
