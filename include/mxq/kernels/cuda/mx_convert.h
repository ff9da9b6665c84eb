// mxq/kernels/cuda/mx_convert.h — CUDA quantize / dequantize for MXFP4, bit-identical to the scalar
// references in mxq/format_ref.h (tests/test_cuda_convert.cu checks every rule on the device).
//
// Launchers take raw device pointers and a stream, enqueue one kernel and return the launch error;
// they do not synchronize. Layouts are the references': a dense 1-D run of n elements (a row, or a
// whole row-major tensor whose rows are multiples of 32), packed codes [ceil(n/2)] bytes with element
// 2i in the low nibble of byte i, E8M0 scales [ceil(n/32)] bytes; a short last block is padded with
// zeros. Any pointer alignment works; 16-byte-aligned x / y and 4-byte-aligned codes take the
// vector path.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mxq/format.h"
#include "mxq/kernels/cpu/mx_convert.h"  // ElemType
#include "mxq/kernels/cuda/mx_convert_math.h"  // the integer-pipe codec the kernels use

namespace mxq {

// x [n] of xt (f32 or bf16) -> codes, scales, by opt (every ScaleRule, TieRule, NonFinite).
// Under NonFinite::error, first_bad (a device pointer, may be null) receives the smallest index of a
// NaN/Inf element by atomicMin: the caller initialises it to ULLONG_MAX, and after the stream
// reaches this point it holds either ULLONG_MAX (all finite) or the index the reference returns.
// Blocks holding NaN/Inf get scale 0xFF and zero codes under either policy (under error the
// reference leaves the outputs undefined).
cudaError_t mxfp4_quantize_cuda(const void* x, ElemType xt, size_t n, uint8_t* codes,
                                uint8_t* scales, const MxOptions& opt,
                                unsigned long long* first_bad, cudaStream_t stream);

// codes, scales (as above) -> y [n] of yt (f32 or bf16). Exact: every E2M1 value times a power of
// two is a float32 and a bf16 (or ±Inf past FLT_MAX, as in the reference); a NaN scale gives the
// quiet NaN 0x7FC00000 (bf16 0x7FC0) for every element of its block, as the reference does on x86.
cudaError_t mxfp4_dequantize_cuda(const uint8_t* codes, const uint8_t* scales, size_t n, void* y,
                                  ElemType yt, cudaStream_t stream);

}  // namespace mxq
