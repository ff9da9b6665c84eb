#!/usr/bin/env python3
"""Clock traces of the prefill GEMM's consumer warpgroups (src/kernels/cuda/gemm_wgmma.cu).

A diagnostic, not part of the build. `patch` writes a copy of gemm_wgmma.cu in which lane 0 of the
first warp of each consumer warpgroup of CTA 0 records SM clock stamps (%clock) at fixed points of
its loop into a device array; the launcher copies them out and prints them after the operand's 21st
launch (one of the benchmark's timed launches; it waits for that one to finish). Nothing in the
kernel calls a function: a printf there makes ptxas serialize every wgmma (C7510), which is what
a trace must not measure. Build the copy in place of the real file without -Werror (the stamps may
cost a few registers; a spill is reported, not fatal), run `bench_gemm_wgmma_cuda --shapes 0
--m 8192` on the GPU, and give its output to `summary`. The stamps add a few instructions per
K-tile; compare phases, and check the traced kernel's time against the real one.

  trace_wgmma.py patch fp8|bf16 gemm_wgmma.cu traced.cu
  trace_wgmma.py summary fp8|bf16 bench_output.txt

fp8 (W4A8), per K-tile: before the stage's full-barrier wait, after it, after the first wgmma is
issued, after the last is issued, after wait_group 0, after the promotion and the stage's release.
bf16 (W4A16), per K-tile: before the full-barrier wait, after it, after the K-tile's 8 steps are
issued; per tile: after the final wait_group 0, after the epilogue.

The patch finds the kernel's code by exact text and stops with the text it could not find when
gemm_wgmma.cu has changed; update the anchors below with the kernel.
"""
import re
import statistics
import sys

HEADER = '''#include "mxq/error.h"
'''
TRACE_GLOBALS = '''#include "mxq/error.h"
#include <cstdio>
__device__ unsigned int g_trace[2][160][6];  // [warpgroup][K-tile][stamp]
__device__ unsigned int g_tile[2][8][2];     // [warpgroup][tile][stamp]
__device__ __forceinline__ unsigned int trace_clock() {
  unsigned int c;
  asm volatile("mov.u32 %0, %%clock;" : "=r"(c) :: "memory");
  return c;
}
#define TRACE(e) do { if (tracer && tix < 160) g_trace[wg][tix][e] = trace_clock(); } while (0)
'''
CONSUMER_START = '''  int stage = 0;
  uint32_t phase = 0;
  if constexpr (kOp == Sm90Operand::e4m3) {'''
LAUNCH = '''  return cudaGetLastError();
}

template <Sm90Operand kOp, typename Out>
cudaError_t launch('''
LAUNCH_TRACED = '''  static int launches = 0;
  if (++launches == 21) {
    unsigned int k[2][160][6], e[2][8][2];
    cudaDeviceSynchronize();
    cudaMemcpyFromSymbol(k, g_trace, sizeof k);
    cudaMemcpyFromSymbol(e, g_tile, sizeof e);
    for (int w = 0; w < 2; ++w) {
      for (int i = 0; i < 160; ++i)
        std::printf("K %d %d %u %u %u %u %u %u\\n", w, i, k[w][i][0], k[w][i][1], k[w][i][2], k[w][i][3], k[w][i][4], k[w][i][5]);
      for (int i = 0; i < 8; ++i) std::printf("E %d %d %u %u\\n", w, i, e[w][i][0], e[w][i][1]);
    }
  }
  return cudaGetLastError();
}

template <Sm90Operand kOp, typename Out>
cudaError_t launch('''


def replace(text, old, new):
    if old not in text:
        sys.exit("trace_wgmma.py: gemm_wgmma.cu has changed; not found:\n" + old)
    return text.replace(old, new, 1)


