// MXFP4 W4A16 GEMV / small-M GEMM on NVIDIA GPUs: see mxq/kernels/cuda/gemv.h for the contract and
// the repacked weight layout.
//
// Budget. At M = 1 an H100 streams ~0.53 bytes of weight per element, so at ~3 TB/s an SM must
// retire ~24 weights per clock: ~5 thread-instructions per weight of issue, for the dequantization,
// the MMAs, the activation loads and the loop. From the sm_90a SASS, a 64-K step (32 weights per
// lane) costs ~75 instructions of conversion and MMA plus ~32 of loop, copies and activation loads
// (~3.3 per weight; ~125 before the bit layout and the ring below):
//  * E2M1 -> bf16 by bit placement (the codes' exponent and mantissa bits dropped into the bottom of
//    bf16's fields give E2M1 · 2^-126 exactly, the subnormal 0.5 included): 11 integer ops per word
//    of 8 codes (one mask for one pair, shift + mask for two, three of each for the fourth), thanks
//    to the repacked bit order (gemv.h; 15 with plain nibbles);
//  * one bf16x2 multiply by 2^(e - 1) = 2^126 · 2^(e - 127) per register, the block's E8M0 scale
//    with the bias fix folded in. That constant is a bf16 for e <= 128 (weights below 6 · 2^1); a
//    lane whose scales are larger (or NaN) multiplies twice, by 2^126 and by the scale, so every
//    scale byte is exact: E2M1 · 2^(e-127) is a bf16 for every e (the smallest, 2^-128, is a bf16
//    subnormal, which fma.rn.bf16x2 keeps), as it is a float32 in the reference.
// The tensor cores then do the multiply-adds in FP32 (bf16 x bf16 products are exact). At M = 1
// seven of the eight MMA columns are wasted; the MMA rate is far above what the stream needs.
//
// Latency. Each warp streams its weights through a ring of MXQ_GEMV_RING_* steps in shared memory
// filled by cp.async (16 bytes of codes and 4 of scales per lane and step), 3 steps ahead, so no
// register holds a load in flight: 48 registers at M <= 8 and 5 CTAs (40 warps) per SM, where the
// register double-buffering before held 2 KB per warp in 63 registers at 4 CTAs. What measured
// faster was the lower register count (more warps to issue the conversion), not depth: a ring of 8
// was slower than one of 4. Activations are small and shared by every tile: plain cached loads,
// issued before the step's wait so that their L1 / L2 latency overlaps it. At 25-32 tokens each warp
// converts two row tiles per step against one such load (4 KB per warp and step at 32 tokens), and
// at 9-16 tokens on large matrices. They are what keeps 16 tokens from the weight stream's pace: on
// the LM head at M = 16 with one tile per warp, L1 runs at 83% of its throughput and the kernel
// takes 141 us, 111 with the loads removed, 125 with two tiles per warp (docs/BENCHMARKS.md).
// On sm_90 a launch may overlap the kernel before it (grid_dependency.cuh): the ring's first steps
// go out before the wait for that kernel's output.
#include "mxq/kernels/cuda/gemv.h"

#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "mxq/error.h"
#include "grid_dependency.cuh"
#include "mxfp4_mma_fragments.cuh"
#include "output_store.cuh"

