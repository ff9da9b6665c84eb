// Activation quantization on NVIDIA GPUs: see mxq/kernels/cuda/act_quant.h.
//
// FP8 per token: one CTA per row, two passes over the row (the amax, then the codes); the second pass
// finds the row in L1/L2 (a 4096-wide bf16 row is 8 KB). Bytes per element: 2 in (bf16), 1 out.
// (Unrolling both loops 4 deep, so that a thread's loads leave together, did not shorten the one
// CTA of a decode token: 4096 x 14336 W4A8 at M = 1 30.7 -> 31.9 us on an H100, docs/BENCHMARKS.md.)
// The element conversion is the hardware's cvt.rn.satfinite.e4m3x2.f32 on sm_89 and later (round to
// nearest even, saturating at ±448 for finite and infinite inputs, the rule of format.h's
// e4m3_from_f32 under Overflow::saturate; a NaN keeps its sign below as format.h's does), and
// format.h's encoder itself on older GPUs. The division x / scale is IEEE's (nvcc's default
// -prec-div=true), as in the CPU reference.
//
// MXFP4 per 32 is mx_convert.cu's quantize kernel under ModelOpt's run-time options (rows of whole
// blocks are one contiguous run), so the W4A4 activations and the weight quantizer share one codec.
//
// BF16 outputs for the exact W4A8 / W4A4 routes through the W4A16 kernels: FP8 is the kernel above
// with each code's value written as a bf16 instead of the code (and a second kernel scales the
// GEMV's outputs per row); MXFP4 fake quantization is one fused pass with mx_convert.cu's thread
// layout: a thread owns 8 consecutive elements (one 16-byte bf16 load, one 16-byte store), 4 lanes
// one MX block, the block amax by two shuffles; the scale and the codes come from
// mx_convert_math.h's integer-pipe codec (mx_scale_exp_ceil_int, e2m1_from_scaled_int,
// e2m1_to_f32_int), the functions mx_convert.cu's generic path calls, and the code is decoded on
// the spot, so neither codes nor scales reach memory.
#include "mxq/kernels/cuda/act_quant.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "mxq/kernels/cuda/mx_convert.h"
#include "mxq/kernels/cuda/mx_convert_math.h"
#include "grid_dependency.cuh"

namespace mxq {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;  // elements per vector access: 16 bytes of bf16 in, 8 bytes of codes out

__device__ __forceinline__ void load8(const bf16* p, float (&v)[kVec]) {
  const uint4 w = *reinterpret_cast<const uint4*>(p);
  const uint32_t u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(u[i] << 16);
    v[2 * i + 1] = __uint_as_float(u[i] & 0xFFFF0000u);
  }
}
__device__ __forceinline__ void load8(const float* p, float (&v)[kVec]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
__device__ __forceinline__ float load1(const bf16* p) { return bf16_to_f32(*p); }
__device__ __forceinline__ float load1(const float* p) { return *p; }

// e4m3_from_f32(v) (Overflow::saturate) for two values: byte 0 from lo, byte 1 from hi.
__device__ __forceinline__ uint32_t e4m3x2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  unsigned short d;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
  uint32_t r = d;
  // NaN: format.h keeps the sign (sign | 0x7F); the hardware's NaN is 0x7F.
  if (isnan(lo)) r = (r & 0xFF00u) | 0x7Fu | (__float_as_uint(lo) >> 24 & 0x80u);
  if (isnan(hi)) r = (r & 0x00FFu) | 0x7F00u | (__float_as_uint(hi) >> 16 & 0x8000u);
  return r;
#else
  return uint32_t{e4m3_from_f32(lo)} | uint32_t{e4m3_from_f32(hi)} << 8;
#endif
}

// Max over the CTA; every thread gets the result.
__device__ __forceinline__ float cta_max(float v) {
  __shared__ float warp_max[kThreads / 32];
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = v;
  __syncthreads();
  v = warp_max[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) v = fmaxf(v, warp_max[w]);
  return v;
}

