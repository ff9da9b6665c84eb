// Prefill GEMMs with MXFP4 weights on Hopper's wgmma (mxq/kernels/cuda/gemm_wgmma.h states the math,
// the exactness windows and the repacked layout). One kernel template serves W4A8 (FP8 E4M3
// operands, QGMMA) and W4A16 (BF16 operands, HGMMA); the operand traits below are all they differ in.
//
// CTA tile: 128 weight rows × 128 tokens. 384 threads, warp-specialized: warpgroups 0 and 1 consume
// (each owns 64 weight rows; setmaxnreg raises them to 232 registers), warpgroup 2 produces (drops
// to 40; one thread issues every copy). The weight is wgmma's A operand, widened from the repacked
// codes straight into registers (each thread reads the 16 code bytes of each of its two rows per
// K-tile from shared memory and builds its fragments); the activations are the B operand, read by
// the tensor core from shared memory (K-major, 128-byte swizzle: rows of 128 bytes of K, 8-row atoms
// of 1024 bytes; BF16's 256-byte K-tile rows are two atoms side by side).
// Per stage (6 for FP8, 5 for BF16) the producer waits until the stage is empty, then the copy
// engine brings the activation tile [128 tokens × 128 K] through a tensor map (which writes the
// swizzle and zero-fills rows past M and K past the end) and the tile's codes (8 KB) and meta (1 KB),
// contiguous in the repacked layout, as two bulk copies; all complete on the stage's full barrier.
// Each consumer warpgroup, FP8, per K-tile and pass: wait for full, widen, 4 k32 wgmmas into a fresh
// f32 accumulator, wait, promote into the f32 total times 2^(base − 127 − off) per row, mark the
// stage empty. BF16, per pass (nearly always one): per K-tile, wait for full and issue 8 k16 wgmmas
// into one accumulator over the whole K, each step widened once the same step of the previous
// K-tile has retired, so a K-tile of wgmmas stays queued; the accumulator is scaled once when the
// pass ends. No block-wide barrier in the loop: the two warpgroups drift, so one's widening (and
// FP8's promotion) overlap the other's wgmmas. The grid is persistent (one CTA per SM, output
// tiles taken in turn), so the producer fills the next tile's stages during the epilogue, which
// multiplies by the token's activation scale and stores y[m, n] (rows of the accumulator are weight
// rows n, its columns tokens m).
#include "mxq/kernels/cuda/gemm_wgmma.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <climits>
#include <string>

#include "mxq/error.h"

namespace mxq {
namespace {

constexpr int kTileK = 128;                        // K per tile (FP8: promotion interval, base granularity)
constexpr int kBlocksPerTile = kTileK / kMxBlock;  // 4
constexpr int kTileN = 128;                        // weight rows per CTA (2 warpgroups × 64)
constexpr int kTileM = 128;                        // tokens per CTA (the wgmma N)
constexpr int kThreads = 384;                      // producer warpgroup + 2 consumer warpgroups
constexpr int kGroupRows = 16;                              // one warp's rows of the A fragment
constexpr int kGroupTileBytes = kGroupRows * kTileK / 2;    // codes of 16 rows × one K-tile: 1024
constexpr int kMetaBytes = 8;                               // per (row, K-tile)
constexpr int kRowsPerWarpgroup = 64;

// What the two operand types differ in.
struct OperandTraits {
  int act_bytes;  // bytes per activation element
  int step_k;     // K of one wgmma: 32 for FP8, 16 for BF16 (32 bytes of activation either way)
  int window;     // blocks with base − e ≤ window are exact in the operand type (FP8: base per
                  // (row, K-tile); BF16: per row over all of K)
  int off;        // the widened weight is E2M1 · 2^(e − base + off)
};
constexpr OperandTraits traits_of(Sm90Operand op) {
  return op == Sm90Operand::e4m3 ? OperandTraits{1, 32, 14, 6} : OperandTraits{2, 16, 125, 0};
}

size_t k_tiles(size_t K) { return (K + kTileK - 1) / kTileK; }
size_t padded_rows(size_t N) { return (N + kTileN - 1) / kTileN * kTileN; }

// ---------------------------------------------------------------------------------------------
// Device side
// ---------------------------------------------------------------------------------------------

// The wgmma code exists only in the sm_90a pass; other targets get an empty kernel that the
// launcher never starts (it checks the device first).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MXQ_SM90A_DEVICE 1
#endif

#ifdef MXQ_SM90A_DEVICE

// K-major shared-memory descriptor for the 128-byte swizzle: start address, LBO unused (a step's
// 32 bytes of K lie inside one 128-byte row), SBO 1024 bytes (the next 8 tokens), mode 1 (128B).
__device__ __forceinline__ uint64_t smem_descriptor_sw128(uint32_t addr) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (uint64_t{1} << 16) |
         (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

// One warpgroup's m64n128 wgmma: A (64 weight rows, 4 registers a) from registers, B (128 tokens)
// from the shared-memory descriptor desc, the 64 f32 accumulators d (%0-%63); accumulate = 0 starts
// d afresh. `op` is the shape and types, `tail` BF16's transpose-B immediate.
#define MXQ_WGMMA_ACC64_REGS \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, " \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, " \
  "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, " \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define MXQ_WGMMA_ACC64_OPERANDS(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), \
  "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), \
  "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), \
  "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), \
  "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), \
  "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), \
  "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), \
  "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), \
  "+f"(d[62]), "+f"(d[63])
