// MXFP4 GEMV / GEMM kernels on the GPU against cuBLAS BF16 and FP8 and the device's measured peaks.
//
// For y[M, N] = x[M, K] · W[N, K]ᵀ on the issue's shapes (N x K: the Llama-3-8B projections, the
// gpt-oss-20b 2880-wide matrices, the 128256-row LM head), each row prints the median time (CUDA
// events, cold L2: the Timer overwrites 2x L2 between launches), GB/s over the bytes the product must
// move (weights + scales + activations + outputs, each once), TFLOP/s (2·M·N·K), % of the
// device-to-device copy bandwidth and of cuBLAS's FP8 rate at 8192³, both measured in this run, and
// the speed-up over cuBLAS BF16 and FP8 at the same M, N, K, also measured in this run. Weights are
// random bytes in each kernel's own layout (scales 2^-15 .. 2^0, as in real checkpoints), activations
// random; the GEMV is checked against the CPU reference on one shape before anything is timed.
//
// The table is a list of KernelEntry rows: another kernel adds itself with its name, the M values it
// runs at, its byte count and a timing function. The linear_* rows time Mxfp4LinearCuda::apply, the
// runtime's entry point (activation quantization included), prepared from random canonical tensors;
// a second table times its two kernels (GEMV, wgmma GEMM) per mode over M to place the crossover.
// The weight_read rows are the floor of any weight-streaming kernel (weight_read_us).
//
//   build/release/bench/bench_gemm_cuda [prefix]   (prefix: only the kernels whose name starts so,
//                                                   without the activation, crossover and decode
//                                                   chain tables; "chain": the decode chain alone)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cublas_baseline.h"
#include "cuda_bench.h"
#include "mxq/format.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/kernels/cuda/act_quant.h"
#include "mxq/kernels/cuda/gemv.h"
#include "mxq/kernels/cuda/mxfp4_linear.h"

namespace {

using namespace mxq;

struct Shape {
  int N, K;
};
constexpr Shape kShapes[] = {{4096, 4096}, {6144, 4096}, {28672, 4096}, {4096, 14336},
                             {5120, 2880}, {2880, 4096}, {128256, 4096}};

// Deterministic pseudo-random bytes on the device (a 32-bit hash of the index and a seed).
__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ static_cast<uint32_t>(i >> 32) ^ seed;
  h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
  return h;
}
// kind 0: any byte; 1: an E8M0 scale in [112, 127]; 2: bf16 pairs in (-1, 1).
__global__ void fill_kernel(uint8_t* p, size_t n, uint32_t seed, int kind) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
    const uint32_t h = hash32(i, seed);
    p[i] = kind == 1 ? static_cast<uint8_t>(112 + (h & 15)) : kind == 2 && i % 2 == 1 ? static_cast<uint8_t>(0x3C | (h & 0x80)) : static_cast<uint8_t>(h);
  }
}
void fill(void* p, size_t n, uint32_t seed, int kind) {
  fill_kernel<<<1024, 256>>>(static_cast<uint8_t*>(p), n, seed, kind);
  CUDA_CHECK(cudaGetLastError());
}

// The timer's floor: an empty launch, timed as every row is (after the L2 flush).
__global__ void empty_kernel() {}

// ---- rows ----

struct KernelEntry {
  std::string name;
  std::vector<int> ms;
  std::function<double(int M, int N, int K)> bytes;
  std::function<double(bench::Timer&, int M, int N, int K)> time_us;
};

double mxfp4_bytes(int M, int N, int K) {
  return static_cast<double>(N) * K * (0.5 + 1.0 / 32) + 2.0 * M * K + 2.0 * M * N;
}

