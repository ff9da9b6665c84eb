// The per-format table: references from format_ref.cpp, fast paths from mx_convert.cpp, and
// threaded block loops for the comparison formats (MXFP8, NVFP4), which have no SIMD path.
#include "mxq/kernels/cpu/format_traits.h"

#include <array>
#include <atomic>
#include <vector>

#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/parallel.h"

namespace mxq {
namespace {

constexpr size_t kRowsPerTask = 4096;  // elements per threaded chunk = kRowsPerTask * block size

// Converts a chunk of x to float32 (a no-op view for f32 input).
const float* as_f32(const void* x, ElemType t, size_t begin, size_t n, std::vector<float>& tmp) {
  if (t == ElemType::f32) return static_cast<const float*>(x) + begin;
  tmp.resize(n);
  const auto* h = static_cast<const bf16*>(x) + begin;
  for (size_t i = 0; i < n; ++i) tmp[i] = bf16_to_f32(h[i]);
  return tmp.data();
}

void store_from_f32(const float* y, size_t n, void* out, ElemType t, size_t begin) {
  if (t == ElemType::f32) {
    std::copy(y, y + n, static_cast<float*>(out) + begin);
    return;
  }
  auto* h = static_cast<bf16*>(out) + begin;
  for (size_t i = 0; i < n; ++i) h[i] = bf16_from_f32(y[i]);
}

// Runs a reference row quantizer over block-aligned chunks on many threads. code_bits and block
// decide where each chunk's codes and scales start; returns the first bad index or kRowOk.
template <class RowFn>
size_t threaded_quantize(const void* x, ElemType xt, size_t n, uint8_t* codes, uint8_t* scales,
                         int block, int code_bits, int threads, RowFn row) {
  const size_t nblocks = blocks_of(n, block);
  std::atomic<size_t> first_bad{kRowOk};
  parallel_for(nblocks, kRowsPerTask, threads, [&](size_t b0, size_t b1) {
    std::vector<float> tmp;
    const size_t begin = b0 * block, len = std::min(n, b1 * block) - begin;
    const float* xf = as_f32(x, xt, begin, len, tmp);
    const size_t bad = row(xf, len, codes + begin * code_bits / 8, scales + b0);
    if (bad != kRowOk) {
      size_t cur = first_bad.load();
      while (begin + bad < cur && !first_bad.compare_exchange_weak(cur, begin + bad)) {}
    }
  });
  return first_bad.load();
}

template <class RowFn>
void threaded_dequantize(const uint8_t* codes, const uint8_t* scales, size_t n, void* y,
                         ElemType yt, int block, int code_bits, int threads, RowFn row) {
  parallel_for(blocks_of(n, block), kRowsPerTask, threads, [&](size_t b0, size_t b1) {
    std::vector<float> tmp;
    const size_t begin = b0 * block, len = std::min(n, b1 * block) - begin;
    tmp.resize(len);
    row(codes + begin * code_bits / 8, scales + b0, len, tmp.data());
    store_from_f32(tmp.data(), len, y, yt, begin);
  });
}

constexpr std::array<FormatTraits, 3> kTable{{
    {BlockFormat::mxfp4, "mxfp4", kMxBlock, 4, 1, false,
     [](const float* x, size_t n, uint8_t* c, uint8_t* s, const QuantParams& p) {
       return mxfp4_quantize_row_ref(x, n, c, s, p.mx);
     },
     [](const uint8_t* c, const uint8_t* s, size_t n, float* y, const QuantParams&) {
       mxfp4_dequantize_row_ref(c, s, n, y);
     },
     [](const void* x, ElemType xt, size_t n, uint8_t* c, uint8_t* s, const QuantParams& p,
        int threads) { return mxfp4_quantize(x, xt, n, c, s, p.mx, threads); },
     [](const uint8_t* c, const uint8_t* s, size_t n, void* y, ElemType yt, const QuantParams&,
        int threads) { mxfp4_dequantize(c, s, n, y, yt, threads); }},
    {BlockFormat::mxfp8_e4m3, "mxfp8_e4m3", kMxBlock, 8, 1, false,
     [](const float* x, size_t n, uint8_t* c, uint8_t* s, const QuantParams& p) {
       return mxfp8_quantize_row_ref(x, n, c, s, p.mx);
     },
     [](const uint8_t* c, const uint8_t* s, size_t n, float* y, const QuantParams&) {
       mxfp8_dequantize_row_ref(c, s, n, y);
     },
     [](const void* x, ElemType xt, size_t n, uint8_t* c, uint8_t* s, const QuantParams& p,
        int threads) {
       return threaded_quantize(x, xt, n, c, s, kMxBlock, 8, threads,
                                [&](const float* xf, size_t len, uint8_t* cc, uint8_t* ss) {
                                  return mxfp8_quantize_row_ref(xf, len, cc, ss, p.mx);
                                });
     },
     [](const uint8_t* c, const uint8_t* s, size_t n, void* y, ElemType yt, const QuantParams&,
        int threads) {
       threaded_dequantize(c, s, n, y, yt, kMxBlock, 8, threads, mxfp8_dequantize_row_ref);
     }},
    {BlockFormat::nvfp4, "nvfp4", kNvfp4Block, 4, 1, true,
     [](const float* x, size_t n, uint8_t* c, uint8_t* s, const QuantParams& p) {
       return nvfp4_quantize_row_ref(x, n, p.tensor_scale, c, s);
     },
     [](const uint8_t* c, const uint8_t* s, size_t n, float* y, const QuantParams& p) {
       nvfp4_dequantize_row_ref(c, s, n, p.tensor_scale, y);
     },
     [](const void* x, ElemType xt, size_t n, uint8_t* c, uint8_t* s, const QuantParams& p,
        int threads) {
       return threaded_quantize(x, xt, n, c, s, kNvfp4Block, 4, threads,
                                [&](const float* xf, size_t len, uint8_t* cc, uint8_t* ss) {
                                  return nvfp4_quantize_row_ref(xf, len, p.tensor_scale, cc, ss);
                                });
     },
     [](const uint8_t* c, const uint8_t* s, size_t n, void* y, ElemType yt, const QuantParams& p,
        int threads) {
       threaded_dequantize(c, s, n, y, yt, kNvfp4Block, 4, threads,
                           [&](const uint8_t* cc, const uint8_t* ss, size_t len, float* yy) {
                             nvfp4_dequantize_row_ref(cc, ss, len, p.tensor_scale, yy);
                           });
     }},
}};

// Block geometry, as the formats define it: MXFP4 17 bytes per 32 (4.25 bits), MXFP8 33 per 32,
// NVFP4 9 per 16 (4.5 bits, plus the tensor scale).
static_assert(kTable[0].format == BlockFormat::mxfp4 && kTable[0].block_size == 32 &&
              kTable[0].bytes_per_block() == 17);
static_assert(kTable[1].format == BlockFormat::mxfp8_e4m3 && kTable[1].block_size == 32 &&
              kTable[1].bytes_per_block() == 33);
static_assert(kTable[2].format == BlockFormat::nvfp4 && kTable[2].block_size == 16 &&
              kTable[2].bytes_per_block() == 9);

}  // namespace

std::span<const FormatTraits> format_traits_table() { return kTable; }

const FormatTraits& format_traits(BlockFormat f) {
  for (const auto& t : kTable)
    if (t.format == f) return t;
  return kTable[0];
}

}  // namespace mxq