#define MXQ_WGMMA_M64N128_RS(op, tail)                                                        \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %68, 0;\nwgmma.mma_async.sync.aligned." op " " \
               MXQ_WGMMA_ACC64_REGS ", {%64, %65, %66, %67}, %69, p, 1, 1" tail ";\n}\n"          \
               : MXQ_WGMMA_ACC64_OPERANDS(d)                                                  \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc))

__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[64], const uint32_t (&a)[4],
                                                      uint64_t desc, int accumulate) {
  MXQ_WGMMA_M64N128_RS("m64n128k32.f32.e4m3.e4m3", "");
}

__device__ __forceinline__ void wgmma_m64n128k16_bf16(float (&d)[64], const uint32_t (&a)[4],
                                                      uint64_t desc, int accumulate) {
  MXQ_WGMMA_M64N128_RS("m64n128k16.f32.bf16.bf16", ", 0");
}

#undef MXQ_WGMMA_M64N128_RS
#undef MXQ_WGMMA_ACC64_OPERANDS
#undef MXQ_WGMMA_ACC64_REGS

// 4 E2M1 codes (the selector nibbles' low 3 bits pick magnitudes, the sign bits are moved into each
// byte's bit 7 separately) -> 4 E4M3 bytes through the block's 8-entry table (lut.x: magnitudes 0-3,
// lut.y: 4-7, each already times 2^(e − base + 6)). w holds 8 codes (element i in nibble i);
// half 0 widens elements 0-3, half 1 elements 4-7.
template <int kHalf>
__device__ __forceinline__ uint32_t widen_e4m3(uint32_t w, uint2 lut) {
  const uint32_t mag = __byte_perm(lut.x, lut.y, (w >> (16 * kHalf)) & 0x7777u);
  const uint32_t odd_signs = w & 0x80808080u;            // elements 1, 3, 5, 7 at bytes 0-3's bit 7
  const uint32_t even_signs = (w << 4) & 0x80808080u;    // elements 0, 2, 4, 6
  const uint32_t signs = __byte_perm(even_signs, odd_signs, kHalf == 0 ? 0x5140 : 0x7362);
  return mag | signs;
}

// Byte kByte of w (2 E2M1 codes) -> bf16x2 of E2M1 · 2^−126 by bit placement (sign to bit 15, the
// 3 magnitude bits to the bottom of the exponent: exact, the 0.5 code as a subnormal), then times
// the block's 2^(e − base + 126) (a normal bf16, e − base ≥ −125): an exact product, normal. fma with −0
// keeps the sign of zero; bf16 fma keeps subnormal inputs. Placement: u · (2^6 + 2^18) puts the low
// code's magnitude at bits 6-8 and the high code's at 22-24, u · (2^12 + 2^24) their signs at 15
// and 31 (the shifted copies of the byte do not overlap, so the sums carry nothing).
template <int kByte>
__device__ __forceinline__ uint32_t widen_bf16x2(uint32_t w, uint32_t multiplier) {
  const uint32_t u = (w >> (8 * kByte)) & 0xFFu;
  const uint32_t bits = ((u * 0x00040040u) & 0x01C001C0u) | ((u * 0x01001000u) & 0x80008000u);
  uint32_t r;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(bits), "r"(multiplier), "r"(0x80008000u));
  return r;
}

// 2^(base − 127 − off) as f32 (subnormal for base < off + 1; NaN for the E8M0 NaN 0xFF).
template <int kOff>
__device__ __forceinline__ float pass_scale(uint32_t base) {
  if (base == 0xFF) return __int_as_float(0x7FC00000);
  const int field = static_cast<int>(base) - kOff;
  return __int_as_float(field >= 1 ? field << 23 : 0x400000 >> -field);  // 2^(field − 127)
}

template <int kOff>
__device__ __forceinline__ float pass_scale_of(uint32_t bases, int pass) {
  return pass_scale<kOff>((bases >> (8 * pass)) & 0xFFu);
}

