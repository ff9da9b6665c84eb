// mxq/io/gguf_import.h — GGUF model -> Hugging Face-style checkpoint directory: config.json,
// model.safetensors (BF16 weights in transformers' names and layouts), tokenizer.json,
// tokenizer_config.json, special_tokens_map.json and generation_config.json.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace mxq::io {

struct ImportSummary {
  std::string architecture;  // transformers class, e.g. "LlamaForCausalLM"
  size_t tensors = 0;
  uint64_t parameters = 0;
  uint64_t bytes_written = 0;
};

// Called after each tensor: (tensors done, tensors in all, tensor name).
using ImportProgress = std::function<void(size_t, size_t, const std::string&)>;

// Writes into `out_dir + ".tmp"` and renames it into place at the end, so a failure leaves nothing
// under out_dir. An existing out_dir is an error unless `force`, which replaces it only on success.
ImportSummary import_gguf(const std::string& gguf_path, const std::string& out_dir, bool force,
                          const ImportProgress& progress = {});

}  // namespace mxq::io
