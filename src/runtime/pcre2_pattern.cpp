// pcre2_pattern.cpp — compiling and iterating PCRE2 matches.
//
// HF compiles its patterns with Oniguruma; PCRE2 with PCRE2_UCP gives \s, \p{L}, \p{N} and (?i)
// the same Unicode meaning and both are leftmost-first backtracking engines, so the matches are the
// same (tests/test_tokenizer.cpp checks this against HF's ids). PCRE2_MATCH_INVALID_UTF lets
// invalid UTF-8 through: such bytes match nothing, where a strict UTF mode would refuse the subject.
#include "pcre2_pattern.h"

#include "mxq/error.h"

namespace mxq::runtime {

MatchData make_match_data() {
  // One ovector pair: only the whole match is read (a pattern's own groups then give rc 0).
  MatchData md(pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  if (!md) fail("tokenizer: out of memory for regex match data");
  return md;
}

Pcre2Pattern::Pcre2Pattern(const std::string& pattern, bool literal, const std::string& origin) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  // PCRE2_LITERAL refuses PCRE2_UCP, which a literal does not need.
  const uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error,
                        &error_offset, nullptr);
  if (!code_) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    fail("{}: pre-tokenizer regex '{}' does not compile at offset {}: {}", origin, pattern, error_offset,
         reinterpret_cast<const char*>(message));
  }
  // Where JIT is unavailable pcre2_match interprets: slower, the same matches.
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

Pcre2Pattern::~Pcre2Pattern() { pcre2_code_free(code_); }

int Pcre2Pattern::match(std::string_view subject, size_t start, pcre2_match_data* md) const {
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = pcre2_match(code_, s, subject.size(), start, 0, md, nullptr);
  // The JIT's fixed machine stack can run out on a very long run of one class; the interpreter
  // keeps its backtracking frames on the heap.
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(code_, s, subject.size(), start, PCRE2_NO_JIT, md, nullptr);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof message);
    fail("tokenizer: regex match failed at byte {} of a {}-byte piece: {}", start, subject.size(),
         reinterpret_cast<const char*>(message));
  }
  return rc;
}

void Pcre2Pattern::spans(std::string_view subject, pcre2_match_data* md, std::vector<TextSpan>& out) const {
  out.clear();
  size_t start = 0, previous_end = 0;
  while (start <= subject.size() && match(subject, start, md) != PCRE2_ERROR_NOMATCH) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t begin = ov[0], end = ov[1];
    if (end == begin) {  // an empty match splits nothing: go on from the next character
      start = end + 1;
      while (start < subject.size() && (uint8_t(subject[start]) & 0xC0) == 0x80) ++start;
      continue;
    }
    if (begin > previous_end) out.push_back({previous_end, begin, false});
    out.push_back({begin, end, true});
    previous_end = start = end;
  }
  if (previous_end < subject.size()) out.push_back({previous_end, subject.size(), false});
}

bool Pcre2Pattern::found_in(std::string_view subject, pcre2_match_data* md) const {
  return match(subject, 0, md) != PCRE2_ERROR_NOMATCH;
}

}  // namespace mxq::runtime
