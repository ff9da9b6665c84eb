// mxq/kernels/cpu/activation.h — the gated MLP's activation on the CPU:
//
//   out[i] = SiLU(gate[i]) · up[i] = gate[i] / (1 + e^(−gate[i])) · up[i]
//
// silu_mul_ref defines it (double, rounded once to f32); silu_mul is Highway SIMD with the vector
// Exp (≤ 1 ulp), checked against the reference in tests/test_kernels_attention.cpp. out may be
// gate. In decode this is SmolLM2's largest elementwise op (30 layers × 1536 exponentials a token).
#pragma once

#include <cstddef>

namespace mxq {

void silu_mul_ref(const float* gate, const float* up, size_t n, float* out);
void silu_mul(const float* gate, const float* up, size_t n, float* out);

}  // namespace mxq
