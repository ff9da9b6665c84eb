// The W4A16 prefill GEMM on mma.sync (sm_80 and later): see mxq/kernels/cuda/gemm_mma_sm80.h for
// the contract, mxq/kernels/cuda/gemv.h for the weight layout.
//
// Tiling. A CTA (8 warps) owns kCtaTiles of the layout's 16-row tiles (a slab of 128 or 256 weight
// rows) and 128 tokens, and walks K in the layout's 64-wide steps. Per step it stages in shared
// memory, by cp.async in a ring of kStages steps (kStages - 1 in flight while one is computed):
//   codes   [kCtaTiles][32 lanes] 16 B  (the step's 512 bytes of each tile, as the layout stores them)
//   scales  [kCtaTiles][8 g]       4 B
//   x       [128 tokens][8]       16 B  (k = 8c .. 8c+7 of the step in chunk c; chunk c of token r
//                                        stored at c ^ 4·(r % 2), see load_activations)
// Warps are 4 (row groups) x 2 (64-token halves): warp (wm, wn) widens its kWarpTiles = kCtaTiles / 4
// row tiles once per step and multiplies them with 8 column tiles of 8 tokens (wn·64 + [0, 64)):
// kWarpTiles x 8 x 4 MMAs per step, each tile's widening (~70 integer / bf16x2 ops) shared by 32
// MMAs; each weight is widened twice per CTA (once per token half).
//
// The two CTA shapes, measured on an H100 at M = 2048 (bench_gemm_wgmma_cuda, 2026-11-25): 256 rows
// (warp tile 64 x 64, 254 registers) ran 1.15-1.25x faster per CTA than 128 rows (32 x 64, 186
// registers; 4096x4096 256 vs 310 us, LM head 7286 vs 9111): it reads half the activation bytes from
// L2 per MMA (a 64-K step moves 8 KB of codes and 16 KB of x for 4.2 MFLOP instead of 4 KB and 16 KB
// for 2.1), and with the conversion removed altogether (a diagnostic build) it ran within 1-11%, so
// the widening no longer limits it. 128 rows gives twice the CTAs, which wins where 256 leaves the
// last wave mostly empty (N = 2880, M = 2048: 12 slabs x 16 token tiles = 192 CTAs on 132 SMs; 236
// vs 251 us); plan_cta_tiles picks per launch. 3 stages ran as fast as 4 (and 256 rows then need
// 73.5 KB of shared memory, under the 99 KB that sm_86 / sm_89 allow a CTA).
// What is left: on that H100 it runs at 250-295 TFLOP/s for M >= 2048, ~45% of the 640 TFLOP/s that
// mma.m16n8k16 alone sustains there (a loop of independent MMAs on registers), and not faster without
// the conversion. Not yet measured, so a lead rather than a finding: after each step's barrier all
// 8 warps load their fragments at once (~80 KB of shared-memory reads per SM and step) before their
// first MMA; loading step s + 1's fragments during step s's MMAs would overlap the two, but needs
// registers the 256-row shape (254) does not have.
//
// Order of the CTAs: within a group of kGroupRows row slabs the slab varies fastest, so the CTAs
// running at once share a few token tiles (L2 hits for the activations) and a few slabs (the weights
// come from DRAM about once): at M = 8192 the activations (64 MB at K = 4096) no longer fit an H100's
// 50 MB L2, and a token-major order would read them again from DRAM for every pair of slabs.
#include "mxq/kernels/cuda/gemm_mma_sm80.h"

#include <algorithm>

#include "mxq/kernels/cuda/gemv.h"
#include "mxfp4_mma_fragments.cuh"
#include "output_store.cuh"

