// mxq/runtime/tokenizer.h — byte-level BPE tokenization with the same ids as Hugging Face's
// `tokenizers` library (tests/golden/tokenizer/ holds that library's output on WikiText-2).
//
// Sources: an HF tokenizer.json (+ tokenizer_config.json for BOS/EOS and add_bos_token), or a GGUF
// file's "gpt2" vocabulary, whose tokenizer.ggml.pre family is mapped to the pre-tokenizer that
// the model's own tokenizer.json uses. Anything outside byte-level BPE (SentencePiece Unigram,
// WordPiece, normalizers) is an mxq::Error naming the file and what is supported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mxq::io {
class GgufFile;
}

namespace mxq::runtime {

struct TokenizerSpec;
struct TokenizerState;

class Tokenizer {
 public:
  // tokenizer.json, and tokenizer_config.json when config_path is not empty.
  static Tokenizer from_hf_files(const std::string& tokenizer_path, const std::string& config_path = {});
  // A checkpoint directory: its tokenizer.json, and its tokenizer_config.json if there is one.
  static Tokenizer from_hf_dir(const std::string& dir);
  // The two files' contents (config_json may be empty); `origin` names them in errors.
  static Tokenizer from_hf_json(std::string_view tokenizer_json, std::string_view config_json,
                                const std::string& origin);
  static Tokenizer from_gguf(const io::GgufFile& gguf);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Added tokens (e.g. "<|im_start|>") in the text become their ids, as HF does by default.
  // add_special prepends BOS where the tokenizer's config says the model expects one.
  // Any bytes are accepted: invalid UTF-8 passes through the byte-level alphabet like any byte.
  // Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // The bytes the ids stand for, concatenated (not necessarily valid UTF-8 on its own: a
  // multi-byte character may be split across tokens). Throws on an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids) const;
  const std::string& token_to_piece(int32_t id) const;

  int32_t bos_id() const;  // -1 where the tokenizer names none
  int32_t eos_id() const;
  bool adds_bos() const;   // whether encode(text, true) prepends bos_id()
  size_t vocab_size() const;
  // The id of an added (special or user-defined) token by its exact content.
  std::optional<int32_t> added_token(std::string_view content) const;

 private:
  explicit Tokenizer(TokenizerSpec spec);
  std::unique_ptr<TokenizerState> state_;
};

}  // namespace mxq::runtime
