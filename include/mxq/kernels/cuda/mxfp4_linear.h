// mxq/kernels/cuda/mxfp4_linear.h — one MXFP4 linear layer on an NVIDIA GPU, the runtime's single
// entry point to the CUDA kernels:
//
//   y[M, N] = x̂[M, K] · dequant(W)ᵀ      x bf16 [M, K] row-major, y f32 [M, N] row-major,
//                                        W MXFP4 as the checkpoint stores it (codes U8 [N, K/2],
//                                        element 2i in the low nibble of byte i; E8M0 U8 [N, K/32])
//
// with x̂ the activations as the mode quantizes them, the function of the CPU references in
// mxq/kernels/cpu/gemm.h:
//   W4A16  x̂ = x                                           gemm_mxfp4_ref
//   W4A8   x̂ = FP8 E4M3 per token (dynamic) or by the      gemm_mxfp4_w4a8_ref
//          checkpoint's static input_scale
//   W4A4   x̂ = MXFP4 per 32 (ceil rule, ties to even)      gemm_mxfp4_w4a4_ref
// (the runtime's Mxfp4Mode names the same three modes; kernels do not include the runtime).
//
// prepare() is process_weights_after_loading's GPU half: it takes the canonical tensors once, runs
// each kernel's repack on the host and keeps the repacked weights in device memory. apply() is the
// forward. It picks the kernel by M:
//   M <= gemv_max_m(mode): the small-M GEMV (mxq/kernels/cuda/gemv.h; W4A16 on mma.m16n8k16), which
//       streams the weights once per 32 tokens;
//   larger M: the Hopper wgmma GEMMs (mxq/kernels/cuda/gemm_wgmma.h), which read the weights once
//       per 128-token tile and run at tensor-core rate. Off sm_90a (sm_80 and others) W4A16 and W4A4
//       take the mma.sync GEMM (mxq/kernels/cuda/gemm_mma_sm80.h) on the GEMV's weights, and W4A8
//       the GEMV at every M.
// How each mode reaches them:
//   W4A16  x as it is.
//   W4A8   The reference: y = fl32(s_m · Σ q·w), q the E4M3 values, s_m the row's scale. GEMV:
//          act_fp8_values_bf16_cuda writes q as bf16 (exact) and s, and the W4A16 GEMV sums and
//          multiplies each output by its row's s before storing it: the reference up to f32
//          summation order. GEMM: act_fp8_quantize_cuda writes the E4M3 codes and s for the FP8
//          wgmma (QGMMA), which multiplies q · w exactly and applies s in its epilogue: the
//          reference up to summation order in the FP8 tensor core's shorter accumulator.
//   W4A4   act_mxfp4_fake_quantize_cuda writes x̂ = E2M1 × 2^(e − 127) as bf16, exactly (every finite
//          such value is a bf16; act_quant.h gives the range and the overflow at the top), then the
//          W4A16 GEMV or the BF16 wgmma GEMM: gemm_mxfp4_w4a4_ref exactly up to f32 summation order.
//          Why this route now: it is exact, and it reuses the two tested W4A16 kernels unchanged.
//          The faster route is not built yet: FP8 tensor cores (QGMMA, twice BF16's rate) with the
//          activation's block exponents folded into E4M3 relative to a base per token and K-tile,
//          as the W4A8 GEMM folds the weight's (E2M1 × 2^j is exact in E4M3 for −8 <= j <= 6, so a
//          base per (token, K-tile) keeps blocks within 14 binades exact). It needs a second
//          exponent fold on the activation side of the GEMM's inner loop, with the out-of-window
//          passes of gemm_wgmma.h for both operands at once, and the promotion factor then depends
//          on (token, column) rather than on the column alone — a new kernel, not a parameter.
//
// Memory: the GEMV layout always (~0.53 bytes per weight; the sm_80 GEMM reads it too) and one wgmma
// layout per operand type the prepared modes need (BF16 for W4A16 / W4A4, E4M3 for W4A8; ~0.52 bytes
// per weight each; built on sm_90a only). apply() keeps a workspace for the quantized activations
// (2·M·K bytes, + 4·M for W4A8's scales) that grows at the first call with a larger M: a cudaMalloc,
// which synchronizes the device, so call apply() once at the largest M before capturing it in a CUDA
// graph.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "mxq/format.h"
#include "mxq/kernels/cpu/mx_convert.h"  // ElemType
#include "mxq/kernels/cuda/device_buffer.h"
#include "mxq/kernels/cuda/gemm_wgmma.h"

