// pre_tokenizer.h — splits text into the pieces that BPE sees, as HF's pre-tokenizers do:
// regex splits (PCRE2 in UTF + Unicode-property mode, JIT-compiled) and the byte-level step.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer_spec.h"

namespace mxq::runtime {

class Pcre2Pattern;

class PreTokenizer {
 public:
  // Compiles every step's pattern; a pattern PCRE2 rejects is an mxq::Error naming `origin`.
  PreTokenizer(const std::vector<PreTokenizeStep>& steps, const std::string& origin);
  PreTokenizer(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // The non-empty pieces of `text`, in order. Their concatenation is the text, plus one space in
  // front of a piece where a byte-level step has add_prefix_space.
  std::vector<std::string> split(std::string_view text) const;

 private:
  struct Step {
    PreTokenizeStep spec;
    std::unique_ptr<Pcre2Pattern> pattern;  // null for a byte-level step without regex
  };
  std::vector<Step> steps_;
};

}  // namespace mxq::runtime
