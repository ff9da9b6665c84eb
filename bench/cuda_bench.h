// bench/cuda_bench.h — the GPU benchmarks' harness: checked calls that end the program, the device
// line every table starts with, event-timed medians with a cold L2, and the two measured ceilings
// (device-to-device copy bandwidth; a library matrix product's rate is measured by each benchmark
// through cuBLAS, since which product is the baseline depends on the benchmark).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

// Benchmarks end at the first failed CUDA call, naming it and the line.
#define CUDA_CHECK(expr)                                                                     \
  do {                                                                                       \
    const cudaError_t err_ = (expr);                                                         \
    if (err_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,                     \
                   cudaGetErrorString(err_));                                                \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

namespace mxq::bench {

// Prints "device: NAME (sm_XY, N SMs, L2 M MB, clock)" and returns the properties.
inline cudaDeviceProp print_device() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::printf("device: %s (sm_%d%d, %d SMs, L2 %d MB)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, prop.l2CacheSize >> 20);
  return prop;
}

// Reads n words and writes one only if their sum is a value it never is: a pure read stream that
// the compiler cannot drop. Used to empty the L2 without leaving it dirty. (static: one copy per
// benchmark program, each a single translation unit.)
static __global__ void read_stream_kernel(const uint4* p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) *sink = acc;
}

// Event timing with the L2 emptied before every timed launch: a 2x-L2 buffer is read between
// repetitions, outside the events, so no repetition finds the previous one's operands in the
// cache (a weight that fits in 50 MB of L2 would otherwise be timed at L2 bandwidth). Reading, not
// writing: a memset would leave ~50 MB of dirty lines that the timed kernel must write back first.
class Timer {
 public:
  explicit Timer(int warmup = 5, int reps = 50) : warmup_(warmup), reps_(reps) {
    int device = 0, l2 = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
    flush_bytes_ = 2 * static_cast<size_t>(l2);
    CUDA_CHECK(cudaMalloc(&flush_, flush_bytes_));
    CUDA_CHECK(cudaMemset(flush_, 0x5A, flush_bytes_));
    CUDA_CHECK(cudaMalloc(&sink_, sizeof(unsigned)));
    CUDA_CHECK(cudaEventCreate(&start_));
    CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Timer() {
    cudaFree(flush_);
    cudaFree(sink_);
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Median over reps of op(rep) in microseconds, after warmup launches; op enqueues on `stream`.
  // Each launch's error is checked by the caller's op (CUDA_CHECK on the launcher's return).
  template <typename Op>
  double median_us(Op op, cudaStream_t stream = nullptr) {
    for (int i = 0; i < warmup_; ++i) op(i);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<double> us;
    us.reserve(reps_);
    for (int i = 0; i < reps_; ++i) {
      read_stream_kernel<<<1024, 256, 0, stream>>>(static_cast<const uint4*>(flush_),
                                                   flush_bytes_ / sizeof(uint4), sink_);
      CUDA_CHECK(cudaEventRecord(start_, stream));
      op(i);
      CUDA_CHECK(cudaEventRecord(stop_, stream));
      CUDA_CHECK(cudaEventSynchronize(stop_));
      CUDA_CHECK(cudaGetLastError());
      float ms = 0.0f;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      us.push_back(1000.0 * ms);
    }
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  }

 private:
  int warmup_, reps_;
  void* flush_ = nullptr;
  unsigned* sink_ = nullptr;
  size_t flush_bytes_ = 0;
  cudaEvent_t start_{}, stop_{};
};

// Device-to-device copy bandwidth in GB/s (bytes read + bytes written) over `bytes`-sized buffers:
// the memory ceiling every GB/s figure is compared with.
inline double measure_copy_gbs(Timer& timer, size_t bytes = size_t{1} << 30) {
  void *a = nullptr, *b = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMemset(a, 0x3C, bytes));
  const double us = timer.median_us(
      [&](int) { CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); });
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / us * 1e-3;
}

}  // namespace mxq::bench
