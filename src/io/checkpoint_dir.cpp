#include "mxq/io/checkpoint_dir.h"

#include <fstream>

#include "mxq/error.h"

namespace mxq::io {

namespace fs = std::filesystem;

CheckpointDir::CheckpointDir(std::string dir, bool force) : dir_(std::move(dir)), tmp_(dir_.string() + ".tmp") {
  if (fs::exists(dir_) && !force) fail("{}: already exists (use --force to replace it)", dir_.string());
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  if (!fs::create_directories(tmp_, ec) || ec)
    fail("{}: cannot create the output directory: {}", tmp_.string(), ec ? ec.message() : "it exists");
}

CheckpointDir::~CheckpointDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void CheckpointDir::write_json(std::string_view file, const nlohmann::ordered_json& j) const {
  const std::string p = path(file);
  std::ofstream f(p);
  f << j.dump(2) << "\n";
  if (!f) fail("{}: write failed", p);
}

void CheckpointDir::copy_files(const std::string& src_dir, const std::vector<std::string>& files) const {
  for (const auto& f : files) {
    const fs::path src = fs::path(src_dir) / f;
    std::error_code ec;
    if (fs::exists(src) && !fs::copy_file(src, tmp_ / f, ec)) fail("{}: cannot copy: {}", src.string(), ec.message());
  }
}

void CheckpointDir::commit() {
  std::error_code ec;
  if (fs::exists(dir_)) fs::remove_all(dir_, ec);
  if (ec) fail("{}: cannot replace: {}", dir_.string(), ec.message());
  fs::rename(tmp_, dir_, ec);
  if (ec) fail("{}: cannot move the finished output into place: {}", dir_.string(), ec.message());
  committed_ = true;
}

}  // namespace mxq::io