// BF16: the bf16x2 multiplier of block blk (0-3) of a row's K-tile in pass `pass`: 2^(126 − shift)
// from the stored exponent field 253 − shift (meta bytes 0-3), or 0 where the block belongs to
// another pass (its 2-bit pass in meta byte 7) or carries no value (field 0).
__device__ __forceinline__ uint32_t bf16_block_multiplier(uint2 meta, int blk, int pass) {
  const bool in_pass = static_cast<int>((meta.y >> (24 + 2 * blk)) & 3u) == pass;
  return in_pass ? (((meta.x >> (8 * blk)) & 0xFFu) << 7) * 0x10001u : 0u;
}

#endif  // MXQ_SM90A_DEVICE

#ifdef MXQ_SM90A_DEVICE

__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}

__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
}

__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}

// The copy engine: a [box] of the tensor map at (k, m), or `bytes` contiguous bytes, into shared
// memory at dst; completion counts the bytes on the mbarrier bar.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int k, int m, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
      ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(k), "r"(m), "r"(bar)
      : "memory");
}

__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
      ::"r"(dst), "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}

#endif  // MXQ_SM90A_DEVICE

// Shared memory of one stage: activations (kActAtoms atoms of [128 tokens][128 bytes], 1024-byte
// aligned for the swizzle), codes [8 groups][1024], meta [8 groups][16 rows][8].
template <Sm90Operand kOp>
struct StageLayout {
  static constexpr int kActAtoms = traits_of(kOp).act_bytes;   // 1 (FP8) or 2 (BF16)
  static constexpr int kAtomBytes = kTileM * 128;
  static constexpr int kAct = kActAtoms * kAtomBytes;
  static constexpr int kCodes = kTileN * kTileK / 2;            // 8192
  static constexpr int kMeta = kTileN * kMetaBytes;             // 1024
  static constexpr int kBytes = kAct + kCodes + kMeta;          // 25 KB or 41 KB, a multiple of 1024
  // As many stages as fit beside the tables and barriers in the 227 KB a block may have.
  static constexpr int kStages = kOp == Sm90Operand::e4m3 ? 6 : 5;
  static constexpr int kTables = 128;                           // FP8 block tables: 15 × 8 bytes
  static constexpr int kSmem = kStages * kBytes + kTables + 2 * kStages * 8 + 1024;  // + alignment slack
};

