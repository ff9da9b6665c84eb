// mxq/format_ref.h — the scalar reference quantizers and dequantizers, one row at a time.
//
// These define the formats: every SIMD and CUDA path is tested bit for bit against them. A "row" is
// n consecutive elements along the reduction axis; blocks are consecutive runs of the format's block
// size, and a short last block is padded with zeros. Packed E2M1 codes: ceil(n / 2) bytes, element
// 2i in the low nibble of byte i. Scales: one byte per block (E8M0 for MX, E4M3 for NVFP4).
#pragma once

#include <cstddef>
#include <cstdint>

#include "mxq/format.h"

namespace mxq {

// Returned by quantizers when every element was finite (or NonFinite::nan_scale was asked for);
// otherwise they return the index of the first non-finite element and the outputs are undefined.
inline constexpr size_t kRowOk = SIZE_MAX;

constexpr size_t blocks_of(size_t n, size_t block) { return (n + block - 1) / block; }

// MXFP4: codes [ceil(n/2)] bytes, scales [ceil(n/32)] E8M0 bytes.
size_t mxfp4_quantize_row_ref(const float* x, size_t n, uint8_t* codes, uint8_t* scales,
                              const MxOptions& opt);
void mxfp4_dequantize_row_ref(const uint8_t* codes, const uint8_t* scales, size_t n, float* y);

// MXFP8 (E4M3 elements, saturating RNE): codes [n] bytes, scales [ceil(n/32)] E8M0 bytes.
// TieRule does not apply (elements always round to nearest even).
size_t mxfp8_quantize_row_ref(const float* x, size_t n, uint8_t* codes, uint8_t* scales,
                              const MxOptions& opt);
void mxfp8_dequantize_row_ref(const uint8_t* codes, const uint8_t* scales, size_t n, float* y);

// NVFP4: codes [ceil(n/2)] bytes, scales [ceil(n/16)] E4M3 bytes, one FP32 tensor scale
// (nvfp4_tensor_scale of the whole tensor's amax). Non-finite input is always an error.
size_t nvfp4_quantize_row_ref(const float* x, size_t n, float tensor_scale, uint8_t* codes,
                              uint8_t* scales);
void nvfp4_dequantize_row_ref(const uint8_t* codes, const uint8_t* scales, size_t n,
                              float tensor_scale, float* y);

}  // namespace mxq
