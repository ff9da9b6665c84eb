// MXFP4 quantize / dequantize on the GPU against the device's own copy bandwidth.
//
// Input: a 14336 x 4096 bf16 tensor of gaussian values (117 MB, larger than any L2), three copies
// of every buffer used in turn so that no repetition finds the previous one's data in L2. The peak
// is a cudaMemcpyAsync device-to-device copy of a buffer of the same size, measured in the same run;
// GB/s counts bytes read + bytes written. Each op is checked against the scalar reference on a slice
// of rows before it is timed. Times are CUDA-event medians over kReps launches after kWarmup.
//
//   build/cuda/bench/bench_convert_cuda
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "mxq/format.h"
#include "mxq/format_ref.h"
#include "mxq/kernels/cuda/mx_convert.h"
#include "cuda_bench.h"

namespace {

using namespace mxq;

constexpr size_t kRows = 14336, kCols = 4096, kN = kRows * kCols;
constexpr int kBuffers = 3, kWarmup = 5, kReps = 30;
constexpr size_t kCheckRows[] = {0, 1, 2, 3, 7000, kRows - 1};


struct Row {
  const char* op;
  const char* rule;
  double us;
  double bytes;
};

}  // namespace

int main() {
  bench::print_device();
  bench::Timer timer(kWarmup, kReps);
  std::printf("input: %zu x %zu bf16 gaussian, %d rotating buffers, median of %d reps\n", kRows,
              kCols, kBuffers, kReps);

  const size_t x_bytes = kN * sizeof(bf16), code_bytes = kN / 2, scale_bytes = kN / kMxBlock;
  std::vector<bf16> x_host(kN);
  {
    std::mt19937_64 rng(std::random_device{}());
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    for (auto& v : x_host) v = bf16_from_f32(gauss(rng));
  }

  bf16 *x[kBuffers], *y[kBuffers];
  uint8_t *codes[kBuffers], *scales[kBuffers];
  unsigned long long* first_bad = nullptr;
  for (int b = 0; b < kBuffers; ++b) {
    CUDA_CHECK(cudaMalloc(&x[b], x_bytes));
    CUDA_CHECK(cudaMalloc(&y[b], x_bytes));
    CUDA_CHECK(cudaMalloc(&codes[b], code_bytes));
    CUDA_CHECK(cudaMalloc(&scales[b], scale_bytes));
    CUDA_CHECK(cudaMemcpy(x[b], x_host.data(), x_bytes, cudaMemcpyHostToDevice));
  }
  CUDA_CHECK(cudaMalloc(&first_bad, sizeof *first_bad));
  CUDA_CHECK(cudaMemset(first_bad, 0xFF, sizeof *first_bad));

  // Correctness on a slice of rows (rows are whole blocks, so each row is checked on its own).
  constexpr ScaleRule kRules[] = {ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even,
                                  ScaleRule::mse};
  std::vector<uint8_t> got_codes(kCols / 2), got_scales(kCols / kMxBlock), ref_codes(kCols / 2),
      ref_scales(kCols / kMxBlock);
  std::vector<float> row(kCols), ref_y(kCols);
  std::vector<bf16> got_y(kCols);
  for (const ScaleRule rule : kRules) {
    const MxOptions opt{rule, TieRule::nearest_even, NonFinite::error};
    CUDA_CHECK(cudaMemset(codes[0], 0xA5, code_bytes));
    CUDA_CHECK(cudaMemset(y[0], 0xA5, x_bytes));
    CUDA_CHECK(mxfp4_quantize_cuda(x[0], ElemType::bf16, kN, codes[0], scales[0], opt, first_bad,
                                   nullptr));
    CUDA_CHECK(mxfp4_dequantize_cuda(codes[0], scales[0], kN, y[0], ElemType::bf16, nullptr));
    CUDA_CHECK(cudaDeviceSynchronize());
    for (const size_t r : kCheckRows) {
      for (size_t j = 0; j < kCols; ++j) row[j] = bf16_to_f32(x_host[r * kCols + j]);
      mxfp4_quantize_row_ref(row.data(), kCols, ref_codes.data(), ref_scales.data(), opt);
      mxfp4_dequantize_row_ref(ref_codes.data(), ref_scales.data(), kCols, ref_y.data());
      CUDA_CHECK(cudaMemcpy(got_codes.data(), codes[0] + r * kCols / 2, kCols / 2,
                            cudaMemcpyDeviceToHost));
      CUDA_CHECK(cudaMemcpy(got_scales.data(), scales[0] + r * kCols / kMxBlock, kCols / kMxBlock,
                            cudaMemcpyDeviceToHost));
      CUDA_CHECK(cudaMemcpy(got_y.data(), y[0] + r * kCols, kCols * sizeof(bf16),
                            cudaMemcpyDeviceToHost));
      bool ok = got_codes == ref_codes && got_scales == ref_scales;
      for (size_t j = 0; j < kCols; ++j) ok = ok && got_y[j].bits == bf16_from_f32(ref_y[j]).bits;
      if (!ok) {
        std::fprintf(stderr, "MISMATCH against the reference: rule %s, row %zu\n", scale_rule_name(rule),
                     r);
        return 1;
      }
    }
  }
  std::printf("check: quantize (4 rules) and dequantize match the reference on %zu rows\n",
              std::size(kCheckRows));

  std::vector<Row> rows;
  const double quant_bytes = double(x_bytes) + double(code_bytes) + double(scale_bytes);
  rows.push_back({"copy D2D", "-", timer.median_us([&](int i) {
                    CUDA_CHECK(cudaMemcpyAsync(y[i % kBuffers], x[(i + 1) % kBuffers], x_bytes,
                                               cudaMemcpyDeviceToDevice));
                  }),
                  2.0 * double(x_bytes)});
  for (const ScaleRule rule : kRules) {
    const MxOptions opt{rule, TieRule::nearest_even, NonFinite::error};
    rows.push_back({"quantize bf16->mxfp4", scale_rule_name(rule), timer.median_us([&](int i) {
                      const int b = i % kBuffers;
                      CUDA_CHECK(mxfp4_quantize_cuda(x[b], ElemType::bf16, kN, codes[b], scales[b],
                                                     opt, first_bad, nullptr));
                    }),
                    quant_bytes});
  }
  rows.push_back({"dequantize mxfp4->bf16", "-", timer.median_us([&](int i) {
                    const int b = i % kBuffers;
                    CUDA_CHECK(mxfp4_dequantize_cuda(codes[b], scales[b], kN, y[b], ElemType::bf16,
                                                     nullptr));
                  }),
                  quant_bytes});
  CUDA_CHECK(cudaDeviceSynchronize());

  const double copy_gbs = rows[0].bytes / rows[0].us * 1e-3;
  std::printf("\n| op | rule | median us | GB/s | %% of copy |\n|---|---|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const double gbs = r.bytes / r.us * 1e-3;
    std::printf("| %s | %s | %.1f | %.0f | %.1f%% |\n", r.op, r.rule, r.us, gbs,
                100.0 * gbs / copy_gbs);
  }

  for (int b = 0; b < kBuffers; ++b) {
    CUDA_CHECK(cudaFree(x[b]));
    CUDA_CHECK(cudaFree(y[b]));
    CUDA_CHECK(cudaFree(codes[b]));
    CUDA_CHECK(cudaFree(scales[b]));
  }
  CUDA_CHECK(cudaFree(first_bad));
  return 0;
}