double gemv_w4a16_us(bench::Timer& timer, int M, int N, int K) {
  uint8_t *codes = nullptr, *scales = nullptr;
  bf16 *x = nullptr, *y = nullptr;
  const size_t code_bytes = mxfp4_gemv_code_bytes(N, K), scale_bytes = mxfp4_gemv_scale_bytes(N, K);
  CUDA_CHECK(cudaMalloc(&codes, code_bytes));
  CUDA_CHECK(cudaMalloc(&scales, scale_bytes));
  CUDA_CHECK(cudaMalloc(&x, size_t{2} * M * K));
  CUDA_CHECK(cudaMalloc(&y, size_t{2} * M * N));
  fill(codes, code_bytes, 1, 0);
  fill(scales, scale_bytes, 2, 1);
  fill(x, size_t{2} * M * K, 3, 2);
  const double us = timer.median_us([&](int) {
    CUDA_CHECK(mxfp4_gemv_w4a16_cuda(x, M, K, codes, scales, N, y, ElemType::bf16, nullptr));
  });
  CUDA_CHECK(cudaFree(codes));
  CUDA_CHECK(cudaFree(scales));
  CUDA_CHECK(cudaFree(x));
  CUDA_CHECK(cudaFree(y));
  return us;
}

// The floor of any kernel that streams the MXFP4 weight once: a pure read of its code and scale
// bytes (the Timer's read kernel, 1024 × 256 threads), timed as every row. Its xBF16 column is the
// most a weight-streaming kernel can gain over cuBLAS BF16 at that M.
double weight_bytes(int, int N, int K) { return static_cast<double>(N) * K * (0.5 + 1.0 / 32); }
double weight_read_us(bench::Timer& timer, int, int N, int K) {
  const size_t bytes = static_cast<size_t>(weight_bytes(0, N, K)) / 16 * 16;
  uint8_t* w = nullptr;
  unsigned* sink = nullptr;
  CUDA_CHECK(cudaMalloc(&w, bytes));
  CUDA_CHECK(cudaMalloc(&sink, sizeof(unsigned)));
  fill(w, bytes, 1, 0);
  const double us = timer.median_us([&](int) {
    bench::read_stream_kernel<<<1024, 256>>>(reinterpret_cast<const uint4*>(w), bytes / 16, sink);
    CUDA_CHECK(cudaGetLastError());
  });
  CUDA_CHECK(cudaFree(w));
  CUDA_CHECK(cudaFree(sink));
  return us;
}

// ---- the linear layer (Mxfp4LinearCuda) ----

// One prepared layer at a time (the LM head's three layouts take ~0.4 GB), rebuilt when the shape
// changes: random canonical codes and scales from a 64-bit xorshift. The scales (E8M0 in [114, 127])
// keep every (row, K-tile) within the FP8 GEMM's 14-binade window, as on the real checkpoint
// measured (docs/BENCHMARKS.md: 0 of 898,560 pairs of SmolLM2-135M need a second pass; a uniform
// 16-binade spread would put a second pass into nearly every K-tile of a 64-row warpgroup and time
// W4A8's worst case instead), and below 2^1, so that the GEMV takes its one-multiply path, as on
// that checkpoint (its MXFP4 scales span E8M0 120-128, 8 of 3,317,760 at 128).
std::unique_ptr<Mxfp4LinearCuda> random_linear_layer(int N, int K, std::initializer_list<Mxfp4LinearMode> modes) {
  std::vector<uint8_t> codes(size_t{1} * N * K / 2), scales(size_t{1} * N * K / 32);
  uint64_t state = 0x9E3779B97F4A7C15ull ^ (uint64_t{static_cast<uint32_t>(N)} << 32 | static_cast<uint32_t>(K));
  auto next = [&state] { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; };
  for (size_t i = 0; i < codes.size(); i += 8) {
    const uint64_t r = next();
    std::memcpy(codes.data() + i, &r, std::min<size_t>(8, codes.size() - i));
  }
  for (auto& b : scales) b = static_cast<uint8_t>(114 + next() % 14);
  auto layer = std::make_unique<Mxfp4LinearCuda>();
  layer->prepare(codes.data(), scales.data(), N, K, 0.0f, modes);
  return layer;
}
Mxfp4LinearCuda& linear_layer(int N, int K) {
  static std::unique_ptr<Mxfp4LinearCuda> layer;
  if (!layer || layer->N() != static_cast<size_t>(N) || layer->K() != static_cast<size_t>(K)) {
    layer.reset();  // free the previous layer's device memory first
    layer = random_linear_layer(N, K, {Mxfp4LinearMode::w4a16, Mxfp4LinearMode::w4a8, Mxfp4LinearMode::w4a4});
  }
  return *layer;
}

