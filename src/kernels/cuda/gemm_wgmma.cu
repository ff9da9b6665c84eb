// Prefill GEMMs with MXFP4 weights on Hopper's wgmma (mxq/kernels/cuda/gemm_wgmma.h states the math,
// the exactness windows and the repacked layout). One kernel template serves W4A8 (FP8 E4M3
// operands, QGMMA) and W4A16 (BF16 operands, HGMMA); the operand traits and the token-tile width T
// are all they differ in.
//
// CTA tile: 128 weight rows × T tokens. 384 threads, warp-specialized: warpgroup 0 produces
// (setmaxnreg drops it to 24 registers; one thread issues every copy), warpgroups 1 and 2 consume
// (64 weight rows each, raised to 240 registers). The weight is wgmma's A operand, widened from the
// repacked codes straight into registers (each thread reads the 16 code bytes of each of its two
// rows per K-tile from shared memory and builds its fragments); the activations are the B operand,
// read by the tensor core from shared memory (K-major, 128-byte swizzle: rows of 128 bytes of K,
// 8-row atoms of 1024 bytes; BF16's 256-byte K-tile rows are two atoms side by side). Each consumer
// issues m64nTk wgmmas, so one widened fragment feeds T tokens: the widening (and FP8's promotion)
// per FLOP shrink as 1/T, and T is as wide as the accumulators allow in 240 registers: FP8 keeps
// two sets (the K-tile's and the promoted total), T = 192 (2 × 96 registers); BF16 one, T = 256
// (128), or 192 where that fills the SMs better (bf16_tokens: the last wave of 256-token tiles can
// leave most SMs idle, e.g. N = 2880 at M = 2048).
// Per stage (FP8: 6 of 33 KB; BF16: 3 of 73 or 57 KB) the producer waits until the stage is empty,
// then the copy engine brings the activation tile [T tokens × 128 K] through a tensor map (which
// writes the swizzle and zero-fills rows past M and K past the end) and the tile's codes (8 KB) and
// meta (1 KB), contiguous in the repacked layout, as two bulk copies; all complete on the stage's
// full barrier. Each consumer warpgroup, FP8, per K-tile and pass: wait for full, widen, 4 k32
// wgmmas into a fresh f32 accumulator, wait, promote into the f32 total times 2^(base − 127 − off)
// per row, mark the stage empty (a K-tile of one pass, nearly all, widens without the pass masks).
// BF16, per pass (nearly always one): per K-tile, wait for full and issue 8 k16 wgmmas into one
// accumulator over the whole K, 4 of them kept queued while the next are widened; the previous
// K-tile's stage is released mid-K-tile, once its last wgmma has retired; the accumulator is
// scaled once when the pass ends. No block-wide barrier in the loop: the two warpgroups drift, so
// one's widening (and FP8's promotion) overlap the other's wgmmas. The grid is persistent (one CTA
// per SM, output tiles taken in turn, grouped so the CTAs running at once share ~2048 tokens of
// activations in L2: tile_coords), so the producer fills the next tile's stages during the
// epilogue, which multiplies by the token's activation scale and stores y[m, n] (rows of the
// accumulator are weight rows n, its columns tokens m).
#include "mxq/kernels/cuda/gemm_wgmma.h"

#include <cuda.h>
#include <cuda_bf16.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <climits>
#include <string>
#include <type_traits>

#include "mxq/error.h"
#include "grid_dependency.cuh"
#include "output_store.cuh"

namespace mxq {
namespace {

constexpr int kTileK = 128;                        // K per tile (FP8: promotion interval, base granularity)
constexpr int kBlocksPerTile = kTileK / kMxBlock;  // 4
constexpr int kTileN = static_cast<int>(kSm90TileRows);  // weight rows per CTA (2 warpgroups × 64)
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

// T, tokens per CTA tile (the wgmma's N; T/2 f32 accumulators per thread per set): FP8 192 (two
// sets: 192 of the 240 registers); BF16 256 (one set), or 192 where that fills the SMs in fewer
// token-columns of work (bf16_tokens).
constexpr int kFp8Tokens = 192;

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

// wgmma's operand lists: accumulators %0 ... in pieces of 32 registers.
#define MXQ_REGS_0_31                                                                        \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define MXQ_REGS_32_63                                                                         \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, " \
  "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define MXQ_REGS_64_95                                                                         \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, " \
  "%82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
#define MXQ_REGS_96_127                                                                        \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, "     \
  "%111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, " \
  "%126, %127"
#define MXQ_ACC8(i)                                                                                 \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])
#define MXQ_ACC32(i) MXQ_ACC8(i), MXQ_ACC8(i + 8), MXQ_ACC8(i + 16), MXQ_ACC8(i + 24)
// One warpgroup's wgmma with A (64 weight rows, 4 registers a per thread) from registers and B
// (T tokens) from the shared-memory descriptor desc, into the T/2 accumulators d per thread;
// accumulate = 0 starts d afresh. op: shape and types; acc_regs: the accumulators' register list;
// a_regs, flag_reg, desc_reg: the numbers of the operands after them; tail: BF16's transpose-B
// immediate; the rest: the accumulator operands.
#define MXQ_WGMMA_RS(op, acc_regs, a_regs, flag_reg, desc_reg, tail, ...)                          \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " flag_reg ", 0;\nwgmma.mma_async.sync.aligned." op \
               " {" acc_regs "}, {" a_regs "}, " desc_reg ", p, 1, 1" tail ";\n}\n"                  \
               : __VA_ARGS__                                                                       \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc))

