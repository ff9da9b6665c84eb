// A progress line for long CLI work: redrawn in place on a terminal, one line per tenth of the
// work when stderr is a file or pipe (logs stay short).
#pragma once

#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace mxq::cli {

class Progress {
 public:
  explicit Progress(size_t total) : total_(total), tty_(isatty(fileno(stderr)) != 0) {}

  void update(size_t done, const std::string& item) {
    if (tty_) {
      fmt::print(stderr, "\r[{:>5}/{}] {:<60.60}", done, total_, item);
    } else if (total_ > 0 && done * 10 / total_ != last_decile_) {
      last_decile_ = done * 10 / total_;
      fmt::print(stderr, "[{:>5}/{}] {}\n", done, total_, item);
    }
  }
  void finish() {
    if (tty_) fmt::print(stderr, "\r{:<80}\r", "");
  }

 private:
  size_t total_;
  bool tty_;
  size_t last_decile_ = 0;
};

}  // namespace mxq::cli
