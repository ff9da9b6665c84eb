// The one decoder definition of mxq/runtime/model.h: Llama / Mistral / Qwen2 / Qwen3.
#include "mxq/runtime/model.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "mxq/error.h"
#include "mxq/kernels/cpu/activation.h"
#include "mxq/kernels/cpu/attention.h"

namespace mxq::runtime {

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> a{"LlamaForCausalLM", "MistralForCausalLM",
                                          "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  return a;
}

namespace {

size_t get_size(const nlohmann::json& c, const char* key, const std::string& where) {
  if (!c.contains(key) || !c[key].is_number_integer() || c[key].get<int64_t>() <= 0)
    fail("{}: config.json needs a positive integer '{}'", where, key);
  return c[key].get<size_t>();
}

float get_float(const nlohmann::json& c, const char* key, float dflt) {
  return c.contains(key) && c[key].is_number() ? c[key].get<float>() : dflt;
}

// RMSNorm as transformers computes it: y = x · rsqrt(mean(x²) + eps) · w (mean formed in double
// here, which only removes summation-order error).
void rms_norm(const float* x, const float* w, size_t n, float eps, float* y) {
  double ss = 0.0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (size_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * r);
}

// rotate_half RoPE (transformers' Llama layout): element i pairs with i + d/2.
void rope(float* v, size_t head_dim, const float* cos, const float* sin) {
  const size_t half = head_dim / 2;
  for (size_t i = 0; i < half; ++i) {
    const float a = v[i], b = v[i + half];
    v[i] = a * cos[i] - b * sin[i];
    v[i + half] = b * cos[i] + a * sin[i];
  }
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& c, const std::string& where) {
  ModelConfig m;
  if (!c.contains("architectures") || !c["architectures"].is_array() || c["architectures"].empty())
    fail("{}: config.json has no 'architectures' (supported: {})", where,
         fmt::join(supported_architectures(), ", "));
  m.architecture = c["architectures"][0].get<std::string>();
  const auto& sup = supported_architectures();
  if (std::find(sup.begin(), sup.end(), m.architecture) == sup.end())
    fail("{}: architecture {} is not supported (supported: {})", where, m.architecture,
         fmt::join(sup, ", "));
  if (c.value("hidden_act", std::string("silu")) != "silu")
    fail("{}: hidden_act '{}' is not supported (silu only)", where, c["hidden_act"].dump());

  m.vocab = get_size(c, "vocab_size", where);
  m.hidden = get_size(c, "hidden_size", where);
  m.intermediate = get_size(c, "intermediate_size", where);
  m.layers = get_size(c, "num_hidden_layers", where);
  m.heads = get_size(c, "num_attention_heads", where);
  m.kv_heads = c.contains("num_key_value_heads") && !c["num_key_value_heads"].is_null()
                   ? get_size(c, "num_key_value_heads", where) : m.heads;
  m.head_dim = c.contains("head_dim") && !c["head_dim"].is_null() ? get_size(c, "head_dim", where)
                                                                  : m.hidden / m.heads;
  m.max_position = c.contains("max_position_embeddings") ? get_size(c, "max_position_embeddings", where) : 2048;
  if (m.heads % m.kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", where, m.heads, m.kv_heads);
  if (m.head_dim % 2 != 0) fail("{}: head_dim {} is odd: RoPE needs pairs", where, m.head_dim);
  m.rms_eps = get_float(c, "rms_norm_eps", 1e-6f);
  m.tie_embeddings = c.value("tie_word_embeddings", false);

  // RoPE: transformers 5 writes "rope_parameters" {rope_theta, rope_type, ...}; older configs
  // "rope_theta" plus "rope_scaling" {rope_type | type, factor, ...} or null.
  nlohmann::json rp = nlohmann::json::object();
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) rp = c["rope_parameters"];
  else if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) rp = c["rope_scaling"];
  m.rope.theta = get_float(rp, "rope_theta", get_float(c, "rope_theta", 10000.0f));
  m.rope.type = rp.value("rope_type", rp.value("type", std::string("default")));
  if (m.rope.type == "llama3") {
    m.rope.factor = get_float(rp, "factor", 8.0f);
    m.rope.low_freq_factor = get_float(rp, "low_freq_factor", 1.0f);
    m.rope.high_freq_factor = get_float(rp, "high_freq_factor", 4.0f);
    m.rope.original_max_position = get_float(rp, "original_max_position_embeddings", 8192.0f);
  } else if (m.rope.type != "default") {
    fail("{}: rope type '{}' is not supported (default, llama3)", where, m.rope.type);
  }