// Weights + scales + bf16 x + f32 y, each once.
double linear_bytes(int M, int N, int K) {
  return static_cast<double>(N) * K * (0.5 + 1.0 / 32) + 2.0 * M * K + 4.0 * M * N;
}

// apply(mode) at M; gemv_max_m: a forced path's switch point, or none for the dispatch's default.
double linear_us(bench::Timer& timer, Mxfp4LinearMode mode, int M, int N, int K,
                 std::optional<size_t> gemv_max_m = std::nullopt) {
  Mxfp4LinearCuda& layer = linear_layer(N, K);
  if (gemv_max_m) layer.set_gemv_max_m(*gemv_max_m);
  else layer.reset_gemv_max_m();
  bf16* x = nullptr;
  float* y = nullptr;
  CUDA_CHECK(cudaMalloc(&x, size_t{2} * M * K));
  CUDA_CHECK(cudaMalloc(&y, size_t{4} * M * N));
  fill(x, size_t{2} * M * K, 5, 2);
  layer.apply(mode, x, M, y, nullptr);  // grows the workspace outside the timed region
  const double us = timer.median_us([&](int) { layer.apply(mode, x, M, y, nullptr); });
  CUDA_CHECK(cudaFree(x));
  CUDA_CHECK(cudaFree(y));
  return us;
}

// GEMV against GEMM per mode over M on a few shapes: where the dispatch should switch.
void crossover_table(bench::Timer& timer) {
  std::printf("\n%-8s %6s %6s %5s %10s %10s %8s\n", "mode", "N", "K", "M", "gemv us", "gemm us",
              "faster");
  const Shape shapes[] = {{4096, 4096}, {28672, 4096}, {4096, 14336}, {2880, 4096}};
  for (const Shape& s : shapes) {
    if (!linear_layer(s.N, s.K).has_wgmma()) {
      std::printf("no wgmma on this device: the GEMV serves every M\n");
      return;
    }
    for (const Mxfp4LinearMode mode : {Mxfp4LinearMode::w4a16, Mxfp4LinearMode::w4a8, Mxfp4LinearMode::w4a4})
      for (const int M : {8, 16, 24, 32, 48, 64, 96, 128, 256}) {
        const double gemv = linear_us(timer, mode, M, s.N, s.K, std::numeric_limits<size_t>::max());
        const double gemm = linear_us(timer, mode, M, s.N, s.K, 0);
        std::printf("%-8s %6d %6d %5d %10.2f %10.2f %8s\n", mxfp4_linear_mode_name(mode), s.N, s.K, M,
                    gemv, gemm, gemv <= gemm ? "gemv" : "gemm");
      }
  }
}

