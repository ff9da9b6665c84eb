// The MXFP4 linear layer on NVIDIA GPUs: see mxq/kernels/cuda/mxfp4_linear.h. Host code only: it
// owns the repacked weights and the activation workspace and chains the launchers.
#include "mxq/kernels/cuda/mxfp4_linear.h"

#include <string>
#include <type_traits>
#include <vector>

#include "mxq/error.h"
#include "mxq/kernels/cuda/act_quant.h"
#include "mxq/kernels/cuda/gemm_mma_sm80.h"
#include "mxq/kernels/cuda/gemv.h"

namespace mxq {
namespace {

size_t index_of(Mxfp4LinearMode mode) { return static_cast<size_t>(mode); }

std::string where(const char* call, Mxfp4LinearMode mode, size_t M, size_t N, size_t K) {
  return std::string("Mxfp4LinearCuda::apply(") + mxfp4_linear_mode_name(mode) + ", M " +
         std::to_string(M) + ", N " + std::to_string(N) + ", K " + std::to_string(K) + "): " + call;
}

}  // namespace

const char* mxfp4_linear_mode_name(Mxfp4LinearMode mode) {
  switch (mode) {
    case Mxfp4LinearMode::w4a16: return "W4A16";
    case Mxfp4LinearMode::w4a8: return "W4A8";
    case Mxfp4LinearMode::w4a4: return "W4A4";
  }
  return "?";
}

// Measured per mode on an H100 (bench_gemm_cuda's crossover table, 2026-11-26, docs/BENCHMARKS.md
// "the dispatcher"; 4096x4096, 28672x4096, 4096x14336, 2880x4096, M from 8 to 256, weights whose
// (row, K-tile) blocks lie within FP8's window as on the real checkpoint measured). The GEMM's time
// is flat up to M = 128 or more; the GEMV's grows by about a pass over the weights per 32 tokens.
// W4A16 and W4A4: the GEMV is faster up to M = 64 on all four shapes (W4A16 at M = 64: 27.4 /
// 97.6 / 54.1 / 26.5 us against the GEMM's 35.5 / 107.5 / 107.5 / 35.9). W4A8: its FP8 GEMM fills
// every SM at small M once the weight has a 128-row tile per SM, and then beats the GEMV's second
// launch (28672x4096 at M = 48: 58.9 against 91.7 us); with fewer row tiles than SMs the GEMV still
// wins at 64 (4096x14336: 60.6 against 89.8; 4096x4096: 31.4 against 32.8). Re-measure when
// either kernel changes.
size_t Mxfp4LinearCuda::default_gemv_max_m(Mxfp4LinearMode mode) const {
  const size_t row_tiles = (N_ + kSm90TileRows - 1) / kSm90TileRows;
  return mode == Mxfp4LinearMode::w4a8 && row_tiles >= static_cast<size_t>(sms_) ? 32 : 64;
}

void Mxfp4LinearCuda::upload_sm90(Sm90Operand op, const uint8_t* codes, const uint8_t* scales,
                                  size_t N, size_t K, Sm90Buffers& out, cudaStream_t stream) {
  const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, codes, scales, N, K);
  out.codes = DeviceBuffer<uint8_t>(p.codes.size());
  out.meta = DeviceBuffer<uint8_t>(p.meta.size());
  out.passes = DeviceBuffer<uint8_t>(p.passes.size());
  out.codes.upload(p.codes.data(), p.codes.size(), stream);
  out.meta.upload(p.meta.data(), p.meta.size(), stream);
  out.passes.upload(p.passes.data(), p.passes.size(), stream);
  // The host vectors die here: wait for the copies (load time, once per weight).
  cuda_check(cudaStreamSynchronize(stream), "Mxfp4LinearCuda::prepare: weight upload");
  out.view = Mxfp4Sm90Weights{op, N, K, out.codes.get(), out.meta.get(), out.passes.get()};
}

void Mxfp4LinearCuda::prepare(const uint8_t* codes, const uint8_t* scales, size_t N, size_t K,
                              float input_scale, std::initializer_list<Mxfp4LinearMode> modes,
                              cudaStream_t stream) {
  if (N == 0 || K == 0 || K % kMxBlock != 0)
    throw Error("Mxfp4LinearCuda::prepare: weight [" + std::to_string(N) + ", " + std::to_string(K) +
                "]: K must be a positive multiple of 32");
  if (!(input_scale >= 0.0f))
    throw Error("Mxfp4LinearCuda::prepare: input_scale " + std::to_string(input_scale) +
                " must be 0 (per-token scales) or positive");
  N_ = N;
  K_ = K;
  input_scale_ = input_scale;
  int device = 0, major = 0, minor = 0;
  cuda_check(cudaGetDevice(&device), "Mxfp4LinearCuda::prepare: cudaGetDevice");
  cuda_check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
             "Mxfp4LinearCuda::prepare: compute capability");
  cuda_check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
             "Mxfp4LinearCuda::prepare: compute capability");
  sm90_ = major == 9 && minor == 0;  // the wgmma kernels are built for sm_90a alone
  cuda_check(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device),
             "Mxfp4LinearCuda::prepare: SM count");

  // A second prepare() replaces the first: no layout of the old weight may survive it.
  sm90_bf16_ = Sm90Buffers{};
  sm90_e4m3_ = Sm90Buffers{};
  bool want[3] = {false, false, false};
  for (const Mxfp4LinearMode m : modes) want[index_of(m)] = true;

  std::vector<uint8_t> codes_rp(mxfp4_gemv_code_bytes(N, K)), scales_rp(mxfp4_gemv_scale_bytes(N, K));
  mxfp4_gemv_repack(codes, scales, N, K, codes_rp.data(), scales_rp.data());
  gemv_codes_ = DeviceBuffer<uint8_t>(codes_rp.size());
  gemv_scales_ = DeviceBuffer<uint8_t>(scales_rp.size());
  gemv_codes_.upload(codes_rp.data(), codes_rp.size(), stream);
  gemv_scales_.upload(scales_rp.data(), scales_rp.size(), stream);
  cuda_check(cudaStreamSynchronize(stream), "Mxfp4LinearCuda::prepare: weight upload");

  const bool bf16_operand = want[index_of(Mxfp4LinearMode::w4a16)] || want[index_of(Mxfp4LinearMode::w4a4)];
  if (sm90_ && bf16_operand) upload_sm90(Sm90Operand::bf16, codes, scales, N, K, sm90_bf16_, stream);
  if (sm90_ && want[index_of(Mxfp4LinearMode::w4a8)])
    upload_sm90(Sm90Operand::e4m3, codes, scales, N, K, sm90_e4m3_, stream);
  for (size_t i = 0; i < 3; ++i) prepared_[i] = want[i];
}

