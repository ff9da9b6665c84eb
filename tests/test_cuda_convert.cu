// CUDA MXFP4 quantize / dequantize against the scalar references, bit for bit.
//
// Every test draws fresh random data (the seed is printed on failure), poisons the outputs before
// each launch (twice, with complementary bytes, so an unwritten byte cannot match the reference by
// chance) and checks guard bytes past the end of every output buffer. Without a CUDA device every
// test skips and says why.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mxq/format.h"
#include "mxq/format_ref.h"
#include "mxq/kernels/cuda/mx_convert.h"
#include "cuda_test_util.h"

namespace mxq {
namespace {


// ---------------------------------------------------------------------------------------------
// Test data: each 32-element block draws one kind, so every block rule meets every case.
// ---------------------------------------------------------------------------------------------

float random_finite_bits(std::mt19937_64& rng) {
  for (;;) {
    const float f = f32_from_bits(static_cast<uint32_t>(rng()));
    if (f32_is_finite(f)) return f;
  }
}

std::vector<float> make_block_data(size_t n, std::mt19937_64& rng) {
  static constexpr float kGridAndMidpoints[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f,
                                                2.0f, 2.5f,  3.0f, 3.5f,  4.0f, 5.0f,  6.0f};
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> kind_of(0, 7);
  std::uniform_int_distribution<int> any_int(0, 1 << 30);
  auto sign = [&] { return (rng() & 1) ? -1.0f : 1.0f; };
  std::vector<float> x(n);
  for (size_t b = 0; b < n; b += kMxBlock) {
    const size_t end = std::min(n, b + kMxBlock);
    const int kind = kind_of(rng);
    const int k = any_int(rng) % 241 - 130;  // block binade for the scaled kinds: [-130, 110]
    for (size_t i = b; i < end; ++i) {
      float v = 0.0f;
      switch (kind) {
        case 0:  // gaussian, block magnitude over many binades
          v = gauss(rng) * pow2f(k / 3);
          break;
        case 1:  // bf16-rounded gaussian: short mantissas, so scaled values often land on ties
          v = bf16_to_f32(bf16_from_f32(gauss(rng) * pow2f(k / 4)));
          break;
        case 2:  // exact E2M1 grid points and midpoints times 2^k; with a 6 or 4 present the scaled
                 // values are exactly these, so every tie rule is exercised
          v = sign() * kGridAndMidpoints[rng() % std::size(kGridAndMidpoints)] * pow2f(k);
          if (i == b + rng() % kMxBlock) v = sign() * ((rng() & 1) ? 6.0f : 4.0f) * pow2f(k);
          break;
        case 3:  // subnormals (and the smallest normals)
          v = f32_from_bits(static_cast<uint32_t>(rng()) & ((rng() & 7) ? 0x807FFFFFu : 0x80FFFFFFu));
          break;
        case 4:  // ±0, with an occasional tiny non-zero
          v = (rng() % 16 == 0) ? sign() * pow2f(-149 + static_cast<int>(rng() % 40)) : sign() * 0.0f;
          break;
        case 5:  // near FLT_MAX: candidates whose q * 2^s overflows
          v = sign() * f32_from_bits(0x7E000000u + static_cast<uint32_t>(rng() % 0x17FFFFFu));
          if (rng() % 8 == 0) v = sign() * FLT_MAX;
          break;
        case 6:  // any finite bit pattern: wide range inside one block
          v = random_finite_bits(rng);
          break;
        default:  // gaussian at unit scale
          v = gauss(rng);
          break;
      }
      x[i] = v;
    }
  }
  return x;
}

// Input bytes in the element type, and the float values the reference sees (bf16 inputs are widened
// exactly; values that bf16 would round to Inf are clamped to its largest finite value).
struct HostInput {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

HostInput make_input(const std::vector<float>& x, ElemType t) {
  HostInput in;
  if (t == ElemType::f32) {
    in.values = x;
    in.bytes.resize(x.size() * 4);
    std::memcpy(in.bytes.data(), x.data(), in.bytes.size());
    return in;
  }
  in.values.resize(x.size());
  in.bytes.resize(x.size() * 2);
  for (size_t i = 0; i < x.size(); ++i) {
    bf16 h = bf16_from_f32(x[i]);
    if (f32_is_finite(x[i]) && (h.bits & 0x7FFFu) == 0x7F80u)
      h.bits = static_cast<uint16_t>((h.bits & 0x8000u) | 0x7F7Fu);
    in.values[i] = bf16_to_f32(h);
    std::memcpy(&in.bytes[2 * i], &h.bits, 2);
  }
  return in;
}

size_t elem_size(ElemType t) { return t == ElemType::f32 ? 4 : 2; }
const char* name(ElemType t) { return t == ElemType::f32 ? "f32" : "bf16"; }

// ---------------------------------------------------------------------------------------------
// Quantize on the device, checking poison and guards; compares with the reference.
// x_offset / codes_offset (elements / bytes) move the buffers off their natural alignment.
// ---------------------------------------------------------------------------------------------

struct QuantizeCase {
  ElemType xt = ElemType::f32;
  MxOptions opt{};
  size_t x_offset = 0;
  size_t codes_offset = 0;
};

void expect_quantize_matches_ref(const HostInput& in, const QuantizeCase& c) {
  const size_t n = in.values.size();
  const size_t code_bytes = blocks_of(n, 2), scale_bytes = blocks_of(n, kMxBlock);

  std::vector<uint8_t> ref_codes(code_bytes), ref_scales(scale_bytes);
  const size_t ref_bad =
      mxfp4_quantize_row_ref(in.values.data(), n, ref_codes.data(), ref_scales.data(), c.opt);

  DeviceBuffer<uint8_t> x(in.bytes.size() + 16), codes(code_bytes + kGuard + 16),
      scales(scale_bytes + kGuard), first_bad(sizeof(unsigned long long));
  ASSERT_TRUE(x.get() && codes.get() && scales.get() && first_bad.get());
  uint8_t* x_dev = x.get() + c.x_offset * elem_size(c.xt);
  uint8_t* codes_dev = codes.get() + c.codes_offset;
  CUDA_ASSERT(cudaMemcpy(x_dev, in.bytes.data(), in.bytes.size(), cudaMemcpyHostToDevice));

  for (const uint8_t poison : {uint8_t{0xA5}, uint8_t{0x5A}}) {
    SCOPED_TRACE(testing::Message() << "poison 0x" << std::hex << int{poison});
    CUDA_ASSERT(cudaMemset(codes.get(), poison, code_bytes + kGuard + 16));
    CUDA_ASSERT(cudaMemset(scales.get(), poison, scale_bytes + kGuard));
    CUDA_ASSERT(cudaMemset(first_bad.get(), 0xFF, sizeof(unsigned long long)));  // ULLONG_MAX
    CUDA_ASSERT(mxfp4_quantize_cuda(x_dev, c.xt, n, codes_dev, scales.get(), c.opt,
                                    reinterpret_cast<unsigned long long*>(first_bad.get()), nullptr));
    CUDA_ASSERT(cudaDeviceSynchronize());

    std::vector<uint8_t> got_codes(code_bytes + kGuard + 16), got_scales(scale_bytes + kGuard);
    unsigned long long got_bad = 0;
    CUDA_ASSERT(cudaMemcpy(got_codes.data(), codes.get(), got_codes.size(), cudaMemcpyDeviceToHost));
    CUDA_ASSERT(cudaMemcpy(got_scales.data(), scales.get(), got_scales.size(), cudaMemcpyDeviceToHost));
    CUDA_ASSERT(cudaMemcpy(&got_bad, first_bad.get(), sizeof got_bad, cudaMemcpyDeviceToHost));

    // Guards: before the offset codes and past the end of both outputs.
    for (size_t i = 0; i < c.codes_offset; ++i) ASSERT_EQ(got_codes[i], poison) << "code guard " << i;
    for (size_t i = c.codes_offset + code_bytes; i < got_codes.size(); ++i)
      ASSERT_EQ(got_codes[i], poison) << "code guard " << i;
    for (size_t i = scale_bytes; i < got_scales.size(); ++i)
      ASSERT_EQ(got_scales[i], poison) << "scale guard " << i;

    if (c.opt.nonfinite == NonFinite::error) {
      ASSERT_EQ(got_bad, static_cast<unsigned long long>(ref_bad));
      if (ref_bad != kRowOk) continue;  // outputs are undefined after an error
    }
    for (size_t i = 0; i < scale_bytes; ++i)
      ASSERT_EQ(got_scales[i], ref_scales[i]) << "scale of block " << i;
    for (size_t i = 0; i < code_bytes; ++i)
      ASSERT_EQ(got_codes[c.codes_offset + i], ref_codes[i]) << "code byte " << i;
  }
}

constexpr size_t kLengths[] = {1, 2, 7, 31, 33, 95, 1000, 4097, 100003, (size_t{1} << 22) + 17};

class CudaQuantize : public testing::TestWithParam<ScaleRule> {};

TEST_P(CudaQuantize, MatchesRefEveryTieRuleAndDtype) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (const size_t n : kLengths)
    for (const ElemType xt : {ElemType::f32, ElemType::bf16})
      for (const TieRule ties : {TieRule::nearest_even, TieRule::toward_zero}) {
        SCOPED_TRACE(testing::Message() << "n " << n << " " << name(xt) << " " << tie_rule_name(ties));
        QuantizeCase c;
        c.xt = xt;
        c.opt = MxOptions{GetParam(), ties, NonFinite::error};
        expect_quantize_matches_ref(make_input(make_block_data(n, rng), xt), c);
        if (HasFatalFailure()) return;
      }
}

// Pointers off their vector alignment take the element-by-element path.
TEST_P(CudaQuantize, MatchesRefUnaligned) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (const size_t n : {size_t{33}, size_t{4097}, size_t{100003}})
    for (const ElemType xt : {ElemType::f32, ElemType::bf16})
      for (const size_t x_offset : {size_t{0}, size_t{1}, size_t{3}})
        for (const size_t codes_offset : {size_t{0}, size_t{1}, size_t{2}}) {
          SCOPED_TRACE(testing::Message() << "n " << n << " " << name(xt) << " x+" << x_offset
                                          << " codes+" << codes_offset);
          QuantizeCase c;
          c.xt = xt;
          c.opt = MxOptions{GetParam(), (rng() & 1) ? TieRule::nearest_even : TieRule::toward_zero,
                            NonFinite::error};
          c.x_offset = x_offset;
          c.codes_offset = codes_offset;
          expect_quantize_matches_ref(make_input(make_block_data(n, rng), xt), c);
          if (HasFatalFailure()) return;
        }
}

// NaN / ±Inf: under NonFinite::error the smallest bad index (the reference's return value); under
// nan_scale the 0xFF blocks with zero codes, bit for bit.
TEST_P(CudaQuantize, NonFiniteMatchesRef) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const float specials[] = {std::nanf(""), -std::nanf(""), INFINITY, -INFINITY,
                            f32_from_bits(0x7F800001u), f32_from_bits(0xFFFFFFFFu)};
  for (const size_t n : {size_t{1}, size_t{33}, size_t{4097}, size_t{100003}})
    for (const ElemType xt : {ElemType::f32, ElemType::bf16})
      for (const NonFinite policy : {NonFinite::error, NonFinite::nan_scale})
        for (const int bad_count : {0, 1, 5, 200}) {
          SCOPED_TRACE(testing::Message() << "n " << n << " " << name(xt) << " bad " << bad_count
                                          << (policy == NonFinite::error ? " error" : " nan_scale"));
          std::vector<float> x = make_block_data(n, rng);
          for (int i = 0; i < bad_count; ++i) x[rng() % n] = specials[rng() % std::size(specials)];
          QuantizeCase c;
          c.xt = xt;
          c.opt = MxOptions{GetParam(), (rng() & 1) ? TieRule::nearest_even : TieRule::toward_zero,
                            policy};
          expect_quantize_matches_ref(make_input(x, xt), c);
          if (HasFatalFailure()) return;
        }
}