// Persistent, warp-specialized: 384 threads = warpgroup 0 (one thread of it issues the copies)
// and two consumer warpgroups (64 weight rows each); CTA b takes output tiles b, b + grid, ...
// (tile t: tokens 128·(t % m_tiles), weight rows 128·(t / m_tiles), so the CTAs running at once
// share weight tiles and read the activations from L2). Per stage, full[s] completes when the
// copy engine has written the stage (the byte count armed by the producer), empty[s] when all 8
// consumer warps are done with it (their wgmmas finished and codes/meta read).
template <Sm90Operand kOp>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_mxfp4_sm90_kernel(const __grid_constant__ CUtensorMap act_map,
                           const float* __restrict__ act_scale, int M, int K,
                           const uint8_t* __restrict__ codes, const uint8_t* __restrict__ meta,
                           const uint8_t* __restrict__ passes, int N, float* __restrict__ y) {
#ifdef MXQ_SM90A_DEVICE
  using L = StageLayout<kOp>;
  constexpr OperandTraits kT = traits_of(kOp);
  constexpr int kSteps = kTileK / kT.step_k;  // wgmmas per K-tile: 4 or 8

  extern __shared__ __align__(128) uint8_t smem_raw_bytes[];
  const uint32_t smem_raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw_bytes));
  const uint32_t smem_base = (smem_raw + 1023u) & ~1023u;
  uint8_t* const smem = smem_raw_bytes + (smem_base - smem_raw);
  // FP8 only: the 15 block tables, index 14 − (base − e) = shift j + 8 for j = e − base + 6.
  uint2* lut = reinterpret_cast<uint2*>(smem + L::kStages * L::kBytes);
  const uint32_t full_bar = smem_base + L::kStages * L::kBytes + L::kTables;
  const uint32_t empty_bar = full_bar + L::kStages * 8;

  const int KT = (K + kTileK - 1) / kTileK;
  const int m_tiles = (M + kTileM - 1) / kTileM;
  const int tiles = m_tiles * ((N + kTileN - 1) / kTileN);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;

  if constexpr (kOp == Sm90Operand::e4m3) {
    if (tid < 15 * 8) {
      const int j = tid / 8 - 8, c = tid % 8;
      reinterpret_cast<uint8_t*>(lut)[tid] = e4m3_from_f32(e2m1_to_f32(static_cast<uint8_t>(c)) * pow2f(j));
    }
  }
  if (tid == 0) {
    for (int s = 0; s < L::kStages; ++s) {
      mbarrier_init(full_bar + 8 * s, 1);
      mbarrier_init(empty_bar + 8 * s, 8);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (warp < 4) {
    // Producer warpgroup: gives up registers; thread 0 issues every copy.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if (tid != 0) return;
    int stage = 0;
    uint32_t phase = 0;
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
      const int m0 = t % m_tiles * kTileM, n_tile = t / m_tiles;
      // A tile's codes and meta for one K-tile are contiguous (L::kCodes, L::kMeta bytes).
      const uint8_t* code_src = codes + static_cast<size_t>(n_tile) * KT * L::kCodes;
      const uint8_t* meta_src = meta + static_cast<size_t>(n_tile) * KT * L::kMeta;
      // BF16 streams the tile's K once per pass of its rows (the consumers' K sweeps); FP8 once.
      const int sweeps = kOp == Sm90Operand::bf16 ? passes[n_tile] : 1;
      for (int sweep = 0; sweep < sweeps; ++sweep) {
        for (int kt = 0; kt < KT; ++kt) {
          mbarrier_wait(empty_bar + 8 * stage, phase ^ 1u);  // a fresh barrier passes parity 1
          const uint32_t bar = full_bar + 8 * stage, s = smem_base + stage * L::kBytes;
          mbarrier_arrive_expect_tx(bar, L::kBytes);  // out-of-bounds box elements count too (zeros)
#pragma unroll
          for (int a = 0; a < L::kActAtoms; ++a)
            tma_load_2d(s + a * L::kAtomBytes, &act_map, kt * kTileK + a * (128 / kT.act_bytes), m0, bar);
          bulk_load(s + L::kAct, code_src + static_cast<size_t>(kt) * L::kCodes, L::kCodes, bar);
          bulk_load(s + L::kAct + L::kCodes, meta_src + static_cast<size_t>(kt) * L::kMeta, L::kMeta, bar);
          if (++stage == L::kStages) stage = 0, phase ^= 1u;
        }
      }
    }
    return;
  }

  // Consumer warpgroups.
  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
  const int cwarp = warp - 4, wg = cwarp / 4;
  const int row = wg * kRowsPerWarpgroup + (cwarp % 4) * kGroupRows + lane / 4;  // and row + 8
  const int code_offset = (wg * 4 + cwarp % 4) * kGroupTileBytes + lane * 16;   // row + 8: + 512
  int stage = 0;
  uint32_t phase = 0;
  if constexpr (kOp == Sm90Operand::e4m3) {
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
      const int m0 = t % m_tiles * kTileM, n_tile = t / m_tiles;
      const uint8_t* tile_passes = passes + static_cast<size_t>(n_tile * 2 + wg) * KT;
      float total[64];
#pragma unroll
      for (int i = 0; i < 64; ++i) total[i] = 0.0f;
      float acc[64];

      // The pass count of the next K-tile is fetched an iteration early (a global load on the
      // critical path cost a full L2 latency per K-tile).
      int npass_next = __ldg(tile_passes);
      for (int kt = 0; kt < KT; ++kt) {
        const int npass = npass_next;
        if (kt + 1 < KT) npass_next = __ldg(tile_passes + kt + 1);
        mbarrier_wait(full_bar + 8 * stage, phase);
        const uint8_t* st = smem + stage * L::kBytes;
        const uint4 c_lo = *reinterpret_cast<const uint4*>(st + L::kAct + code_offset);
        const uint4 c_hi = *reinterpret_cast<const uint4*>(st + L::kAct + code_offset + 512);
        const uint2 meta_lo = *reinterpret_cast<const uint2*>(st + L::kAct + L::kCodes + row * kMetaBytes);
        const uint2 meta_hi =
            *reinterpret_cast<const uint2*>(st + L::kAct + L::kCodes + (row + 8) * kMetaBytes);
        const uint32_t words_lo[4] = {c_lo.x, c_lo.y, c_lo.z, c_lo.w};
        const uint32_t words_hi[4] = {c_hi.x, c_hi.y, c_hi.z, c_hi.w};
        const uint32_t act_stage = smem_base + stage * L::kBytes;

        for (int pass = 0; pass < npass; ++pass) {
          // Each step's fragment is widened right before its wgmma is issued, so widening step
          // s + 1 overlaps the tensor core's step s (distinct registers per step).
          uint32_t frag[kSteps][4];
#pragma unroll
          for (int s = 0; s < kSteps; ++s) {
            const int blk = s * kBlocksPerTile / kSteps;
            const uint32_t mb_lo = (meta_lo.x >> (8 * blk)) & 0xFFu;
            const uint32_t mb_hi = (meta_hi.x >> (8 * blk)) & 0xFFu;
            const bool in_lo = static_cast<int>(mb_lo >> 6) == pass;
            const bool in_hi = static_cast<int>(mb_hi >> 6) == pass;
            // One k32 step per block. The table entry is loaded unconditionally and masked: a
            // branch here would serialize the wgmmas (ptxas C7520). The repack keeps every shift
            // ≤ 14, so the index is in the table.
            const uint2 t_lo = lut[14 - (mb_lo & 63u)], t_hi = lut[14 - (mb_hi & 63u)];
            const uint32_t keep_lo = in_lo ? ~0u : 0u, keep_hi = in_hi ? ~0u : 0u;
            const uint2 lut_lo = make_uint2(t_lo.x & keep_lo, t_lo.y & keep_lo);
            const uint2 lut_hi = make_uint2(t_hi.x & keep_hi, t_hi.y & keep_hi);
            frag[s][0] = widen_e4m3<0>(words_lo[blk], lut_lo);
            frag[s][1] = widen_e4m3<0>(words_hi[blk], lut_hi);
            frag[s][2] = widen_e4m3<1>(words_lo[blk], lut_lo);
            frag[s][3] = widen_e4m3<1>(words_hi[blk], lut_hi);
            asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
            // Step s reads K bytes [32·s, 32·s + 32) of the tile: inside atom 32·s / 128, at that
            // byte offset in its rows (the hardware applies the swizzle to the address).
            const uint64_t desc =
                smem_descriptor_sw128(act_stage + s * 32 / 128 * L::kAtomBytes + s * 32 % 128);
            wgmma_m64n128k32_e4m3(acc, frag[s], desc, s > 0);
          }
          asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
          asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
          const float scale_lo = pass_scale_of<kT.off>(meta_lo.y, pass);
          const float scale_hi = pass_scale_of<kT.off>(meta_hi.y, pass);
#pragma unroll
          for (int j = 0; j < 16; ++j) {
            total[4 * j + 0] = __fmaf_rn(acc[4 * j + 0], scale_lo, total[4 * j + 0]);
            total[4 * j + 1] = __fmaf_rn(acc[4 * j + 1], scale_lo, total[4 * j + 1]);
            total[4 * j + 2] = __fmaf_rn(acc[4 * j + 2], scale_hi, total[4 * j + 2]);
            total[4 * j + 3] = __fmaf_rn(acc[4 * j + 3], scale_hi, total[4 * j + 3]);
          }
        }
        // This warp's wgmmas on the stage have completed (wait_group 0) and its codes and meta are
        // in registers: the stage may be refilled once all 8 consumer warps say so.
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty_bar + 8 * stage);
        if (++stage == L::kStages) stage = 0, phase ^= 1u;
      }

      // Accumulator element 4j + 2h + c: weight row row + 8h, token 8j + 2t + c (t = lane % 4).
#pragma unroll
      for (int j = 0; j < 16; ++j) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int m = m0 + 8 * j + 2 * (lane % 4) + c;
          if (m >= M) continue;
          const float s = act_scale != nullptr ? act_scale[m] : 1.0f;
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int n = n_tile * kTileN + row + 8 * h;
            if (n < N) y[static_cast<size_t>(m) * N + n] = total[4 * j + 2 * h + c] * s;
          }
        }
      }
    }
  } else {
    // W4A16: every block enters the tensor core as E2M1 · 2^(e − base) against its row's base for
    // its pass over all of K (gemm_wgmma.h), so a pass is one accumulator over the whole K, scaled
    // once at its end: y = Σ over passes of acc · 2^(base − 127). Nearly every tile has one pass;
    // a tile whose rows need more sweeps its K again per pass (the producer streams it again), each
    // sweep widening only its pass's blocks. K-tile kt's wgmmas stay in flight while kt + 1 is
    // widened (wait_group 1), so a stage is released one K-tile late.
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
      const int m0 = t % m_tiles * kTileM, n_tile = t / m_tiles;
      const int sweeps = __ldg(passes + n_tile);
      for (int pass = 0; pass < sweeps; ++pass) {
        float acc[64];
        uint32_t bases_lo = 0, bases_hi = 0;  // the row's pass bases (the same in every K-tile)
        int in_flight = 0;                     // the stage read by the wgmmas not yet waited for
        // Step s's fragment registers are read by its wgmma until a wait_group retires it: each
        // step is its own commit group, and before step s of K-tile kt rewrites frag[s], wait_group
        // 7 retires all but the newest 7 groups, i.e. up to step s of K-tile kt − 1. So the tensor
        // core keeps up to 8 steps (a K-tile) queued while the next ones are widened.
        uint32_t frag[kSteps][4];
        for (int kt = 0; kt < KT; ++kt) {
          mbarrier_wait(full_bar + 8 * stage, phase);
          const uint8_t* st = smem + stage * L::kBytes;
          const uint4 c_lo = *reinterpret_cast<const uint4*>(st + L::kAct + code_offset);
          const uint4 c_hi = *reinterpret_cast<const uint4*>(st + L::kAct + code_offset + 512);
          const uint2 meta_lo = *reinterpret_cast<const uint2*>(st + L::kAct + L::kCodes + row * kMetaBytes);
          const uint2 meta_hi =
              *reinterpret_cast<const uint2*>(st + L::kAct + L::kCodes + (row + 8) * kMetaBytes);
          bases_lo = meta_lo.y;
          bases_hi = meta_hi.y;
          const uint32_t words_lo[4] = {c_lo.x, c_lo.y, c_lo.z, c_lo.w};
          const uint32_t words_hi[4] = {c_hi.x, c_hi.y, c_hi.z, c_hi.w};
          const uint32_t act_stage = smem_base + stage * L::kBytes;
#pragma unroll
          for (int s = 0; s < kSteps; ++s) {
            static_assert(kSteps == 8, "wait_group 7 below retires up to the same step of the last K-tile");
            // Two k16 steps per block: bytes 0, 1 of the block's word feed its first step, bytes
            // 2, 3 its second; in each, the first byte is k 2t..2t+1, the second k 8+2t..9+2t.
            const int blk = s / 2;
            const uint32_t mul_lo = bf16_block_multiplier(meta_lo, blk, pass);
            const uint32_t mul_hi = bf16_block_multiplier(meta_hi, blk, pass);
            asm volatile("wgmma.wait_group.sync.aligned 7;\n" ::: "memory");
            if (s % 2 == 0) {
              frag[s][0] = widen_bf16x2<0>(words_lo[blk], mul_lo);
              frag[s][1] = widen_bf16x2<0>(words_hi[blk], mul_hi);
              frag[s][2] = widen_bf16x2<1>(words_lo[blk], mul_lo);
              frag[s][3] = widen_bf16x2<1>(words_hi[blk], mul_hi);
            } else {
              frag[s][0] = widen_bf16x2<2>(words_lo[blk], mul_lo);
              frag[s][1] = widen_bf16x2<2>(words_hi[blk], mul_hi);
              frag[s][2] = widen_bf16x2<3>(words_lo[blk], mul_lo);
              frag[s][3] = widen_bf16x2<3>(words_hi[blk], mul_hi);
            }
            asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
            // Step s reads K bytes [32·s, 32·s + 32) of the tile: atom 32·s / 128, that byte
            // offset in its rows. The first step of the sweep starts acc afresh.
            const uint64_t desc =
                smem_descriptor_sw128(act_stage + s * 32 / 128 * L::kAtomBytes + s * 32 % 128);
            wgmma_m64n128k16_bf16(acc, frag[s], desc, kt > 0 || s > 0);
            asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
          }
          // The wait before step 7 retired all of K-tile kt − 1's wgmmas: its stage may be
          // refilled once all 8 consumer warps say so (codes and meta were read into registers).
          if (kt > 0) {
            __syncwarp();
            if (lane == 0) mbarrier_arrive(empty_bar + 8 * in_flight);
          }
          in_flight = stage;
          if (++stage == L::kStages) stage = 0, phase ^= 1u;
        }
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty_bar + 8 * in_flight);

        // Accumulator element 4j + 2h + c: weight row row + 8h, token 8j + 2t + c (t = lane % 4).
        // The first pass writes y, later ones add to it (the same thread wrote it).
        const float scale[2] = {pass_scale_of<kT.off>(bases_lo, pass), pass_scale_of<kT.off>(bases_hi, pass)};
#pragma unroll
        for (int j = 0; j < 16; ++j) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int m = m0 + 8 * j + 2 * (lane % 4) + c;
            if (m >= M) continue;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int n = n_tile * kTileN + row + 8 * h;
              if (n >= N) continue;
              float& out = y[static_cast<size_t>(m) * N + n];
              out = pass == 0 ? acc[4 * j + 2 * h + c] * scale[h] : __fmaf_rn(acc[4 * j + 2 * h + c], scale[h], out);
            }
          }
        }
      }
    }
  }