// What the FP8 kernel writes per element: the E4M3 code (uint8_t), or its value as a bf16 (bf16),
// as act_fp8_codes_row. The value is exact in bf16 (3 mantissa bits, exponents -9 .. 8, NaN stays
// NaN), so its bf16 bits are the top half of its float32 bits.
__device__ __forceinline__ uint32_t fp8_out_pair(uint32_t codes2, uint8_t*) { return codes2; }
__device__ __forceinline__ uint32_t fp8_out_pair(uint32_t codes2, bf16*) {
  return __byte_perm(__float_as_uint(e4m3_to_f32(static_cast<uint8_t>(codes2))),
                     __float_as_uint(e4m3_to_f32(static_cast<uint8_t>(codes2 >> 8))), 0x7632);
}
// 8 outputs (4 pairs) -> one vector store: 8 bytes of codes or 16 bytes of bf16.
__device__ __forceinline__ void store8(uint8_t* p, const uint32_t (&pair)[4]) {
  *reinterpret_cast<uint2*>(p) = make_uint2(pair[0] | pair[1] << 16, pair[2] | pair[3] << 16);
}
__device__ __forceinline__ void store8(bf16* p, const uint32_t (&pair)[4]) {
  *reinterpret_cast<uint4*>(p) = make_uint4(pair[0], pair[1], pair[2], pair[3]);
}
__device__ __forceinline__ void store1(uint8_t* p, uint32_t pair) { *p = static_cast<uint8_t>(pair); }
__device__ __forceinline__ void store1(bf16* p, uint32_t pair) { p->bits = static_cast<uint16_t>(pair); }

// Grid: one CTA per row. vec: K % 8 == 0 and x, out aligned to 16 bytes and to 8 elements of Out,
// so 8 elements move per access; otherwise one at a time.
template <typename T, typename Out>
__global__ void __launch_bounds__(kThreads)
act_fp8_quantize_kernel(const T* __restrict__ x, size_t K, bool vec, float static_scale,
                        Out* __restrict__ out, float* __restrict__ scale) {
  allow_dependent_grids();  // the GEMV after this one may start streaming its weights
  const T* xr = x + blockIdx.x * K;
  Out* cr = out + blockIdx.x * K;
  float s = static_scale;
  if (!(s > 0.0f)) {
    // fmaxf skips NaN, as the reference's std::max(amax, |x|) does.
    float amax = 0.0f;
    if (vec) {
      for (size_t k = threadIdx.x * size_t{kVec}; k < K; k += kThreads * kVec) {
        float v[kVec];
        load8(xr + k, v);
#pragma unroll
        for (int i = 0; i < kVec; ++i) amax = fmaxf(amax, fabsf(v[i]));
      }
    } else {
      for (size_t k = threadIdx.x; k < K; k += kThreads) amax = fmaxf(amax, fabsf(load1(xr + k)));
    }
    amax = cta_max(amax);
    s = amax > 0.0f ? amax / 448.0f : 1.0f;
  }
  if (scale != nullptr && threadIdx.x == 0) scale[blockIdx.x] = s;

  if (vec) {
    for (size_t k = threadIdx.x * size_t{kVec}; k < K; k += kThreads * kVec) {
      float v[kVec];
      load8(xr + k, v);
      uint32_t pair[4];
#pragma unroll
      for (int i = 0; i < kVec; i += 2) pair[i / 2] = fp8_out_pair(e4m3x2(v[i] / s, v[i + 1] / s), cr);
      store8(cr + k, pair);
    }
  } else {
    for (size_t k = threadIdx.x; k < K; k += kThreads)
      store1(cr + k, fp8_out_pair(e4m3x2(load1(xr + k) / s, 0.0f), cr));
  }
}

// ---- MXFP4 fake quantization ----

static_assert(kMxBlock / kVec == 4, "an MX block spans 4 lanes: the shuffles below xor 1 and 2");

__device__ __forceinline__ void load8_raw(const bf16* p, uint32_t (&bits)[kVec]) {
  const uint4 w = *reinterpret_cast<const uint4*>(p);
  const uint32_t u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    bits[2 * i] = u[i] << 16;
    bits[2 * i + 1] = u[i] & 0xFFFF0000u;
  }
}
__device__ __forceinline__ void load8_raw(const float* p, uint32_t (&bits)[kVec]) {
  const uint4 a = reinterpret_cast<const uint4*>(p)[0], b = reinterpret_cast<const uint4*>(p)[1];
  bits[0] = a.x; bits[1] = a.y; bits[2] = a.z; bits[3] = a.w;
  bits[4] = b.x; bits[5] = b.y; bits[6] = b.z; bits[7] = b.w;
}