INSTANTIATE_TEST_SUITE_P(AllRules, CudaQuantize,
                         testing::Values(ScaleRule::ocp_floor, ScaleRule::ceil, ScaleRule::even,
                                         ScaleRule::mse),
                         [](const testing::TestParamInfo<ScaleRule>& info) {
                           return std::string(scale_rule_name(info.param));
                         });

// ---------------------------------------------------------------------------------------------
// The integer-pipe E2M1 encoder equals format.h's on every float32 bit pattern but NaN.
// ---------------------------------------------------------------------------------------------

__global__ void count_encoder_mismatches(TieRule ties, unsigned long long* mismatches) {
  unsigned long long local = 0;
  const uint64_t stride = uint64_t{gridDim.x} * blockDim.x;
  for (uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < (uint64_t{1} << 32);
       i += stride) {
    const uint32_t bits = static_cast<uint32_t>(i);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) continue;
    const float v = __uint_as_float(bits);
    local += e2m1_from_scaled_int(v, ties) != e2m1_from_scaled(v, ties);
  }
  if (local) atomicAdd(mismatches, local);
}

TEST(CudaE2m1, IntegerEncoderEqualsFormatOnEveryFloat) {
  SKIP_WITHOUT_CUDA_DEVICE();
  DeviceBuffer<uint8_t> count(sizeof(unsigned long long));
  ASSERT_TRUE(count.get());
  for (const TieRule ties : {TieRule::nearest_even, TieRule::toward_zero}) {
    SCOPED_TRACE(tie_rule_name(ties));
    CUDA_ASSERT(cudaMemset(count.get(), 0, sizeof(unsigned long long)));
    count_encoder_mismatches<<<4096, 256>>>(ties, reinterpret_cast<unsigned long long*>(count.get()));
    CUDA_ASSERT(cudaGetLastError());
    unsigned long long mismatches = ~0ull;
    CUDA_ASSERT(cudaMemcpy(&mismatches, count.get(), sizeof mismatches, cudaMemcpyDeviceToHost));
    EXPECT_EQ(mismatches, 0u);
  }
}