// The GEMV against gemm_mxfp4_ref on one shape, with the summation bound of tests/test_cuda_gemv.cu
// ((K + 1)·2^-23·Σ|x||w|, plus a bf16 output's half ulp). Exits on a mismatch.
void check_gemv(int M, int N, int K) {
  std::mt19937_64 rng(std::random_device{}());
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<bf16> x(size_t{1} * M * K);
  std::vector<float> xf(x.size()), xabs(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = bf16_from_f32(gauss(rng));
    xf[i] = bf16_to_f32(x[i]);
    xabs[i] = std::fabs(xf[i]);
  }
  std::vector<uint8_t> codes(size_t{1} * N * K / 2), codes_abs(codes.size()), scales(size_t{1} * N * K / 32);
  for (size_t i = 0; i < codes.size(); ++i) codes_abs[i] = (codes[i] = static_cast<uint8_t>(rng())) & 0x77u;
  for (auto& s : scales) s = static_cast<uint8_t>(110 + rng() % 20);
  std::vector<uint8_t> codes_rp(mxfp4_gemv_code_bytes(N, K)), scales_rp(mxfp4_gemv_scale_bytes(N, K));
  mxfp4_gemv_repack(codes.data(), scales.data(), N, K, codes_rp.data(), scales_rp.data());
  std::vector<float> ref(size_t{1} * M * N), mag(ref.size());
  gemm_mxfp4_ref(xf.data(), M, K, codes.data(), scales.data(), N, ref.data());
  gemm_mxfp4_ref(xabs.data(), M, K, codes_abs.data(), scales.data(), N, mag.data());

  uint8_t *d_codes = nullptr, *d_scales = nullptr;
  bf16 *d_x = nullptr, *d_y = nullptr;
  CUDA_CHECK(cudaMalloc(&d_codes, codes_rp.size()));
  CUDA_CHECK(cudaMalloc(&d_scales, scales_rp.size()));
  CUDA_CHECK(cudaMalloc(&d_x, x.size() * 2));
  CUDA_CHECK(cudaMalloc(&d_y, ref.size() * 2));
  CUDA_CHECK(cudaMemcpy(d_codes, codes_rp.data(), codes_rp.size(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_scales, scales_rp.data(), scales_rp.size(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_x, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemset(d_y, 0xFF, ref.size() * 2));
  CUDA_CHECK(mxfp4_gemv_w4a16_cuda(d_x, M, K, d_codes, d_scales, N, d_y, ElemType::bf16, nullptr));
  std::vector<bf16> y(ref.size());
  CUDA_CHECK(cudaMemcpy(y.data(), d_y, y.size() * 2, cudaMemcpyDeviceToHost));
  double worst = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double tol = (K + 1.0) * 0x1p-23 * mag[i] * (1 + 0x1p-8) + 0x1p-8 * std::fabs(ref[i]);
    const double err = std::fabs(static_cast<double>(bf16_to_f32(y[i])) - ref[i]);
    if (!(err <= tol)) {
      std::fprintf(stderr, "gemv_w4a16 M %d N %d K %d: y[%zu] = %g, reference %g, bound %g\n", M, N, K,
                   i, bf16_to_f32(y[i]), ref[i], tol);
      std::exit(1);
    }
    worst = std::max(worst, err / tol);
  }
  std::printf("check gemv_w4a16 M %d N %d K %d vs gemm_mxfp4_ref: ok (worst error %.3f of the bound)\n",
              M, N, K, worst);
  CUDA_CHECK(cudaFree(d_codes));
  CUDA_CHECK(cudaFree(d_scales));
  CUDA_CHECK(cudaFree(d_x));
  CUDA_CHECK(cudaFree(d_y));
}

// Activation quantization: time per call and GB/s (bf16 in, codes and scales out).
void act_quant_table(bench::Timer& timer, double copy_gbs) {
  std::printf("\n%-18s %6s %6s %9s %8s %7s\n", "act quant (bf16)", "M", "K", "us", "GB/s", "%copy");
  const int K = 4096;
  for (const int M : {1, 16, 8192}) {
    bf16 *x = nullptr, *xq = nullptr;  // xq: the bf16 operands of the exact W4A8 / W4A4 routes
    uint8_t *codes = nullptr, *scales = nullptr;
    CUDA_CHECK(cudaMalloc(&x, size_t{2} * M * K));
    CUDA_CHECK(cudaMalloc(&codes, size_t{1} * M * K));
    CUDA_CHECK(cudaMalloc(&xq, size_t{2} * M * K));
    CUDA_CHECK(cudaMalloc(&scales, size_t{4} * M * K / 32 + 4 * M));
    fill(x, size_t{2} * M * K, 4, 2);
    const double fp8_us = timer.median_us([&](int) {
      CUDA_CHECK(act_fp8_quantize_cuda(x, ElemType::bf16, M, K, 0.0f, codes, reinterpret_cast<float*>(scales), nullptr));
    });
    const double mx_us = timer.median_us([&](int) {
      CUDA_CHECK(act_mxfp4_quantize_cuda(x, ElemType::bf16, M, K, codes, scales, nullptr));
    });
    const double fp8_values_us = timer.median_us([&](int) {
      CUDA_CHECK(act_fp8_values_bf16_cuda(x, ElemType::bf16, M, K, 0.0f, xq, nullptr, nullptr));
    });
    const double mx_values_us = timer.median_us([&](int) {
      CUDA_CHECK(act_mxfp4_fake_quantize_cuda(x, ElemType::bf16, M, K, xq, nullptr));
    });
    const double fp8_bytes = 3.0 * M * K + 4.0 * M, mx_bytes = 2.0 * M * K + M * K / 2.0 + M * K / 32.0;
    const double bf16_out_bytes = 4.0 * M * K;
    auto row = [&](const char* name, double us, double bytes) {
      std::printf("%-18s %6d %6d %9.2f %8.0f %6.1f%%\n", name, M, K, us, bytes / us * 1e-3,
                  100.0 * bytes / us * 1e-3 / copy_gbs);
    };
    row("fp8 per token", fp8_us, fp8_bytes);
    row("mxfp4 per 32", mx_us, mx_bytes);
    row("fp8 -> bf16", fp8_values_us, bf16_out_bytes);
    row("mxfp4 -> bf16", mx_values_us, bf16_out_bytes);
    CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(codes));
    CUDA_CHECK(cudaFree(xq));
    CUDA_CHECK(cudaFree(scales));
  }
}

}  // namespace

