// byte_bpe.h — the BPE model over byte-level pieces: rank-ordered merges of one pre-token at a time.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer_spec.h"

namespace mxq::runtime {

class BytePairModel {
 public:
  // Throws mxq::Error (naming spec.origin) for a merge whose parts or result are not in the vocabulary.
  explicit BytePairModel(const TokenizerSpec& spec);

  // Appends the ids of one pre-token, given as raw bytes (any bytes: each maps to one
  // byte-level symbol). The lowest-ranked adjacent pair is merged first, the leftmost on ties,
  // until no adjacent pair has a merge; this is HF's order exactly.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;

 private:
  struct Merge { int32_t rank, id; };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  void merge_word(std::string_view bytes, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;  // byte-level piece -> id
  std::unordered_map<uint64_t, Merge> merges_;      // (left id, right id) -> rank, merged id
  std::array<int32_t, 256> byte_id_;                 // the single-byte pieces; -1 if absent
  std::array<std::string, 256> byte_piece_;          // each byte's byte-level code point, UTF-8
  bool ignore_merges_;

  // Words repeat (Zipf): most of a text's pre-tokens are found here. Bounded; cleared when full.
  static constexpr size_t cache_capacity = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace mxq::runtime