// ---------------------------------------------------------------------------------------------
// The integer mse error term equals format.h's float64 one on the device too (this file's kernels
// are compiled like the library's, with --fmad=false): 2^30 hashed (x, s, amax_log2, ties) draws,
// half of them shaped as the quantizer produces them.
// ---------------------------------------------------------------------------------------------

__device__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__global__ void count_mse_error_mismatches(uint64_t seed, unsigned long long* mismatches) {
  unsigned long long local = 0;
  const uint64_t stride = uint64_t{gridDim.x} * blockDim.x;
  for (uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < (uint64_t{1} << 30);
       i += stride) {
    const uint64_t r = mix64(seed + i);
    uint32_t bits = static_cast<uint32_t>(r);
    if ((bits & 0x7F800000u) == 0x7F800000u) bits &= 0xFF7FFFFFu;
    const float x = __uint_as_float(bits);
    const TieRule ties = (r >> 32) & 1 ? TieRule::nearest_even : TieRule::toward_zero;
    int s = 0, amax_log2 = 0;
    if ((r >> 33) & 1) {
      const int floor_x = x == 0.0f ? -149 : f32_floor_log2(x);
      amax_log2 = min(127, floor_x + static_cast<int>((r >> 34) & 3));
      const int centre = mx_scale_exp(pow2f(amax_log2), ScaleRule::ocp_floor, kMxE2M1);
      s = mx_mse_candidate(centre, static_cast<int>((r >> 36) % kMseCandidates));
    } else {
      s = static_cast<int>((r >> 34) % 255) - 127;
      amax_log2 = static_cast<int>((r >> 44) % 277) - 149;
    }
    local += mxfp4_mse_element_error_int(x, s, amax_log2, ties) !=
             mxfp4_mse_element_error(x, s, amax_log2, ties);
  }
  if (local) atomicAdd(mismatches, local);
}