uint8_t* Mxfp4LinearCuda::workspace(size_t bytes) {
  if (workspace_.bytes() < bytes) workspace_ = DeviceBuffer<uint8_t>(bytes);
  return workspace_.get();
}

void Mxfp4LinearCuda::gemv(Mxfp4LinearMode mode, const bf16* x, size_t M, void* y, ElemType yt,
                           cudaStream_t stream, const float* row_scales) const {
  cuda_check(mxfp4_gemv_w4a16_cuda(x, M, K_, gemv_codes_.get(), gemv_scales_.get(), N_, y, yt, stream,
                                   row_scales),
             where("mxfp4_gemv_w4a16_cuda", mode, M, N_, K_).c_str());
}

void Mxfp4LinearCuda::apply(Mxfp4LinearMode mode, const bf16* x, size_t M, float* y, cudaStream_t stream) {
  apply_to(mode, x, M, y, stream);
}
void Mxfp4LinearCuda::apply(Mxfp4LinearMode mode, const bf16* x, size_t M, bf16* y, cudaStream_t stream) {
  apply_to(mode, x, M, y, stream);
}

template <typename Out>
void Mxfp4LinearCuda::apply_to(Mxfp4LinearMode mode, const bf16* x, size_t M, Out* y, cudaStream_t stream) {
  constexpr bool kBf16Out = std::is_same_v<Out, bf16>;
  constexpr ElemType kOut = kBf16Out ? ElemType::bf16 : ElemType::f32;
  if (!prepared_[index_of(mode)])
    throw Error(std::string("Mxfp4LinearCuda::apply: mode ") + mxfp4_linear_mode_name(mode) +
                " was not among prepare()'s modes");
  if (M == 0) return;
  const bool small = M <= gemv_max_m(mode), wgmma = sm90_ && !prefer_sm80_;
  const bool use_gemv = small || (!wgmma && mode == Mxfp4LinearMode::w4a8);
  const size_t K = K_;
  switch (mode) {
    case Mxfp4LinearMode::w4a8:
      if (use_gemv) {
        // q [M, K] bf16, then the row scales [M] (2·M·K is a multiple of 64: 4-byte aligned), which
        // the GEMV applies to its f32 sums before storing y.
        uint8_t* ws = workspace(2 * M * K + 4 * M);
        bf16* q = reinterpret_cast<bf16*>(ws);
        float* scale = reinterpret_cast<float*>(ws + 2 * M * K);
        cuda_check(act_fp8_values_bf16_cuda(x, ElemType::bf16, M, K, input_scale_, q, scale, stream),
                   where("act_fp8_values_bf16_cuda", mode, M, N_, K).c_str());
        gemv(mode, q, M, y, kOut, stream, scale);
      } else {
        // Codes [M, K] then scales [M] (M·K is a multiple of 32: the scales stay 4-byte aligned).
        uint8_t* codes = workspace(M * K + 4 * M);
        float* scale = reinterpret_cast<float*>(codes + M * K);
        cuda_check(act_fp8_quantize_cuda(x, ElemType::bf16, M, K, input_scale_, codes, scale, stream),
                   where("act_fp8_quantize_cuda", mode, M, N_, K).c_str());
        cuda_check(gemm_mxfp4_w4a8_sm90(codes, scale, M, K, sm90_e4m3_.view, y, stream),
                   where("gemm_mxfp4_w4a8_sm90", mode, M, N_, K).c_str());
      }
      break;
    case Mxfp4LinearMode::w4a4: {
      // The activations fake-quantized to MXFP4 (exact in bf16), then the W4A16 path on them.
      bf16* xq = reinterpret_cast<bf16*>(workspace(2 * M * K));
      cuda_check(act_mxfp4_fake_quantize_cuda(x, ElemType::bf16, M, K, xq, stream),
                 where("act_mxfp4_fake_quantize_cuda", mode, M, N_, K).c_str());
      x = xq;
    }
      [[fallthrough]];
    case Mxfp4LinearMode::w4a16:
      if (use_gemv) {
        gemv(mode, x, M, y, kOut, stream);
      } else if (wgmma) {
        cuda_check(gemm_mxfp4_w4a16_sm90(x, M, K, sm90_bf16_.view, y, stream),
                   where("gemm_mxfp4_w4a16_sm90", mode, M, N_, K).c_str());
      } else {
        cuda_check(gemm_mxfp4_w4a16_sm80(x, M, K, gemv_codes_.get(), gemv_scales_.get(), N_, y, stream),
                   where("gemm_mxfp4_w4a16_sm80", mode, M, N_, K).c_str());
      }
      break;
  }
}

}  // namespace mxq
