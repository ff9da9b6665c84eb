// mxq/kernels/cpu/thread_pool.h — a persistent pool of worker threads for the per-token kernels.
//
// mxq::parallel_for (parallel.h) starts threads per call, tens of microseconds: fine for
// quantizing a checkpoint, too much for a decode step that runs ~7 GEMVs per layer of a few
// microseconds each. The pool's workers sleep on a condition variable between jobs and take chunks
// from an atomic counter, so one job costs a wake-up, not a thread start.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mxq {

class ThreadPool {
 public:
  // threads = total threads that work on a job, the caller included (0 = every hardware thread).
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on contiguous chunks of [0, n) (each at least `grain` items, about four
  // chunks per thread so uneven chunks balance) and returns when all are done. The caller works
  // too. Calls from inside a job run serially on the calling thread (no nested parallelism);
  // concurrent callers from different threads take turns.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

 private:
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one job at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  // The current job.
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  size_t n_ = 0, chunk_ = 0, n_chunks_ = 0;
  std::atomic<size_t> next_{0};
  // Workers done with the current generation. The caller waits for all of them, so no worker can
  // still be reading a job's fields when the next job is set up, and none misses a generation.
  size_t acked_ = 0;
};

}  // namespace mxq