  // Features by architecture; the rest of the model is shared.
  if (m.architecture == "Qwen2ForCausalLM") {
    m.qkv_bias = true;
  } else {
    m.qkv_bias = m.o_bias = c.value("attention_bias", false);
    m.mlp_bias = c.value("mlp_bias", false);
  }
  m.qk_norm = m.architecture == "Qwen3ForCausalLM";
  const bool window_on = m.architecture == "MistralForCausalLM" || c.value("use_sliding_window", false);
  if (window_on && c.contains("sliding_window") && c["sliding_window"].is_number_integer())
    m.sliding_window = c["sliding_window"].get<size_t>();
  return m;
}

std::vector<float> rope_inv_freq(const RopeConfig& r, size_t head_dim) {
  // float32 throughout, in transformers' order of operations:
  // 1 / theta^(arange(0, d, 2) / d), then _compute_llama3_parameters.
  std::vector<float> f(head_dim / 2);
  for (size_t i = 0; i < f.size(); ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    f[i] = 1.0f / std::pow(r.theta, e);
  }
  if (r.type == "llama3") {
    const float low_wavelen = r.original_max_position / r.low_freq_factor;
    const float high_wavelen = r.original_max_position / r.high_freq_factor;
    for (float& inv : f) {
      const float wavelen = 2.0f * std::numbers::pi_v<float> / inv;
      const float scaled = wavelen > low_wavelen ? inv / r.factor : inv;
      if (wavelen < high_wavelen || wavelen > low_wavelen) {
        inv = scaled;
      } else {
        const float smooth = (r.original_max_position / wavelen - r.low_freq_factor) /
                             (r.high_freq_factor - r.low_freq_factor);
        inv = (1.0f - smooth) * scaled / r.factor + smooth * scaled;
      }
    }
  }
  return f;
}

// ---------------------------------------------------------------------------------------------

struct Model::Layer {
  std::vector<float> attn_norm, mlp_norm, q_norm, k_norm;
  LinearGroup qkv, gate_up;
  Linear o, down;
};

void Model::Linear::operator()(const Tensor& x, Tensor& y, ThreadPool* pool) const {
  y.resize(x.rows(), out);
  method->apply(x.data(), x.rows(), y.data(), pool);
}

void Model::LinearGroup::operator()(const Tensor& x, Tensor& y, Tensor& part_out, ThreadPool* pool) const {
  const size_t M = x.rows();
  y.resize(M, out);
  if (merged) {
    merged->apply(x.data(), M, y.data(), pool);
    return;
  }
  size_t col = 0;
  for (const Linear& p : parts) {
    p(x, part_out, pool);
    for (size_t m = 0; m < M; ++m) std::copy_n(part_out.row(m), p.out, y.row(m) + col);
    col += p.out;
  }
}

void Model::LinearGroup::move_weights_to(HugePageArena& arena) {
  if (merged) merged->move_weights_to(arena);
  else for (Linear& p : parts) p.method->move_weights_to(arena);
}

size_t Model::LinearGroup::weight_bytes() const {
  if (merged) return merged->weight_bytes();
  size_t n = 0;
  for (const Linear& p : parts) n += p.method->weight_bytes();
  return n;
}

Model::Linear Model::make_linear(const LinearSpec& spec) {
  Linear l;
  l.prefix = spec.prefix;
  l.in = spec.in;
  l.out = spec.out;
  l.method = qcfg_.linear_method(spec.prefix);
  const LoadedWeights w = find_weights(l.method->create_weights(spec), by_name_, ck_.dir());
  l.method->process_weights_after_loading(w);
  l.description = l.method->describe();
  return l;
}

Model::LinearGroup Model::make_group(std::vector<Linear> parts, bool merge) {
  LinearGroup g;
  std::vector<const LinearMethod*> methods;
  for (const Linear& p : parts) {
    g.out += p.out;
    methods.push_back(p.method.get());
  }
  if (merge) g.merged = merge_linear_methods(methods);
  if (g.merged) {
    std::vector<std::string> names;  // "q_proj", "k_proj", …
    for (const Linear& p : parts) names.push_back(p.prefix.substr(p.prefix.rfind('.') + 1));
    for (Linear& p : parts) {
      p.method.reset();  // the merged method holds a copy of the weights
      p.description += fmt::format(" [merged: {}]", fmt::join(names, "+"));
    }
  }
  g.parts = std::move(parts);
  return g;
}

Model::Model(const std::string& dir, const ModelOptions& opt) : ck_(dir) {
  cfg_ = ModelConfig::from_json(ck_.config(), dir);
  qcfg_ = QuantConfig::from_checkpoint(ck_, opt.mode);
  qcfg_.path = opt.path;
  logical_ = io::logical_tensors(ck_);
  for (const auto& t : logical_) by_name_.emplace(t.name, &t);
  pool_ = std::make_unique<ThreadPool>(opt.threads);
  max_seq_ = opt.max_seq ? opt.max_seq : std::min<size_t>(cfg_.max_position, 4096);
  if (cfg_.sliding_window != 0) {
    if (opt.max_seq > cfg_.sliding_window)
      fail("{}: a context of {} exceeds the sliding_window of {}, and sliding-window attention is "
           "not implemented", dir, opt.max_seq, cfg_.sliding_window);
    max_seq_ = std::min(max_seq_, cfg_.sliding_window);
  }

  const ModelConfig& c = cfg_;
  // Dense tensors (embeddings, norms) by the same declare-and-find path as the linear layers.
  const auto dense = [&](const std::string& name, std::vector<uint64_t> shape) {
    const LoadedWeights w = find_weights({{name, std::move(shape), {io::StoredFormat::dense}, true}}, by_name_, dir);
    return w.begin()->second;
  };
  const io::LogicalTensor* emb = dense("model.embed_tokens.weight", {c.vocab, c.hidden});
  if (emb->data->dtype == io::DType::bf16) embed_bf16_ = reinterpret_cast<const mxq::bf16*>(emb->data->data.data());
  else embed_f32_ = io::dequantize(*emb);

  const size_t q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
  layers_.resize(c.layers);
  for (size_t i = 0; i < c.layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    Layer& L = layers_[i];
    L.attn_norm = io::dequantize(*dense(p + "input_layernorm.weight", {c.hidden}));
    L.mlp_norm = io::dequantize(*dense(p + "post_attention_layernorm.weight", {c.hidden}));
    if (c.qk_norm) {
      L.q_norm = io::dequantize(*dense(p + "self_attn.q_norm.weight", {c.head_dim}));
      L.k_norm = io::dequantize(*dense(p + "self_attn.k_norm.weight", {c.head_dim}));
    }
    std::vector<Linear> qkv, gate_up;
    qkv.push_back(make_linear({p + "self_attn.q_proj", c.hidden, q_dim, c.qkv_bias, ""}));
    qkv.push_back(make_linear({p + "self_attn.k_proj", c.hidden, kv_dim, c.qkv_bias, ""}));
    qkv.push_back(make_linear({p + "self_attn.v_proj", c.hidden, kv_dim, c.qkv_bias, ""}));
    L.qkv = make_group(std::move(qkv), opt.merge_linears);
    L.o = make_linear({p + "self_attn.o_proj", q_dim, c.hidden, c.o_bias, ""});
    gate_up.push_back(make_linear({p + "mlp.gate_proj", c.hidden, c.intermediate, c.mlp_bias, ""}));
    gate_up.push_back(make_linear({p + "mlp.up_proj", c.hidden, c.intermediate, c.mlp_bias, ""}));
    L.gate_up = make_group(std::move(gate_up), opt.merge_linears);
    L.down = make_linear({p + "mlp.down_proj", c.intermediate, c.hidden, c.mlp_bias, ""});
  }
  final_norm_ = io::dequantize(*dense("model.norm.weight", {c.hidden}));
  // A tied head reads the embedding table, unless the checkpoint also has its own lm_head.weight
  // (mxq quantize --quantize-lm-head writes an MXFP4 head made from the tied table; some exports
  // keep both).
  const bool head_from_embedding = c.tie_embeddings && !by_name_.contains("lm_head.weight");
  lm_head_ = make_linear({"lm_head", c.hidden, c.vocab, false,
                          head_from_embedding ? "model.embed_tokens.weight" : ""});
  // Every streamed weight into huge pages (huge_page_arena.h), in the order decode reads them.
  for (Layer& L : layers_) {
    L.qkv.move_weights_to(arena_);
    L.o.method->move_weights_to(arena_);
    L.gate_up.move_weights_to(arena_);
    L.down.method->move_weights_to(arena_);
  }
  lm_head_.method->move_weights_to(arena_);
  inv_freq_ = rope_inv_freq(c.rope, c.head_dim);
  // The KV cache in the arena too (decode streams it from DRAM), zeroed so that nothing reads
  // uninitialized memory (K's last tile is read whole, attention.h; those scores are dropped).
  kv_cache_type_ = opt.kv_cache;
  const size_t elem = kv_cache_type_ == KvCacheType::bf16 ? sizeof(bf16) : sizeof(float);
  const size_t k_elems = c.kv_heads * kv_k_elements(max_seq_, c.head_dim), v_elems = c.kv_heads * max_seq_ * c.head_dim;
  for (size_t l = 0; l < c.layers; ++l)
    for (auto [cache, n] : {std::pair{&k_cache_, k_elems}, {&v_cache_, v_elems}}) {
      const std::span<uint8_t> b = arena_.allocate(n * elem);
      std::fill(b.begin(), b.end(), uint8_t{0});
      cache->push_back(b.data());
    }
}

Model::~Model() = default;

std::vector<std::string> Model::describe_layers() const {
  std::vector<std::string> r;
  for (const Layer& L : layers_)
    for (const Linear* l : {&L.qkv.parts[0], &L.qkv.parts[1], &L.qkv.parts[2], &L.o, &L.gate_up.parts[0],
                            &L.gate_up.parts[1], &L.down})
      r.push_back(l->prefix + ": " + l->description);
  r.push_back(lm_head_.prefix + ": " + lm_head_.description);
  return r;
}

const char* kv_cache_type_name(KvCacheType t) { return t == KvCacheType::bf16 ? "bf16" : "f32"; }

std::optional<KvCacheType> kv_cache_type_from_name(std::string_view s) {
  for (KvCacheType t : {KvCacheType::f32, KvCacheType::bf16})
    if (s == kv_cache_type_name(t)) return t;
  return std::nullopt;
}

// Layer li's attention for tokens start_pos .. start_pos + M − 1: appends their k, v (in qkv_) to
// the KV cache and writes attn_ [M, heads · head_dim].
void Model::attention(size_t li, size_t M, size_t start_pos) {
  if (kv_cache_type_ == KvCacheType::bf16) attention_on<bf16>(li, M, start_pos);
  else attention_on<float>(li, M, start_pos);
}

template <class E>
void Model::attention_on(size_t li, size_t M, size_t start_pos) {
  const ModelConfig& c = cfg_;
  ThreadPool* pool = pool_.get();
  const size_t hd = c.head_dim, group = c.heads / c.kv_heads;
  const size_t q_dim = c.heads * hd, kv_dim = c.kv_heads * hd;  // k at column q_dim of qkv_, v after
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t k_head = kv_k_elements(max_seq_, hd);  // one KV head's K cache (tiled)
  E* kc = reinterpret_cast<E*>(k_cache_[li]);
  E* vc = reinterpret_cast<E*>(v_cache_[li]);
  for (size_t m = 0; m < M; ++m)
    for (size_t h = 0; h < c.kv_heads; ++h) {
      const size_t pos = start_pos + m;
      const float* k = qkv_.row(m) + q_dim + h * hd;
      const float* v = qkv_.row(m) + q_dim + kv_dim + h * hd;
      for (size_t i = 0; i < hd; ++i) {
        kc[h * k_head + kv_k_index(pos, i, hd)] = kv_from_f32<E>(k[i]);
        vc[(h * max_seq_ + pos) * hd + i] = kv_from_f32<E>(v[i]);
      }
    }
  // Causal grouped-query attention, one task per (token m, KV head): its `group` query heads,
  // side by side in q and in the output, see positions 0 .. start_pos + m. A decode step has
  // fewer KV heads than twice the threads (SmolLM2: 3 on 2), so there each head's positions
  // are split into parts of whole K tiles, run as separate tasks and merged.
  attn_.resize(M, c.heads * hd);
  const bool ref = qcfg_.path == KernelPath::ref;
  const size_t T1 = start_pos + 1, threads = static_cast<size_t>(pool->size());
  const size_t split = M == 1 && !ref && group <= kMaxGroupPart && c.kv_heads < 2 * threads
                           ? std::min((2 * threads + c.kv_heads - 1) / c.kv_heads, (T1 + 63) / 64) : 1;
  const size_t span = (T1 + split - 1) / split;
  const size_t part_len = (span + kKvTile - 1) / kKvTile * kKvTile;  // positions per part
  const size_t parts = split == 1 ? 1 : (T1 + part_len - 1) / part_len;
  if (parts > 1) {
    attn_parts_.resize(c.kv_heads * parts * group * (hd + 2));
    float* outs = attn_parts_.data();
    float* maxes = outs + c.kv_heads * parts * group * hd;
    float* sums = maxes + c.kv_heads * parts * group;
    pool->parallel_for(c.kv_heads * parts, 1, [&](size_t b, size_t e) {
      thread_local std::vector<float> scratch;
      for (size_t it = b; it < e; ++it) {
        const size_t h = it / parts, t0 = it % parts * part_len, t1 = std::min(T1, t0 + part_len);
        scratch.resize(attention_scratch_floats(group, t1 - t0));
        attention_group_part(qkv_.row(0) + h * group * hd, group, kc + h * k_head, vc + h * max_seq_ * hd,
                             t0, t1, hd, scale, scratch.data(), outs + it * group * hd,
                             maxes + it * group, sums + it * group);
      }
    });
    for (size_t h = 0; h < c.kv_heads; ++h)
      attention_merge(outs + h * parts * group * hd, maxes + h * parts * group, sums + h * parts * group,
                      parts, group, hd, attn_.row(0) + h * group * hd);
  } else {
    pool->parallel_for(M * c.kv_heads, 1, [&](size_t b, size_t e) {
      thread_local std::vector<float> scratch;
      for (size_t it = b; it < e; ++it) {
        const size_t m = it / c.kv_heads, h = it % c.kv_heads, T = start_pos + m + 1;
        const float* q = qkv_.row(m) + h * group * hd;
        float* out = attn_.row(m) + h * group * hd;
        const E* k = kc + h * k_head;
        const E* v = vc + h * max_seq_ * hd;
        if (ref) {
          attention_group_ref(q, group, k, v, T, hd, scale, out);
        } else {
          scratch.resize(attention_scratch_floats(group, T));
          attention_group(q, group, k, v, T, hd, scale, scratch.data(), out);
        }
      }
    });
  }
}

Tensor Model::forward(std::span<const int32_t> tokens, size_t start_pos, bool all_logits) {
  const ModelConfig& c = cfg_;
  const size_t M = tokens.size();
  if (M == 0) fail("forward: no tokens");
  if (start_pos > cached_)
    fail("forward: start_pos {} is past the {} positions the KV cache holds", start_pos, cached_);
  if (start_pos + M > max_seq_)
    fail("forward: {} tokens at position {} exceed the context of {} positions", M, start_pos, max_seq_);
  for (size_t m = 0; m < M; ++m)
    if (tokens[m] < 0 || static_cast<size_t>(tokens[m]) >= c.vocab)
      fail("forward: token id {} at index {} is outside the vocabulary [0, {})", tokens[m], m, c.vocab);

  using P = Profile;
  ThreadPool* pool = pool_.get();
  const size_t H = c.hidden, hd = c.head_dim, I = c.intermediate;
  const size_t q_dim = c.heads * hd;  // k at column q_dim of qkv_

  std::vector<float> cos_t(M * hd / 2), sin_t(M * hd / 2);
  {
    ProfileScope ps(profile_, P::embedding);
    x_.resize(M, H);
    for (size_t m = 0; m < M; ++m) {
      const size_t t = static_cast<size_t>(tokens[m]);
      float* xr = x_.row(m);
      if (embed_bf16_) for (size_t i = 0; i < H; ++i) xr[i] = bf16_to_f32(embed_bf16_[t * H + i]);
      else std::copy_n(embed_f32_.data() + t * H, H, xr);
    }
    // cos / sin [M, hd/2] for the positions of this call.
    for (size_t m = 0; m < M; ++m)
      for (size_t i = 0; i < hd / 2; ++i) {
        const float ang = inv_freq_[i] * static_cast<float>(start_pos + m);
        cos_t[m * hd / 2 + i] = static_cast<float>(std::cos(static_cast<double>(ang)));
        sin_t[m * hd / 2 + i] = static_cast<float>(std::sin(static_cast<double>(ang)));
      }
  }

  h_.resize(M, H);
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    {
      ProfileScope ps(profile_, P::norm_rope_residual);
      for (size_t m = 0; m < M; ++m) rms_norm(x_.row(m), L.attn_norm.data(), H, c.rms_eps, h_.row(m));
    }
    {
      ProfileScope ps(profile_, P::qkv);
      L.qkv(h_, qkv_, part_, pool);
    }
    {
      ProfileScope ps(profile_, P::norm_rope_residual);
      for (size_t m = 0; m < M; ++m) {
        const float* cs = cos_t.data() + m * hd / 2;
        const float* sn = sin_t.data() + m * hd / 2;
        for (size_t h = 0; h < c.heads; ++h) {
          float* qh = qkv_.row(m) + h * hd;
          if (c.qk_norm) rms_norm(qh, L.q_norm.data(), hd, c.rms_eps, qh);
          rope(qh, hd, cs, sn);
        }
        for (size_t h = 0; h < c.kv_heads; ++h) {
          float* kh = qkv_.row(m) + q_dim + h * hd;
          if (c.qk_norm) rms_norm(kh, L.k_norm.data(), hd, c.rms_eps, kh);
          rope(kh, hd, cs, sn);
        }
      }
    }
    {
      ProfileScope ps(profile_, P::attention);
      attention(li, M, start_pos);
    }
    {
      ProfileScope ps(profile_, P::o_proj);
      L.o(attn_, o_, pool);
    }
    {
      ProfileScope ps(profile_, P::norm_rope_residual);
      for (size_t i = 0; i < M * H; ++i) x_.data()[i] += o_.data()[i];
      for (size_t m = 0; m < M; ++m) rms_norm(x_.row(m), L.mlp_norm.data(), H, c.rms_eps, h_.row(m));
    }
    {
      ProfileScope ps(profile_, P::mlp_up);
      L.gate_up(h_, gate_up_, part_, pool);
    }
    {
      ProfileScope ps(profile_, P::norm_rope_residual);
      act_.resize(M, I);
      for (size_t m = 0; m < M; ++m) {
        const float* g = gate_up_.row(m);
        if (qcfg_.path == KernelPath::ref) silu_mul_ref(g, g + I, I, act_.row(m));
        else silu_mul(g, g + I, I, act_.row(m));
      }
    }
    {
      ProfileScope ps(profile_, P::mlp_down);
      L.down(act_, down_, pool);
    }
    ProfileScope ps(profile_, P::norm_rope_residual);
    for (size_t i = 0; i < M * H; ++i) x_.data()[i] += down_.data()[i];
  }
  cached_ = start_pos + M;

