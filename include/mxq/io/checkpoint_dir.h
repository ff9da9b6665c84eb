// mxq/io/checkpoint_dir.h — an output directory written atomically: everything goes into
// `<dir>.tmp`, and commit() puts it in place of `<dir>`. Destroyed uncommitted (an error on the way),
// it removes the temporary directory, so a failure leaves nothing under either name.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mxq::io {

class CheckpointDir {
 public:
  // An existing `dir` is an error unless `force`, and is replaced only by commit().
  CheckpointDir(std::string dir, bool force);
  ~CheckpointDir();
  CheckpointDir(const CheckpointDir&) = delete;
  CheckpointDir& operator=(const CheckpointDir&) = delete;

  std::string path(std::string_view file) const { return (tmp_ / file).string(); }
  void write_json(std::string_view file, const nlohmann::ordered_json& j) const;
  // Copies the named files of `src_dir` (those that exist) into the directory.
  void copy_files(const std::string& src_dir, const std::vector<std::string>& files) const;
  void commit();

 private:
  std::filesystem::path dir_, tmp_;
  bool committed_ = false;
};

}  // namespace mxq::io
