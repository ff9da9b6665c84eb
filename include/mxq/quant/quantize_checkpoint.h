// mxq/quant/quantize_checkpoint.h — the RTN quantizer pipeline: a recipe applied to a Hugging Face
// checkpoint, tensor by tensor, written in ModelOpt's export layout (weight U8 [N, K/2] +
// weight_scale U8 [N, K/32] for MXFP4) with config.json / hf_quant_config.json that say so.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mxq/io/hf_checkpoint.h"
#include "mxq/io/safetensors.h"
#include "mxq/quant/recipe.h"

namespace mxq::quant {

struct PlanEntry {
  std::string name;  // the tensor written: source->name, or lm_head.weight untied from the embedding
  const io::TensorView* source;
  Decision decision;
  std::vector<io::TensorSpec> outputs;  // what the tensor becomes: itself, or weight + scales
  uint64_t bytes_before = 0, bytes_after = 0;
};

struct Plan {
  std::vector<PlanEntry> entries;  // sorted by name (the checkpoint's tensor order)
  uint64_t bytes_before = 0, bytes_after = 0;
  size_t quantized = 0;
  // The checkpoint ties its LM head to model.embed_tokens.weight (tie_word_embeddings, no
  // lm_head.weight) and the recipe quantizes lm_head: the plan has an extra entry lm_head.weight
  // whose source is the embedding (which itself stays as it is), and the output's config.json says
  // tie_word_embeddings = false, so engines load the head from its own tensors.
  bool untied_lm_head = false;
};

// Decides every tensor. A block format asked for a tensor whose K is not a multiple of the block is
// an error naming the tensor, unless `allow_unquantized_k` keeps it unquantized instead.
Plan make_plan(const io::HfCheckpoint& in, const Recipe& recipe, bool allow_unquantized_k);

struct QuantizeOptions {
  bool force = false;                        // replace an existing output directory
  int threads = 0;                           // 0 = every core
  uint64_t max_shard_bytes = 5'000'000'000;  // shards of at most this many bytes (one tensor may exceed it)
};

// Called after each tensor with its plan entry and, for a quantized one, the SQNR in dB of its
// dequantized values against the source (NaN for a kept tensor).
using TensorDone = std::function<void(size_t index, const PlanEntry&, double sqnr_db)>;

struct QuantizeSummary {
  size_t shards = 0;
  double seconds = 0;
  uint64_t bytes_read = 0, bytes_written = 0;
};

// Writes into `out_dir + ".tmp"` and renames it into place at the end, so nothing is left under
// out_dir on any error; an existing out_dir is an error unless options.force.
QuantizeSummary quantize_checkpoint(const io::HfCheckpoint& in, const Plan& plan, const Recipe& recipe,
                                    const std::string& out_dir, const QuantizeOptions& options,
                                    const TensorDone& on_tensor = {});

}  // namespace mxq::quant