// One decode step's linear layers back to back on one stream, the way a model runs them: a
// Llama-3-8B layer's seven projections (q, k, v, o, gate, up, down) through Mxfp4LinearCuda::apply
// (W4A16, bf16 y, the dispatch's kernel) and cuBLAS BF16's seven GEMMs, each chain timed as one op
// (cold L2 before it, median of 50). "alone": the sum of the seven applies timed one by one, each
// after its own L2 flush; what the chain saves over it is the gaps between launches and, on sm_90,
// each GEMV's weight prologue running under the kernel before it (programmatic dependent launch).
void decode_chain_table(bench::Timer& timer) {
  struct Projection {
    int N, K;
  };
  // q, k, v, o, gate, up, down.
  const Projection layer[] = {{4096, 4096},  {1024, 4096},  {1024, 4096}, {4096, 4096},
                              {14336, 4096}, {14336, 4096}, {4096, 14336}};
  std::vector<std::unique_ptr<Mxfp4LinearCuda>> mxq;
  for (const Projection& p : layer) mxq.push_back(random_linear_layer(p.N, p.K, {Mxfp4LinearMode::w4a16}));
  std::printf("\ndecode chain (Llama-3-8B layer: q k v o gate up down, W4A16, bf16 y)\n%5s %12s %12s %14s %8s\n",
              "M", "mxq us", "alone us", "cuBLAS bf16 us", "xBF16");
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  for (const int M : {1, 16}) {
    bf16* x = nullptr;
    bf16* y = nullptr;
    CUDA_CHECK(cudaMalloc(&x, size_t{2} * M * 14336));
    CUDA_CHECK(cudaMalloc(&y, size_t{2} * M * 14336));
    fill(x, size_t{2} * M * 14336, 5, 2);
    for (auto& l : mxq) l->apply(Mxfp4LinearMode::w4a16, x, M, y, nullptr);  // workspaces, plans
    const double chain = timer.median_us([&](int) {
      for (auto& l : mxq) l->apply(Mxfp4LinearMode::w4a16, x, M, y, nullptr);
    });
    double alone = 0.0;
    for (auto& l : mxq) alone += timer.median_us([&](int) { l->apply(Mxfp4LinearMode::w4a16, x, M, y, nullptr); });
    std::vector<std::unique_ptr<bench::BaselineOperands>> ops;
    for (const Projection& p : layer) ops.push_back(std::make_unique<bench::BaselineOperands>(M, p.N, p.K, 2));
    const double cublas = timer.median_us([&](int) {
      for (size_t i = 0; i < std::size(layer); ++i) bench::cublas_bf16_gemm(h, M, layer[i].N, layer[i].K, *ops[i]);
    });
    std::printf("%5d %12.2f %12.2f %14.2f %8.2f\n", M, chain, alone, cublas, cublas / chain);
    CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(y));
  }
  CUBLAS_CHECK(cublasDestroy(h));
}