template <int kTokens>
using Accumulators = float[kTokens / 2];

// m64n192k32 (FP8), m64n192k16 or m64n256k16 (BF16).
template <Sm90Operand kOp, int kTokens>
__device__ __forceinline__ void wgmma_rs(Accumulators<kTokens>& d, const uint32_t (&a)[4], uint64_t desc,
                                         int accumulate) {
  if constexpr (kOp == Sm90Operand::e4m3) {
    static_assert(kTokens == 192);
    MXQ_WGMMA_RS("m64n192k32.f32.e4m3.e4m3", MXQ_REGS_0_31 ", " MXQ_REGS_32_63 ", " MXQ_REGS_64_95,
                 "%96, %97, %98, %99", "%100", "%101", "", MXQ_ACC32(0), MXQ_ACC32(32), MXQ_ACC32(64));
  } else if constexpr (kTokens == 192) {
    MXQ_WGMMA_RS("m64n192k16.f32.bf16.bf16", MXQ_REGS_0_31 ", " MXQ_REGS_32_63 ", " MXQ_REGS_64_95,
                 "%96, %97, %98, %99", "%100", "%101", ", 0", MXQ_ACC32(0), MXQ_ACC32(32), MXQ_ACC32(64));
  } else {
    static_assert(kTokens == 256);
    MXQ_WGMMA_RS("m64n256k16.f32.bf16.bf16",
                 MXQ_REGS_0_31 ", " MXQ_REGS_32_63 ", " MXQ_REGS_64_95 ", " MXQ_REGS_96_127,
                 "%128, %129, %130, %131", "%132", "%133", ", 0", MXQ_ACC32(0), MXQ_ACC32(32),
                 MXQ_ACC32(64), MXQ_ACC32(96));
  }
}

#undef MXQ_WGMMA_RS
#undef MXQ_ACC32
#undef MXQ_ACC8
#undef MXQ_REGS_96_127
#undef MXQ_REGS_64_95
#undef MXQ_REGS_32_63
#undef MXQ_REGS_0_31

// Step s of a K-tile, the same for both operands: fence (the fragment registers this thread wrote
// since the last wgmma are read by the tensor core), the wgmma on K bytes [32·s, 32·s + 32) of the
// stage's activations at act_stage (atom 32·s / 128, that byte offset in its rows; the hardware
// applies the swizzle to the address), and a commit: every step is its own group, so
// wgmma.wait_group counts steps.
template <Sm90Operand kOp, int kTokens>
__device__ __forceinline__ void wgmma_step(Accumulators<kTokens>& d, const uint32_t (&frag)[4],
                                           uint32_t act_stage, int s, int accumulate) {
  constexpr int kAtomBytes = kTokens * 128;
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
  const uint32_t act = act_stage + s * 32 / 128 * kAtomBytes + s * 32 % 128;
  wgmma_rs<kOp, kTokens>(d, frag, smem_descriptor_sw128(act), accumulate);
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

// 4 E2M1 codes of a W4A8 code word (8 codes, gemm_wgmma.h) -> 4 E4M3 bytes through the block's
// 8-entry table (lut.x: magnitudes 0-3, lut.y: 4-7, each already times 2^(e − base + 6)). Half 0
// widens values 0-3 (magnitudes in nibbles 0-3, signs already at bit 7 of their bytes), half 1
// values 4-7 (magnitudes in nibbles 4-7, signs 4 bits below bit 7 of their bytes); bit 3 of each
// nibble, another value's sign, is masked off the PRMT selectors.
template <int kHalf>
__device__ __forceinline__ uint32_t widen_e4m3(uint32_t w, uint2 lut) {
  if constexpr (kHalf == 0) return __byte_perm(lut.x, lut.y, w & 0x7777u) | (w & 0x80808080u);
  return __byte_perm(lut.x, lut.y, (w >> 16) & 0x7777u) | ((w << 4) & 0x80808080u);
}

// Half kHalf of a code word (values 4·kHalf .. 4·kHalf + 3, laid out as for widen_e4m3) -> two
// bf16x2: values 0, 1 of the half (the A fragment register for k 2t, 2t + 1 of a k16 step) and
// values 2, 3 (k 8 + 2t, 9 + 2t). Each E2M1 code is looked up as a bf16 (its low and high bytes from
// two constant 8-entry tables, its sign ORed into the high byte), the bytes are paired, and the pair
// is multiplied by the block's 2^(e − base) (a normal bf16, e − base ≥ −125): an exact product,
// normal. fma with −0 keeps the sign of zero.
template <int kHalf>
__device__ __forceinline__ uint2 widen_bf16x4(uint32_t w, uint32_t multiplier) {
  // bf16 of 0, 0.5, 1, 1.5 | 2, 3, 4, 6: 0000 3F00 3F80 3FC0 | 4000 4040 4080 40C0.
  constexpr uint32_t kLowX = 0xC0800000u, kLowY = 0xC0804000u, kHighX = 0x3F3F3F00u, kHighY = 0x40404040u;
  const uint32_t select = (kHalf == 0 ? w : w >> 16) & 0x7777u;
  const uint32_t signs = (kHalf == 0 ? w : w << 4) & 0x80808080u;
  const uint32_t low = __byte_perm(kLowX, kLowY, select);
  const uint32_t high = __byte_perm(kHighX, kHighY, select) | signs;
  uint2 r;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r.x) : "r"(__byte_perm(low, high, 0x5140)), "r"(multiplier), "r"(0x80008000u));
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r.y) : "r"(__byte_perm(low, high, 0x7362)), "r"(multiplier), "r"(0x80008000u));
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

