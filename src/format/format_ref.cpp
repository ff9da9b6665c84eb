// Scalar reference quantizers: the definition of each block format (see format_ref.h).
#include "mxq/format_ref.h"

#include <algorithm>

namespace mxq {
namespace {

// Index of the first non-finite element of x[0, n), or kRowOk.
size_t first_non_finite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!f32_is_finite(x[i])) return i;
  return kRowOk;
}

}  // namespace

size_t mxfp4_quantize_row_ref(const float* x, size_t n, uint8_t* codes, uint8_t* scales,
                              const MxOptions& opt) {
  std::fill(codes, codes + blocks_of(n, 2), uint8_t{0});
  for (size_t b = 0; b * kMxBlock < n; ++b) {
    const float* xb = x + b * kMxBlock;
    const int len = static_cast<int>(std::min<size_t>(kMxBlock, n - b * kMxBlock));
    if (const size_t bad = first_non_finite(xb, len); bad != kRowOk) {
      if (opt.nonfinite == NonFinite::error) return b * kMxBlock + bad;
      scales[b] = kE8M0Nan;  // codes stay 0
      continue;
    }
    const int s = mxfp4_block_scale_exp(xb, len, opt);
    scales[b] = static_cast<uint8_t>(s + kE8M0Bias);
    for (int i = 0; i < len; ++i) {
      const size_t j = b * kMxBlock + i;
      codes[j / 2] |= static_cast<uint8_t>(mxfp4_encode(xb[i], s, opt.ties) << (4 * (j & 1)));
    }
  }
  return kRowOk;
}

void mxfp4_dequantize_row_ref(const uint8_t* codes, const uint8_t* scales, size_t n, float* y) {
  for (size_t j = 0; j < n; ++j)
    y[j] = e2m1_to_f32(e2m1_unpack(codes[j / 2], j & 1)) * e8m0_to_f32(scales[j / kMxBlock]);
}

size_t mxfp8_quantize_row_ref(const float* x, size_t n, uint8_t* codes, uint8_t* scales,
                              const MxOptions& opt) {
  for (size_t b = 0; b * kMxBlock < n; ++b) {
    const float* xb = x + b * kMxBlock;
    const int len = static_cast<int>(std::min<size_t>(kMxBlock, n - b * kMxBlock));
    uint8_t* cb = codes + b * kMxBlock;
    if (const size_t bad = first_non_finite(xb, len); bad != kRowOk) {
      if (opt.nonfinite == NonFinite::error) return b * kMxBlock + bad;
      scales[b] = kE8M0Nan;
      std::fill(cb, cb + len, uint8_t{0});
      continue;
    }
    const float amax = block_amax(xb, len);
    int s = mx_scale_exp(amax, opt.scale, kMxE4M3);
    if (opt.scale == ScaleRule::mse) {
      // Least squared error among the three candidates around ocp_floor, errors in double (E4M3
      // has 3 mantissa bits: no exactness argument as for E2M1, and no fast path to agree with).
      double best = -1.0;
      for (int c = 0; c < kMseCandidates; ++c) {
        const int cs = mx_mse_candidate(s, c);
        double err = 0.0;
        for (int i = 0; i < len; ++i) {
          const double d = static_cast<double>(xb[i]) -
                           static_cast<double>(e4m3_to_f32(e4m3_from_f32(xb[i] * pow2f(-cs)))) *
                               static_cast<double>(pow2f(cs));
          err += d * d;
        }
        if (best < 0.0 || err < best) { best = err; s = cs; }
      }
    }
    scales[b] = static_cast<uint8_t>(s + kE8M0Bias);
    for (int i = 0; i < len; ++i) cb[i] = e4m3_from_f32(xb[i] * pow2f(-s));
  }
  return kRowOk;
}

void mxfp8_dequantize_row_ref(const uint8_t* codes, const uint8_t* scales, size_t n, float* y) {
  for (size_t j = 0; j < n; ++j) y[j] = e4m3_to_f32(codes[j]) * e8m0_to_f32(scales[j / kMxBlock]);
}

size_t nvfp4_quantize_row_ref(const float* x, size_t n, float tensor_scale, uint8_t* codes,
                              uint8_t* scales) {
  if (const size_t bad = first_non_finite(x, n); bad != kRowOk) return bad;
  std::fill(codes, codes + blocks_of(n, 2), uint8_t{0});
  for (size_t b = 0; b * kNvfp4Block < n; ++b) {
    const float* xb = x + b * kNvfp4Block;
    const int len = static_cast<int>(std::min<size_t>(kNvfp4Block, n - b * kNvfp4Block));
    const uint8_t sb = nvfp4_block_scale(block_amax(xb, len), tensor_scale);
    scales[b] = sb;
    for (int i = 0; i < len; ++i) {
      const size_t j = b * kNvfp4Block + i;
      codes[j / 2] |= static_cast<uint8_t>(nvfp4_encode(xb[i], sb, tensor_scale) << (4 * (j & 1)));
    }
  }
  return kRowOk;
}

void nvfp4_dequantize_row_ref(const uint8_t* codes, const uint8_t* scales, size_t n,
                              float tensor_scale, float* y) {
  for (size_t j = 0; j < n; ++j)
    y[j] = nvfp4_decode(e2m1_unpack(codes[j / 2], j & 1), scales[j / kNvfp4Block], tensor_scale);
}

}  // namespace mxq
