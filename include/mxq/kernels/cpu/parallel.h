// mxq/kernels/cpu/parallel.h — split a range of independent work items over threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace mxq {

inline int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Calls fn(begin, end) on contiguous chunks of [0, n_items) from up to `threads` threads (0 = all
// hardware threads), each chunk at least `grain` items. The calling thread takes the first chunk.
// Threads are started per call (tens of microseconds): meant for work of milliseconds or more.
template <class Fn>
void parallel_for(size_t n_items, size_t grain, int threads, Fn&& fn) {
  if (n_items == 0) return;
  const size_t max_chunks = std::max<size_t>(1, n_items / std::max<size_t>(grain, 1));
  const size_t workers =
      std::min<size_t>(max_chunks, static_cast<size_t>(threads > 0 ? threads : hardware_threads()));
  if (workers <= 1) { fn(size_t{0}, n_items); return; }
  const size_t chunk = (n_items + workers - 1) / workers;
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (size_t w = 1; w < workers; ++w) {
    const size_t b = w * chunk, e = std::min(n_items, b + chunk);
    if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(size_t{0}, std::min(n_items, chunk));
  for (auto& t : pool) t.join();
}

}  // namespace mxq