// BF16: the bf16x2 multiplier of block blk (0-3) of a row's K-tile in pass `pass`: 2^(−shift)
// from the stored exponent field 127 − shift (meta bytes 0-3), or 0 where the block belongs to
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

// The same where pred is true, as one predicated instruction.
__device__ __forceinline__ void mbarrier_arrive_if(uint32_t bar, bool pred) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %1, 0;\n@p mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n"
      ::"r"(bar), "r"(static_cast<int>(pred))
      : "memory");
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


// Shared memory of one stage: activations (kActAtoms atoms of [T tokens][128 bytes], 1024-byte
// aligned for the swizzle), codes [8 groups][1024], meta [8 groups][16 rows][8].
template <Sm90Operand kOp, int kTokens>
struct StageLayout {
  static constexpr int kActAtoms = traits_of(kOp).act_bytes;     // 1 (FP8) or 2 (BF16)
  static constexpr int kAtomBytes = kTokens * 128;
  static constexpr int kAct = kActAtoms * kAtomBytes;
  static constexpr int kCodes = kTileN * kTileK / 2;              // 8192
  static constexpr int kMeta = kTileN * kMetaBytes;               // 1024
  static constexpr int kBytes = kAct + kCodes + kMeta;            // FP8 33 KB; BF16 57 or 73 KB
  static constexpr int kTables = 128;                             // FP8 block tables: 16 × 8 bytes
  // As many stages as fit beside the tables, barriers and alignment slack in the 227 KB a block
  // may have, at most 6: FP8 6, BF16 3.
  static constexpr int kStages = std::min(6, (227 * 1024 - kTables - 2 * 6 * 8 - 1024) / kBytes);
  static constexpr int kSmem = kStages * kBytes + kTables + 2 * kStages * 8 + 1024;  // + alignment slack
  static_assert(kBytes % 1024 == 0, "every stage's activations start on a swizzle atom");
  static_assert(kSmem <= 227 * 1024, "a block may have 227 KB of shared memory");
};

#ifdef MXQ_SM90A_DEVICE

// W4A8, one pass over a K-tile for one consumer warpgroup: widen and issue its 4 k32 steps into a
// fresh acc, wait for them, and promote acc into total times each row's 2^(base − 127 − off).
// Each step's fragment is widened right before its wgmma is issued, so widening step s + 1
// overlaps the tensor core's step s (distinct registers per step, all read until the wait).
// code_words_lo/hi: the thread's code words of rows row and row + 8 (one per block); meta_lo/hi:
// their meta in shared memory (the block bytes are read first, the bases only after the wait, to
// keep registers free while the wgmmas are issued); kMasked: the K-tile has blocks in other passes,
// which this pass widens to ±0.
template <bool kMasked>
__device__ __forceinline__ void fp8_pass(Accumulators<kFp8Tokens>& acc, Accumulators<kFp8Tokens>& total,
                                         const uint32_t (&code_words_lo)[4],
                                         const uint32_t (&code_words_hi)[4], const uint2* meta_lo,
                                         const uint2* meta_hi, const uint2* lut, uint32_t act_stage,
                                         int pass) {
  constexpr Sm90Operand kOp = Sm90Operand::e4m3;
  constexpr int kSteps = kTileK / traits_of(kOp).step_k, kAcc = kFp8Tokens / 2;
  uint32_t words_lo[4], words_hi[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    words_lo[i] = code_words_lo[i];
    words_hi[i] = code_words_hi[i];
    // In the pass loop, the empty asm makes the words opaque to the compiler: otherwise the sign
    // bits, the same in every pass, are hoisted out of the loop, live across it, and spill.
    if constexpr (kMasked) asm volatile("" : "+r"(words_lo[i]), "+r"(words_hi[i]));
  }
  const uint32_t blocks_lo = meta_lo->x, blocks_hi = meta_hi->x;
  uint32_t frag[kSteps][4];
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
    const int blk = s * kBlocksPerTile / kSteps;  // one k32 step per block
    const uint32_t mb_lo = blocks_lo >> (8 * blk), mb_hi = blocks_hi >> (8 * blk);
    // The block byte holds its table's byte offset (14 − shift) · 8 (the repack keeps every
    // shift ≤ 14, so it is in the table) and, in bits 0-1, its pass. A block of another pass reads
    // the zero table (a select, not a branch: a branch here would serialize the wgmmas, ptxas C7520).
    uint32_t offset_lo = mb_lo & 0x78u, offset_hi = mb_hi & 0x78u;
    if constexpr (kMasked) {
      if (static_cast<int>(mb_lo & 3u) != pass) offset_lo = 15 * 8;
      if (static_cast<int>(mb_hi & 3u) != pass) offset_hi = 15 * 8;
    }
    const uint8_t* const tables = reinterpret_cast<const uint8_t*>(lut);
    const uint2 lut_lo = *reinterpret_cast<const uint2*>(tables + offset_lo);
    const uint2 lut_hi = *reinterpret_cast<const uint2*>(tables + offset_hi);
    frag[s][0] = widen_e4m3<0>(words_lo[blk], lut_lo);
    frag[s][1] = widen_e4m3<0>(words_hi[blk], lut_hi);
    frag[s][2] = widen_e4m3<1>(words_lo[blk], lut_lo);
    frag[s][3] = widen_e4m3<1>(words_hi[blk], lut_hi);
    wgmma_step<kOp, kFp8Tokens>(acc, frag[s], act_stage, s, s > 0);
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  const float scale_lo = pass_scale_of<traits_of(kOp).off>(meta_lo->y, pass);
  const float scale_hi = pass_scale_of<traits_of(kOp).off>(meta_hi->y, pass);
#pragma unroll
  for (int j = 0; j < kAcc / 4; ++j) {
    total[4 * j + 0] = __fmaf_rn(acc[4 * j + 0], scale_lo, total[4 * j + 0]);
    total[4 * j + 1] = __fmaf_rn(acc[4 * j + 1], scale_lo, total[4 * j + 1]);
    total[4 * j + 2] = __fmaf_rn(acc[4 * j + 2], scale_hi, total[4 * j + 2]);
    total[4 * j + 3] = __fmaf_rn(acc[4 * j + 3], scale_hi, total[4 * j + 3]);
  }
}

