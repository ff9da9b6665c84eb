// The persistent pool of mxq/kernels/cpu/thread_pool.h.
#include "mxq/kernels/cpu/thread_pool.h"

#include <algorithm>

#include "mxq/kernels/cpu/parallel.h"

namespace mxq {
namespace {
thread_local bool t_inside_job = false;
}

ThreadPool::ThreadPool(int threads) {
  const int total = threads > 0 ? threads : hardware_threads();
  for (int i = 1; i < total; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    const size_t c = next_.fetch_add(1);
    if (c >= n_chunks_) return;
    const size_t b = c * chunk_, e = std::min(n_, b + chunk_);
    (*fn_)(b, e);
  }
}

void ThreadPool::worker_loop() {
  t_inside_job = true;  // a worker's nested parallel_for runs inline
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lk(m_);
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    run_chunks();
    {
      std::lock_guard lk(m_);
      ++acked_;
    }
    done_.notify_one();
  }
}

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t max_chunks = std::max<size_t>(1, n / grain);
  const size_t want = std::min<size_t>(max_chunks, static_cast<size_t>(size()) * 4);
  if (workers_.empty() || want <= 1 || t_inside_job) {
    fn(0, n);
    return;
  }
  std::lock_guard call(call_mutex_);
  {
    std::lock_guard lk(m_);
    fn_ = &fn;
    n_ = n;
    chunk_ = (n + want - 1) / want;
    n_chunks_ = (n + chunk_ - 1) / chunk_;
    next_.store(0);
    acked_ = 0;
    ++generation_;
  }
  wake_.notify_all();
  t_inside_job = true;
  run_chunks();
  t_inside_job = false;
  // Every worker has left run_chunks for this generation, so every chunk is done.
  std::unique_lock lk(m_);
  done_.wait(lk, [&] { return acked_ == workers_.size(); });
}

}  // namespace mxq
