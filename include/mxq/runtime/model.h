// mxq/runtime/model.h — one decoder-only transformer definition for the dense architectures mxq
// runs, read from config.json:
//
//   LlamaForCausalLM (Llama 2/3/3.1 with rope_scaling "llama3", SmolLM2, tied embeddings),
//   MistralForCausalLM (as Llama; contexts up to its sliding_window), Qwen2ForCausalLM (q/k/v bias),
//   Qwen3ForCausalLM (RMSNorm over each q and k head before RoPE).
//
// The architecture only sets features (bias, qk-norm, rope type); every linear layer is a
// LinearMethod chosen by QuantConfig, so nothing here depends on how weights are stored.
//
// Shapes per layer for M tokens: x [M, hidden] (f32 residual stream), q [M, n_heads·head_dim],
// k, v [M, n_kv_heads·head_dim] (side by side in one [M, q | k | v] buffer), KV cache f32 or bf16
// per layer and KV head (K tiled, V [max_seq, head_dim]).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mxq/format.h"
#include "mxq/io/quantized_checkpoint.h"
#include "mxq/runtime/linear_method.h"
#include "mxq/runtime/profile.h"
#include "mxq/runtime/tensor.h"

namespace mxq::runtime {

struct RopeConfig {
  float theta = 10000.0f;
  std::string type = "default";  // "default" or "llama3"
  // llama3: factor, low_freq_factor, high_freq_factor, original_max_position_embeddings
  float factor = 1.0f, low_freq_factor = 1.0f, high_freq_factor = 4.0f;
  float original_max_position = 8192.0f;
};

struct ModelConfig {
  std::string architecture;
  size_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  size_t max_position = 0;
  float rms_eps = 1e-6f;
  RopeConfig rope;
  bool tie_embeddings = false;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool qk_norm = false;
  // Mistral's sliding_window (Qwen's when use_sliding_window); 0 = none. Sliding-window attention
  // is not implemented: the model refuses a KV cache longer than the window instead of silently
  // attending past it.
  size_t sliding_window = 0;

  // An unsupported architecture or a missing / inconsistent field is an mxq::Error.
  static ModelConfig from_json(const nlohmann::json& config, const std::string& where);
};

// The architectures from_json accepts.
const std::vector<std::string>& supported_architectures();

// RoPE inverse frequencies [head_dim / 2] (llama3 scaling applied), as transformers computes them.
std::vector<float> rope_inv_freq(const RopeConfig& rope, size_t head_dim);

// The KV cache's element type: f32 (the attention inputs exactly) or bf16 (each k and v rounded to
// nearest even when written, as engines that run BF16 models keep it): half the bytes a decode step
// reads from the cache.
enum class KvCacheType : uint8_t { f32, bf16 };
const char* kv_cache_type_name(KvCacheType t);                            // "f32", "bf16"
std::optional<KvCacheType> kv_cache_type_from_name(std::string_view s);  // one of those names

struct ModelOptions {
  std::optional<Mxfp4Mode> mode;      // override the checkpoint's activation mode (MXFP4, NVFP4)
  KernelPath path = KernelPath::simd;
  int threads = 0;                    // 0: every hardware thread
  size_t max_seq = 0;                 // KV cache length; 0: min(max_position_embeddings, 4096)
  // q/k/v and gate/up each as one merged method where their methods merge
  // (merge_linear_methods; the logits are the same either way, tests run both).
  bool merge_linears = true;
  KvCacheType kv_cache = KvCacheType::f32;
};

class Model {
 public:
  explicit Model(const std::string& dir, const ModelOptions& opt = {});
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const QuantConfig& quant_config() const { return qcfg_; }
  size_t max_seq() const { return max_seq_; }
  // "<layer prefix>: <method>" for every linear layer, in model order.
  std::vector<std::string> describe_layers() const;