// This thread's part of a CTA tile's output: y[m, n] = acc · row_scale · token_scale[m], or
// y[m, n] += that where add (BF16's later passes; a bf16 y is then rounded once per pass).
// Accumulator element 4j + 2h + c is weight row n_row + 8h (row_scale: scale_lo for h = 0,
// scale_hi for 1), token m_first + 8j + c. The token scales are all loaded first (rows past M read
// row M − 1's), then a thread whose elements all lie inside [M, N] (every thread of nearly every
// tile) stores without bounds checks: with a check per element, each store waited for its own
// scale's load, and a tile's epilogue took microseconds. A tile at M's edge checks once per token
// (a tile at M = 2048 with T = 192 is one in 11, and the last wave waits for it: checking each
// element there cost the W4A8 GEMM 2-5% with a bf16 y, H100).
// A bf16 y (N even) is stored in whole 32-byte sectors. For one token, the warp's 16 rows lie in
// the 8 lanes of one lane % 4: rows r and r + 8 (relative to the warp's first) in the lane with
// lane / 4 = r. Lanes r and r ^ 1 swap one value (shfl.xor 4), so even r holds rows r, r + 1 and
// odd r rows r + 7, r + 8 as one bf16x2, and each store instruction writes 4 tokens × 32
// contiguous bytes. (2-byte stores write half a sector per token and instruction; they measured
// slower than the f32 output.)
template <int kTokens, bool kTokenScales, typename Out>
__device__ __forceinline__ void write_output(const Accumulators<kTokens>& acc, float scale_lo, float scale_hi,
                                             const float* __restrict__ token_scale, bool add, int m_first,
                                             int M, int n_row, int N, Out* __restrict__ y) {
  float s[kTokens / 4];
#pragma unroll
  for (int i = 0; i < kTokens / 4; ++i)
    s[i] = kTokenScales ? __ldg(token_scale + min(m_first + 8 * (i / 2) + i % 2, M - 1)) : 1.0f;
  // This thread's last row is n_row + 8, its last token m_first + kTokens − 7. Where both rows lie
  // inside N (every thread but at N's edge) and y is written rather than added to, a token's two
  // values are stored together, with one check per token at M's edge (`check` true) and none
  // elsewhere.
  const bool rows_inside = n_row + 8 < N && !add, tokens_inside = m_first + kTokens - 7 < M;
  if constexpr (std::is_same_v<Out, bf16>) {
    // The pairs are 4-byte aligned where y is and N is even; the shuffle needs the whole warp.
    if (__all_sync(0xFFFFFFFFu, rows_inside) && N % 2 == 0 && reinterpret_cast<uintptr_t>(y) % 4 == 0) {
      const bool odd = (threadIdx.x / 4) % 2 != 0;
      uint32_t* const out = reinterpret_cast<uint32_t*>(y + static_cast<size_t>(m_first) * N + n_row + (odd ? 7 : 0));
      const auto store_pairs = [&](auto check) {
#pragma unroll
        for (int j = 0; j < kTokens / 8; ++j) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const float lo = acc[4 * j + c] * (scale_lo * s[2 * j + c]);
            const float hi = acc[4 * j + 2 + c] * (scale_hi * s[2 * j + c]);
            const float other = __shfl_xor_sync(0xFFFFFFFFu, odd ? lo : hi, 4);
            const __nv_bfloat162 pair = odd ? __floats2bfloat162_rn(other, hi) : __floats2bfloat162_rn(lo, other);
            if (!decltype(check)::value || m_first + 8 * j + c < M)
              out[static_cast<size_t>(8 * j + c) * N / 2] = *reinterpret_cast<const uint32_t*>(&pair);
          }
        }
      };
      if (__all_sync(0xFFFFFFFFu, tokens_inside))
        store_pairs(std::false_type{});
      else
        store_pairs(std::true_type{});
      return;
    }
  }
  if (rows_inside) {
    Out* const out = y + static_cast<size_t>(m_first) * N + n_row;
    const auto store_rows = [&](auto check) {
#pragma unroll
      for (int j = 0; j < kTokens / 8; ++j) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          if (decltype(check)::value && m_first + 8 * j + c >= M) continue;
          Out* const o = out + static_cast<size_t>(8 * j + c) * N;
          store_out(o, 0, acc[4 * j + c] * (scale_lo * s[2 * j + c]));
          store_out(o, 8, acc[4 * j + 2 + c] * (scale_hi * s[2 * j + c]));
        }
      }
    };
    if (tokens_inside)
      store_rows(std::false_type{});
    else
      store_rows(std::true_type{});
    return;
  }
