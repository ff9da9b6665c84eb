// Decoders of the ggml block types (layouts as in ggml-common.h; reference/numerics.md §9), checked
// against gguf-py's decoders by tests/golden/ggml_blocks.json. All little-endian.
#include <cstring>

#include "mxq/format.h"
#include "mxq/io/gguf.h"

namespace mxq::io {
namespace {

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(fp16{h});
}

// n may be 0 with y null (an empty tensor): memcpy must not see a null pointer even then.
void dequant_f32(const uint8_t* s, size_t n, float* y) {
  if (n > 0) std::memcpy(y, s, n * 4);
}
void dequant_f16(const uint8_t* s, size_t n, float* y) {
  for (size_t i = 0; i < n; ++i) y[i] = f16_at(s + 2 * i);
}
void dequant_bf16(const uint8_t* s, size_t n, float* y) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    y[i] = bf16_to_f32(bf16{h});
  }
}

// Q4_0: f16 d, 16 bytes; element j in the low nibble, j + 16 in the high nibble; value d·(q − 8).
void dequant_q4_0(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 32; ++b, s += 18, y += 32) {
    const float d = f16_at(s);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * ((s[2 + j] & 15) - 8);
      y[j + 16] = d * ((s[2 + j] >> 4) - 8);
    }
  }
}
// Q4_1: f16 d, f16 m, 16 bytes; value d·q + m.
void dequant_q4_1(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 32; ++b, s += 20, y += 32) {
    const float d = f16_at(s), m = f16_at(s + 2);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * (s[4 + j] & 15) + m;
      y[j + 16] = d * (s[4 + j] >> 4) + m;
    }
  }
}
// Q5_0 / Q5_1: as Q4 plus a 32-bit word of fifth bits (bit j for element j).
void dequant_q5_0(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 32; ++b, s += 22, y += 32) {
    const float d = f16_at(s);
    uint32_t qh;
    std::memcpy(&qh, s + 2, 4);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * (static_cast<int>((s[6 + j] & 15) | (((qh >> j) & 1) << 4)) - 16);
      y[j + 16] = d * (static_cast<int>((s[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
    }
  }
}
void dequant_q5_1(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 32; ++b, s += 24, y += 32) {
    const float d = f16_at(s), m = f16_at(s + 2);
    uint32_t qh;
    std::memcpy(&qh, s + 4, 4);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((s[8 + j] & 15) | (((qh >> j) & 1) << 4)) + m;
      y[j + 16] = d * static_cast<float>((s[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) + m;
    }
  }
}
// Q8_0: f16 d, 32 int8; value d·q.
void dequant_q8_0(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 32; ++b, s += 34, y += 32) {
    const float d = f16_at(s);
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<int8_t>(s[2 + j]);
  }
}
// Q4_K (256): f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs for 8 sub-blocks, 128 bytes of
// nibbles. Each 64 outputs use 32 bytes: low nibbles for sub-block 2c, high for 2c + 1.
void dequant_q4_k(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 256; ++b, s += 144) {
    const float d = f16_at(s), dmin = f16_at(s + 2);
    const uint8_t* sc = s + 4;
    const uint8_t* q = s + 16;
    auto scale_min = [&](int i, int& scale, int& min) {
      if (i < 4) {
        scale = sc[i] & 63, min = sc[i + 4] & 63;
      } else {
        scale = (sc[i + 4] & 15) | ((sc[i - 4] >> 6) << 4);
        min = (sc[i + 4] >> 4) | ((sc[i] >> 6) << 4);
      }
    };
    for (int c = 0; c < 4; ++c, q += 32) {
      int sa, ma, sb, mb;
      scale_min(2 * c, sa, ma);
      scale_min(2 * c + 1, sb, mb);
      for (int l = 0; l < 32; ++l) *y++ = d * sa * (q[l] & 15) - dmin * ma;
      for (int l = 0; l < 32; ++l) *y++ = d * sb * (q[l] >> 4) - dmin * mb;
    }
  }
}
// Q6_K (256): 128 bytes low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, f16 d; two halves of
// 128 outputs, each interleaving four 32-output groups.
void dequant_q6_k(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 256; ++b, s += 210) {
    const float d = f16_at(s + 208);
    const uint8_t* ql = s;
    const uint8_t* qh = s + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(s + 192);
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}
// MXFP4 in ggml's layout: E8M0 byte, then element j low / j + 16 high. Decoded with mxq's E8M0
// (0xFF = NaN; ggml would give a finite 2^127 multiple there).
void dequant_mxfp4(const uint8_t* s, size_t n, float* y) {
  for (size_t b = 0; b < n / 32; ++b, s += 17, y += 32) {
    const float scale = e8m0_to_f32(s[0]);
    for (int j = 0; j < 16; ++j) {
      y[j] = e2m1_to_f32(e2m1_unpack(s[1 + j], 0)) * scale;
      y[j + 16] = e2m1_to_f32(e2m1_unpack(s[1 + j], 1)) * scale;
    }
  }
}

constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::f32, "F32", 1, 4, dequant_f32},       {GgmlType::f16, "F16", 1, 2, dequant_f16},
    {GgmlType::bf16, "BF16", 1, 2, dequant_bf16},    {GgmlType::q4_0, "Q4_0", 32, 18, dequant_q4_0},
    {GgmlType::q4_1, "Q4_1", 32, 20, dequant_q4_1},  {GgmlType::q5_0, "Q5_0", 32, 22, dequant_q5_0},
    {GgmlType::q5_1, "Q5_1", 32, 24, dequant_q5_1},  {GgmlType::q8_0, "Q8_0", 32, 34, dequant_q8_0},
    {GgmlType::q4_k, "Q4_K", 256, 144, dequant_q4_k}, {GgmlType::q6_k, "Q6_K", 256, 210, dequant_q6_k},
    {GgmlType::mxfp4, "MXFP4", 32, 17, dequant_mxfp4},
};

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type_id) {
  for (const auto& t : kTypes)
    if (static_cast<uint32_t>(t.type) == type_id) return &t;
  return nullptr;
}

}  // namespace mxq::io