namespace mxq {
namespace {

using namespace mma_fragments;

constexpr int kWarps = 8, kThreads = 32 * kWarps;
// Benchmark builds may override the defaults below to compare variants on the device (as
// mx_convert.cu's unroll depths). The defaults are the best measured on an H100 (docs/BENCHMARKS.md,
// "cp.async ring"): a ring of 4 steps beat 8 (LM head at M = 1 113.0 vs 116.4 us, 28672x4096 31.5
// vs 34.2); 5 CTAs per SM at M <= 8 (48 registers) beat 4 (LM head 107.7 vs 112.9 us, 5120x2880
// 10.1 vs 13.4) and 4 at M 9-16 (64 registers) beat 3 (LM head 143.4 vs 159.9, 28672x4096 37.2 vs
// 45.1). Two row tiles per warp win on large matrices above 8 tokens and lose on small ones
// (launch_tokens).
#ifndef MXQ_GEMV_RING_M8  // steps in a warp's shared-memory ring at M <= 8 (ring - 1 in flight)
#define MXQ_GEMV_RING_M8 4
#endif
#ifndef MXQ_GEMV_RING_M32  // the same above 8 tokens
#define MXQ_GEMV_RING_M32 4
#endif
#ifndef MXQ_GEMV_MIN_CTAS_M8  // CTAs per SM the register budget must allow at M <= 8
#define MXQ_GEMV_MIN_CTAS_M8 5
#endif
#ifndef MXQ_GEMV_MIN_CTAS_M16  // the same at 9-16 tokens
#define MXQ_GEMV_MIN_CTAS_M16 4
#endif
#ifndef MXQ_GEMV_MIN_CTAS_M32  // the same above 16 tokens
#define MXQ_GEMV_MIN_CTAS_M32 2
#endif
#ifndef MXQ_GEMV_MAX_KSPLIT  // most CTAs in a K-splitting cluster (8: the portable cluster size)
#define MXQ_GEMV_MAX_KSPLIT 8
#endif
template <int kNT8>
constexpr int kRingDepth = kNT8 == 1 ? MXQ_GEMV_RING_M8 : MXQ_GEMV_RING_M32;
// Two row tiles per warp at 9-16 tokens fit the 64 registers of 4 CTAs per SM in sm_90a's code; sm_80's
// needs a few more (it spilled 4 bytes), so there they run 3 CTAs per SM.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
constexpr int kMinCtasTwoTilesM16 = 3;
#else
constexpr int kMinCtasTwoTilesM16 = MXQ_GEMV_MIN_CTAS_M16;
#endif
template <int kNT8, int kTiles>
constexpr int kMinCtas = kNT8 == 1   ? MXQ_GEMV_MIN_CTAS_M8
                         : kNT8 == 2 ? (kTiles == 2 ? kMinCtasTwoTilesM16 : MXQ_GEMV_MIN_CTAS_M16)
                                     : MXQ_GEMV_MIN_CTAS_M32;
constexpr size_t kTokensPerLaunch = 32;  // four MMA column tiles of 8

// Where a warp is in its sequence of steps: its activations at k of the step + 8t, token 8j + g's
// (token 0's past M) at x + row[j]. One pointer and 32-bit row offsets (at most 31 rows of K <= 2^26
// elements) rather than a pointer per token row: the registers that let two row tiles per warp at
// 16 tokens fit 64 (4 CTAs per SM).
template <int kNT8>
struct WarpCursor {
  const bf16* x;
  int row[kNT8];
};
struct WarpStride {
  size_t codes, scales;  // uint4 / uint32_t units per step of this warp
  int k;                 // elements of K per step of this warp
  size_t tile_codes, tile_scales;  // from the warp's first row tile's weights to its second's
};

// A warp's ring of kRing steps in shared memory, filled by cp.async: each lane copies its own code
// vector and scale word, and reads back only what it copied, so a lane's cp.async.wait_group is all
// the synchronization the ring needs.
template <int kRing, int kTiles>
struct WarpRing {
  uint4 codes[kRing][kTiles][32];
  uint32_t scales[kRing][kTiles][32];
};
// A warp's shared memory: its ring while it streams, then its FP32 partials in fragment order
// [(row tile · kNT8 + n8 tile) · 4 + c][lane] (no copy is in flight once its last step is read:
// steps past the end copy nothing).
template <int kNT8, int kTiles>
union WarpSmem {
  WarpRing<kRingDepth<kNT8>, kTiles> ring;
  float partial[kTiles * kNT8 * 4][32];
};

// The activations of the cursor's step: xq[b][j] = k = 8t .. 8t+7 of block b for token 8j + g.
// Lanes past the last token read token 0's row instead: B column n of an MMA reaches only output
// column n, which is not stored for such a token. The second block of a step lies past K only in
// the last step when K / 32 is odd (second_block false): it reads as zeros (the padding codes are
// zeros too).
template <int kNT8>
__device__ __forceinline__ void load_activations(const WarpCursor<kNT8>& at, bool second_block, uint4 (&xq)[2][kNT8]) {
#pragma unroll
  for (int j = 0; j < kNT8; ++j) {
    const uint4* xp = reinterpret_cast<const uint4*>(at.x + at.row[j]);
    xq[0][j] = __ldg(xp);
    xq[1][j] = second_block ? __ldg(xp + kMxBlock / 8) : make_uint4(0, 0, 0, 0);
  }
}

template <int kNT8>
__device__ __forceinline__ void advance_activations(WarpCursor<kNT8>& at, const WarpStride& stride) {
  at.x += stride.k;
}

// All `count` steps of a warp, from the lane's code vector `codes` and scale word `scales` of its
// first step, with kRing - 1 steps' weights in flight: before step i is converted, the copy of step
// i + kRing - 1 goes out into the slot step i - 1 used (its registers are consumed by then). The loop
// is unrolled over the ring, so every slot address is a constant offset. The warp's kTiles row tiles
// (consecutive) share each step's activations. tail: the warp's last step is that of K's last
// block, K / 32 odd.
template <int kNT8, int kTiles, int kRing>
__device__ __forceinline__ void warp_steps(const uint4* codes, const uint32_t* scales,
                                           WarpCursor<kNT8>& at, const WarpStride& stride, bool tail,
                                           int count, WarpRing<kRing, kTiles>& ring, int lane,
                                           float (&acc)[kTiles][kNT8][4]) {
  auto fetch = [&](int step, int slot) {
    if (step < count) {
#pragma unroll
      for (int u = 0; u < kTiles; ++u) {
        cp_async_16(&ring.codes[slot][u][lane], codes + u * stride.tile_codes);
        cp_async_4(&ring.scales[slot][u][lane], scales + u * stride.tile_scales);
      }
    }
    cp_async_commit();  // an empty group past the end keeps one group per step
    codes += stride.codes;
    scales += stride.scales;
  };
#pragma unroll
  for (int s = 0; s < kRing - 1; ++s) fetch(s, s);
  // The weights do not depend on the kernel before this one; the activations may (its output).
  wait_for_prior_grids();
  for (int i0 = 0; i0 < count; i0 += kRing) {
#pragma unroll
    for (int s = 0; s < kRing; ++s) {
      if (i0 + s >= count) break;
      // The activations first: their L1 / L2 latency overlaps the wait and the conversion.
      uint4 xq[2][kNT8];
      load_activations(at, !(tail && i0 + s == count - 1), xq);
      fetch(i0 + s + kRing - 1, (s + kRing - 1) % kRing);
      cp_async_wait<kRing - 1>();  // step i0 + s's group is complete
#pragma unroll
      for (int u = 0; u < kTiles; ++u) {
        const uint4 wq = ring.codes[s][u][lane];
        const uint32_t sc = ring.scales[s][u][lane];
        tile_step_any_scales<1, kNT8>(&wq, &sc, xq, &acc[u]);
      }
      advance_activations(at, stride);
    }
  }
}

// Grid: groups x ksplit CTAs (clusters of ksplit along x when ksplit > 1); CTA = group · ksplit +
// rank owns tiles [group · tiles_per_cta, +tiles_per_cta) and steps [rank · steps / ksplit,
// (rank + 1) · steps / ksplit). Warp w works on the kTiles row tiles kTiles · (w % units) + [0, kTiles)
// of the group's (units = tiles_per_cta / kTiles), every (kWarps / units)-th step of the range
// starting at w / units.
template <int kNT8, int kTiles, typename OutT>
__global__ void __launch_bounds__(kThreads, kMinCtas<kNT8, kTiles>)
mxfp4_gemv_w4a16_kernel(const bf16* __restrict__ x, int M, int K, const uint4* __restrict__ codes,
                        const uint32_t* __restrict__ scales, int N, OutT* __restrict__ y,
                        const float* __restrict__ row_scales, int tiles_per_cta, int ksplit) {
  __shared__ WarpSmem<kNT8, kTiles> smem[kWarps];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int tiles = static_cast<int>(mxfp4_gemv_tiles(N)), steps = static_cast<int>(mxfp4_gemv_steps(K));
  const int group = blockIdx.x / ksplit, rank = blockIdx.x % ksplit;
  const int units = tiles_per_cta / kTiles, slots = kWarps / units;
  const int tile = group * tiles_per_cta + warp % units * kTiles;  // the warp's first row tile
  const int first = rank * steps / ksplit + warp / units;
  const int end = (rank + 1) * steps / ksplit;

  float acc[kTiles][kNT8][4] = {};
  if (tile < tiles && first < end) {
    const int count = (end - first + slots - 1) / slots;
    const size_t tile_step0 = size_t{static_cast<unsigned>(tile)} * steps + first;
    WarpCursor<kNT8> at;
    const int token0 = g < M ? g : 0;
    at.x = x + size_t{static_cast<unsigned>(token0)} * K + first * static_cast<int>(kGemvStepK) + 8 * t;
    const bool tail = K % kGemvStepK != 0 && first + (count - 1) * slots == steps - 1;
#pragma unroll
    for (int j = 0; j < kNT8; ++j) at.row[j] = ((8 * j + g < M ? 8 * j + g : 0) - token0) * K;
    // A second row tile past the last reads the first's weights again: its rows are past N, never
    // stored.
    const bool second_tile = tile + 1 < tiles;
    const WarpStride stride{size_t{static_cast<unsigned>(slots)} * 32, size_t{static_cast<unsigned>(slots)} * 8,
                            slots * static_cast<int>(kGemvStepK),
                            second_tile ? size_t{static_cast<unsigned>(steps)} * 32 : 0,
                            second_tile ? size_t{static_cast<unsigned>(steps)} * 8 : 0};
    warp_steps<kNT8, kTiles, kRingDepth<kNT8>>(
        codes + tile_step0 * 32 + lane, scales + tile_step0 * 8 + g, at, stride, tail, count,
        smem[warp].ring, lane, acc);
  }

#pragma unroll
  for (int u = 0; u < kTiles; ++u)
#pragma unroll
    for (int j = 0; j < kNT8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) smem[warp].partial[(u * kNT8 + j) * 4 + c][lane] = acc[u][j][c];

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  if (ksplit > 1) cluster.sync(); else __syncthreads();
#else
  __syncthreads();  // the host never splits K across CTAs below sm_90
#endif

  // The cluster's first CTA sums, per output, its warps' partials of that tile and every other
  // rank's, in a fixed order, and writes the output once (times its row's scale, if given). Every
  // thread stores, so every thread first waits for the kernel before (warps without a tile have not).
  wait_for_prior_grids();
  if (rank == 0) {
    constexpr int kPerTile = kNT8 * 4 * 32;
    for (int item = threadIdx.x; item < tiles_per_cta * kPerTile; item += kThreads) {
      const int tt = item / kPerTile, i = (item / 32) % (kNT8 * 4), ln = item % 32;
      float sum = 0.0f;
      for (int r = 0; r < ksplit; ++r) {
        const WarpSmem<kNT8, kTiles>* part = smem;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        if (r > 0) part = cluster.map_shared_rank(part, r);
#endif
        for (int sl = 0; sl < slots; ++sl)
          sum += part[tt / kTiles + sl * units].partial[tt % kTiles * kNT8 * 4 + i][ln];
      }
      // Accumulator c of column tile j: row g + 8·(c / 2), token 8j + 2t + c % 2.
      const int row = ln / 4 + 8 * ((i % 4) / 2), token = 8 * (i / 4) + 2 * (ln % 4) + i % 2;
      const int n = (group * tiles_per_cta + tt) * static_cast<int>(kGemvTileRows) + row;
      if (n < N && token < M) {
        const float out = row_scales != nullptr ? sum * __ldg(row_scales + token) : sum;
        store_out(y, size_t{static_cast<unsigned>(token)} * N + n, out);
      }
    }
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (ksplit > 1) cluster.sync();  // the other ranks' shared memory stays until rank 0 has read it
#endif
}

struct GemvPlan {
  int tiles_per_cta;
  int ksplit;
};

// The split of the work: tiles per CTA (a power of 2 from the warp's row tiles up to kWarps times
// that) and a K split over a cluster of ksplit CTAs, the pair of lowest modelled time. The model,
// fitted to a sweep of every pair on an H100 at M = 1, 16, 24, 32 over the 7 benchmark shapes (docs/
// BENCHMARKS.md, "the GEMV's work split"), picks within 4% of the sweep's fastest pair on all 28: CTAs
// run in rounds of (SMs × resident CTAs per SM); a CTA takes its warps' tile-steps plus ~6 steps'
// worth to start, drain its ring and store, and a K split ~8 more (two cluster barriers and the
// partials read across the cluster), 12 above 2 ranks. Small matrices thus get one tile per CTA and
// every CTA resident at once, long K a split of 2 when that still fits, and the large ones up to
// 8 (16) tiles per CTA, so fewer CTAs start. Ties go to fewer tiles per CTA, then fewer ranks.
GemvPlan plan_gemv(size_t N, size_t K, int warp_tile_count, int sms, int ctas_per_sm, bool clusters) {
  const double tiles = static_cast<double>(mxfp4_gemv_tiles(N));
  const double steps = static_cast<double>(mxfp4_gemv_steps(K));
  const double slots = static_cast<double>(sms) * std::max(ctas_per_sm, 1);
  constexpr double kCtaSteps = 6.0, kSplitSteps = 8.0, kWideSplitSteps = 4.0;
  GemvPlan best{warp_tile_count, 1};
  double best_cost = std::numeric_limits<double>::infinity();
  for (int tpc = warp_tile_count; tpc <= kWarps * warp_tile_count; tpc *= 2) {
    for (int ks = 1; ks <= MXQ_GEMV_MAX_KSPLIT; ks *= 2) {
      if (ks > 1 && (!clusters || ks > steps)) break;
      const double rounds = std::ceil(std::ceil(tiles / tpc) * ks / slots);
      const double split = ks == 1 ? 0.0 : ks == 2 ? kSplitSteps : kSplitSteps + kWideSplitSteps;
      const double cost = rounds * (kCtaSteps + steps * tpc / (kWarps * ks) + split);
      if (cost < best_cost) best = {tpc, ks}, best_cost = cost;
    }
  }
  return best;
}

template <int kNT8, int kTiles, typename OutT>
cudaError_t launch_gemv(const bf16* x, int M, int K, const uint8_t* codes, const uint8_t* scales,
                        int N, OutT* y, const float* row_scales, const GemvPlan& plan, bool sm90,
                        cudaStream_t stream) {
  const size_t groups = (mxfp4_gemv_tiles(N) + plan.tiles_per_cta - 1) / plan.tiles_per_cta;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(groups * plan.ksplit));
  cfg.blockDim = dim3(kThreads);
  cfg.stream = stream;
  // On sm_90 the launch may overlap the kernel before it (grid_dependency.cuh): the CTAs start
  // streaming weights while, e.g., the activation quantization still runs.
  cudaLaunchAttribute attrs[2] = {dependent_launch_attribute(), {}};
  attrs[1].id = cudaLaunchAttributeClusterDimension;
  attrs[1].val.clusterDim.x = static_cast<unsigned>(plan.ksplit);
  attrs[1].val.clusterDim.y = 1;
  attrs[1].val.clusterDim.z = 1;
  const bool dependent = sm90 && kDependentLaunch;
  cfg.attrs = dependent ? attrs : attrs + 1;
  cfg.numAttrs = (dependent ? 1 : 0) + (plan.ksplit > 1 ? 1 : 0);
  return cudaLaunchKernelEx(&cfg, mxfp4_gemv_w4a16_kernel<kNT8, kTiles, OutT>, x, M, K,
                            reinterpret_cast<const uint4*>(codes),
                            reinterpret_cast<const uint32_t*>(scales), N, y, row_scales,
                            plan.tiles_per_cta, plan.ksplit);
}

// The plan of the kernel instance <kNT8, kTiles, OutT> for its measured occupancy (resident CTAs per
// SM; queried once per instance).
template <int kNT8, int kTiles, typename OutT>
GemvPlan plan_for(int N, int K, int sms, bool clusters) {
  static const int ctas_per_sm = [] {
    int n = 0;
    const auto kernel = mxfp4_gemv_w4a16_kernel<kNT8, kTiles, OutT>;
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0) == cudaSuccess ? n : 1;
  }();
  return plan_gemv(static_cast<size_t>(N), static_cast<size_t>(K), kTiles, sms, ctas_per_sm, clusters);
}

template <int kNT8, int kTiles, typename OutT>
cudaError_t plan_and_launch(const bf16* x, int M, int K, const uint8_t* codes, const uint8_t* scales,
                            int N, OutT* y, const float* row_scales, int sms, bool clusters,
                            cudaStream_t stream) {
  return launch_gemv<kNT8, kTiles>(x, M, K, codes, scales, N, y, row_scales,
                                   plan_for<kNT8, kTiles, OutT>(N, K, sms, clusters), clusters, stream);
}

// One launch of up to 32 tokens. Two row tiles per warp at the same step share one load of its
// activations from L1 / L2 (at 32 tokens 4 KB per warp and step, against 640 B of a tile's weights;
// 8 token rows, so 8 cache lines, per 512-byte load instruction), the traffic that holds many
// tokens back from the weight stream's pace (L1 at 83% of its throughput on the LM head at 16
// tokens), but leave half as many warps streaming. Measured on an H100 (docs/BENCHMARKS.md,
// session 9): at 25-32 tokens two tiles win or tie on most shapes; at 9-24 only on the large
// matrices, those whose one-tile plan puts 4 or more tiles in a CTA (28672 and 128256 rows).
template <int kNT8, typename OutT>
cudaError_t launch_tokens(const bf16* x, int M, int K, const uint8_t* codes, const uint8_t* scales, int N,
                          OutT* y, const float* row_scales, int sms, bool clusters, cudaStream_t stream) {
  if constexpr (kNT8 == 1) {
    return plan_and_launch<1, 1>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream);
  } else if constexpr (kNT8 == 4) {
    return plan_and_launch<4, 2>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream);
  } else {
    return plan_for<kNT8, 1, OutT>(N, K, sms, clusters).tiles_per_cta >= 4
               ? plan_and_launch<kNT8, 2>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream)
               : plan_and_launch<kNT8, 1>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream);
  }
}

