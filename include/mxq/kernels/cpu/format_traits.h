// mxq/kernels/cpu/format_traits.h — one row per block format: its geometry, the scalar reference
// and the CPU fast path. Tests and benchmarks iterate over kFormatTraits instead of naming formats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "mxq/format.h"
#include "mxq/kernels/cpu/mx_convert.h"

namespace mxq {

enum class BlockFormat : uint8_t { mxfp4, mxfp8_e4m3, nvfp4 };

// Everything a converter needs besides the data: MX options, and NVFP4's tensor scale.
struct QuantParams {
  MxOptions mx{};
  float tensor_scale = 1.0f;
};

using QuantizeRefFn = size_t (*)(const float* x, size_t n, uint8_t* codes, uint8_t* scales,
                                 const QuantParams& p);
using DequantizeRefFn = void (*)(const uint8_t* codes, const uint8_t* scales, size_t n, float* y,
                                 const QuantParams& p);
using QuantizeFn = size_t (*)(const void* x, ElemType xt, size_t n, uint8_t* codes,
                              uint8_t* scales, const QuantParams& p, int threads);
using DequantizeFn = void (*)(const uint8_t* codes, const uint8_t* scales, size_t n, void* y,
                              ElemType yt, const QuantParams& p, int threads);

struct FormatTraits {
  BlockFormat format;
  const char* name;
  int block_size;         // elements per block
  int code_bits;          // bits per element code
  int scale_bytes;        // scale bytes per block
  bool has_tensor_scale;  // NVFP4's FP32 second-level scale
  QuantizeRefFn quantize_ref;
  DequantizeRefFn dequantize_ref;
  QuantizeFn quantize;      // SIMD for MXFP4; threaded scalar blocks for the comparison formats
  DequantizeFn dequantize;

  constexpr size_t code_bytes(size_t n) const { return (n * code_bits + 7) / 8; }
  constexpr size_t scale_count(size_t n) const { return (n + block_size - 1) / block_size; }
  constexpr int bytes_per_block() const { return block_size * code_bits / 8 + scale_bytes; }
};

std::span<const FormatTraits> format_traits_table();
const FormatTraits& format_traits(BlockFormat f);

}  // namespace mxq