namespace mxq {

enum class Mxfp4LinearMode : uint8_t { w4a16, w4a8, w4a4 };

const char* mxfp4_linear_mode_name(Mxfp4LinearMode mode);  // "W4A16", "W4A8", "W4A4"

class Mxfp4LinearCuda {
 public:
  // The largest M that takes the GEMV on sm_90a, by mode and by the prepared weight's N on this
  // device (measured on an H100: docs/BENCHMARKS.md, "the dispatcher").
  size_t default_gemv_max_m(Mxfp4LinearMode mode) const;

  // codes [N, K/2], scales [N, K/32] in host memory (K a multiple of 32; throws mxq::Error
  // otherwise); input_scale: W4A8's static activation scale, 0 for per-token dynamic scales; modes:
  // the modes apply() will be called with (each wgmma operand type is a separate repack). Uses the
  // current device; blocks until the weights are on it.
  void prepare(const uint8_t* codes, const uint8_t* scales, size_t N, size_t K, float input_scale,
               std::initializer_list<Mxfp4LinearMode> modes, cudaStream_t stream = nullptr);

  // y [M, N] = x̂ [M, K] · Wᵀ on `stream` (x: bf16 [M, K], 16-byte aligned; y written whole), f32 or
  // bf16: the f32 result rounded to nearest even (every kernel rounds its own f32 value once, so
  // the two outputs agree bit for bit; gemm_wgmma.h names the one exception, W4A16 tiles of
  // several passes). Throws mxq::Error naming the launch that failed, or for a mode prepare() was
  // not given.
  void apply(Mxfp4LinearMode mode, const bf16* x, size_t M, float* y, cudaStream_t stream);
  void apply(Mxfp4LinearMode mode, const bf16* x, size_t M, bf16* y, cudaStream_t stream);

  // Where apply() switches from the GEMV to the GEMM, for every mode at once (benchmarks and tests
  // run each kernel at any M with it); reset_gemv_max_m() returns to default_gemv_max_m.
  void set_gemv_max_m(size_t m) { gemv_max_m_override_ = m; has_override_ = true; }
  void reset_gemv_max_m() { has_override_ = false; }
  size_t gemv_max_m(Mxfp4LinearMode mode) const {
    return has_override_ ? gemv_max_m_override_ : default_gemv_max_m(mode);
  }

  // true: apply() picks kernels as it does off sm_90a (the sm_80 GEMM above gemv_max_m), on any
  // device; tests and benchmarks run that path on an H100 with it. Default false.
  void set_prefer_sm80(bool on) { prefer_sm80_ = on; }

  size_t N() const { return N_; }
  size_t K() const { return K_; }
  bool has_wgmma() const { return sm90_; }  // false: the GEMV and the sm_80 GEMM serve every M

 private:
  // One wgmma layout in device memory.
  struct Sm90Buffers {
    DeviceBuffer<uint8_t> codes, meta, passes;
    Mxfp4Sm90Weights view;
  };
  static void upload_sm90(Sm90Operand op, const uint8_t* codes, const uint8_t* scales, size_t N,
                          size_t K, Sm90Buffers& out, cudaStream_t stream);
  template <typename Out>
  void apply_to(Mxfp4LinearMode mode, const bf16* x, size_t M, Out* y, cudaStream_t stream);
  void gemv(Mxfp4LinearMode mode, const bf16* x, size_t M, void* y, ElemType yt, cudaStream_t stream,
            const float* row_scales = nullptr) const;
  uint8_t* workspace(size_t bytes);

  size_t N_ = 0, K_ = 0;
  float input_scale_ = 0.0f;
  bool sm90_ = false;
  int sms_ = 1;  // the device's SM count (prepare)
  bool prepared_[3] = {false, false, false};  // by Mxfp4LinearMode
  DeviceBuffer<uint8_t> gemv_codes_, gemv_scales_;
  Sm90Buffers sm90_bf16_, sm90_e4m3_;
  DeviceBuffer<uint8_t> workspace_;
  size_t gemv_max_m_override_ = 0;
  bool has_override_ = false;
  bool prefer_sm80_ = false;
};

}  // namespace mxq
