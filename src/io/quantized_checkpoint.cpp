#include "mxq/io/quantized_checkpoint.h"

#include <cstring>
#include <set>

#include "mxq/error.h"
#include "mxq/format_ref.h"
#include "mxq/io/checkpoint_dir.h"
#include "mxq/io/gguf.h"

namespace mxq::io {
namespace {

uint64_t product(const std::vector<uint64_t>& s) {
  uint64_t n = 1;
  for (uint64_t d : s) n *= d;
  return n;
}

// `scales` must be `data`'s shape with the last dim replaced by `last`, and of dtype `dt`.
void expect_scales(const TensorView& data, const TensorView& scales, DType dt, uint64_t last) {
  std::vector<uint64_t> want = data.shape;
  want.back() = last;
  if (scales.dtype != dt || scales.shape != want)
    fail("tensor '{}': its scales '{}' are {} {} where {} with last dim {} is expected", data.name, scales.name,
         dtype_info(scales.dtype).name, scales.shape.size(), dtype_info(dt).name, last);
}

}  // namespace

const char* stored_format_name(StoredFormat f) {
  switch (f) {
    case StoredFormat::dense: return "dense";
    case StoredFormat::mxfp4: return "mxfp4";
    case StoredFormat::nvfp4: return "nvfp4";
    case StoredFormat::mxfp8_e4m3: return "mxfp8_e4m3";
    case StoredFormat::fp8_e4m3: return "fp8_e4m3";
  }
  return "?";
}

uint64_t LogicalTensor::stored_bytes() const {
  uint64_t n = 0;
  for (const TensorView* t : {data, scales, scale2})
    if (t) n += t->data.size();
  return n;
}

std::vector<LogicalTensor> logical_tensors(const HfCheckpoint& ck) {
  const bool gpt_oss = ck.config().contains("quantization_config") &&
                       ck.config()["quantization_config"].value("quant_method", "") == "mxfp4";
  std::set<std::string> consumed;
  std::vector<LogicalTensor> out;
  for (const TensorView* t : ck.tensors()) {
    if (consumed.count(t->name)) continue;
    LogicalTensor l{t->name, StoredFormat::dense, t->shape, t, nullptr, nullptr};
    const bool has_k = !t->shape.empty();
    if (gpt_oss && t->name.ends_with("_blocks")) {
      const std::string base = t->name.substr(0, t->name.size() - 7);
      const TensorView* s = ck.find(base + "_scales");
      if (!s) fail("{}: '{}' has no '{}_scales'", ck.dir(), t->name, base);
      if (t->dtype != DType::u8 || t->shape.size() < 2 || t->shape.back() != 16)
        fail("tensor '{}': GPT-OSS blocks must be U8 [..., G, 16]", t->name);
      std::vector<uint64_t> want(t->shape.begin(), t->shape.end() - 1);
      if (s->dtype != DType::u8 || s->shape != want) fail("tensor '{}': its scales '{}' do not match [..., G]", t->name, s->name);
      l.name = base, l.format = StoredFormat::mxfp4, l.scales = s;
      l.shape = want, l.shape.back() *= kMxBlock;
      consumed.insert(s->name);
    } else if (const TensorView* s = has_k ? ck.find(t->name + "_scale") : nullptr) {
      const TensorView* s2 = ck.find(t->name + "_scale_2");
      const uint64_t k_stored = t->shape.back();
      if (t->dtype == DType::u8 && s2) {
        l.format = StoredFormat::nvfp4, l.shape.back() = 2 * k_stored;
        expect_scales(*t, *s, DType::f8_e4m3, l.shape.back() / kNvfp4Block);
        if (s2->dtype != DType::f32 || s2->elements() != 1) fail("tensor '{}': '{}' must be one F32", t->name, s2->name);
        l.scale2 = s2;
        consumed.insert(s2->name);
      } else if (t->dtype == DType::u8) {
        l.format = StoredFormat::mxfp4, l.shape.back() = 2 * k_stored;
        expect_scales(*t, *s, DType::u8, l.shape.back() / kMxBlock);
      } else if (t->dtype == DType::f8_e4m3 && s->dtype == DType::u8) {
        l.format = StoredFormat::mxfp8_e4m3;
        expect_scales(*t, *s, DType::u8, k_stored / kMxBlock);
      } else if (t->dtype == DType::f8_e4m3 && s->dtype == DType::f32 && s->elements() == 1) {
        l.format = StoredFormat::fp8_e4m3;
      } else {
        fail("tensor '{}' ({}) with scale '{}' ({}) is no layout mxq knows", t->name, dtype_info(t->dtype).name, s->name,
             dtype_info(s->dtype).name);
      }
      l.scales = s;
      consumed.insert(s->name);
    }
    out.push_back(std::move(l));
  }
  // A scale tensor whose codes come later in name order was pushed as dense: drop those.
  std::erase_if(out, [&](const LogicalTensor& l) { return l.format == StoredFormat::dense && consumed.count(l.name); });
  return out;
}

std::vector<float> dequantize(const LogicalTensor& t) {
  const size_t n = product(t.shape);
  std::vector<float> y(n);
  const uint8_t* d = t.data->data.data();
  switch (t.format) {
    case StoredFormat::mxfp4: mxfp4_dequantize_row_ref(d, t.scales->data.data(), n, y.data()); break;
    case StoredFormat::mxfp8_e4m3: mxfp8_dequantize_row_ref(d, t.scales->data.data(), n, y.data()); break;
    case StoredFormat::nvfp4: {
      float ts;
      std::memcpy(&ts, t.scale2->data.data(), 4);
      nvfp4_dequantize_row_ref(d, t.scales->data.data(), n, ts, y.data());
      break;
    }
    case StoredFormat::fp8_e4m3: {
      float s;
      std::memcpy(&s, t.scales->data.data(), 4);
      for (size_t i = 0; i < n; ++i) y[i] = e4m3_to_f32(d[i]) * s;
      break;
    }
    case StoredFormat::dense: {
      // The F32 / F16 / BF16 byte decoders are the ones the GGUF reader uses for those types.
      GgmlType g = GgmlType::f32;
      switch (t.data->dtype) {
        case DType::f32: g = GgmlType::f32; break;
        case DType::bf16: g = GgmlType::bf16; break;
        case DType::f16: g = GgmlType::f16; break;
        default: fail("tensor '{}': dtype {} has no float value", t.name, dtype_info(t.data->dtype).name);
      }
      ggml_type_info(static_cast<uint32_t>(g))->dequantize(d, n, y.data());
      break;
    }
  }
  return y;
}

void dequantize_checkpoint(const HfCheckpoint& ck, const std::string& out_dir, bool force) {
  const bool gpt_oss = ck.config().contains("quantization_config") &&
                       ck.config()["quantization_config"].value("quant_method", "") == "mxfp4";
  const auto tensors = logical_tensors(ck);
  // GPT-OSS stores experts [E, out, in] (quantized along in); transformers holds them [E, in, out].
  auto transposed = [&](const LogicalTensor& t) { return gpt_oss && t.format != StoredFormat::dense && t.shape.size() == 3; };
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) {
    std::vector<uint64_t> shape = t.shape;
    if (transposed(t)) std::swap(shape[1], shape[2]);
    const bool keep = t.format == StoredFormat::dense && t.data->dtype != DType::f32 && t.data->dtype != DType::f16;
    specs.push_back({t.name, keep ? t.data->dtype : DType::bf16, shape});
  }
  CheckpointDir out(out_dir, force);
  SafetensorsStreamWriter w(out.path("model.safetensors"), specs, {{"format", "pt"}});
  for (size_t i = 0; i < tensors.size(); ++i) {
    const LogicalTensor& t = tensors[i];
    if (specs[i].dtype == t.data->dtype && t.format == StoredFormat::dense) {  // BF16, ints: as stored
      w.append(t.name, t.data->data);
      continue;
    }
    const std::vector<float> y = dequantize(t);
    std::vector<uint16_t> bits(y.size());
    if (transposed(t)) {
      const uint64_t e = t.shape[0], r = t.shape[1], k = t.shape[2];
      for (uint64_t a = 0; a < e; ++a)
        for (uint64_t i2 = 0; i2 < r; ++i2)
          for (uint64_t j = 0; j < k; ++j) bits[(a * k + j) * r + i2] = bf16_from_f32(y[(a * r + i2) * k + j]).bits;
    } else {
      for (size_t j = 0; j < y.size(); ++j) bits[j] = bf16_from_f32(y[j]).bits;
    }
    w.append(t.name, {reinterpret_cast<const uint8_t*>(bits.data()), bits.size() * 2});
  }
  w.commit();
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(ck.config().dump());
  config.erase("quantization_config");
  config["torch_dtype"] = "bfloat16";
  out.write_json("config.json", config);
  out.copy_files(ck.dir(), ck.side_files());
  out.commit();
}

}  // namespace mxq::io