// x [n] (n a multiple of 32) -> xq [n] bf16. Grid: ceil(n / 8 / kThreads) CTAs; thread i owns
// elements 8i .. 8i+7. n is a multiple of 32, so a warp's lanes past n hold whole blocks past n:
// they join the shuffles on zeros and store nothing.
template <typename T>
__global__ void __launch_bounds__(kThreads)
act_mxfp4_fake_quantize_kernel(const T* __restrict__ x, size_t n, bf16* __restrict__ xq) {
  allow_dependent_grids();  // the GEMV after this one may start streaming its weights
  const size_t i0 = (size_t{blockIdx.x} * kThreads + threadIdx.x) * kVec;
  uint32_t bits[kVec] = {};
  if (i0 < n) load8_raw(x + i0, bits);
  // Block amax on the magnitude bits (their unsigned order is the numeric one; NaN and Inf lie
  // above every finite value), as mx_convert.cu's quantize kernel does.
  uint32_t amax_bits = 0;
#pragma unroll
  for (int i = 0; i < kVec; ++i) amax_bits = max(amax_bits, bits[i] & 0x7FFFFFFFu);
  amax_bits = max(amax_bits, __shfl_xor_sync(0xFFFFFFFFu, amax_bits, 1));
  amax_bits = max(amax_bits, __shfl_xor_sync(0xFFFFFFFFu, amax_bits, 2));
  if (i0 >= n) return;

  uint32_t out[kVec / 2];
  if (amax_bits >= 0x7F800000u) {
    // NaN scale: the reference decodes every element of the block to the quiet NaN 0x7FC00000.
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) out[i] = 0x7FC07FC0u;
  } else {
    const int s = mx_scale_exp_ceil_int(__uint_as_float(amax_bits));
    const float inv_scale = pow2f(-s), scale = pow2f(s);
    // x̂ = e2m1(code) · 2^s is exact in bf16 (act_quant.h), so its bf16 bits are its float32 bits'
    // top half (Inf included): one byte permute packs two.
    float v[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i)
      v[i] = e2m1_to_f32_int(e2m1_from_scaled_int(__uint_as_float(bits[i]) * inv_scale,
                                                  TieRule::nearest_even)) * scale;
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i)
      out[i] = __byte_perm(__float_as_uint(v[2 * i]), __float_as_uint(v[2 * i + 1]), 0x7632);
  }
  *reinterpret_cast<uint4*>(xq + i0) = make_uint4(out[0], out[1], out[2], out[3]);
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename Out>
cudaError_t launch_fp8(const void* x, ElemType xt, size_t M, size_t K, float static_scale, Out* out,
                       float* scale, cudaStream_t stream) {
  if (M == 0 || K == 0) return cudaSuccess;
  if (M > 0x7FFFFFFFu || (xt != ElemType::bf16 && xt != ElemType::f32)) return cudaErrorInvalidValue;
  const bool vec = K % kVec == 0 && aligned(x, 16) && aligned(out, kVec * sizeof(Out));
  if (xt == ElemType::bf16)
    act_fp8_quantize_kernel<bf16, Out><<<static_cast<unsigned>(M), kThreads, 0, stream>>>(
        static_cast<const bf16*>(x), K, vec, static_scale, out, scale);
  else
    act_fp8_quantize_kernel<float, Out><<<static_cast<unsigned>(M), kThreads, 0, stream>>>(
        static_cast<const float*>(x), K, vec, static_scale, out, scale);
  return cudaGetLastError();
}

}  // namespace

cudaError_t act_fp8_quantize_cuda(const void* x, ElemType xt, size_t M, size_t K, float static_scale,
                                  uint8_t* codes, float* scale, cudaStream_t stream) {
  return launch_fp8(x, xt, M, K, static_scale, codes, scale, stream);
}

cudaError_t act_fp8_values_bf16_cuda(const void* x, ElemType xt, size_t M, size_t K,
                                     float static_scale, bf16* q, float* scale, cudaStream_t stream) {
  if (!aligned(x, 16) || !aligned(q, 16)) return cudaErrorInvalidValue;
  return launch_fp8(x, xt, M, K, static_scale, q, scale, stream);
}

cudaError_t act_mxfp4_fake_quantize_cuda(const void* x, ElemType xt, size_t M, size_t K, bf16* xq,
                                         cudaStream_t stream) {
  if (M == 0 || K == 0) return cudaSuccess;
  if (K % kMxBlock != 0 || !aligned(x, 16) || !aligned(xq, 16) ||
      (xt != ElemType::bf16 && xt != ElemType::f32))
    return cudaErrorInvalidValue;
  const size_t n = M * K;
  const unsigned grid = static_cast<unsigned>((n / kVec + kThreads - 1) / kThreads);
  if (xt == ElemType::bf16)
    act_mxfp4_fake_quantize_kernel<bf16><<<grid, kThreads, 0, stream>>>(static_cast<const bf16*>(x), n, xq);
  else
    act_mxfp4_fake_quantize_kernel<float><<<grid, kThreads, 0, stream>>>(static_cast<const float*>(x), n, xq);
  return cudaGetLastError();
}

cudaError_t act_mxfp4_quantize_cuda(const void* x, ElemType xt, size_t M, size_t K, uint8_t* codes,
                                    uint8_t* scales, cudaStream_t stream) {
  if (K % kMxBlock != 0) return cudaErrorInvalidValue;
  const MxOptions opt{ScaleRule::ceil, TieRule::nearest_even, NonFinite::nan_scale};
  return mxfp4_quantize_cuda(x, xt, M * K, codes, scales, opt, nullptr, stream);
}

}  // namespace mxq
