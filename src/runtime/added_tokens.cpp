// added_tokens.cpp — HF AddedVocabulary's find_matches, over raw bytes.
#include "added_tokens.h"

#include <algorithm>

namespace mxq::runtime {
namespace {

// The UTF-8 length of the character starting with byte b (1 for a stray or invalid byte).
size_t utf8_length(uint8_t b) { return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

uint32_t decode_utf8(std::string_view c) {
  const auto b = [&](size_t i) { return uint32_t(uint8_t(c[i])); };
  switch (c.size()) {
    case 1: return b(0);
    case 2: return (b(0) & 0x1F) << 6 | (b(1) & 0x3F);
    case 3: return (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    default: return (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
  }
}

// Rust's char::is_whitespace: the Unicode White_Space property, which is this short list.
bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// The character that ends text[0, end): its start; `end` itself when there is none whole.
size_t last_char_start(std::string_view text, size_t end) {
  size_t i = end;
  while (i > 0 && end - i < 4) {
    --i;
    if ((uint8_t(text[i]) & 0xC0) != 0x80) return i + utf8_length(uint8_t(text[i])) == end ? i : end;
  }
  return end;
}

std::string_view char_at(std::string_view text, size_t pos) {
  const size_t n = std::min(utf8_length(uint8_t(text[pos])), text.size() - pos);
  return text.substr(pos, n);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, const std::string& origin)
    : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  for (uint32_t i = 0; i < tokens_.size(); ++i) by_first_byte_[uint8_t(tokens_[i].content[0])].push_back(i);
  for (auto& list : by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  if (std::any_of(tokens_.begin(), tokens_.end(), [](const AddedToken& t) { return t.single_word; }))
    word_char_ = std::make_unique<Pcre2Pattern>(R"(^[\p{Alphabetic}\p{N}_]$)", false, origin);
}

bool AddedTokenMatcher::is_word_char(std::string_view one_char) const {
  const MatchData md = make_match_data();
  return word_char_->found_in(one_char, md.get());
}

void AddedTokenMatcher::split(std::string_view text, size_t begin, size_t end, std::vector<TextSegment>& out) const {
  size_t plain_from = begin;  // where the text not yet given to a segment starts
  size_t pos = begin;
  while (pos < end) {
    const AddedToken* found = nullptr;
    for (const uint32_t i : by_first_byte_[uint8_t(text[pos])]) {
      const std::string& c = tokens_[i].content;
      if (c.size() <= end - pos && text.compare(pos, c.size(), c) == 0) {
        found = &tokens_[i];
        break;
      }
    }
    if (!found) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + found->content.size();
    pos = stop;  // the search goes on after the match itself, whatever the flags take in
    if (found->single_word) {
      const size_t before = last_char_start(text, start);
      const bool word_before = start > begin && before < start && before >= begin &&
                               is_word_char(text.substr(before, start - before));
      const bool word_after = stop < end && is_word_char(char_at(text.substr(0, end), stop));
      if (word_before || word_after) continue;
    }
    if (found->lstrip) {
      size_t s = start;
      while (s > begin) {
        const size_t c = last_char_start(text, s);
        if (c == s || c < begin || !is_white_space(decode_utf8(text.substr(c, s - c)))) break;
        s = c;
      }
      start = std::max(s, plain_from);
    }
    if (found->rstrip) {
      while (stop < end) {
        const std::string_view c = char_at(text.substr(0, end), stop);
        if (!is_white_space(decode_utf8(c))) break;
        stop += c.size();
      }
    }
    if (plain_from < start) out.push_back({plain_from, start, -1});
    out.push_back({start, stop, found->id});
    plain_from = stop;
  }
  if (plain_from < end) out.push_back({plain_from, end, -1});
}

}  // namespace mxq::runtime