int main(int argc, char** argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  bench::print_device();
  bench::Timer timer(5, 50);
  const double copy_gbs = bench::measure_copy_gbs(timer);
  const double fp8_peak_tflops = 2.0 * 8192.0 * 8192.0 * 8192.0 / bench::cublas_fp8_us(timer, 8192, 8192, 8192) * 1e-6;
  std::printf("copy bandwidth %.0f GB/s (read + write); cuBLAS FP8 8192^3 %.0f TFLOP/s; median of 50, cold L2\n",
              copy_gbs, fp8_peak_tflops);

  const double floor_us = timer.median_us([](int) {
    empty_kernel<<<1, 32>>>();
    CUDA_CHECK(cudaGetLastError());
  });
  std::printf("timer floor (an empty kernel, timed as every row): %.2f us\n", floor_us);

  check_gemv(1, 2880, 4096);
  check_gemv(16, 2880, 4096);
  check_gemv(1, 32768 + 40, 4096);  // one warp per 16-row tile, no K split, a partial last tile

  auto linear_entry = [](const char* name, Mxfp4LinearMode mode) {
    return KernelEntry{name, {1, 16, 2048}, linear_bytes,
                       [mode](bench::Timer& t, int M, int N, int K) { return linear_us(t, mode, M, N, K); }};
  };
  std::vector<KernelEntry> entries = {
      {"gemv_w4a16", {1, 16, 24, 32}, mxfp4_bytes, gemv_w4a16_us},
      {"weight_read", {1, 16}, weight_bytes, weight_read_us},
      linear_entry("linear_w4a16", Mxfp4LinearMode::w4a16),
      linear_entry("linear_w4a8", Mxfp4LinearMode::w4a8),
      linear_entry("linear_w4a4", Mxfp4LinearMode::w4a4),
  };
  std::erase_if(entries, [&](const KernelEntry& e) { return e.name.rfind(only, 0) != 0; });

  // cuBLAS at every (M, N, K) an entry runs at, once each.
  std::map<std::tuple<int, int, int>, std::pair<double, double>> baseline;  // bf16 us, fp8 us
  auto baseline_at = [&](int M, int N, int K) {
    const auto key = std::make_tuple(M, N, K);
    if (!baseline.count(key))
      baseline[key] = {bench::cublas_bf16_us(timer, M, N, K), bench::cublas_fp8_us(timer, M, N, K)};
    return baseline[key];
  };

  std::printf("\n%-14s %5s %6s %6s %9s %7s %8s %6s %6s %7s %7s\n", "kernel", "M", "N", "K", "us",
              "GB/s", "TFLOP/s", "%copy", "%fp8", "xBF16", "xFP8");
  auto print_row = [&](const std::string& name, int M, int N, int K, double us, double bytes) {
    const auto [bf16_us, fp8_us] = baseline_at(M, N, K);
    const double gbs = bytes / us * 1e-3, tflops = 2.0 * M * N * K / us * 1e-6;
    std::printf("%-14s %5d %6d %6d %9.2f %7.0f %8.2f %5.1f%% %5.1f%% %7.2f %7.2f\n", name.c_str(), M, N,
                K, us, gbs, tflops, 100.0 * gbs / copy_gbs, 100.0 * tflops / fp8_peak_tflops,
                bf16_us / us, fp8_us / us);
  };
  std::set<int> ms;  // every M an entry runs at: the cuBLAS rows once per (shape, M), then the entries
  for (const KernelEntry& e : entries) ms.insert(e.ms.begin(), e.ms.end());
  for (const Shape& s : kShapes) {
    for (const int M : ms) {
      const auto [bf16_us, fp8_us] = baseline_at(M, s.N, s.K);
      print_row("cublas_bf16", M, s.N, s.K, bf16_us, 2.0 * s.N * s.K + 2.0 * M * s.K + 2.0 * M * s.N);
      if (!std::isnan(fp8_us))
        print_row("cublas_fp8", M, s.N, s.K, fp8_us, 1.0 * s.N * s.K + 1.0 * M * s.K + 2.0 * M * s.N);
      for (const KernelEntry& e : entries)
        if (std::find(e.ms.begin(), e.ms.end(), M) != e.ms.end())
          print_row(e.name, M, s.N, s.K, e.time_us(timer, M, s.N, s.K), e.bytes(M, s.N, s.K));
    }
  }
  if (only.empty()) {
    act_quant_table(timer, copy_gbs);
    crossover_table(timer);
  }
  if (only.empty() || only == "chain") decode_chain_table(timer);
  return 0;
}
