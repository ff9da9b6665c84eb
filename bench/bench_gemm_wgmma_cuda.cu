// Prefill GEMMs on Hopper's tensor cores (issue 5): W4A8 (FP8 wgmma) and W4A16 (BF16 wgmma) with
// MXFP4 weights, against cuBLAS BF16 and FP8 products of the same shape measured in the same run; and
// the W4A16 paths of GPUs without wgmma, timed on the same device: the sm_80 mma.sync GEMM
// (gemm_mma_sm80.h, row "W4A16-sm80") and the GEMV that served every M there before it (gemv.h, one
// launch per 32 tokens, row "GEMV"), both on the GEMV's repacked weights.
//
//   bench_gemm_wgmma_cuda [--m 2048,8192] [--big-m-shapes 3] [--shapes 0,3] [--out f32|bf16] [--paths sm90]
//   bench_gemm_wgmma_cuda --window-stats model.safetensors   (no GPU: how often the FP8 window
//                                                            is left by a real MXFP4 checkpoint)
//
// --shapes picks rows of the shape table by index (0-6; all by default), e.g. one shape for a profiler.
// --out: the W4A8 and W4A16 rows' output type (f32 by default; bf16 is what cuBLAS writes here).
// --paths sm90: only the wgmma kernels' rows (and cuBLAS), without the sm_80 GEMM and the GEMV.
// Each row: N × K, M, µs (median, cold L2), TFLOP/s, % of the best cuBLAS FP8 rate measured in this
// run, × cuBLAS BF16 and × cuBLAS FP8 of the same shape; GB/s counts weight (codes + meta or
// scales) + activation + output bytes (f32, or bf16 with --out bf16) once each. Targets (issue 5,
// H100): W4A8 ≥ 0.9× cuBLAS FP8 and ≥ 1.6× cuBLAS BF16; W4A16 ≥ 0.9× cuBLAS BF16.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cublas_baseline.h"
#include "mxq/io/safetensors.h"
#include "cuda_bench.h"
#include "mxq/kernels/cuda/device_buffer.h"
#include "mxq/kernels/cuda/gemm_mma_sm80.h"
#include "mxq/kernels/cuda/gemm_wgmma.h"
#include "mxq/kernels/cuda/gemv.h"