#endif
}

// cuTensorMapEncodeTiled from the driver (the runtime gives its address; no link to libcuda).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      p = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

template <Sm90Operand kOp>
cudaError_t launch(const void* x, const float* act_scale, size_t M, size_t K,
                   const Mxfp4Sm90Weights& w, float* y, cudaStream_t stream) {
  // The copy engine reads x: its address and row pitch (K · bytes, K a multiple of 32) must be
  // multiples of 16 bytes.
  if (w.op != kOp || w.K != K || K % kMxBlock != 0 || M == 0 || w.N == 0 || K == 0 ||
      M > INT_MAX || K > INT_MAX || padded_rows(w.N) > INT_MAX ||
      reinterpret_cast<uintptr_t>(x) % 16 != 0)
    return cudaErrorInvalidValue;
  int device = 0, major = 0, minor = 0, sms = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (major != 9 || minor != 0) return cudaErrorNoKernelImageForDevice;
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) return cudaErrorSymbolNotFound;

  // x as [M rows][K elements], boxes of [128 tokens][128 bytes of K], 128-byte swizzle (the layout
  // the wgmma descriptor reads); rows past M and K past the end read as zeros.
  constexpr OperandTraits kT = traits_of(kOp);
  CUtensorMap map;
  const cuuint64_t dims[2] = {K, M};
  const cuuint64_t pitch[1] = {K * kT.act_bytes};
  const cuuint32_t box[2] = {128u / kT.act_bytes, kTileM};
  const cuuint32_t unit[2] = {1, 1};
  if (encode(&map, kOp == Sm90Operand::e4m3 ? CU_TENSOR_MAP_DATA_TYPE_UINT8 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
             2, const_cast<void*>(x), dims, pitch, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
             CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
    return cudaErrorInvalidValue;

  const auto kernel = gemm_mxfp4_sm90_kernel<kOp>;
  if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 StageLayout<kOp>::kSmem);
      e != cudaSuccess)
    return e;
  const size_t tiles = (M + kTileM - 1) / kTileM * (padded_rows(w.N) / kTileN);
  const unsigned grid = static_cast<unsigned>(std::min<size_t>(tiles, static_cast<size_t>(sms)));
  kernel<<<grid, kThreads, StageLayout<kOp>::kSmem, stream>>>(
      map, act_scale, static_cast<int>(M), static_cast<int>(K), w.codes, w.meta, w.passes,
      static_cast<int>(w.N), y);
  return cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Host side: the repack