#pragma unroll
  for (int j = 0; j < kTokens / 8; ++j) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int m = m_first + 8 * j + c;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int n = n_row + 8 * h;
        if (m >= M || n >= N) continue;
        const size_t o = static_cast<size_t>(m) * N + n;
        const float v = acc[4 * j + 2 * h + c], scale = (h == 0 ? scale_lo : scale_hi) * s[2 * j + c];
        store_out(y, o, add ? __fmaf_rn(v, scale, load_out(y, o)) : v * scale);
      }
    }
  }
}

#endif  // MXQ_SM90A_DEVICE

// Output tile t -> its first token m0 and its weight-row tile. Tiles go in groups of G token tiles
// (G·T ≈ 2048 tokens), weight-row tiles outer, token tiles inner within a group, so the CTAs running
// at once (one per SM, consecutive t) share a few weight tiles and G token tiles: a group's
// activations (2048 tokens × K, 16 MB of bf16 at K = 4096, a third of the L2) stay in L2 while
// the weights stream past, and memory sees each weight tile once per group. (Token tiles inner
// over all of M instead re-read every activation from memory for each few weight tiles once M·K
// outgrows the L2: at M = 8192, 64 MB of bf16 per 4 weight tiles.)
struct TileCoords {
  int m0, n_tile;
};
template <int kTokens>
__device__ __forceinline__ TileCoords tile_coords(int t, int m_tiles, int n_tiles) {
  constexpr int kGroup = (2048 + kTokens - 1) / kTokens;
  const int group = t / (kGroup * n_tiles), first = group * kGroup;
  const int width = min(kGroup, m_tiles - first), r = t - first * n_tiles;
  return {(first + r % width) * kTokens, r / width};
}