template <typename OutT>
cudaError_t launch_gemv_tokens(const bf16* x, int M, int K, const uint8_t* codes, const uint8_t* scales,
                               int N, OutT* y, const float* row_scales, int sms, bool clusters,
                               cudaStream_t stream) {
  switch ((M + 7) / 8) {
    case 1: return launch_tokens<1>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream);
    case 2: return launch_tokens<2>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream);
    case 3: return launch_tokens<3>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream);
    default: return launch_tokens<4>(x, M, K, codes, scales, N, y, row_scales, sms, clusters, stream);
  }
}

// A checkpoint code word (element j in nibble j) in the repacked bit order of gemv.h, as one lookup
// per byte (elements 2r and 2r + 1: pair r of the word): a table built from mxfp4_gemv_code_bit at
// compile time, ~10x faster at load than placing each bit.
struct CodeWordTable {
  uint32_t pair[4][256];
};
constexpr CodeWordTable make_code_word_table() {
  CodeWordTable t{};
  for (unsigned r = 0; r < 4; ++r)
    for (unsigned byte = 0; byte < 256; ++byte)
      for (unsigned e = 0; e < 2; ++e)
        for (unsigned i = 0; i < 4; ++i)
          t.pair[r][byte] |= ((byte >> (4 * e + i)) & 1u) << mxfp4_gemv_code_bit(2 * r + e, i);
  return t;
}
constexpr CodeWordTable kCodeWordTable = make_code_word_table();