// ---------------------------------------------------------------------------------------------

NibblePosition mxfp4_sm90_code_position(Sm90Operand op, size_t n, size_t k, size_t K) {
  const OperandTraits t = traits_of(op);
  // Thread t of a warp owns, per wgmma step, half_bytes bytes of the step's first K half and as
  // many of its second (the A fragment: k in [e·t, e·t + e) and [step_k/2 + e·t, ...), e = elements
  // per thread per half); its 16 bytes per row and K-tile are the steps in order.
  const int bytes_per_step = t.step_k / 8, half_bytes = bytes_per_step / 2, per_half = 2 * half_bytes;
  const int kk = static_cast<int>(k % kTileK);
  const int step = kk / t.step_k, r = kk % t.step_k;
  const int half = r / (t.step_k / 2), r2 = r % (t.step_k / 2);
  const int thread = r2 / per_half, r3 = r2 % per_half;
  const int byte = step * bytes_per_step + half * half_bytes + r3 / 2;
  const size_t tile = ((n / kTileN) * k_tiles(K) + k / kTileK) * (kTileN / kGroupRows) + n % kTileN / kGroupRows;
  const size_t lane = (n % 8) * 4 + static_cast<size_t>(thread);
  return {(tile * 2 + (n % kGroupRows) / 8) * (kGroupTileBytes / 2) + lane * 16 + byte, r3 % 2};
}