// Persistent, warp-specialized: 384 threads = warpgroup 0 (one thread of it issues the copies)
// and two consumer warpgroups (64 weight rows each); CTA b takes output tiles b, b + grid, ...
// (tile_coords). Per stage, full[s] completes when the copy engine has written the stage (the byte
// count armed by the producer), empty[s] when all 8 consumer warps are done with it (their wgmmas
// finished and codes/meta read).
template <Sm90Operand kOp, int kTokens, typename Out>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_mxfp4_sm90_kernel(const __grid_constant__ CUtensorMap act_map,
                           const float* __restrict__ act_scale, int M, int K,
                           const uint8_t* __restrict__ codes, const uint8_t* __restrict__ meta,
                           const uint8_t* __restrict__ passes, int N, Out* __restrict__ y) {
#ifdef MXQ_SM90A_DEVICE
  using L = StageLayout<kOp, kTokens>;
  constexpr OperandTraits kT = traits_of(kOp);
  constexpr int kSteps = kTileK / kT.step_k;  // wgmmas per K-tile: 4 or 8
  constexpr int kAcc = kTokens / 2;           // accumulators per thread: 96 or 128
  static_assert(kOp == Sm90Operand::bf16 || kTokens == kFp8Tokens);
  // Registers per thread after setmaxnreg: 2 × 128 × 240 + 128 × 24 = 64512 of the SM's 65536.
  constexpr int kConsumerRegisters = 240, kProducerRegisters = 24;

  extern __shared__ __align__(128) uint8_t smem_raw_bytes[];
  const uint32_t smem_raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw_bytes));
  const uint32_t smem_base = (smem_raw + 1023u) & ~1023u;
  uint8_t* const smem = smem_raw_bytes + (smem_base - smem_raw);
  // FP8 only: the 15 block tables, index 14 − (base − e) = shift j + 8 for j = e − base + 6, and
  // at index 15 a table of zeros (for blocks of another pass).
  uint2* lut = reinterpret_cast<uint2*>(smem + L::kStages * L::kBytes);
  const uint32_t full_bar = smem_base + L::kStages * L::kBytes + L::kTables;
  const uint32_t empty_bar = full_bar + L::kStages * 8;

  const int KT = (K + kTileK - 1) / kTileK;
  const int m_tiles = (M + kTokens - 1) / kTokens, n_tiles = (N + kTileN - 1) / kTileN;
  const int tiles = m_tiles * n_tiles;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;

  if constexpr (kOp == Sm90Operand::e4m3) {
    if (tid < 16 * 8) {
      const int j = tid / 8 - 8, c = tid % 8;
      reinterpret_cast<uint8_t*>(lut)[tid] =
          j <= 6 ? e4m3_from_f32(e2m1_to_f32(static_cast<uint8_t>(c)) * pow2f(j)) : uint8_t{0};
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
  // Launched to overlap the kernel before it (grid_dependency.cuh), typically the activations'
  // quantization: the CTA's set-up above ran early; everything below reads x or its scales, or
  // writes y.
  wait_for_prior_grids();

  if (warp < 4) {
    // Producer warpgroup: gives up registers; thread 0 issues every copy.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters) : "memory");
    if (tid != 0) return;
    int stage = 0;
    uint32_t phase = 0;
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
      const auto [m0, n_tile] = tile_coords<kTokens>(t, m_tiles, n_tiles);
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
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters) : "memory");
  const int cwarp = warp - 4, wg = cwarp / 4;
  const int row = wg * kRowsPerWarpgroup + (cwarp % 4) * kGroupRows + lane / 4;  // and row + 8
  const int code_offset = (wg * 4 + cwarp % 4) * kGroupTileBytes + lane * 16;   // row + 8: + 512
  int stage = 0;
  uint32_t phase = 0;
  if constexpr (kOp == Sm90Operand::e4m3) {
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
      const auto [m0, n_tile] = tile_coords<kTokens>(t, m_tiles, n_tiles);
      const uint8_t* tile_passes = passes + static_cast<size_t>(n_tile * 2 + wg) * KT;
      float total[kAcc];
#pragma unroll
      for (int i = 0; i < kAcc; ++i) total[i] = 0.0f;
      float acc[kAcc];

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
        const uint2* meta_lo = reinterpret_cast<const uint2*>(st + L::kAct + L::kCodes + row * kMetaBytes);
        const uint2* meta_hi = meta_lo + 8;  // row + 8
        const uint32_t words_lo[4] = {c_lo.x, c_lo.y, c_lo.z, c_lo.w};
        const uint32_t words_hi[4] = {c_hi.x, c_hi.y, c_hi.z, c_hi.w};
        const uint32_t act_stage = smem_base + stage * L::kBytes;

        // Nearly every K-tile has one pass (every block within 14 binades of its row's base); it
        // widens without the pass masks.
        if (npass == 1) {
          fp8_pass<false>(acc, total, words_lo, words_hi, meta_lo, meta_hi, lut, act_stage, 0);
        } else {
          for (int pass = 0; pass < npass; ++pass)
            fp8_pass<true>(acc, total, words_lo, words_hi, meta_lo, meta_hi, lut, act_stage, pass);
        }
        // This warp's wgmmas on the stage have completed (wait_group 0) and it has read the stage's
        // codes and meta: the stage may be refilled once all 8 consumer warps say so.
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty_bar + 8 * stage);
        if (++stage == L::kStages) stage = 0, phase ^= 1u;
      }

      // Tokens m0 + 2t + 8j + c (t = lane % 4), weight rows row and row + 8.
      write_output<kTokens, true>(total, 1.0f, 1.0f, act_scale, false, m0 + 2 * (lane % 4), M,
                                  n_tile * kTileN + row, N, y);
    }
  } else {
    // W4A16: every block enters the tensor core as E2M1 · 2^(e − base) against its row's base for
    // its pass over all of K (gemm_wgmma.h), so a pass is one accumulator over the whole K, scaled
    // once at its end: y = Σ over passes of acc · 2^(base − 127). Nearly every tile has one pass;
    // a tile whose rows need more sweeps its K again per pass (the producer streams it again), each
    // sweep widening only its pass's blocks.
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
      const auto [m0, n_tile] = tile_coords<kTokens>(t, m_tiles, n_tiles);
      const int sweeps = __ldg(passes + n_tile);
      for (int pass = 0; pass < sweeps; ++pass) {
        float acc[kAcc];
        uint32_t bases_lo = 0, bases_hi = 0;  // the row's pass bases (the same in every K-tile)
        int in_flight = 0;                     // the stage of K-tile kt − 1, read by queued wgmmas
        // A step's fragment registers are read by its wgmma until a wait_group retires it. Every
        // step is its own commit group; before each step, wait_group kQueued − 1 retires all but
        // the newest kQueued − 1 groups, so the tensor core keeps kQueued steps queued (4 × 64 ×
        // T × 16 per warpgroup, 512 tensor cycles at T = 256) while the next ones are widened. Each step
        // has its own fragment registers, rewritten a K-tile later (long retired; reusing them
        // within a K-tile makes ptxas serialize the wgmmas, C7513). From step kQueued − 1 of
        // K-tile kt on, all of kt − 1 has retired and its stage is released.
        constexpr int kQueued = 4;
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
            static_assert(kSteps > kQueued, "K-tile kt − 1 retires inside K-tile kt");
            const int blk = s / 2;
            const uint32_t mul_lo = bf16_block_multiplier(meta_lo, blk, pass);
            const uint32_t mul_hi = bf16_block_multiplier(meta_hi, blk, pass);
            asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kQueued - 1) : "memory");
            // K-tile kt − 1 has retired: its stage may be refilled once all 8 consumer warps say
            // so (codes and meta were read into registers; the wait is warp-synchronous). A
            // predicated arrive, not a branch: a branch between the wgmmas serializes them (C7513).
            if (s == kQueued - 1) mbarrier_arrive_if(empty_bar + 8 * in_flight, kt > 0 && lane == 0);
            uint32_t(&f)[4] = frag[s];
            // Two k16 steps per block word: its values 0-3 feed the first, 4-7 the second.
            const uint2 lo = s % 2 == 0 ? widen_bf16x4<0>(words_lo[blk], mul_lo) : widen_bf16x4<1>(words_lo[blk], mul_lo);
            const uint2 hi = s % 2 == 0 ? widen_bf16x4<0>(words_hi[blk], mul_hi) : widen_bf16x4<1>(words_hi[blk], mul_hi);
            f[0] = lo.x;
            f[1] = hi.x;
            f[2] = lo.y;
            f[3] = hi.y;
            // The first step of the sweep starts acc afresh.
            wgmma_step<kOp, kTokens>(acc, f, act_stage, s, kt > 0 || s > 0);
          }
          in_flight = stage;
          if (++stage == L::kStages) stage = 0, phase ^= 1u;
        }
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty_bar + 8 * in_flight);

        // The first pass writes y, later ones add to it (the same thread wrote it). The empty asm
        // makes this thread's first token opaque to the compiler: otherwise the stores' addresses
        // are hoisted out of the pass loop, live across the K loop, and spill (312 bytes).
        int m_first = m0 + 2 * (lane % 4);
        asm volatile("" : "+r"(m_first));
        write_output<kTokens, false>(acc, pass_scale_of<kT.off>(bases_lo, pass), pass_scale_of<kT.off>(bases_hi, pass),
                                     nullptr, pass > 0, m_first, M, n_tile * kTileN + row, N, y);
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

