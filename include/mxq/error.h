// mxq/error.h — the one exception type of the host library. Messages say what is wrong and where
// (file, tensor, element), so that the CLI can print them as they are.
#pragma once

#include <stdexcept>
#include <string>

namespace mxq {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// fail() formats with fmt, whose compile-time format-string checks do not compile under nvcc: CUDA
// translation units throw Error with a built string instead.
}  // namespace mxq
#ifndef __CUDACC__
#include <fmt/core.h>
namespace mxq {
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace mxq
#endif  // __CUDACC__
