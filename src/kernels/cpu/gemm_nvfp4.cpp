// The NVFP4 GEMMs of mxq/kernels/cpu/gemm.h and the NVFP4 activation quantizer.
//
// The SIMD path is built from Highway kernels that exist already, so it has no SIMD code of its own:
//   * decode: NVFP4 codes are E2M1 nibbles in MXFP4's pack order, so mxfp4_dequantize with every
//     E8M0 scale byte at 127 (2^0) writes their exact E2M1 values (vector table lookups on the best
//     target); each 16-block is then multiplied by its E4M3 scale and by s2, in nvfp4_decode's
//     order, so a decoded row equals nvfp4_dequantize_row_ref's bit for bit (this library is built
//     with -ffp-contract=off: no fused multiply may merge the two roundings);
//   * dot products: a tile of decoded rows [kTileRows, K] goes through gemm_f32 with all M
//     activation rows, as GemmMxfp4 does with one decoded row.
// The references sum the same decoded values in double, so the two differ by f32 summation order
// alone (the bound of tests/test_runtime_kernels.cpp).
#include <algorithm>
#include <limits>
#include <vector>

#include "mxq/format_ref.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/kernels/cpu/mx_convert.h"

namespace mxq {

float act_nvfp4_quantize_row(const float* x, size_t K, float input_scale, float* xq) {
  const float s2 = input_scale > 0.0f ? input_scale : nvfp4_tensor_scale(block_amax(x, static_cast<int>(K)));
  std::vector<uint8_t> codes(blocks_of(K, 2)), scales(blocks_of(K, kNvfp4Block));
  if (nvfp4_quantize_row_ref(x, K, s2, codes.data(), scales.data()) != kRowOk)
    std::fill(xq, xq + K, std::numeric_limits<float>::quiet_NaN());
  else
    nvfp4_dequantize_row_ref(codes.data(), scales.data(), K, s2, xq);
  return s2;
}

void gemm_nvfp4_ref(const float* x, size_t M, size_t K, const uint8_t* codes,
                    const uint8_t* scales, float tensor_scale, size_t N, float* y) {
  // One weight row at a time through gemm_f32_ref (N = 1: y column [M]).
  std::vector<float> w(K), column(M);
  for (size_t n = 0; n < N; ++n) {
    nvfp4_dequantize_row_ref(codes + n * (K / 2), scales + n * (K / kNvfp4Block), K, tensor_scale,
                             w.data());
    gemm_f32_ref(x, M, K, w.data(), 1, column.data());
    for (size_t m = 0; m < M; ++m) y[m * N + n] = column[m];
  }
}

namespace {

// Decoded weight rows per gemm_f32 call: 16 rows of K f32 (36 KB at K = 576) stay in L2 while
// the M activation rows stream past them.
constexpr size_t kTileRows = 16;

// One weight row [K] to f32, equal to nvfp4_dequantize_row_ref's; unit_e8m0 holds K/32 rounded up
// bytes of 127.
void decode_row(const uint8_t* codes, const uint8_t* scales, size_t K, float s2,
                const uint8_t* unit_e8m0, float* out) {
  mxfp4_dequantize(codes, unit_e8m0, K, out, ElemType::f32, 1);
  for (size_t b = 0; b < K / kNvfp4Block; ++b) {
    const float sb = e4m3_to_f32(scales[b]);
    float* o = out + b * kNvfp4Block;
    for (int i = 0; i < kNvfp4Block; ++i) o[i] = o[i] * sb * s2;
  }
}

}  // namespace

void gemm_nvfp4(const float* x, size_t M, size_t K, const uint8_t* codes, const uint8_t* scales,
                float tensor_scale, size_t N, float* y, ThreadPool* pool) {
  const size_t row_bytes = K / 2, row_scales = K / kNvfp4Block;
  const std::vector<uint8_t> unit_e8m0(blocks_of(K, kMxBlock), static_cast<uint8_t>(kE8M0Bias));
  const size_t tiles = blocks_of(N, kTileRows);
  const auto run = [&](size_t t0, size_t t1) {
    std::vector<float> w(kTileRows * K), yt(M * kTileRows);
    for (size_t t = t0; t < t1; ++t) {
      const size_t n0 = t * kTileRows, rows = std::min(kTileRows, N - n0);
      for (size_t r = 0; r < rows; ++r)
        decode_row(codes + (n0 + r) * row_bytes, scales + (n0 + r) * row_scales, K, tensor_scale,
                   unit_e8m0.data(), w.data() + r * K);
      gemm_f32(x, M, K, w.data(), rows, yt.data(), nullptr);  // yt [M, rows]
      for (size_t m = 0; m < M; ++m) std::copy_n(yt.data() + m * rows, rows, y + m * N + n0);
    }
  };
  // Tiles per chunk: about 32K multiply-adds, far above the cost of waking a pool thread.
  const size_t grain = std::max<size_t>(1, (size_t{1} << 15) / (kTileRows * M * K + 1));
  if (pool == nullptr) run(0, tiles);
  else pool->parallel_for(tiles, grain, run);
}

}  // namespace mxq
