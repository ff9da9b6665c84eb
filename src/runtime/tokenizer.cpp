// tokenizer.cpp — the encode pipeline (added tokens, pre-tokenizer, BPE) and decoding.
#include "mxq/runtime/tokenizer.h"

#include <unordered_map>

#include "added_tokens.h"
#include "byte_bpe.h"
#include "mxq/error.h"
#include "pre_tokenizer.h"
#include "tokenizer_spec.h"

namespace mxq::runtime {
namespace {

std::vector<AddedToken> added_where(const std::vector<AddedToken>& all, bool normalized) {
  std::vector<AddedToken> out;
  for (const AddedToken& t : all)
    if (t.normalized == normalized) out.push_back(t);
  return out;
}

// The ByteLevel decoder: each code point of a piece back to its byte. A code point outside the
// alphabet (a vocabulary may hold one) keeps its UTF-8 bytes.
std::string byte_level_decode(const std::string& piece) {
  static const std::unordered_map<uint32_t, char> byte_of = [] {
    std::unordered_map<uint32_t, char> m;
    for (int b = 0; b < 256; ++b) m[byte_level_code_point(uint8_t(b))] = char(b);
    return m;
  }();
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    const uint8_t b0 = uint8_t(piece[i]);
    const size_t n = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    uint32_t cp = n == 1 ? b0 : n == 2 ? b0 & 0x1F : n == 3 ? b0 & 0x0F : b0 & 0x07;
    for (size_t k = 1; k < n && i + k < piece.size(); ++k) cp = cp << 6 | (uint8_t(piece[i + k]) & 0x3F);
    const auto it = byte_of.find(cp);
    if (it != byte_of.end() && n <= piece.size() - i) out += it->second;
    else out.append(piece, i, n);
    i += n;
  }
  return out;
}

}  // namespace

struct TokenizerState {
  explicit TokenizerState(TokenizerSpec s)
      : spec(std::move(s)),
        bpe(spec),
        pre(spec.pre_tokenizer, spec.origin),
        raw_added(added_where(spec.added, false), spec.origin),
        normalized_added(added_where(spec.added, true), spec.origin) {}

  TokenizerSpec spec;
  BytePairModel bpe;
  PreTokenizer pre;
  // HF matches non-normalized added tokens in the raw text first, then normalized ones in what is
  // left; with no normalizer both see the same bytes, but the order still decides overlaps.
  AddedTokenMatcher raw_added, normalized_added;
  std::vector<std::string> decoded;  // by id: the bytes each token stands for
  std::unordered_map<std::string, int32_t> added_by_content;
};

Tokenizer::Tokenizer(TokenizerSpec spec) : state_(std::make_unique<TokenizerState>(std::move(spec))) {
  TokenizerState& s = *state_;
  s.decoded.resize(s.spec.pieces.size());
  for (size_t id = 0; id < s.spec.pieces.size(); ++id) s.decoded[id] = byte_level_decode(s.spec.pieces[id]);
  for (const AddedToken& t : s.spec.added) {
    // An added token's content is text, not byte-level code points.
    s.decoded[t.id] = t.content;
    s.added_by_content.emplace(t.content, t.id);
  }
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const TokenizerState& s = *state_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  if (add_special && s.spec.add_bos && s.spec.bos >= 0) ids.push_back(s.spec.bos);
  std::vector<TextSegment> raw, segments;
  s.raw_added.split(text, 0, text.size(), raw);
  for (const TextSegment& r : raw) {
    if (r.id >= 0) segments.push_back(r);
    else s.normalized_added.split(text, r.begin, r.end, segments);
  }
  for (const TextSegment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    for (const std::string& piece : s.pre.split(text.substr(seg.begin, seg.end - seg.begin)))
      s.bpe.encode_word(piece, ids);
  }
  return ids;
}

const std::string& Tokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || size_t(id) >= state_->decoded.size())
    fail("{}: token id {} is outside the vocabulary of {}", state_->spec.origin, id, state_->decoded.size());
  return state_->decoded[size_t(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (const int32_t id : ids) out += token_to_piece(id);
  return out;
}

int32_t Tokenizer::bos_id() const { return state_->spec.bos; }
int32_t Tokenizer::eos_id() const { return state_->spec.eos; }
bool Tokenizer::adds_bos() const { return state_->spec.add_bos && state_->spec.bos >= 0; }
size_t Tokenizer::vocab_size() const { return state_->spec.pieces.size(); }

std::optional<int32_t> Tokenizer::added_token(std::string_view content) const {
  const auto it = state_->added_by_content.find(std::string(content));
  if (it == state_->added_by_content.end()) return std::nullopt;
  return it->second;
}

}  // namespace mxq::runtime