size_t tile_count(size_t M, size_t N, int tokens) {
  return (M + tokens - 1) / tokens * (padded_rows(N) / kTileN);
}

// W4A16's T: 192 where its tiles fill the SMs in under 0.9 of the token-columns of work of 256's,
// ceil(tiles / SMs) · T (the narrower tile widens 4/3 as much per FLOP, so it must save a tenth).
// E.g. N = 2880 at M = 2048 on 132 SMs: T = 256 gives 184 tiles, 2 waves (the second 39% full),
// 512; T = 192 gives 253 tiles, 2 waves, 384. Fewer tiles than SMs: one wave, the narrower wins.
int bf16_tokens(size_t M, size_t N, int sms) {
  const auto columns = [&](int tokens) {
    return (tile_count(M, N, tokens) + sms - 1) / sms * static_cast<size_t>(tokens);
  };
  return 10 * columns(192) < 9 * columns(256) ? 192 : 256;
}

template <Sm90Operand kOp, int kTokens, typename Out>
cudaError_t launch_tiles(const CUtensorMap& map, const float* act_scale, size_t M, size_t K,
                         const Mxfp4Sm90Weights& w, Out* y, int sms, cudaStream_t stream) {
  using L = StageLayout<kOp, kTokens>;
  const auto kernel = gemm_mxfp4_sm90_kernel<kOp, kTokens, Out>;
  if (const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kSmem);
      e != cudaSuccess)
    return e;
  const size_t tiles = tile_count(M, w.N, kTokens);
  const unsigned grid = static_cast<unsigned>(std::min<size_t>(tiles, static_cast<size_t>(sms)));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = L::kSmem;
  cfg.stream = stream;
  cudaLaunchAttribute pdl = dependent_launch_attribute();
  cfg.attrs = &pdl;
  cfg.numAttrs = kDependentLaunch ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, map, act_scale, static_cast<int>(M), static_cast<int>(K), w.codes,
                            w.meta, w.passes, static_cast<int>(w.N), y);
}