  // Runs tokens at positions start_pos .. start_pos + n - 1 (the KV cache must hold positions
  // 0 .. start_pos - 1 from earlier calls) and returns logits [n, vocab] (all_logits) or [1, vocab]
  // (the last position only). Errors: a token id outside the vocabulary, start_pos + n beyond the
  // KV cache, start_pos beyond what the cache holds.
  Tensor forward(std::span<const int32_t> tokens, size_t start_pos, bool all_logits = true);

  // Bytes of weights one forward step reads per token in `part` of the profile: the weight_bytes()
  // of its linear layers, one row of the embedding table for `embedding`, 0 for the others.
  size_t weight_bytes(Profile::Part part) const;
  // The sum over the parts.
  size_t weight_bytes_per_token() const;

  // Attaches a Profile that forward() adds its time to, part by part (nullptr: none, the default).
  void set_profile(Profile* p) { profile_ = p; }

  // Greedy decoding: prefill `prompt` from position 0, then n_new argmax steps; returns the new ids.
  std::vector<int32_t> generate_greedy(std::span<const int32_t> prompt, size_t n_new);

 private:
  struct Layer;
  struct Linear {
    std::string prefix;
    std::string description;  // method->describe(), kept when a group releases the method
    std::unique_ptr<LinearMethod> method;
    size_t in = 0, out = 0;
    void operator()(const Tensor& x, Tensor& y, ThreadPool* pool) const;
    size_t weight_bytes() const { return method->weight_bytes(); }
  };
  // Linear layers that read one input (q/k/v; gate/up): one merged method where they merge (one
  // pass over x and one pool job instead of one per part: decode's layers are small), else part by
  // part. y [M, Σ out]: part i's columns follow part i − 1's.
  struct LinearGroup {
    std::vector<Linear> parts;              // their methods are released once merged
    std::unique_ptr<LinearMethod> merged;
    size_t out = 0;
    // part_out: scratch for the unmerged path.
    void operator()(const Tensor& x, Tensor& y, Tensor& part_out, ThreadPool* pool) const;
    size_t weight_bytes() const;
    void move_weights_to(HugePageArena& arena);
  };
  Linear make_linear(const LinearSpec& spec);
  LinearGroup make_group(std::vector<Linear> parts, bool merge);
  void attention(size_t layer, size_t M, size_t start_pos);

  ModelConfig cfg_;
  QuantConfig qcfg_;
  io::HfCheckpoint ck_;
  std::vector<io::LogicalTensor> logical_;
  std::map<std::string, const io::LogicalTensor*, std::less<>> by_name_;
  std::unique_ptr<ThreadPool> pool_;
  size_t max_seq_ = 0;
  size_t cached_ = 0;  // positions the KV cache holds
  Profile* profile_ = nullptr;

  HugePageArena arena_;  // the linear layers' weights (once loaded) and the KV cache, in huge pages
  std::vector<float> embed_f32_;        // embedding table [vocab, hidden] when not BF16
  const mxq::bf16* embed_bf16_ = nullptr;  // or the mapped BF16 table
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  Linear lm_head_;
  std::vector<float> inv_freq_;

  // KV cache, elements of kv_cache_type_, per layer: k [kv_heads, K tiled over max_seq positions]
  // and v [kv_heads, max_seq, head_dim] (mxq/kernels/cpu/attention.h's layouts): head-major, so that
  // the positions one KV head's queries attend over are one contiguous stream each (decode reads
  // them from DRAM each token: the weights streamed since the last token have evicted them).
  KvCacheType kv_cache_type_ = KvCacheType::f32;
  std::vector<uint8_t*> k_cache_, v_cache_;  // in arena_
  template <class E>
  void attention_on(size_t li, size_t M, size_t start_pos);  // attention() on a cache of E
  // The activation arena: buffers sized by the largest M seen, reused by every call. qkv_ [M, q | k
  // | v], gate_up_ [M, gate | up], act_ = SiLU(gate) · up [M, intermediate].
  Tensor x_, h_, qkv_, attn_, o_, gate_up_, act_, down_, part_;
  std::vector<float> attn_parts_;  // a decode step's split attention: outputs, maxes, sums of the parts
};

}  // namespace mxq::runtime