def patch(mode, text):
    text = replace(text, HEADER, TRACE_GLOBALS)
    text = replace(text, LAUNCH, LAUNCH_TRACED)
    text = replace(text, CONSUMER_START, '''  int stage = 0;
  uint32_t phase = 0;
  const bool tracer = blockIdx.x == 0 && cwarp % 4 == 0 && lane == 0;
  int tix = 0, tt = 0;
  (void)tix, (void)tt;
  if constexpr (kOp == Sm90Operand::e4m3) {''')
    if mode == "fp8":
        # fp8_pass gets the tracer's state.
        text, n = re.subn(r"(\n\s+int pass)(\) \{\n  constexpr Sm90Operand kOp = Sm90Operand::e4m3;)",
                          r"\1, bool tracer, int tix, int wg\2", text, count=1)
        if n != 1:
            sys.exit("trace_wgmma.py: fp8_pass's signature has changed")
        text = re.sub(r"(fp8_pass<[^>]*>\(acc, total, words_lo, words_hi, meta_lo, meta_hi, lut, act_stage, (0|pass))\);",
                      r"\1, tracer, tix, wg);", text)
        text = replace(text, '''    wgmma_step<kOp, kFp8Tokens>(acc, frag[s], act_stage, s, s > 0);
''', '''    wgmma_step<kOp, kFp8Tokens>(acc, frag[s], act_stage, s, s > 0);
    if (s == 0) TRACE(2);
''')
        text = replace(text, '''  asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
  const float scale_lo''', '''  TRACE(3);
  asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
  TRACE(4);
  const float scale_lo''')
        text = replace(text, '''        mbarrier_wait(full_bar + 8 * stage, phase);
        const uint8_t* st = smem + stage * L::kBytes;
        const uint4 c_lo''', '''        TRACE(0);
        mbarrier_wait(full_bar + 8 * stage, phase);
        TRACE(1);
        const uint8_t* st = smem + stage * L::kBytes;
        const uint4 c_lo''')
        text = replace(text, '''        if (lane == 0) mbarrier_arrive(empty_bar + 8 * stage);
        if (++stage == L::kStages) stage = 0, phase ^= 1u;
      }
''', '''        if (lane == 0) mbarrier_arrive(empty_bar + 8 * stage);
        TRACE(5);
        ++tix;
        if (++stage == L::kStages) stage = 0, phase ^= 1u;
      }
''')
        text = replace(text, '''                                  n_tile * kTileN + row, N, y);
    }''', '''                                  n_tile * kTileN + row, N, y);
    }''')
    else:
        text = replace(text, '''          mbarrier_wait(full_bar + 8 * stage, phase);
          const uint8_t* st = smem + stage * L::kBytes;''', '''          TRACE(0);
          mbarrier_wait(full_bar + 8 * stage, phase);
          TRACE(1);
          const uint8_t* st = smem + stage * L::kBytes;''')
        text = replace(text, '''          in_flight = stage;''', '''          in_flight = stage;
          TRACE(2);
          ++tix;''')
        text = replace(text, '''        asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty_bar + 8 * in_flight);''', '''        asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
        if (tracer && tt < 8) g_tile[wg][tt][0] = trace_clock();
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty_bar + 8 * in_flight);''')
        text = replace(text, '''                                     nullptr, pass > 0, m_first, M, n_tile * kTileN + row, N, y);
      }
    }''', '''                                     nullptr, pass > 0, m_first, M, n_tile * kTileN + row, N, y);
        if (tracer && tt < 8) g_tile[wg][tt][1] = trace_clock();
        ++tt;
      }
    }''')
    return text


def summary(mode, path):
    ktiles, tiles = {}, {}
    for line in open(path):
        f = line.split()
        if len(f) == 9 and f[0] == "K":
            ktiles[(int(f[1]), int(f[2]))] = [int(v) for v in f[3:]]
        elif len(f) == 5 and f[0] == "E":
            tiles[(int(f[1]), int(f[2]))] = [int(v) for v in f[3:]]
    if not ktiles:
        sys.exit(f"trace_wgmma.py: no trace lines in {path}")
    names = (["full wait", "to 1st issue", "1st to last issue", "wait_group 0", "promote + release"]
             if mode == "fp8" else ["full wait", "8 steps issued"])
    stamps = len(names) + 1
    count = max(i for _, i in ktiles) + 1
    for wg in (0, 1):
        rows = [ktiles[(wg, i)] for i in range(count) if (wg, i) in ktiles]
        period = [(b[0] - a[0]) & 0xFFFFFFFF for a, b in zip(rows, rows[1:])]
        print(f"warpgroup {wg}: {len(rows)} K-tiles, median period {statistics.median(period)} cycles, "
              f"longest {max(period)} (a tile boundary)")
        for j, name in enumerate(names):
            phase = [(r[j + 1] - r[j]) & 0xFFFFFFFF for r in rows if len(r) >= stamps]
            print(f"  {name:>18}: median {statistics.median(phase)} cycles")
        epilogues = [(b - a) & 0xFFFFFFFF for (w, _), (a, b) in sorted(tiles.items()) if w == wg and a]
        if epilogues:
            print(f"  epilogue (wait 0 to stores issued): median {statistics.median(epilogues)} cycles")
    first = [ktiles[(wg, 0)][0] for wg in (0, 1) if (wg, 0) in ktiles]
    if len(first) == 2:
        print(f"warpgroup 1 starts {(first[1] - first[0]) & 0xFFFFFFFF} cycles after warpgroup 0 "
              "(mod 2^32; a large value means before)")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "patch" and sys.argv[2] in ("fp8", "bf16"):
        traced = patch(sys.argv[2], open(sys.argv[3]).read())
        with open(sys.argv[4], "w") as out:
            out.write(traced)
    elif len(sys.argv) == 4 and sys.argv[1] == "summary" and sys.argv[2] in ("fp8", "bf16"):
        summary(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