namespace {

struct Shape {
  int N, K;
};
constexpr Shape kShapes[] = {{4096, 4096},  {6144, 4096}, {28672, 4096}, {4096, 14336},
                             {5120, 2880},  {2880, 4096}, {128256, 4096}};

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p != '\0';) {
    v.push_back(std::atoi(p));
    while (*p != '\0' && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

// Every MXFP4 linear weight (U8 "X.weight" with a U8 "X.weight_scale") repacked for both operand
// types: the (row, K-tile) pairs that need a second pass, and the units the kernel runs more than
// once (W4A8: a 64-row tile's K-tile, base per row and K-tile, 14 binades; W4A16: a 128-row tile's
// sweep over K, base per row, 125 binades; gemm_wgmma.h).
int window_stats(const char* path) {
  using namespace mxq;
  const io::SafetensorsFile file(path);
  for (const Sm90Operand op : {Sm90Operand::e4m3, Sm90Operand::bf16}) {
    size_t row_tiles = 0, out = 0, tiles = 0, multi = 0, matrices = 0;
    for (const io::TensorView& t : file.tensors()) {
      const io::TensorView* sc = file.find(t.name + "_scale");
      if (sc == nullptr || t.dtype != io::DType::u8 || sc->dtype != io::DType::u8 || t.shape.size() != 2)
        continue;
      const size_t N = t.shape[0], K = t.shape[1] * 2;
      const Mxfp4Sm90Packed p = mxfp4_sm90_repack(op, t.data.data(), sc->data.data(), N, K);
      ++matrices;
      row_tiles += N * ((K + 127) / 128);
      out += p.out_of_window;
      for (const uint8_t n : p.passes) {
        tiles += n > 0;
        multi += n > 1;
      }
    }
    const bool fp8 = op == Sm90Operand::e4m3;
    std::printf("%s: %zu matrices; (row, K-tile) pairs out of window: %zu of %zu (%.4f%%); "
                "%s run twice or more: %zu of %zu (%.3f%%)\n",
                fp8 ? "W4A8 (14 binades per row and K-tile)" : "W4A16 (125 binades per row)", matrices,
                out, row_tiles, 100.0 * out / row_tiles,
                fp8 ? "(64-row tile, K-tile) pairs" : "128-row tiles", multi, tiles, 100.0 * multi / tiles);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mxq;
  if (argc == 3 && std::strcmp(argv[1], "--window-stats") == 0) return window_stats(argv[2]);
  std::vector<int> ms = {2048, 8192};
  size_t big_m_shapes = std::size(kShapes);  // shapes run at M > 2048 (the first ones)
  std::vector<int> shapes;                     // indices into kShapes; empty: all
  bool bf16_out = false, sm90_only = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--m") == 0) ms = parse_list(argv[i + 1]);
    else if (std::strcmp(argv[i], "--out") == 0 && (std::strcmp(argv[i + 1], "f32") == 0 || std::strcmp(argv[i + 1], "bf16") == 0))
      bf16_out = std::strcmp(argv[i + 1], "bf16") == 0;
    else if (std::strcmp(argv[i], "--big-m-shapes") == 0) big_m_shapes = std::strtoul(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--shapes") == 0) shapes = parse_list(argv[i + 1]);
    else if (std::strcmp(argv[i], "--paths") == 0 && std::strcmp(argv[i + 1], "sm90") == 0) sm90_only = true;
    else {
      std::fprintf(stderr, "usage: %s [--m 2048,8192] [--big-m-shapes N] [--shapes 0,3] [--out f32|bf16] [--paths sm90]\n",
                   argv[0]);
      return 2;
    }
  }
  bench::print_device();
  std::printf("W4A8 / W4A16 output: %s\n", bf16_out ? "bf16" : "f32");
  bench::Timer timer;
  std::mt19937_64 rng(1);

  struct Row {
    Shape s;
    int M;
    double w4a8, w4a16, sm80, gemv, fp8, bf16;
    size_t bytes8, bytes16, bytes_rp;
  };
  std::vector<Row> rows;
  for (size_t si = 0; si < std::size(kShapes); ++si) {
    if (!shapes.empty() && std::find(shapes.begin(), shapes.end(), static_cast<int>(si)) == shapes.end())
      continue;
    const Shape s = kShapes[si];
    const size_t N = s.N, K = s.K;
    std::vector<uint8_t> codes(N * K / 2), scales(N * K / 32);
    for (auto& c : codes) c = static_cast<uint8_t>(rng());
    for (auto& e : scales) e = static_cast<uint8_t>(118 + rng() % 12);
    const Mxfp4Sm90Packed p8 = mxfp4_sm90_repack(Sm90Operand::e4m3, codes.data(), scales.data(), N, K);
    const Mxfp4Sm90Packed p16 = mxfp4_sm90_repack(Sm90Operand::bf16, codes.data(), scales.data(), N, K);
    DeviceBuffer<uint8_t> c8(p8.codes.size()), m8(p8.meta.size()), t8(p8.passes.size());
    DeviceBuffer<uint8_t> c16(p16.codes.size()), m16(p16.meta.size()), t16(p16.passes.size());
    c8.upload(p8.codes.data(), p8.codes.size());
    m8.upload(p8.meta.data(), p8.meta.size());
    t8.upload(p8.passes.data(), p8.passes.size());
    c16.upload(p16.codes.data(), p16.codes.size());
    m16.upload(p16.meta.data(), p16.meta.size());
    t16.upload(p16.passes.data(), p16.passes.size());
    const Mxfp4Sm90Weights w8{Sm90Operand::e4m3, N, K, c8.get(), m8.get(), t8.get()};
    const Mxfp4Sm90Weights w16{Sm90Operand::bf16, N, K, c16.get(), m16.get(), t16.get()};
    std::vector<uint8_t> hc_rp(mxfp4_gemv_code_bytes(N, K)), hs_rp(mxfp4_gemv_scale_bytes(N, K));
    mxfp4_gemv_repack(codes.data(), scales.data(), N, K, hc_rp.data(), hs_rp.data());
    DeviceBuffer<uint8_t> c_rp(hc_rp.size()), s_rp(hs_rp.size());
    c_rp.upload(hc_rp.data(), hc_rp.size());
    s_rp.upload(hs_rp.data(), hs_rp.size());
    for (const int M : ms) {
      if (M > 2048 && si >= big_m_shapes) continue;
      std::vector<uint8_t> hx8(static_cast<size_t>(M) * K);
      for (auto& q : hx8) q = static_cast<uint8_t>(rng() % 0x7E) | static_cast<uint8_t>(rng() & 0x80);
      std::vector<bf16> hx16(static_cast<size_t>(M) * K);
      std::normal_distribution<float> gauss(0.0f, 1.0f);
      for (auto& v : hx16) v = bf16_from_f32(gauss(rng));
      std::vector<float> hs(M, 0.01f);
      DeviceBuffer<uint8_t> x8(hx8.size());
      DeviceBuffer<bf16> x16(hx16.size());
      DeviceBuffer<float> sc(M), y(static_cast<size_t>(M) * N);
      DeviceBuffer<bf16> y16(bf16_out ? static_cast<size_t>(M) * N : 0);
      x8.upload(hx8.data(), hx8.size());
      x16.upload(hx16.data(), hx16.size());
      sc.upload(hs.data(), M);
      Row r{s, M, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      r.w4a8 = timer.median_us([&](int) {
        CUDA_CHECK(bf16_out ? gemm_mxfp4_w4a8_sm90(x8.get(), sc.get(), M, K, w8, y16.get(), nullptr)
                            : gemm_mxfp4_w4a8_sm90(x8.get(), sc.get(), M, K, w8, y.get(), nullptr));
      });
      r.w4a16 = timer.median_us([&](int) {
        CUDA_CHECK(bf16_out ? gemm_mxfp4_w4a16_sm90(x16.get(), M, K, w16, y16.get(), nullptr)
                            : gemm_mxfp4_w4a16_sm90(x16.get(), M, K, w16, y.get(), nullptr));
      });
      if (!sm90_only) {
        r.sm80 = timer.median_us([&](int) {
          CUDA_CHECK(gemm_mxfp4_w4a16_sm80(x16.get(), M, K, c_rp.get(), s_rp.get(), N, y.get(), nullptr));
        });
        r.gemv = timer.median_us([&](int) {
          CUDA_CHECK(mxfp4_gemv_w4a16_cuda(x16.get(), M, K, c_rp.get(), s_rp.get(), N, y.get(),
                                           ElemType::f32, nullptr));
        });
      }
      r.fp8 = bench::cublas_fp8_us(timer, M, s.N, s.K);
      r.bf16 = bench::cublas_bf16_us(timer, M, s.N, s.K);
      const size_t out = static_cast<size_t>(M) * N * 4, out_sm90 = bf16_out ? out / 2 : out;
      r.bytes8 = p8.codes.size() + p8.meta.size() + hx8.size() + out_sm90;
      r.bytes16 = p16.codes.size() + p16.meta.size() + hx16.size() * 2 + out_sm90;
      r.bytes_rp = hc_rp.size() + hs_rp.size() + hx16.size() * 2 + out;
      rows.push_back(r);
      std::printf("done %d x %d, M %d\n", s.N, s.K, M);
      std::fflush(stdout);
    }
  }
  double peak_fp8 = 0;
  for (const Row& r : rows) peak_fp8 = std::max(peak_fp8, 2.0 * r.M * r.s.N * r.s.K / r.fp8 * 1e-6);
  std::printf("\nbest cuBLAS FP8 rate in this run: %.0f TFLOP/s\n", peak_fp8);
  std::printf("%-13s %5s | %-10s %9s %7s %6s %7s %6s %6s | %9s %9s\n", "N x K", "M", "kernel", "us",
              "TFLOP/s", "%fp8pk", "GB/s", "xBF16", "xFP8", "cuBLASbf16", "cuBLASfp8");
  for (const Row& r : rows) {
    const double flop = 2.0 * r.M * r.s.N * r.s.K;
    char shape[32];
    std::snprintf(shape, sizeof shape, "%dx%d", r.s.N, r.s.K);
    const char* names[] = {"W4A8", "W4A16", "W4A16-sm80", "GEMV"};
    for (int k = 0; k < (sm90_only ? 2 : 4); ++k) {
      const double us = k == 0 ? r.w4a8 : k == 1 ? r.w4a16 : k == 2 ? r.sm80 : r.gemv;
      const size_t bytes = k == 0 ? r.bytes8 : k == 1 ? r.bytes16 : r.bytes_rp;
      std::printf("%-13s %5d | %-10s %9.1f %7.0f %6.1f %7.0f %6.2f %6.2f | %9.1f %9.1f\n", shape, r.M,
                  names[k], us, flop / us * 1e-6, 100.0 * flop / us * 1e-6 / peak_fp8,
                  bytes / us * 1e-3, r.bf16 / us, r.fp8 / us, r.bf16, r.fp8);
    }
  }
  return 0;
}