uint32_t permute_code_word(uint32_t w) {
  return kCodeWordTable.pair[0][w & 0xFFu] | kCodeWordTable.pair[1][(w >> 8) & 0xFFu] |
         kCodeWordTable.pair[2][(w >> 16) & 0xFFu] | kCodeWordTable.pair[3][w >> 24];
}

}  // namespace

void mxfp4_gemv_repack(const uint8_t* codes, const uint8_t* scales, size_t N, size_t K,
                       uint8_t* codes_rp, uint8_t* scales_rp) {
  if (K % kMxBlock != 0)
    throw Error("mxfp4_gemv_repack: K = " + std::to_string(K) + " is not a multiple of 32");
  std::memset(codes_rp, 0, mxfp4_gemv_code_bytes(N, K));
  std::memset(scales_rp, kGemvPadScale, mxfp4_gemv_scale_bytes(N, K));
  const size_t blocks = K / kMxBlock;
  for (size_t n = 0; n < N; ++n) {
    for (size_t kb = 0; kb < blocks; ++kb) {
      scales_rp[mxfp4_gemv_scale_byte(n, kb, K)] = scales[n * blocks + kb];
      // The block's 4 code words (k = 8t .. 8t+7) each land whole in one repacked word.
      for (size_t t = 0; t < 4; ++t) {
        uint32_t w;
        std::memcpy(&w, codes + n * (K / 2) + kb * (kMxBlock / 2) + 4 * t, 4);
        w = permute_code_word(w);
        std::memcpy(codes_rp + mxfp4_gemv_code_word(n, kb * kMxBlock + 8 * t, K), &w, 4);
      }
    }
  }
}