Mxfp4Sm90Packed mxfp4_sm90_repack(Sm90Operand op, const uint8_t* codes, const uint8_t* scales,
                                  size_t N, size_t K) {
  if (N == 0 || K == 0 || K % kMxBlock != 0)
    throw Error("mxfp4_sm90_repack: weight [" + std::to_string(N) + ", " + std::to_string(K) +
                "]: K must be a positive multiple of 32");
  const int window = traits_of(op).window;
  const size_t KT = k_tiles(K), Np = padded_rows(N), blocks = K / kMxBlock;
  Mxfp4Sm90Packed p;
  p.op = op;
  p.N = N;
  p.K = K;
  p.codes.assign(Np / kGroupRows * KT * kGroupTileBytes, 0);
  p.meta.assign(Np * KT * kMetaBytes, 0);
  p.passes.assign(op == Sm90Operand::e4m3 ? Np / kRowsPerWarpgroup * KT : Np / kTileN, 0);
  // Row 0's positions within its first K-tile (position 0 is byte 0); row n's K-tile from k0 adds
  // its own first position to all of them.
  NibblePosition in_tile[kTileK];
  for (size_t kk = 0; kk < kTileK; ++kk) in_tile[kk] = mxfp4_sm90_code_position(op, 0, kk, K);
  for (size_t n = 0; n < N; ++n)
    for (size_t k0 = 0; k0 < K; k0 += kTileK) {
      const size_t tile_offset = mxfp4_sm90_code_position(op, n, k0, K).byte;  // in_tile[0] is 0
      for (size_t k = k0; k < std::min(K, k0 + kTileK); ++k) {
        const NibblePosition pos = in_tile[k - k0];
        const uint8_t code = (codes[n * (K / 2) + k / 2] >> (4 * (k % 2))) & 0xF;
        p.codes[tile_offset + pos.byte] |= static_cast<uint8_t>(code << (4 * pos.nibble));
      }
    }
  // Blocks that carry a value: a non-zero magnitude somewhere, or a NaN scale.
  const auto carries_value = [&](size_t n, size_t b) {
    bool nonzero = scales[n * blocks + b] == kE8M0Nan;
    for (size_t i = 0; i < kMxBlock / 2; ++i) nonzero |= (codes[n * (K / 2) + b * 16 + i] & 0x77) != 0;
    return nonzero;
  };
  if (op == Sm90Operand::e4m3) {
    for (size_t n = 0; n < N; ++n)
      for (size_t kt = 0; kt < KT; ++kt) {
        uint8_t* m = &p.meta[(((n / kTileN) * KT + kt) * kTileN + n % kTileN) * kMetaBytes];
        int live[kBlocksPerTile], exps[kBlocksPerTile];
        int nlive = 0;
        for (size_t j = 0; j < kBlocksPerTile && kt * kBlocksPerTile + j < blocks; ++j)
          if (carries_value(n, kt * kBlocksPerTile + j))
            live[nlive++] = static_cast<int>(j), exps[j] = scales[n * blocks + kt * kBlocksPerTile + j];
        int pass = 0;
        while (nlive > 0) {
          int base = 0;
          for (int i = 0; i < nlive; ++i) base = std::max(base, exps[live[i]]);
          int kept = 0;
          for (int i = 0; i < nlive; ++i) {
            const int j = live[i];
            if (base - exps[j] <= window)
              m[j] = static_cast<uint8_t>(pass << 6 | (base - exps[j]));
            else
              live[kept++] = j;
          }
          m[kBlocksPerTile + pass] = static_cast<uint8_t>(base);
          nlive = kept;
          ++pass;
        }
        if (pass > 1) ++p.out_of_window;
        uint8_t& tile_passes = p.passes[(n / kRowsPerWarpgroup) * KT + kt];
        tile_passes = std::max(tile_passes, static_cast<uint8_t>(pass));
      }
  } else {
    // Passes per row over all of K (at most 3, gemm_wgmma.h); every K-tile's meta of the row holds
    // the pass bases, and its blocks' exponent fields and passes.
    std::vector<size_t> live, left;
    for (size_t n = 0; n < N; ++n) {
      live.clear();
      for (size_t b = 0; b < blocks; ++b)
        if (carries_value(n, b)) live.push_back(b);
      uint8_t bases[3] = {0, 0, 0};
      std::vector<uint8_t> field(blocks, 0), pass_of(blocks, 0);
      int pass = 0;
      for (; !live.empty(); ++pass) {
        int base = 0;
        for (const size_t b : live) base = std::max(base, static_cast<int>(scales[n * blocks + b]));
        left.clear();
        for (const size_t b : live) {
          const int shift = base - scales[n * blocks + b];
          if (shift <= window)
            field[b] = static_cast<uint8_t>(253 - shift), pass_of[b] = static_cast<uint8_t>(pass);
          else
            left.push_back(b);
        }
        bases[pass] = static_cast<uint8_t>(base);
        live.swap(left);
      }
      for (size_t kt = 0; kt < KT; ++kt) {
        uint8_t* m = &p.meta[(((n / kTileN) * KT + kt) * kTileN + n % kTileN) * kMetaBytes];
        bool beyond_first = false;
        for (size_t j = 0; j < kBlocksPerTile && kt * kBlocksPerTile + j < blocks; ++j) {
          const size_t b = kt * kBlocksPerTile + j;
          m[j] = field[b];
          m[7] |= static_cast<uint8_t>(pass_of[b] << (2 * j));
          beyond_first |= pass_of[b] > 0;
        }
        std::copy(bases, bases + 3, m + kBlocksPerTile);
        p.out_of_window += beyond_first;
      }
      // A tile of all-zero rows still sweeps once, writing its zeros.
      uint8_t& tile_passes = p.passes[n / kTileN];
      tile_passes = std::max(tile_passes, static_cast<uint8_t>(std::max(pass, 1)));
    }
  }
  return p;
}

cudaError_t gemm_mxfp4_w4a8_sm90(const uint8_t* x8, const float* act_scale, size_t M, size_t K,
                                 const Mxfp4Sm90Weights& w, float* y, cudaStream_t stream) {
  if (act_scale == nullptr) return cudaErrorInvalidValue;
  return launch<Sm90Operand::e4m3>(x8, act_scale, M, K, w, y, stream);
}

cudaError_t gemm_mxfp4_w4a16_sm90(const bf16* x16, size_t M, size_t K, const Mxfp4Sm90Weights& w,
                                  float* y, cudaStream_t stream) {
  return launch<Sm90Operand::bf16>(x16, nullptr, M, K, w, y, stream);
}

}  // namespace mxq
