// mxq/io/mapped_file.h — a read-only memory map of a whole file (zero-copy tensor reads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace mxq::io {

class MappedFile {
 public:
  // Maps `path` read-only; throws mxq::Error naming the file and the OS error on failure.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Tells the kernel that a mapped range will not be read again soon: its pages leave this process's
// resident set (they stay in the page cache). Streaming readers call it after each tensor, so that
// resident memory follows the tensor in hand, not the file size.
void release_pages(std::span<const uint8_t> range);

}  // namespace mxq::io
