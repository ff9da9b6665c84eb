// Unquantized and Mxfp4Linear, and the QuantConfig that picks one per layer.
#include "mxq/runtime/linear_method.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "mxq/error.h"
#include "mxq/kernels/cpu/gemm.h"
#include "mxq/quant/pattern.h"
#include "mxq/quant/recipe.h"

namespace mxq::runtime {

const char* mxfp4_mode_name(Mxfp4Mode m) {
  switch (m) {
    case Mxfp4Mode::w4a16: return "W4A16";
    case Mxfp4Mode::w4a8: return "W4A8";
    case Mxfp4Mode::w4a4: return "W4A4";
  }
  return "?";
}

namespace {

std::string upper(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

std::string shape_str(const std::vector<uint64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

bool is_scalar_shape(const std::vector<uint64_t>& s) {
  return s.empty() || (s.size() == 1 && s[0] == 1);
}

// A dense tensor as f32 (exact for BF16 / F16 / F32).
std::vector<float> dense_f32(const io::LogicalTensor& t) { return io::dequantize(t); }

void add_bias(const std::vector<float>& b, size_t M, size_t N, float* y) {
  if (b.empty()) return;
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < N; ++n) y[m * N + n] += b[n];
}

std::string weight_name(const LinearSpec& s) {
  return s.weight_name.empty() ? s.prefix + ".weight" : s.weight_name;
}

// A scalar scale tensor that must be positive and finite (input_scale, weight_scale_2).
float positive_scale(const io::LogicalTensor& t) {
  const float s = dense_f32(t).at(0);
  if (!(s > 0.0f) || !std::isfinite(s)) fail("{}: {} is not a positive finite number", t.name, s);
  return s;
}

// x [M, K] times pre_quant_scale [K] into buf, or x itself where the layer has none.
const float* with_pre_quant_scale(const float* x, size_t M, size_t K, const std::vector<float>& pqs,
                                  std::vector<float>& buf) {
  if (pqs.empty()) return x;
  buf.resize(M * K);
  for (size_t m = 0; m < M; ++m)
    for (size_t k = 0; k < K; ++k) buf[m * K + k] = x[m * K + k] * pqs[k];
  return buf.data();
}

// The parts as Method, all reading the same in_features on the same path; empty if any part is
// another method type or differs in either (merge_linear_methods' common conditions).
template <class Method>
std::vector<const Method*> same_method_parts(std::span<const LinearMethod* const> parts) {
  std::vector<const Method*> r;
  for (const LinearMethod* p : parts) {
    const auto* m = dynamic_cast<const Method*>(p);
    if (!m || (!r.empty() && !r.front()->mergeable_with(*m))) return {};
    r.push_back(m);
  }
  return r;
}

// The merged layer's spec: the parts' rows stacked, prefixes joined by '+'.
template <class Method>
LinearSpec stacked_spec(const std::vector<const Method*>& parts) {
  LinearSpec s;
  s.in = parts.front()->spec().in;
  for (const Method* p : parts) {
    s.prefix += (s.prefix.empty() ? "" : "+") + p->spec().prefix;
    s.out += p->spec().out;
    s.bias = s.bias || p->spec().bias;
  }
  return s;
}

// The parts' biases stacked along N, zeros for a part without one; empty if none has one.
template <class Method>
std::vector<float> stacked_bias(const std::vector<const Method*>& parts) {
  std::vector<float> b;
  if (!stacked_spec(parts).bias) return b;
  for (const Method* p : parts) {
    if (p->bias().empty()) b.insert(b.end(), p->spec().out, 0.0f);
    else b.insert(b.end(), p->bias().begin(), p->bias().end());
  }
  return b;
}

// ---------------------------------------------------------------------------------------------

class Unquantized final : public LinearMethod {
 public:
  explicit Unquantized(KernelPath path) : path_(path) {}

  std::string describe() const override {
    return fmt::format("Unquantized({})", w_bf16_ ? "bf16" : "f32");
  }

  std::vector<WeightParam> create_weights(const LinearSpec& spec) override {
    spec_ = spec;
    std::vector<WeightParam> p{{weight_name(spec), {spec.out, spec.in}, {io::StoredFormat::dense}, true}};
    if (spec.bias) p.push_back({spec.prefix + ".bias", {spec.out}, {io::StoredFormat::dense}, true});
    return p;
  }

  void process_weights_after_loading(const LoadedWeights& w) override {
    const io::LogicalTensor& t = *w.at(weight_name(spec_));
    // BF16 stays where the checkpoint maps it (zero copy); F32 / F16 become an owned f32 copy.
    if (t.data->dtype == io::DType::bf16) {
      w_bf16_ = reinterpret_cast<const bf16*>(t.data->data.data());
    } else if (t.data->dtype == io::DType::f32 || t.data->dtype == io::DType::f16) {
      const std::vector<float> f = dense_f32(t);
      owned_.resize(f.size() * sizeof(float));
      std::memcpy(owned_.data(), f.data(), owned_.size());
      w_f32_ = reinterpret_cast<const float*>(owned_.data());
    } else {
      fail("{}: dtype {} is not a dense weight type the Unquantized method runs (BF16, F16, F32)",
           t.name, io::dtype_info(t.data->dtype).name);
    }
    if (spec_.bias) bias_ = dense_f32(*w.at(spec_.prefix + ".bias"));
  }

  void apply(const float* x, size_t M, float* y, ThreadPool* pool) const override {
    const size_t K = spec_.in, N = spec_.out;
    if (w_bf16_) {
      if (path_ == KernelPath::ref) gemm_bf16_ref(x, M, K, w_bf16_, N, y);
      else gemm_bf16(x, M, K, w_bf16_, N, y, pool);
    } else {
      if (path_ == KernelPath::ref) gemm_f32_ref(x, M, K, w_f32_, N, y);
      else gemm_f32(x, M, K, w_f32_, N, y, pool);
    }
    add_bias(bias_, M, N, y);
  }

  size_t weight_bytes() const override {
    return spec_.in * spec_.out * (w_bf16_ ? 2 : 4);
  }

  void move_weights_to(HugePageArena& arena) override {
    const std::span<const uint8_t> moved = arena.copy(weight());
    if (w_bf16_) w_bf16_ = reinterpret_cast<const bf16*>(moved.data());
    else w_f32_ = reinterpret_cast<const float*>(moved.data());
    std::vector<uint8_t>().swap(owned_);
  }

  const LinearSpec& spec() const { return spec_; }
  const std::vector<float>& bias() const { return bias_; }
  bool mergeable_with(const Unquantized& o) const {
    return path_ == o.path_ && spec_.in == o.spec_.in && (w_bf16_ != nullptr) == (o.w_bf16_ != nullptr);
  }

  // merge_linear_methods for Unquantized parts: the weights copied into one owned [Σ out, in].
  static std::unique_ptr<LinearMethod> merge(const std::vector<const Unquantized*>& parts) {
    auto m = std::make_unique<Unquantized>(parts.front()->path_);
    m->spec_ = stacked_spec(parts);
    m->bias_ = stacked_bias(parts);
    for (const Unquantized* p : parts) m->owned_.insert(m->owned_.end(), p->weight().begin(), p->weight().end());
    if (parts.front()->w_bf16_) m->w_bf16_ = reinterpret_cast<const bf16*>(m->owned_.data());
    else m->w_f32_ = reinterpret_cast<const float*>(m->owned_.data());
    return m;
  }

 private:
  std::span<const uint8_t> weight() const {
    const void* w = w_bf16_ ? static_cast<const void*>(w_bf16_) : w_f32_;
    return {static_cast<const uint8_t*>(w), weight_bytes()};
  }

  KernelPath path_;
  LinearSpec spec_;
  // The weight [out, in], BF16 or f32: in the checkpoint's mapping (BF16), in owned_ (converted
  // F32 / F16, a merged layer's), or in the model's arena once moved there.
  const bf16* w_bf16_ = nullptr;
  const float* w_f32_ = nullptr;
  std::vector<uint8_t> owned_;
  std::vector<float> bias_;
};

// ---------------------------------------------------------------------------------------------

// What Mxfp4Linear and Nvfp4Linear share: a block-quantized weight kept in the checkpoint's layout
// ([N, K/2] codes, [N, K/block] scales, and NVFP4's tensor scale), which the kernels read as it is:
// the "repack" is a copy into memory the method owns, so the mapping may go away. Besides it an
// optional pre_quant_scale [K], a static input_scale for the one mode that can use it, and a bias.
class BlockQuantLinear : public LinearMethod {
 public:
  struct Format {
    const char* method;             // "Mxfp4Linear"
    const char* name;               // "MXFP4"
    io::StoredFormat stored;
    size_t block;                   // elements per scale along K
    Mxfp4Mode input_scale_mode;     // the mode whose activation scale may be static
  };
  BlockQuantLinear(const Format& f, Mxfp4Mode mode, KernelPath path) : f_(f), mode_(mode), path_(path) {}

  std::string describe() const override {
    std::string s = fmt::format("{}({}", f_.method, mxfp4_mode_name(mode_));
    if (mode_ == f_.input_scale_mode) s += input_scale_ > 0.0f ? ", static input_scale" : ", per-token";
    if (!pre_quant_scale_.empty()) s += ", pre_quant_scale";
    return s + ")";
  }

  std::vector<WeightParam> create_weights(const LinearSpec& spec) override {
    if (spec.in % f_.block != 0)
      fail("{}: in_features {} is not a multiple of the {} block ({})", spec.prefix, spec.in, f_.name, f_.block);
    spec_ = spec;
    std::vector<WeightParam> p{{weight_name(spec), {spec.out, spec.in}, {f_.stored}, true},
                               {spec.prefix + ".pre_quant_scale", {spec.in}, {io::StoredFormat::dense}, false}};
    if (mode_ == f_.input_scale_mode)
      p.push_back({spec.prefix + ".input_scale", {}, {io::StoredFormat::dense}, false});
    if (spec.bias) p.push_back({spec.prefix + ".bias", {spec.out}, {io::StoredFormat::dense}, true});
    return p;
  }

  void process_weights_after_loading(const LoadedWeights& w) override {
    const io::LogicalTensor& t = *w.at(weight_name(spec_));
    own(t.data->data, t.scales->data);
    if (t.scale2)
      tensor_scale_ = positive_scale(io::LogicalTensor{t.scale2->name, io::StoredFormat::dense, {}, t.scale2, nullptr, nullptr});
    if (auto it = w.find(spec_.prefix + ".pre_quant_scale"); it != w.end())
      pre_quant_scale_ = dense_f32(*it->second);
    if (auto it = w.find(spec_.prefix + ".input_scale"); it != w.end())
      input_scale_ = positive_scale(*it->second);
    if (spec_.bias) bias_ = dense_f32(*w.at(spec_.prefix + ".bias"));
  }

  size_t weight_bytes() const override { return codes_.size() + scales_.size(); }

  void move_weights_to(HugePageArena& arena) override {
    codes_ = arena.copy(codes_);
    scales_ = arena.copy(scales_);
    std::vector<uint8_t>().swap(owned_);
  }

  Mxfp4Mode mode() const { return mode_; }
  KernelPath path() const { return path_; }
  const LinearSpec& spec() const { return spec_; }
  const std::vector<float>& bias() const { return bias_; }
  // Same format, mode and path, and the same activation scaling (what apply does to x before the
  // GEMM) and tensor scale, so that one apply over the stacked rows is each part's apply.
  bool mergeable_with(const BlockQuantLinear& o) const {
    return f_.stored == o.f_.stored && mode_ == o.mode_ && path_ == o.path_ && spec_.in == o.spec_.in &&
           tensor_scale_ == o.tensor_scale_ && input_scale_ == o.input_scale_ &&
           pre_quant_scale_ == o.pre_quant_scale_;
  }

  // merge_linear_methods for parts of one BlockQuantLinear type: codes and scales stacked by row
  // (both layouts are row-major [N, …]). `into` is a fresh method of the parts' type.
  static std::unique_ptr<LinearMethod> merge(const std::vector<const BlockQuantLinear*>& parts,
                                             std::unique_ptr<BlockQuantLinear> into) {
    const BlockQuantLinear& first = *parts.front();
    into->spec_ = stacked_spec(parts);
    into->bias_ = stacked_bias(parts);
    std::vector<uint8_t> codes, scales;
    for (const BlockQuantLinear* p : parts) {
      codes.insert(codes.end(), p->codes_.begin(), p->codes_.end());
      scales.insert(scales.end(), p->scales_.begin(), p->scales_.end());
    }
    into->own(codes, scales);
    into->tensor_scale_ = first.tensor_scale_;
    into->pre_quant_scale_ = first.pre_quant_scale_;
    into->input_scale_ = first.input_scale_;
    return into;
  }

 protected:
  Format f_;
  Mxfp4Mode mode_;
  KernelPath path_;
  LinearSpec spec_;
  // [N, K/2] codes and [N, K/block] scales: views of owned_ (codes, then scales) until the model
  // moves them to its arena.
  std::span<const uint8_t> codes_, scales_;
  std::vector<uint8_t> owned_;
  void own(std::span<const uint8_t> codes, std::span<const uint8_t> scales) {
    owned_.assign(codes.begin(), codes.end());
    owned_.insert(owned_.end(), scales.begin(), scales.end());
    codes_ = {owned_.data(), codes.size()};
    scales_ = {owned_.data() + codes.size(), scales.size()};
  }
  float tensor_scale_ = 1.0f;  // NVFP4's weight_scale_2
  std::vector<float> pre_quant_scale_, bias_;
  float input_scale_ = 0.0f;  // 0: per-token dynamic
};

class Mxfp4Linear final : public BlockQuantLinear {
 public:
  Mxfp4Linear(Mxfp4Mode mode, KernelPath path)
      : BlockQuantLinear({"Mxfp4Linear", "MXFP4", io::StoredFormat::mxfp4, kMxBlock, Mxfp4Mode::w4a8}, mode, path) {}

  void apply(const float* x, size_t M, float* y, ThreadPool* pool) const override {
    const size_t K = spec_.in, N = spec_.out;
    std::vector<float> xs;
    x = with_pre_quant_scale(x, M, K, pre_quant_scale_, xs);
    if (path_ == KernelPath::ref) {
      switch (mode_) {
        case Mxfp4Mode::w4a16: gemm_mxfp4_ref(x, M, K, codes_.data(), scales_.data(), N, y); break;
        case Mxfp4Mode::w4a8:
          gemm_mxfp4_w4a8_ref(x, M, K, codes_.data(), scales_.data(), N, input_scale_, y);
          break;
        case Mxfp4Mode::w4a4:
          gemm_mxfp4_w4a4_ref(x, M, K, codes_.data(), scales_.data(), N, y);
          break;
      }
    } else {
      // W4A8 runs the GEMM on the E4M3 values (act_fp8_codes, bit-identical to the reference's
      // act_fp8_codes_row) and scales each output row after, as its reference does; W4A4 uses the
      // reference's own quantizer (O(M·K) against the GEMM's O(M·N·K)), whose dequantized values
      // E2M1 × 2^e are already exact in BF16.
      std::vector<float> xq, row_scales;
      if (mode_ != Mxfp4Mode::w4a16) {
        xq.resize(M * K);
        row_scales.resize(M);
        if (mode_ == Mxfp4Mode::w4a8) act_fp8_codes(x, M, K, input_scale_, xq.data(), row_scales.data());
        else for (size_t m = 0; m < M; ++m) act_mxfp4_quantize_row(x + m * K, K, xq.data() + m * K);
        x = xq.data();
      }
      gemm_mxfp4(x, M, K, codes_.data(), scales_.data(), N, y, pool);
      if (mode_ == Mxfp4Mode::w4a8) act_fp8_scale_outputs(row_scales.data(), M, N, y);
    }
    add_bias(bias_, M, N, y);
  }
};

// NVFP4 as ModelOpt exports it: `weight` U8 [N, K/2], `weight_scale` E4M3 [N, K/16], F32
// `weight_scale_2`; W4A4's optional `input_scale` is the activations' static second-level scale.
class Nvfp4Linear final : public BlockQuantLinear {
 public:
  Nvfp4Linear(Mxfp4Mode mode, KernelPath path)
      : BlockQuantLinear({"Nvfp4Linear", "NVFP4", io::StoredFormat::nvfp4, kNvfp4Block, Mxfp4Mode::w4a4}, mode, path) {
    if (mode == Mxfp4Mode::w4a8)
      fail("Nvfp4Linear runs W4A16 or W4A4; W4A8 (NVFP4 weights, FP8 activations) is not implemented");
  }

  void apply(const float* x, size_t M, float* y, ThreadPool* pool) const override {
    const size_t K = spec_.in, N = spec_.out;
    std::vector<float> xs, xq;
    x = with_pre_quant_scale(x, M, K, pre_quant_scale_, xs);
    if (mode_ == Mxfp4Mode::w4a4) {  // the same quantizer on both paths
      xq.resize(M * K);
      for (size_t m = 0; m < M; ++m) act_nvfp4_quantize_row(x + m * K, K, input_scale_, xq.data() + m * K);
      x = xq.data();
    }
    if (path_ == KernelPath::ref)
      gemm_nvfp4_ref(x, M, K, codes_.data(), scales_.data(), tensor_scale_, N, y);
    else
      gemm_nvfp4(x, M, K, codes_.data(), scales_.data(), tensor_scale_, N, y, pool);
    add_bias(bias_, M, N, y);
  }
};

}  // namespace

std::optional<Mxfp4Mode> mxfp4_mode_from_name(std::string_view s) {
  const std::string u = upper(s);
  for (Mxfp4Mode m : {Mxfp4Mode::w4a16, Mxfp4Mode::w4a8, Mxfp4Mode::w4a4})
    if (u == mxfp4_mode_name(m)) return m;
  return std::nullopt;
}

std::unique_ptr<LinearMethod> make_unquantized_linear(KernelPath path) {
  return std::make_unique<Unquantized>(path);
}
std::unique_ptr<LinearMethod> make_mxfp4_linear(Mxfp4Mode mode, KernelPath path) {
  return std::make_unique<Mxfp4Linear>(mode, path);
}
std::unique_ptr<LinearMethod> make_nvfp4_linear(Mxfp4Mode mode, KernelPath path) {
  return std::make_unique<Nvfp4Linear>(mode, path);
}

std::unique_ptr<LinearMethod> merge_linear_methods(std::span<const LinearMethod* const> parts) {
  if (parts.empty()) return nullptr;
  if (auto u = same_method_parts<Unquantized>(parts); !u.empty()) return Unquantized::merge(u);
  auto q = same_method_parts<BlockQuantLinear>(parts);
  if (q.empty()) return nullptr;
  const auto& first = *q.front();
  std::unique_ptr<BlockQuantLinear> into;
  if (dynamic_cast<const Mxfp4Linear*>(&first)) into = std::make_unique<Mxfp4Linear>(first.mode(), first.path());
  else into = std::make_unique<Nvfp4Linear>(first.mode(), first.path());
  return BlockQuantLinear::merge(q, std::move(into));
}

LoadedWeights find_weights(const std::vector<WeightParam>& params,
                           const std::map<std::string, const io::LogicalTensor*, std::less<>>& tensors,
                           const std::string& dir) {
  LoadedWeights found;
  for (const WeightParam& p : params) {
    auto it = tensors.find(p.name);
    if (it == tensors.end()) {
      if (p.required) fail("{}: the checkpoint has no tensor {} (expected shape {})", dir, p.name, shape_str(p.shape));
      continue;
    }
    const io::LogicalTensor& t = *it->second;
    if (std::find(p.formats.begin(), p.formats.end(), t.format) == p.formats.end()) {
      std::vector<std::string> names;
      for (auto f : p.formats) names.emplace_back(io::stored_format_name(f));
      fail("{}: tensor {} is stored as {}, but its layer's method expects {} (does the "
           "quantization config agree with the tensors?)",
           dir, p.name, io::stored_format_name(t.format), fmt::join(names, " or "));
    }
    const bool ok = p.shape.empty() ? is_scalar_shape(t.shape) : t.shape == p.shape;
    if (!ok)
      fail("{}: tensor {} has shape {}, expected {}", dir, p.name, shape_str(t.shape),
           p.shape.empty() ? std::string("a scalar") : shape_str(p.shape));
    found.emplace(p.name, &t);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------

constexpr const char* kSupportedAlgos = "MXFP4, W4A8_MXFP4_FP8, NVFP4, W4A16_NVFP4";

QuantConfig QuantConfig::from_checkpoint(const io::HfCheckpoint& ck,
                                         std::optional<Mxfp4Mode> override_mode) {
  QuantConfig q;
  std::string recipe;
  const nlohmann::json& cfg = ck.config();
  const auto strings = [](const nlohmann::json& j, const char* key) {
    std::vector<std::string> v;
    if (j.contains(key) && j[key].is_array())
      for (const auto& e : j[key]) v.push_back(e.get<std::string>());
    return v;
  };
  const std::string hf_quant = ck.dir() + "/hf_quant_config.json";
  if (cfg.contains("quantization_config") && cfg["quantization_config"].is_object()) {
    const nlohmann::json& qc = cfg["quantization_config"];
    const std::string method = qc.value("quant_method", "");
    if (method != "modelopt" && !qc.contains("quant_algo"))
      fail("{}: quantization_config quant_method '{}' is not supported by the runtime (supported: "
           "modelopt / mxq exports with quant_algo {})", ck.dir(), method, kSupportedAlgos);
    q.quant_algo = qc.value("quant_algo", "");
    q.exclude = qc.contains("ignore") ? strings(qc, "ignore") : strings(qc, "exclude_modules");
    recipe = qc.value("mxq_recipe", "");
  } else if (std::filesystem::exists(hf_quant)) {
    const nlohmann::json j = io::read_json_file(hf_quant);
    const nlohmann::json& qq = j.contains("quantization") ? j["quantization"] : j;
    q.quant_algo = qq.value("quant_algo", "");
    q.exclude = strings(qq, "exclude_modules");
  }
  if (q.quant_algo.empty()) {
    q.mode_reason = "not quantized";
    return q;
  }

  const std::string algo = upper(q.quant_algo);
  const bool nvfp4 = algo == "NVFP4" || algo == "W4A16_NVFP4";
  if (algo != "MXFP4" && algo != "W4A8_MXFP4_FP8" && !nvfp4)
    fail("{}: quant_algo '{}' is not supported by the runtime (supported: {}, or an unquantized "
         "checkpoint)", ck.dir(), q.quant_algo, kSupportedAlgos);
  if (nvfp4) {
    // Unlike "MXFP4", the NVFP4 strings say what happens to activations: ModelOpt's "NVFP4"
    // (NVFP4_DEFAULT_CFG) quantizes them too, TensorRT-LLM's "W4A16_NVFP4" does not.
    q.format = LinearFormat::nvfp4;
    if (override_mode == Mxfp4Mode::w4a8)
      fail("{}: quant_algo {}: NVFP4 layers run W4A16 or W4A4, not W4A8", ck.dir(), q.quant_algo);
    q.mode = override_mode.value_or(algo == "NVFP4" ? Mxfp4Mode::w4a4 : Mxfp4Mode::w4a16);
    q.mode_reason = override_mode ? "override" : "quant_algo " + q.quant_algo;
    return q;
  }
  if (override_mode) {
    q.mode = *override_mode;
    q.mode_reason = "override";
  } else if (algo == "W4A8_MXFP4_FP8") {
    q.mode = Mxfp4Mode::w4a8;
    q.mode_reason = "quant_algo W4A8_MXFP4_FP8";
  } else {
    // quant_algo "MXFP4" says the weights are MXFP4, not what happens to activations:
    // MXFP4_DEFAULT_CFG (W4A4) and MXFP4_MLP_WEIGHT_ONLY_CFG (weight-only) export the same string.
    // mxq's own exports name their recipe; take the activation format from it. Without it (a
    // ModelOpt export) default to W4A16, the mode that adds no error beyond the stored weights.
    q.mode = Mxfp4Mode::w4a16;
    q.mode_reason = "quant_algo MXFP4 without mxq_recipe: weight-only by default";
    if (!recipe.empty()) {
      const quant::Recipe* r = nullptr;
      try {
        r = &quant::recipe_preset(recipe);
      } catch (const Error&) {
        q.mode_reason = fmt::format("mxq_recipe '{}' is not a preset: weight-only by default", recipe);
      }
      if (r) {
        for (const quant::Rule& rule : r->rules) {
          if (rule.format.weight != quant::WeightFormat::mxfp4) continue;
          switch (rule.format.activation) {
            case quant::ActivationFormat::none: q.mode = Mxfp4Mode::w4a16; break;
            case quant::ActivationFormat::mxfp4: q.mode = Mxfp4Mode::w4a4; break;
            case quant::ActivationFormat::fp8_e4m3_per_tensor_static:
            case quant::ActivationFormat::fp8_e4m3_per_token_dynamic: q.mode = Mxfp4Mode::w4a8; break;
            default:
              fail("{}: mxq_recipe '{}' quantizes activations to {}, which the runtime does not run",
                   ck.dir(), recipe, quant::activation_format_name(rule.format.activation));
          }
          q.mode_reason = fmt::format("mxq_recipe {}", recipe);
          break;
        }
      }
    }
  }
  return q;
}

bool QuantConfig::excluded(std::string_view layer) const {
  for (const std::string& p : exclude)
    if (quant::glob_match(p, layer) || quant::glob_match(p + ".*", layer)) return true;
  return false;
}

std::unique_ptr<LinearMethod> QuantConfig::linear_method(std::string_view layer) const {
  if (quant_algo.empty() || excluded(layer)) return make_unquantized_linear(path);
  return format == LinearFormat::nvfp4 ? make_nvfp4_linear(mode, path) : make_mxfp4_linear(mode, path);
}

}  // namespace mxq::runtime