cudaError_t mxfp4_gemv_w4a16_cuda(const bf16* x, size_t M, size_t K, const uint8_t* codes_rp,
                                  const uint8_t* scales_rp, size_t N, void* y, ElemType yt,
                                  cudaStream_t stream, const float* row_scales) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (K == 0 || K % kMxBlock != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 ||
      K > (size_t{1} << 26) || N > (size_t{1} << 30) ||
      (yt != ElemType::bf16 && yt != ElemType::f32))
    return cudaErrorInvalidValue;
  int device = 0, sms = 0, major = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  if (const cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
      e != cudaSuccess)
    return e;
  if (const cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
      e != cudaSuccess)
    return e;
  for (size_t m0 = 0; m0 < M; m0 += kTokensPerLaunch) {
    const int tokens = static_cast<int>(std::min(kTokensPerLaunch, M - m0));
    const bf16* xs = x + m0 * K;
    const float* rs = row_scales != nullptr ? row_scales + m0 : nullptr;
    const cudaError_t e =
        yt == ElemType::bf16
            ? launch_gemv_tokens(xs, tokens, static_cast<int>(K), codes_rp, scales_rp, static_cast<int>(N),
                                 static_cast<bf16*>(y) + m0 * N, rs, sms, major >= 9, stream)
            : launch_gemv_tokens(xs, tokens, static_cast<int>(K), codes_rp, scales_rp, static_cast<int>(N),
                                 static_cast<float*>(y) + m0 * N, rs, sms, major >= 9, stream);
    if (e != cudaSuccess) return e;
  }
  return cudaGetLastError();
}

}  // namespace mxq