template <Sm90Operand kOp, typename Out>
cudaError_t launch(const void* x, const float* act_scale, size_t M, size_t K,
                   const Mxfp4Sm90Weights& w, Out* y, cudaStream_t stream) {
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

  // x as [M rows][K elements], boxes of [T tokens][128 bytes of K], 128-byte swizzle (the layout
  // the wgmma descriptor reads); rows past M and K past the end read as zeros.
  constexpr OperandTraits kT = traits_of(kOp);
  CUtensorMap map;
  const cuuint64_t dims[2] = {K, M};
  const cuuint64_t pitch[1] = {K * kT.act_bytes};
  const int tokens = kOp == Sm90Operand::e4m3 ? kFp8Tokens : bf16_tokens(M, w.N, sms);
  const cuuint32_t box[2] = {128u / kT.act_bytes, static_cast<cuuint32_t>(tokens)};
  const cuuint32_t unit[2] = {1, 1};
  if (encode(&map, kOp == Sm90Operand::e4m3 ? CU_TENSOR_MAP_DATA_TYPE_UINT8 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
             2, const_cast<void*>(x), dims, pitch, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
             CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
    return cudaErrorInvalidValue;
  if constexpr (kOp == Sm90Operand::e4m3)
    return launch_tiles<kOp, kFp8Tokens, Out>(map, act_scale, M, K, w, y, sms, stream);
  else if (tokens == 192)
    return launch_tiles<kOp, 192, Out>(map, act_scale, M, K, w, y, sms, stream);
  else
    return launch_tiles<kOp, 256, Out>(map, act_scale, M, K, w, y, sms, stream);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Host side: the repack
// ---------------------------------------------------------------------------------------------

CodeBits mxfp4_sm90_code_bits(Sm90Operand op, size_t n, size_t k, size_t K) {
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
  const size_t byte_index = (tile * 2 + (n % kGroupRows) / 8) * (kGroupTileBytes / 2) + lane * 16 + byte;
  const size_t bit = byte_index * 8 + 4 * static_cast<size_t>(r3 % 2);
  // Each 4 bytes are one word of 8 values (nibble v holds value v's magnitude; FP8: one step,
  // BF16: two); the signs move to the bits widen_e4m3 and widen_bf16x4 take them from.
  const size_t word_bit = (byte_index & ~size_t{3}) * 8, v = (bit - word_bit) / 4;
  return {bit, word_bit + (v < 4 ? 8 * v + 7 : 8 * (v - 4) + 3)};
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
  // Row 0's bits within its first K-tile (element (0, 0)'s magnitude is bit 0); row n's K-tile
  // from k0 adds its own first magnitude bit to all of them.
  CodeBits in_tile[kTileK];
  for (size_t kk = 0; kk < kTileK; ++kk) in_tile[kk] = mxfp4_sm90_code_bits(op, 0, kk, K);
  const auto set_bits = [&](size_t bit, uint32_t value) {
    p.codes[bit / 8] |= static_cast<uint8_t>(value << (bit % 8));  // never straddles a byte
  };
  for (size_t n = 0; n < N; ++n)
    for (size_t k0 = 0; k0 < K; k0 += kTileK) {
      const size_t tile_offset = mxfp4_sm90_code_bits(op, n, k0, K).magnitude;
      for (size_t k = k0; k < std::min(K, k0 + kTileK); ++k) {
        const uint32_t code = (codes[n * (K / 2) + k / 2] >> (4 * (k % 2))) & 0xFu;
        set_bits(tile_offset + in_tile[k - k0].magnitude, code & 7u);
        set_bits(tile_offset + in_tile[k - k0].sign, code >> 3);
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
              m[j] = static_cast<uint8_t>((14 - (base - exps[j])) << 3 | pass);
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
            field[b] = static_cast<uint8_t>(127 - shift), pass_of[b] = static_cast<uint8_t>(pass);
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

namespace {
template <typename Out>
cudaError_t launch_w4a8(const uint8_t* x8, const float* act_scale, size_t M, size_t K,
                        const Mxfp4Sm90Weights& w, Out* y, cudaStream_t stream) {
  if (act_scale == nullptr) return cudaErrorInvalidValue;
  return launch<Sm90Operand::e4m3>(x8, act_scale, M, K, w, y, stream);
}
}  // namespace

cudaError_t gemm_mxfp4_w4a8_sm90(const uint8_t* x8, const float* act_scale, size_t M, size_t K,
                                 const Mxfp4Sm90Weights& w, float* y, cudaStream_t stream) {
  return launch_w4a8(x8, act_scale, M, K, w, y, stream);
}
cudaError_t gemm_mxfp4_w4a8_sm90(const uint8_t* x8, const float* act_scale, size_t M, size_t K,
                                 const Mxfp4Sm90Weights& w, bf16* y, cudaStream_t stream) {
  return launch_w4a8(x8, act_scale, M, K, w, y, stream);
}

cudaError_t gemm_mxfp4_w4a16_sm90(const bf16* x16, size_t M, size_t K, const Mxfp4Sm90Weights& w,
                                  float* y, cudaStream_t stream) {
  return launch<Sm90Operand::bf16>(x16, nullptr, M, K, w, y, stream);
}
cudaError_t gemm_mxfp4_w4a16_sm90(const bf16* x16, size_t M, size_t K, const Mxfp4Sm90Weights& w,
                                  bf16* y, cudaStream_t stream) {
  return launch<Sm90Operand::bf16>(x16, nullptr, M, K, w, y, stream);
}

}  // namespace mxq
