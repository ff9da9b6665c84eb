// output_store.cuh — how the CUDA kernels store an f32 result into their output type: f32 as is,
// bf16 rounded to nearest even by the hardware's conversion (cvt.rn.bf16.f32), so a bf16 output's
// bits follow from the f32 one's. Every finite and infinite value rounds as bf16_from_f32 does
// (the CPU's rule); a NaN becomes the canonical NaN 0x7FFF where bf16_from_f32 keeps its payload.
// The integer version of the rounding cost the W4A8 GEMM's edge tiles 3-4% at M = 2048 (H100,
// docs/BENCHMARKS.md). Inline device code, included by the kernels' .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mxq/format.h"

namespace mxq {

__device__ __forceinline__ void store_out(float* y, size_t i, float v) { y[i] = v; }
__device__ __forceinline__ void store_out(bf16* y, size_t i, float v) {
  y[i] = bf16{__bfloat16_as_ushort(__float2bfloat16_rn(v))};
}
__device__ __forceinline__ float load_out(const float* y, size_t i) { return y[i]; }
__device__ __forceinline__ float load_out(const bf16* y, size_t i) { return bf16_to_f32(y[i]); }

}  // namespace mxq
