// added_tokens.h — finding added tokens ("<|im_start|>", user-defined pieces) in raw text before
// pre-tokenization, as HF's AddedVocabulary does.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "pcre2_pattern.h"
#include "tokenizer_spec.h"

namespace mxq::runtime {

// A run of text: an added token's id, or -1 for text that goes through pre-tokenization and BPE.
struct TextSegment { size_t begin, end; int32_t id; };

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens, const std::string& origin);

  // Splits [begin, end) of `text` into segments. Matches are leftmost-longest; then each token's
  // flags apply: single_word drops a match inside a word, lstrip/rstrip take the whitespace
  // around the match into the token.
  void split(std::string_view text, size_t begin, size_t end, std::vector<TextSegment>& out) const;

 private:
  bool is_word_char(std::string_view one_char) const;
  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices into tokens_, longest first
  std::unique_ptr<Pcre2Pattern> word_char_;  // Rust's char::is_alphanumeric, or '_'
};

}  // namespace mxq::runtime
