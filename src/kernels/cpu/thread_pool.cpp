// The persistent pool of mxq/kernels/cpu/thread_pool.h.
#include "mxq/kernels/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "mxq/kernels/cpu/parallel.h"

namespace mxq {
namespace {

thread_local bool t_inside_job = false;

constexpr uint32_t generation_of(uint64_t w) { return static_cast<uint32_t>(w >> 32); }
constexpr uint32_t count_of(uint64_t w) { return static_cast<uint32_t>(w >> 16) & 0xFFFF; }
constexpr uint32_t next_of(uint64_t w) { return static_cast<uint32_t>(w) & 0xFFFF; }
constexpr size_t kMaxChunks = 0xFFFF;

// Spin-waits poll with plain loads, no PAUSE: under KVM a vCPU that runs PAUSE in a tight loop
// trips pause-loop exiting, and the hypervisor deschedules it. On this project's 2-vCPU VM a worker
// polling with PAUSE claimed 0.1% of the chunks of 2 us jobs (the caller ran the rest alone); with
// plain loads it claims half, and such a job takes 3.5 us instead of 6.6.
// Polls of a spin-wait between yields: ~10-20 us of polling.
constexpr int kPollsPerYield = 8192;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int total = threads > 0 ? threads : hardware_threads();
  for (int i = 1; i < total; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard lk(m_);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks(uint64_t w) {
  const uint32_t gen = generation_of(w);
  for (;;) {
    if (generation_of(w) != gen || next_of(w) >= count_of(w)) return;
    // Claim chunk next_of(w); on failure w holds the word's current value.
    if (!claim_.compare_exchange_weak(w, w + 1, std::memory_order_acquire, std::memory_order_acquire)) continue;
    const size_t b = next_of(w) * chunk_, e = std::min(n_, b + chunk_);
    (*fn_)(b, e);
    done_chunks_.fetch_add(1, std::memory_order_release);
    w = claim_.load(std::memory_order_acquire);
  }
}

uint64_t ThreadPool::wait_for_job(uint32_t seen) {
  const int64_t spin_until = now_ns() + kSpinNs;
  for (int i = 1;; ++i) {
    const uint64_t w = claim_.load(std::memory_order_acquire);
    if (generation_of(w) != seen || stop_.load(std::memory_order_relaxed)) return w;
    if (i % 1024 == 0 && now_ns() > spin_until) break;
    // With more runnable threads than cores (tests run 3 on 2; other processes), let a thread
    // that holds a claimed chunk have this core. Not more often: a yield is a system call, and a
    // worker inside one reacts late to a new job.
    if (i % kPollsPerYield == 0) std::this_thread::yield();
  }
  // Sleep. sleepers_ is raised before the predicate reads claim_, and the caller publishes claim_
  // before it reads sleepers_ (both sequentially consistent): either the caller sees a sleeper and
  // notifies under m_, or this predicate sees the new job.
  std::unique_lock lk(m_);
  sleepers_.fetch_add(1);
  wake_.wait(lk, [&] { return stop_.load() || generation_of(claim_.load()) != seen; });
  sleepers_.fetch_sub(1);
  return claim_.load(std::memory_order_acquire);
}

void ThreadPool::worker_loop() {
  t_inside_job = true;  // a worker's nested parallel_for runs inline
  uint32_t seen = 0;
  for (;;) {
    const uint64_t w = wait_for_job(seen);
    if (stop_.load()) return;
    seen = generation_of(w);
    run_chunks(w);
  }
}

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t max_chunks = std::max<size_t>(1, n / grain);
  const size_t want = std::min({max_chunks, static_cast<size_t>(size()) * 4, kMaxChunks});
  if (workers_.empty() || want <= 1 || t_inside_job) {
    fn(0, n);
    return;
  }
  std::lock_guard call(call_mutex_);
  fn_ = &fn;
  n_ = n;
  chunk_ = (n + want - 1) / want;
  const uint64_t count = (n + chunk_ - 1) / chunk_;
  done_chunks_.store(0, std::memory_order_relaxed);
  const uint64_t w = (static_cast<uint64_t>(++generation_) << 32) | (count << 16);
  claim_.store(w);
  if (sleepers_.load() > 0) {
    { std::lock_guard lk(m_); }
    wake_.notify_all();
  }
  t_inside_job = true;
  run_chunks(w);
  t_inside_job = false;
  // Chunks that workers claimed may still be running. They take microseconds; a worker
  // descheduled in the middle of one gets this core back by the yield.
  for (int i = 1; done_chunks_.load(std::memory_order_acquire) < count; ++i) {
    if (i % kPollsPerYield == 0) std::this_thread::yield();
  }
}

}  // namespace mxq
