// pre_tokenizer.cpp — HF's pre-tokenizer steps: regex splits with SplitDelimiterBehavior semantics
// and the byte-level step.
#include "pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "pcre2_pattern.h"

namespace mxq::runtime {
namespace {

// GPT-2's pre-tokenizer regex, which HF's ByteLevel step applies when use_regex is set.
constexpr const char* gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// HF's PreTokenizedString::split with a SplitDelimiterBehavior: the text as alternating
// non-matching and matching spans, regrouped; empty pieces are dropped.
void regroup(std::string_view text, std::vector<TextSpan>& spans, SplitBehavior behavior, bool invert,
             std::vector<std::string>& out) {
  if (invert)
    for (TextSpan& s : spans) s.match = !s.match;
  std::vector<TextSpan> groups;
  switch (behavior) {
    case SplitBehavior::removed:
      for (const TextSpan& s : spans)
        if (!s.match) groups.push_back(s);
      break;
    case SplitBehavior::isolated:
      groups = spans;
      break;
    case SplitBehavior::contiguous: {
      bool previous_match = false;
      for (const TextSpan& s : spans) {
        if (s.match == previous_match && !groups.empty()) groups.back().end = s.end;
        else groups.push_back(s);
        previous_match = s.match;
      }
      break;
    }
    case SplitBehavior::merged_with_previous: {
      bool previous_match = false;
      for (const TextSpan& s : spans) {
        if (s.match && !previous_match && !groups.empty()) groups.back().end = s.end;
        else groups.push_back(s);
        previous_match = s.match;
      }
      break;
    }
    case SplitBehavior::merged_with_next: {
      bool previous_match = false;  // walking backwards: whether the span after this one matched
      for (auto s = spans.rbegin(); s != spans.rend(); ++s) {
        if (s->match && !previous_match && !groups.empty()) groups.back().begin = s->begin;
        else groups.push_back(*s);
        previous_match = s->match;
      }
      std::reverse(groups.begin(), groups.end());
      break;
    }
  }
  for (const TextSpan& g : groups)
    if (g.end > g.begin) out.emplace_back(text.substr(g.begin, g.end - g.begin));
}

}  // namespace

PreTokenizer::PreTokenizer(const std::vector<PreTokenizeStep>& steps, const std::string& origin) {
  for (const PreTokenizeStep& spec : steps) {
    Step step{spec, nullptr};
    if (spec.kind == PreTokenizeStep::Kind::split)
      step.pattern = std::make_unique<Pcre2Pattern>(spec.pattern, spec.literal, origin);
    else if (spec.use_regex)
      step.pattern = std::make_unique<Pcre2Pattern>(gpt2_pattern, false, origin);
    steps_.push_back(std::move(step));
  }
}

PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string> pieces;
  if (!text.empty()) pieces.emplace_back(text);
  const MatchData md = make_match_data();
  std::vector<TextSpan> spans;
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    next.reserve(pieces.size());
    for (std::string& piece : pieces) {
      SplitBehavior behavior = step.spec.behavior;
      bool invert = step.spec.invert;
      if (step.spec.kind == PreTokenizeStep::Kind::byte_level) {
        if (step.spec.add_prefix_space && piece.front() != ' ') piece.insert(piece.begin(), ' ');
        behavior = SplitBehavior::isolated;
        invert = false;
      }
      if (!step.pattern) {
        next.push_back(std::move(piece));
        continue;
      }
      step.pattern->spans(piece, md.get(), spans);
      regroup(piece, spans, behavior, invert, next);
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace mxq::runtime
