// mxq/runtime/tensor.h — the runtime's host activation buffer: f32, row-major, 64-byte aligned,
// rank 1 or 2. Weights are not Tensors: each LinearMethod keeps its weights in their stored format.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <span>

namespace mxq::runtime {

class Tensor {
 public:
  Tensor() = default;
  Tensor(size_t rows, size_t cols) { resize(rows, cols); }

  // Reshapes to [rows, cols]; reallocates only when the capacity grows, so a buffer reused across
  // decode steps (the model's activation arena) allocates once. Contents are unspecified after a
  // growth.
  void resize(size_t rows, size_t cols) {
    const size_t n = rows * cols;
    if (n > cap_) {
      data_.reset(static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64)));
      if (!data_) throw std::bad_alloc();
      cap_ = n;
    }
    rows_ = rows;
    cols_ = cols;
  }

  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  size_t size() const { return rows_ * cols_; }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  float* row(size_t r) { return data_.get() + r * cols_; }
  const float* row(size_t r) const { return data_.get() + r * cols_; }
  std::span<const float> span() const { return {data_.get(), size()}; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> data_;
  size_t cap_ = 0, rows_ = 0, cols_ = 0;
};

}  // namespace mxq::runtime
