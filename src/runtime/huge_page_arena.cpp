#include "mxq/runtime/huge_page_arena.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace mxq::runtime {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kPieceAlign = 64;
}  // namespace

void HugePageArena::Free::operator()(uint8_t* p) const { std::free(p); }

uint8_t* HugePageArena::new_region(size_t size) {
  size = (size + kHugePage - 1) / kHugePage * kHugePage;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, size));
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Advice only: where THP is off (or another OS), 4 KiB pages serve the same way.
  (void)madvise(p, size, MADV_HUGEPAGE);
#endif
  regions_.emplace_back(p);
  reserved_ += size;
  return p;
}

std::span<uint8_t> HugePageArena::allocate(size_t bytes) {
  const size_t need = (bytes + kPieceAlign - 1) / kPieceAlign * kPieceAlign;
  used_ += need;
  // A piece larger than a region gets one of its own; the current region keeps its free space.
  if (need > kRegionBytes) return {new_region(need), bytes};
  if (static_cast<size_t>(end_ - next_) < need) {
    next_ = new_region(kRegionBytes);
    end_ = next_ + kRegionBytes;
  }
  uint8_t* piece = next_;
  next_ += need;
  return {piece, bytes};
}

std::span<const uint8_t> HugePageArena::copy(std::span<const uint8_t> bytes) {
  const std::span<uint8_t> d = allocate(bytes.size());
  if (!bytes.empty()) std::memcpy(d.data(), bytes.data(), bytes.size());
  return d;
}

}  // namespace mxq::runtime