namespace mxq {
namespace {

using namespace mma_fragments;

constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr int kRowGroups = 4, kTokenGroups = kWarps / kRowGroups;  // warps along rows, tokens
constexpr int kWarpNT8 = 8;                                         // column tiles of 8 tokens per warp
constexpr int kCtaTokens = kTokenGroups * 8 * kWarpNT8;             // 128
constexpr int kStages = 3;
constexpr int kGroupRows = 8;  // row slabs per CTA group (rasterization)

// One K step of the CTA's operands in shared memory (20736 or 25088 bytes).
template <int kCtaTiles>
struct Stage {
  uint4 codes[kCtaTiles][32];
  uint32_t scales[kCtaTiles][8];
  uint4 x[kCtaTokens][8];
};
template <int kCtaTiles>
constexpr size_t kSmemBytes = kStages * sizeof(Stage<kCtaTiles>);

// The CTA's operands of step `step` into `st`. Tiles past the last read the last tile again, tokens
// past M token M - 1 (their outputs are not stored); k past K (the second 32-block of the last step
// when K / 32 is odd) is written as zeros, as the layout pads its codes, so no NaN of memory past a
// row meets a zero weight.
template <int kCtaTiles>
__device__ __forceinline__ void load_stage(Stage<kCtaTiles>& st, const uint4* codes, const uint4* scales,
                                           const bf16* x, int M, int K, int steps, int tiles,
                                           int tile0, int m0, int step) {
  static_assert(kCtaTiles * 32 % kThreads == 0 && 2 * kCtaTiles <= kThreads && kCtaTokens * 8 % kThreads == 0,
                "the threads split each copy evenly");
  const int i = threadIdx.x;
#pragma unroll
  for (int r = 0; r < kCtaTiles * 32 / kThreads; ++r) {  // codes: 16-byte vectors, 32 per tile
    const int idx = i + r * kThreads, tile = min(tile0 + idx / 32, tiles - 1);
    cp_async_16(&st.codes[idx / 32][idx % 32],
                codes + (size_t{static_cast<unsigned>(tile)} * steps + step) * 32 + idx % 32);
  }
  if (i < 2 * kCtaTiles) {  // scales: 32 bytes per tile, two vectors
    const int tile = min(tile0 + i / 2, tiles - 1);
    cp_async_16(reinterpret_cast<uint4*>(st.scales[i / 2]) + i % 2,
                scales + (size_t{static_cast<unsigned>(tile)} * steps + step) * 2 + i % 2);
  }
#pragma unroll
  for (int r = 0; r < kCtaTokens * 8 / kThreads; ++r) {  // x: 128 tokens x 8 chunks, 4 per thread
    const int idx = i + r * kThreads, row = idx / 8, chunk = idx % 8;
    const int token = min(m0 + row, M - 1), k = step * static_cast<int>(kGemvStepK) + 8 * chunk;
    const bool inside = k < K;
    cp_async_16_or_zero(&st.x[row][chunk ^ (4 * (row % 2))],
                        x + size_t{static_cast<unsigned>(token)} * K + (inside ? k : 0), inside);
  }
}

// xq[b][j] = k = 8t .. 8t+7 of block b for token 8j + g of the warp's half (wn). A quarter-warp (g =
// 2p, 2p + 1; t = 0..3) reads chunks 4b + t of two tokens of opposite parity, which the XOR puts in
// opposite 64-byte halves of their 128-byte rows: all 32 banks, no conflict.
template <int kCtaTiles>
__device__ __forceinline__ void load_activations(const Stage<kCtaTiles>& st, int wn, int g, int t,
                                                 uint4 (&xq)[2][kWarpNT8]) {
#pragma unroll
  for (int b = 0; b < 2; ++b)
#pragma unroll
    for (int j = 0; j < kWarpNT8; ++j)
      xq[b][j] = st.x[wn * 8 * kWarpNT8 + 8 * j + g][(4 * b + t) ^ (4 * (g % 2))];
}

// Grid: one CTA per (row slab of kCtaTiles tiles, token tile of 128), ordered as described at the top.
template <int kCtaTiles, typename Out>
__global__ void __launch_bounds__(kThreads, 1)
gemm_mxfp4_w4a16_sm80_kernel(const bf16* __restrict__ x, int M, int K, const uint4* __restrict__ codes,
                             const uint4* __restrict__ scales, int N, Out* __restrict__ y) {
  constexpr int kWarpTiles = kCtaTiles / kRowGroups;
  extern __shared__ uint4 smem_raw[];
  Stage<kCtaTiles>* stages = reinterpret_cast<Stage<kCtaTiles>*>(smem_raw);

  const int tiles = static_cast<int>(mxfp4_gemv_tiles(N)), steps = static_cast<int>(mxfp4_gemv_steps(K));
  const int slabs = (tiles + kCtaTiles - 1) / kCtaTiles, token_tiles = (M + kCtaTokens - 1) / kCtaTokens;
  const int group = blockIdx.x / (kGroupRows * token_tiles), local = blockIdx.x % (kGroupRows * token_tiles);
  const int group_rows = min(kGroupRows, slabs - group * kGroupRows);
  const int slab = group * kGroupRows + local % group_rows, m0 = local / group_rows * kCtaTokens;
  const int tile0 = slab * kCtaTiles;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int wm = warp % kRowGroups, wn = warp / kRowGroups;

  float acc[kWarpTiles][kWarpNT8][4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load_stage(stages[s], codes, scales, x, M, K, steps, tiles, tile0, m0, s);
    cp_async_commit();  // one group per step, empty past the end
  }
  for (int step = 0; step < steps; ++step) {
    cp_async_wait<kStages - 2>();  // this thread's copies of `step` are done
    __syncthreads();               // everyone's are, and everyone is done with step - 1's slot
    const int next = step + kStages - 1;
    if (next < steps) load_stage(stages[next % kStages], codes, scales, x, M, K, steps, tiles, tile0, m0, next);
    cp_async_commit();

    const Stage<kCtaTiles>& st = stages[step % kStages];
    uint4 xq[2][kWarpNT8];
    load_activations(st, wn, g, t, xq);
    uint4 wq[kWarpTiles];
    uint32_t sc[kWarpTiles];
#pragma unroll
    for (int u = 0; u < kWarpTiles; ++u) {
      wq[u] = st.codes[kWarpTiles * wm + u][lane];
      sc[u] = st.scales[kWarpTiles * wm + u][g];
    }
    tile_step_any_scales<kWarpTiles, kWarpNT8>(wq, sc, xq, acc);
  }

  // Accumulator c of column tile j, row tile u: row g + 8·(c / 2), token 8j + 2t + c % 2. Lanes of
  // one t write 8 consecutive floats of a token's row (one 32-byte sector).
#pragma unroll
  for (int u = 0; u < kWarpTiles; ++u)
#pragma unroll
    for (int j = 0; j < kWarpNT8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int n = (tile0 + kWarpTiles * wm + u) * static_cast<int>(kGemvTileRows) + g + 8 * (c / 2);
        const int token = m0 + wn * 8 * kWarpNT8 + 8 * j + 2 * t + c % 2;
        if (n < N && token < M) store_out(y, size_t{static_cast<unsigned>(token)} * N + n, acc[u][j][c]);
      }
}

// Tiles per CTA (16 or 8) for this launch: each shape's waves (one CTA per SM: 254 and 186 registers
// per thread) times its time per CTA, 16 tiles taking 2 / 1.2 of 8 tiles' (measured, see the top).
// Ties go to 16.
int plan_cta_tiles(size_t N, size_t M, int sms) {
  const size_t token_tiles = (M + kCtaTokens - 1) / kCtaTokens, tiles = mxfp4_gemv_tiles(N);
  const auto waves = [&](size_t cta_tiles) {
    return static_cast<double>(((tiles + cta_tiles - 1) / cta_tiles * token_tiles + sms - 1) / sms);
  };
  return waves(16) * 2.0 / 1.2 <= waves(8) ? 16 : 8;
}

template <int kCtaTiles, typename Out>
cudaError_t launch_sm80(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                        const uint8_t* scales_rp, size_t N, Out* y, cudaStream_t stream) {
  const size_t slabs = (mxfp4_gemv_tiles(N) + kCtaTiles - 1) / kCtaTiles;
  const size_t ctas = slabs * ((M + kCtaTokens - 1) / kCtaTokens);
  if (ctas > size_t{0x7FFFFFFF}) return cudaErrorInvalidValue;
  // Above the default 48 KB of shared memory a kernel must opt in (per device; cheap to repeat).
  if (const cudaError_t e = cudaFuncSetAttribute(gemm_mxfp4_w4a16_sm80_kernel<kCtaTiles, Out>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(kSmemBytes<kCtaTiles>));
      e != cudaSuccess)
    return e;
  gemm_mxfp4_w4a16_sm80_kernel<kCtaTiles, Out><<<static_cast<unsigned>(ctas), kThreads, kSmemBytes<kCtaTiles>, stream>>>(
      x, static_cast<int>(M), static_cast<int>(K), reinterpret_cast<const uint4*>(codes_rp),
      reinterpret_cast<const uint4*>(scales_rp), static_cast<int>(N), y);
  return cudaGetLastError();
}

template <typename Out>
cudaError_t launch_checked(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                           const uint8_t* scales_rp, size_t N, Out* y, cudaStream_t stream, int cta_tiles) {
  if (M == 0 || N == 0) return cudaSuccess;
  if ((cta_tiles != 0 && cta_tiles != 8 && cta_tiles != 16) || K == 0 || K % kMxBlock != 0 || K > (size_t{1} << 30) || N > (size_t{1} << 30) ||
      M > (size_t{1} << 30) || reinterpret_cast<uintptr_t>(x) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(codes_rp) % 16 != 0 || reinterpret_cast<uintptr_t>(scales_rp) % 16 != 0)
    return cudaErrorInvalidValue;
  if (cta_tiles == 0) {
    int device = 0, sms = 0;
    if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
    if (const cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
        e != cudaSuccess)
      return e;
    cta_tiles = plan_cta_tiles(N, M, sms);
  }
  return cta_tiles == 16 ? launch_sm80<16>(x, M, K, codes_rp, scales_rp, N, y, stream)
                                         : launch_sm80<8>(x, M, K, codes_rp, scales_rp, N, y, stream);
}

}  // namespace

cudaError_t gemm_mxfp4_w4a16_sm80(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                                  const uint8_t* scales_rp, size_t N, float* y, cudaStream_t stream,
                                  int cta_tiles) {
  return launch_checked(x, M, K, codes_rp, scales_rp, N, y, stream, cta_tiles);
}
cudaError_t gemm_mxfp4_w4a16_sm80(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                                  const uint8_t* scales_rp, size_t N, bf16* y, cudaStream_t stream,
                                  int cta_tiles) {
  return launch_checked(x, M, K, codes_rp, scales_rp, N, y, stream, cta_tiles);
}

}  // namespace mxq
