// mxq/kernels/cpu/mx_convert.h — CPU quantize / dequantize for the block formats, SIMD over many
// threads. Bit-identical to the scalar references in mxq/format_ref.h (tests/kernels check it on
// every SIMD target this CPU has).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mxq/format.h"

namespace mxq {

// Element type of a dense (unquantized) buffer handed to or from a converter.
enum class ElemType : uint8_t { f32, bf16 };

// Same layouts and return values as the *_ref functions (kRowOk, or the index of the first
// non-finite element). threads = 0 uses every hardware thread.
size_t mxfp4_quantize(const void* x, ElemType xt, size_t n, uint8_t* codes, uint8_t* scales,
                      const MxOptions& opt, int threads = 0);
void mxfp4_dequantize(const uint8_t* codes, const uint8_t* scales, size_t n, void* y, ElemType yt,
                      int threads = 0);

// The Highway targets compiled into this build and usable on this CPU, best first (e.g. "AVX3",
// "AVX2", "SSE4", "EMU128"), and a way to pin dispatch to one of them (tests, benchmarks).
std::vector<std::string> cpu_simd_targets();
std::string cpu_simd_active_target();
bool cpu_simd_force_target(const std::string& name);  // "" restores automatic dispatch

}  // namespace mxq
