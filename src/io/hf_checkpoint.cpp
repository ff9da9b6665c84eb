#include "mxq/io/hf_checkpoint.h"

#include <filesystem>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <set>

#include "mxq/error.h"

namespace mxq::io {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

HfCheckpoint::HfCheckpoint(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) fail("{}: not a checkpoint directory", dir);
  config_ = read_json_file((fs::path(dir) / "config.json").string());
  if (!config_.is_object()) fail("{}/config.json: not a JSON object", dir);

  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;  // tensor -> shard file
  std::vector<std::string> shard_names;
  if (fs::exists(index)) {
    const auto j = read_json_file(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: no weight_map object", index.string());
    std::set<std::string> shards;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail("{}: weight_map['{}'] is not a file name", index.string(), tensor);
      const std::string f = file.get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
        fail("{}: weight_map['{}'] = '{}' is not a file name inside the directory", index.string(), tensor, f);
      weight_map[tensor] = f;
      if (shards.insert(f).second) shard_names.push_back(f);
    }
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    shard_names.push_back("model.safetensors");
  } else {
    fail("{}: neither model.safetensors nor model.safetensors.index.json", dir);
  }
  files_.reserve(shard_names.size());
  for (const auto& name : shard_names) {
    files_.emplace_back((fs::path(dir) / name).string());
    for (const auto& t : files_.back().tensors()) {
      if (!by_name_.emplace(t.name, &t).second) fail("{}: tensor '{}' appears in two shards", dir, t.name);
      if (!weight_map.empty()) {
        const auto it = weight_map.find(t.name);
        if (it == weight_map.end() || it->second != name)
          fail("{}: tensor '{}' is in {} but the index says {}", dir, t.name, name,
               it == weight_map.end() ? "nothing" : it->second);
      }
    }
  }
  if (!weight_map.empty() && weight_map.size() != by_name_.size())
    for (const auto& [tensor, file] : weight_map)
      if (!by_name_.count(tensor)) fail("{}: the index lists '{}' in {}, which does not hold it", dir, tensor, file);
  for (const auto& [name, t] : by_name_) order_.push_back(t);
}

const TensorView* HfCheckpoint::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> HfCheckpoint::side_files() const {
  std::vector<std::string> out;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                        "chat_template.jinja", "chat_template.json"})
    if (fs::exists(fs::path(dir_) / f)) out.push_back(f);
  return out;
}

}  // namespace mxq::io
