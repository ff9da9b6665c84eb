// mxq/io/quantized_checkpoint.h — the logical tensors of a (possibly) quantized Hugging Face
// checkpoint, whichever layout stores them:
//   * ModelOpt export and mxq's own: `<name>` U8 [..., K/2] + `<name>_scale` U8 [..., K/32] (MXFP4),
//     + F8_E4M3 [..., K/16] scales and an F32 `<name>_scale_2` (NVFP4), F8_E4M3 `<name>` with U8
//     block scales (MXFP8) or an F32 scalar scale (FP8 per tensor);
//   * GPT-OSS (config quant_method "mxfp4"): `<p>_blocks` U8 [..., G, 16] + `<p>_scales` U8 [..., G].
// Everything else is a dense tensor.
#pragma once

#include <string>
#include <vector>

#include "mxq/io/hf_checkpoint.h"

namespace mxq::io {

enum class StoredFormat : uint8_t { dense, mxfp4, nvfp4, mxfp8_e4m3, fp8_e4m3 };
const char* stored_format_name(StoredFormat f);

struct LogicalTensor {
  std::string name;              // e.g. "model.layers.0.mlp.up_proj.weight", "…experts.gate_up_proj"
  StoredFormat format = StoredFormat::dense;
  std::vector<uint64_t> shape;   // logical (unpacked) shape, K last
  const TensorView* data = nullptr;    // codes (or the dense tensor)
  const TensorView* scales = nullptr;  // block scales or the FP8 tensor scale
  const TensorView* scale2 = nullptr;  // NVFP4's tensor scale
  uint64_t stored_bytes() const;
};

// Groups the checkpoint's tensors into logical tensors, validating that every scale tensor fits its
// codes (dtype, rank, K / block); a mismatch is an error naming both tensors.
std::vector<LogicalTensor> logical_tensors(const HfCheckpoint& ck);

// The logical tensor as float32, row-major in its logical shape (exact for every format).
std::vector<float> dequantize(const LogicalTensor& t);

// Writes `ck` with every logical tensor as BF16 (exact for MXFP4 and MXFP8 values whose scale is
// in BF16's range) and without quantization_config: a checkpoint transformers loads as a plain
// model. GPT-OSS expert tensors come out in transformers' [E, in, out] orientation.
void dequantize_checkpoint(const HfCheckpoint& ck, const std::string& out_dir, bool force);

}  // namespace mxq::io
