// mxq/kernels/cpu/thread_pool.h — a persistent pool of worker threads for the per-token kernels.
//
// mxq::parallel_for (parallel.h) starts threads per call, tens of microseconds: fine for
// quantizing a checkpoint, too much for a decode step that runs ~200 jobs of a few microseconds
// each (SmolLM2: 30 layers × q/k/v/o/gate/up/down GEMVs + attention). Here a job costs about one
// cache-line handoff:
//   - a job is split into chunks that threads claim from one atomic word (generation, chunk count,
//     next chunk), so the caller takes every chunk that no worker has claimed yet: a worker that is
//     asleep or descheduled (a 2-core VM shared with compilers) delays nobody;
//   - an idle worker spins on that word for kSpinNs after its last job (decode issues the next one
//     within microseconds), then sleeps on a condition variable until the next job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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

  // How long an idle worker polls for the next job before it sleeps.
  static constexpr int64_t kSpinNs = 200'000;

 private:
  void worker_loop();
  // Claims and runs chunks of the job that `word` (a value of claim_) describes until none is
  // left or a newer job has replaced it.
  void run_chunks(uint64_t word);
  // Returns a claim_ value of a generation other than `seen` (or any value once stop_ is set).
  uint64_t wait_for_job(uint32_t seen);

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one job at a time
  uint32_t generation_ = 0;  // the caller's count of jobs (claim_'s top 32 bits)
  // The current job. Written before claim_ publishes it; read only by a thread that has claimed a
  // chunk of it, and the caller waits for every claimed chunk before it writes the next job.
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  size_t n_ = 0, chunk_ = 0;
  // generation (bits 63..32) | chunk count (31..16) | next unclaimed chunk (15..0).
  std::atomic<uint64_t> claim_{0};
  std::atomic<size_t> done_chunks_{0};
  // Sleeping workers wait on wake_; the caller notifies only when sleepers_ > 0.
  std::mutex m_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace mxq