TEST(CudaMse, IntegerErrorEqualsFormatOnDevice) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  DeviceBuffer<uint8_t> count(sizeof(unsigned long long));
  ASSERT_TRUE(count.get());
  CUDA_ASSERT(cudaMemset(count.get(), 0, sizeof(unsigned long long)));
  count_mse_error_mismatches<<<4096, 256>>>(seed, reinterpret_cast<unsigned long long*>(count.get()));
  CUDA_ASSERT(cudaGetLastError());
  unsigned long long mismatches = ~0ull;
  CUDA_ASSERT(cudaMemcpy(&mismatches, count.get(), sizeof mismatches, cudaMemcpyDeviceToHost));
  EXPECT_EQ(mismatches, 0u);
}

// ---------------------------------------------------------------------------------------------
// Dequantize: random codes and scales (0x00, 0xFE and the NaN 0xFF included) to f32 and bf16.
// ---------------------------------------------------------------------------------------------

void expect_dequantize_matches_ref(size_t n, ElemType yt, size_t y_offset, size_t codes_offset,
                                   std::mt19937_64& rng) {
  const size_t code_bytes = blocks_of(n, 2), scale_bytes = blocks_of(n, kMxBlock);
  std::vector<uint8_t> codes(code_bytes), scales(scale_bytes);
  for (auto& b : codes) b = static_cast<uint8_t>(rng());
  for (auto& s : scales) {
    const uint64_t r = rng() % 16;
    s = r == 0 ? 0x00 : r == 1 ? 0xFE : r == 2 ? kE8M0Nan : static_cast<uint8_t>(rng());
  }
  std::vector<float> ref(n);
  mxfp4_dequantize_row_ref(codes.data(), scales.data(), n, ref.data());

  const size_t es = elem_size(yt), y_bytes = n * es;
  DeviceBuffer<uint8_t> codes_dev(code_bytes + 16), scales_dev(scale_bytes), y(y_bytes + kGuard + 16 * es);
  ASSERT_TRUE(codes_dev.get() && scales_dev.get() && y.get());
  CUDA_ASSERT(cudaMemcpy(codes_dev.get() + codes_offset, codes.data(), code_bytes,
                         cudaMemcpyHostToDevice));
  CUDA_ASSERT(cudaMemcpy(scales_dev.get(), scales.data(), scale_bytes, cudaMemcpyHostToDevice));
  const size_t y_start = y_offset * es;
  const size_t y_total = y_bytes + kGuard + 16 * es;

  for (const uint8_t poison : {uint8_t{0xA5}, uint8_t{0x5A}}) {
    SCOPED_TRACE(testing::Message() << "poison 0x" << std::hex << int{poison});
    CUDA_ASSERT(cudaMemset(y.get(), poison, y_total));
    CUDA_ASSERT(mxfp4_dequantize_cuda(codes_dev.get() + codes_offset, scales_dev.get(), n,
                                      y.get() + y_start, yt, nullptr));
    CUDA_ASSERT(cudaDeviceSynchronize());
    std::vector<uint8_t> got(y_total);
    CUDA_ASSERT(cudaMemcpy(got.data(), y.get(), y_total, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < y_start; ++i) ASSERT_EQ(got[i], poison) << "guard " << i;
    for (size_t i = y_start + y_bytes; i < y_total; ++i) ASSERT_EQ(got[i], poison) << "guard " << i;

    // Bit for bit; a NaN must be NaN (its payload is not part of the format).
    for (size_t j = 0; j < n; ++j) {
      uint32_t want = f32_bits(ref[j]), have = 0;
      if (yt == ElemType::f32) {
        std::memcpy(&have, &got[y_start + 4 * j], 4);
      } else {
        uint16_t h = 0;
        std::memcpy(&h, &got[y_start + 2 * j], 2);
        have = h;
        want = bf16_from_f32(ref[j]).bits;
      }
      if (std::isnan(ref[j])) {
        const bool have_nan = yt == ElemType::f32 ? std::isnan(f32_from_bits(have))
                                                  : std::isnan(bf16_to_f32(bf16{static_cast<uint16_t>(have)}));
        ASSERT_TRUE(have_nan) << "element " << j;
      } else {
        ASSERT_EQ(have, want) << "element " << j << " ref " << ref[j];
      }
    }
  }
}

TEST(CudaDequantize, MatchesRef) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (const size_t n : kLengths)
    for (const ElemType yt : {ElemType::f32, ElemType::bf16}) {
      SCOPED_TRACE(testing::Message() << "n " << n << " " << name(yt));
      expect_dequantize_matches_ref(n, yt, 0, 0, rng);
      if (HasFatalFailure()) return;
    }
}

TEST(CudaDequantize, MatchesRefUnaligned) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (const size_t n : {size_t{33}, size_t{4097}, size_t{100003}})
    for (const ElemType yt : {ElemType::f32, ElemType::bf16})
      for (const size_t y_offset : {size_t{0}, size_t{1}, size_t{3}})
        for (const size_t codes_offset : {size_t{0}, size_t{1}}) {
          SCOPED_TRACE(testing::Message() << "n " << n << " " << name(yt) << " y+" << y_offset
                                          << " codes+" << codes_offset);
          expect_dequantize_matches_ref(n, yt, y_offset, codes_offset, rng);
          if (HasFatalFailure()) return;
        }
}

}  // namespace
}  // namespace mxq
