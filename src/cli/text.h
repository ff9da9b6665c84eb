// Small text helpers shared by the CLI's tables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mxq::cli {

// "[4096, 14336]"
inline std::string shape_str(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace mxq::cli
