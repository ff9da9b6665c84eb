// mxq/quant/pattern.h — the glob patterns of recipes, quantize_patterns / ignore_patterns and
// exclude lists: Python fnmatch.fnmatchcase semantics (the seed's should_quantize_layer uses
// fnmatch on the layer prefix), so a pattern means the same here as in ModelOpt and the engines.
#pragma once

#include <string_view>

namespace mxq::quant {

// True if `pattern` matches the whole of `text`, case-sensitively:
//   *      any run of characters, including none and including dots (not a path glob);
//   ?      exactly one character;
//   [abc]  one character of the set; ranges [a-z]; [!abc] negates; a ']' right after '[' or '[!'
//          is a member; a '[' without a closing ']' is a literal '['.
// Iterative with one backtrack point, so time is O(|pattern| · |text|) even for patterns such as
// "*a*a*a*a*b" that make a recursive matcher exponential.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace mxq::quant
