// Glob matching as Python's fnmatch.fnmatchcase does it (see pattern.h).
#include "mxq/quant/pattern.h"

#include <cstddef>

namespace mxq::quant {
namespace {

constexpr size_t kNone = std::string_view::npos;

// Index just past the ']' that closes the class opened at pattern[open] ('['), or kNone when
// the class is unclosed (fnmatch then reads the '[' as a literal).
size_t class_end(std::string_view pattern, size_t open) {
  size_t j = open + 1;
  if (j < pattern.size() && pattern[j] == '!') ++j;
  if (j < pattern.size() && pattern[j] == ']') ++j;  // a leading ']' is a member
  while (j < pattern.size() && pattern[j] != ']') ++j;
  return j < pattern.size() ? j + 1 : kNone;
}

// Whether c is in the class pattern[open, end) ("[...]" including both brackets).
bool class_contains(std::string_view pattern, size_t open, size_t end, char c) {
  size_t i = open + 1;
  const size_t last = end - 1;  // the closing ']'
  const bool negated = pattern[i] == '!';
  if (negated) ++i;
  bool found = false;
  while (i < last) {
    // "a-z" is a range unless the '-' is the class's last character ("[a-]" holds 'a' and '-').
    if (i + 2 < last && pattern[i + 1] == '-') {
      found = found || (pattern[i] <= c && c <= pattern[i + 2]);
      i += 3;
    } else {
      found = found || pattern[i] == c;
      ++i;
    }
  }
  return found != negated;
}

// If the pattern element at pattern[p] (not '*') matches c, its length in the pattern; else 0.
size_t match_one(std::string_view pattern, size_t p, char c) {
  if (pattern[p] == '?') return 1;
  if (pattern[p] == '[') {
    const size_t end = class_end(pattern, p);
    if (end != kNone) return class_contains(pattern, p, end, c) ? end - p : 0;
  }
  return pattern[p] == c ? 1 : 0;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  // The most recent '*': where the pattern resumes after it, and the text position it has
  // swallowed up to. Only the latest star needs retrying: whatever an earlier star could absorb,
  // the latest one can absorb instead, which is what keeps this linear in backtracks.
  size_t star_p = kNone, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = ++p;
      star_t = t;
      continue;
    }
    if (p < pattern.size()) {
      if (const size_t len = match_one(pattern, p, text[t])) {
        p += len;
        ++t;
        continue;
      }
    }
    if (star_p == kNone) return false;
    p = star_p;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace mxq::quant
