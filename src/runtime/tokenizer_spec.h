// tokenizer_spec.h — what a tokenizer is, as its sources describe it, before anything is compiled:
// the loaders (tokenizer_hf.cpp, tokenizer_gguf.cpp) fill a TokenizerSpec, Tokenizer builds from it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mxq::runtime {

// HF's SplitDelimiterBehavior: where a regex match goes relative to the text around it.
enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct PreTokenizeStep {
  enum class Kind { split, byte_level } kind = Kind::split;
  // split: a PCRE2 pattern (or a literal string) and what to do with its matches.
  std::string pattern;
  bool literal = false;
  SplitBehavior behavior = SplitBehavior::isolated;
  bool invert = false;
  // byte_level: a space before each piece that does not start with one; GPT-2's regex split.
  bool add_prefix_space = false;
  bool use_regex = true;
};

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool normalized = false;  // matched after normalization, in HF's second pass
  bool lstrip = false, rstrip = false, single_word = false;
};

struct TokenizerSpec {
  std::string origin;                  // the file(s), for error messages
  std::vector<std::string> pieces;     // by id, in the byte-level alphabet; "" for an unused id
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
  std::vector<AddedToken> added;
  std::vector<PreTokenizeStep> pre_tokenizer;  // the last step is byte_level
  bool ignore_merges = false;          // a word found whole in the vocabulary is one token
  int32_t bos = -1, eos = -1;
  bool add_bos = false;
};

// GPT-2's reversible byte -> printable code point map (bytes_to_unicode): printable Latin-1 bytes
// stand for themselves, the other 68 bytes take code points 256.. in byte order.
uint32_t byte_level_code_point(uint8_t byte);

}  // namespace mxq::runtime