  const size_t first = all_logits ? 0 : M - 1;
  {
    ProfileScope ps(profile_, P::norm_rope_residual);
    h_.resize(M - first, H);
    for (size_t m = first; m < M; ++m) rms_norm(x_.row(m), final_norm_.data(), H, c.rms_eps, h_.row(m - first));
  }
  ProfileScope ps(profile_, P::lm_head);
  Tensor logits;
  lm_head_(h_, logits, pool);
  return logits;
}

size_t Model::weight_bytes(Profile::Part part) const {
  const auto sum = [&](auto member) {
    size_t n = 0;
    for (const Layer& L : layers_) n += (L.*member).weight_bytes();
    return n;
  };
  switch (part) {
    case Profile::embedding: return cfg_.hidden * (embed_bf16_ ? sizeof(mxq::bf16) : sizeof(float));
    case Profile::qkv: return sum(&Layer::qkv);
    case Profile::o_proj: return sum(&Layer::o);
    case Profile::mlp_up: return sum(&Layer::gate_up);
    case Profile::mlp_down: return sum(&Layer::down);
    case Profile::lm_head: return lm_head_.method->weight_bytes();
    default: return 0;
  }
}

size_t Model::weight_bytes_per_token() const {
  size_t n = 0;
  for (size_t p = 0; p < Profile::kPartCount; ++p) n += weight_bytes(static_cast<Profile::Part>(p));
  return n;
}

std::vector<int32_t> Model::generate_greedy(std::span<const int32_t> prompt, size_t n_new) {
  std::vector<int32_t> out;
  if (n_new == 0) return out;
  const auto argmax = [](const Tensor& l) {
    const float* r = l.row(l.rows() - 1);
    return static_cast<int32_t>(std::max_element(r, r + l.cols()) - r);  // first maximum, as torch
  };
  Tensor logits = forward(prompt, 0, false);
  out.push_back(argmax(logits));
  while (out.size() < n_new) {
    const int32_t t = out.back();
    logits = forward(std::span<const int32_t>(&t, 1), prompt.size() + out.size() - 1, false);
    out.push_back(argmax(logits));
  }
  return out;
}

}  // namespace mxq::runtime
