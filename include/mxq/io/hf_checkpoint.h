// mxq/io/hf_checkpoint.h — a Hugging Face checkpoint directory: config.json plus one
// model.safetensors or shards listed by model.safetensors.index.json, all memory-mapped.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mxq/io/safetensors.h"

namespace mxq::io {

class HfCheckpoint {
 public:
  // Reads config.json and maps every shard; the index must name files inside the directory, and
  // it and the shards must agree tensor for tensor. Errors name the directory and the file.
  explicit HfCheckpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // Every tensor, sorted by name.
  const std::vector<const TensorView*>& tensors() const { return order_; }
  const TensorView* find(std::string_view name) const;
  // The files besides weights that a converted checkpoint carries over (tokenizer, generation).
  std::vector<std::string> side_files() const;

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<SafetensorsFile> files_;
  std::vector<const TensorView*> order_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

// A whole file as bytes, and a JSON file parsed; errors name the file (and the OS's reason).
std::string read_text_file(const std::string& path);
nlohmann::json read_json_file(const std::string& path);

}  // namespace mxq::io
