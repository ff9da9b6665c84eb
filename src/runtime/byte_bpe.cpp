// byte_bpe.cpp — byte-level BPE merges, in HF tokenizers' order (a min-heap on rank, then position).
#include "byte_bpe.h"

#include <queue>

#include "mxq/error.h"

namespace mxq::runtime {
namespace {

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else {  // the byte-level alphabet stops at U+0143
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace

uint32_t byte_level_code_point(uint8_t byte) {
  const auto printable = [](int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; };
  if (printable(byte)) return byte;
  uint32_t n = 0;  // how many non-printable bytes come before this one
  for (int b = 0; b < byte; ++b) n += !printable(b);
  return 256 + n;
}

BytePairModel::BytePairModel(const TokenizerSpec& spec) : ignore_merges_(spec.ignore_merges) {
  vocab_.reserve(spec.pieces.size());
  for (size_t id = 0; id < spec.pieces.size(); ++id)
    if (!spec.pieces[id].empty()) vocab_.emplace(spec.pieces[id], int32_t(id));
  for (int b = 0; b < 256; ++b) {
    append_utf8(byte_piece_[b], byte_level_code_point(uint8_t(b)));
    const auto it = vocab_.find(byte_piece_[b]);
    byte_id_[b] = it == vocab_.end() ? -1 : it->second;
  }
  merges_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    const auto l = vocab_.find(left), r = vocab_.find(right), m = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || m == vocab_.end())
      fail("{}: merge {} '{} {}' names a token that is not in the vocabulary", spec.origin, rank, left, right);
    // A repeated pair keeps its first (lowest) rank.
    merges_.emplace(pair_key(l->second, r->second), Merge{int32_t(rank), m->second});
  }
}

void BytePairModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
  {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(std::string(bytes)); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (ignore_merges_) {
    std::string piece;
    for (const char c : bytes) piece += byte_piece_[uint8_t(c)];
    if (const auto it = vocab_.find(piece); it != vocab_.end()) ids.push_back(it->second);
  }
  if (ids.empty()) merge_word(bytes, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= cache_capacity) cache_.clear();
  cache_.emplace(std::string(bytes), std::move(ids));
}

void BytePairModel::merge_word(std::string_view bytes, std::vector<int32_t>& out) const {
  // One symbol per byte, as a doubly linked list; a merged-away symbol is marked dead.
  struct Symbol { int32_t id, prev, next; bool alive; };
  std::vector<Symbol> sym;
  sym.reserve(bytes.size());
  for (const char c : bytes) {
    const int32_t id = byte_id_[uint8_t(c)];
    if (id < 0) continue;  // HF drops a symbol with no token when there is no unk token
    const int32_t i = int32_t(sym.size());
    sym.push_back({id, i - 1, i + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  struct Candidate { int32_t rank, pos, id; };
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  const auto propose = [&](int32_t pos) {
    const int32_t next = sym[pos].next;
    if (next < 0) return;
    if (const auto it = merges_.find(pair_key(sym[pos].id, sym[next].id)); it != merges_.end())
      heap.push({it->second.rank, pos, it->second.id});
  };
  for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i) propose(i);

  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    // A candidate is stale when either symbol has changed since it was proposed.
    const auto it = merges_.find(pair_key(left.id, sym[left.next].id));
    if (it == merges_.end() || it->second.id != top.id) continue;
    Symbol& right = sym[left.next];
    right.alive = false;
    left.id = top.id;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0) propose(left.prev);
    propose(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace mxq::runtime
