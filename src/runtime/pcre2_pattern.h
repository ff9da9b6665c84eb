// pcre2_pattern.h — a PCRE2 pattern compiled for tokenizer use: UTF-8 with Unicode properties
// (\s, \p{L}, \p{N} and (?i) have their Unicode meaning, as in HF's Oniguruma patterns), JIT.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mxq::runtime {

struct TextSpan { size_t begin, end; bool match; };

// Scratch space for one match at a time: one per thread, reused across calls.
using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;
MatchData make_match_data();

class Pcre2Pattern {
 public:
  // A pattern PCRE2 rejects is an mxq::Error naming `origin` and the offset.
  Pcre2Pattern(const std::string& pattern, bool literal, const std::string& origin);
  ~Pcre2Pattern();
  Pcre2Pattern(const Pcre2Pattern&) = delete;
  Pcre2Pattern& operator=(const Pcre2Pattern&) = delete;

  // The subject as alternating non-matching and (non-empty) matching spans, left to right, as the
  // find_iter loop in HF yields them. Invalid UTF-8 matches nothing and lands in non-matching spans.
  void spans(std::string_view subject, pcre2_match_data* md, std::vector<TextSpan>& out) const;
  // Whether the pattern matches anywhere in the subject.
  bool found_in(std::string_view subject, pcre2_match_data* md) const;

 private:
  int match(std::string_view subject, size_t start, pcre2_match_data* md) const;
  pcre2_code* code_ = nullptr;
};

}  // namespace mxq::runtime
