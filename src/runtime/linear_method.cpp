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
      w_f32_ = dense_f32(t);
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
      if (path_ == KernelPath::ref) gemm_f32_ref(x, M, K, w_f32_.data(), N, y);
      else gemm_f32(x, M, K, w_f32_.data(), N, y, pool);
    }
    add_bias(bias_, M, N, y);
  }

  size_t weight_bytes() const override {
    return spec_.in * spec_.out * (w_bf16_ ? 2 : 4);
  }

 private:
  KernelPath path_;
  LinearSpec spec_;
  const bf16* w_bf16_ = nullptr;
  std::vector<float> w_f32_;
  std::vector<float> bias_;
};

// ---------------------------------------------------------------------------------------------

class Mxfp4Linear final : public LinearMethod {
 public:
  Mxfp4Linear(Mxfp4Mode mode, KernelPath path) : mode_(mode), path_(path) {}

  std::string describe() const override {
    std::string s = fmt::format("Mxfp4Linear({}", mxfp4_mode_name(mode_));
    if (mode_ == Mxfp4Mode::w4a8) s += input_scale_ > 0.0f ? ", static input_scale" : ", per-token";
    if (!pre_quant_scale_.empty()) s += ", pre_quant_scale";
    return s + ")";
  }

  std::vector<WeightParam> create_weights(const LinearSpec& spec) override {
    if (spec.in % kMxBlock != 0)
      fail("{}: in_features {} is not a multiple of the MXFP4 block ({})", spec.prefix, spec.in,
           kMxBlock);
    spec_ = spec;
    std::vector<WeightParam> p{{weight_name(spec), {spec.out, spec.in}, {io::StoredFormat::mxfp4}, true},
                               {spec.prefix + ".pre_quant_scale", {spec.in}, {io::StoredFormat::dense}, false}};
    if (mode_ == Mxfp4Mode::w4a8)
      p.push_back({spec.prefix + ".input_scale", {}, {io::StoredFormat::dense}, false});
    if (spec.bias) p.push_back({spec.prefix + ".bias", {spec.out}, {io::StoredFormat::dense}, true});
    return p;
  }

  void process_weights_after_loading(const LoadedWeights& w) override {
    // The kernels read the checkpoint's layout as it is ([N, K/2] codes, [N, K/32] scales): the
    // "repack" is a copy into memory the method owns, so the mapping may go away.
    const io::LogicalTensor& t = *w.at(weight_name(spec_));
    codes_.assign(t.data->data.begin(), t.data->data.end());
    scales_.assign(t.scales->data.begin(), t.scales->data.end());
    if (auto it = w.find(spec_.prefix + ".pre_quant_scale"); it != w.end())
      pre_quant_scale_ = dense_f32(*it->second);
    if (auto it = w.find(spec_.prefix + ".input_scale"); it != w.end()) {
      input_scale_ = dense_f32(*it->second).at(0);
      if (!(input_scale_ > 0.0f) || !std::isfinite(input_scale_))
        fail("{}: input_scale {} is not a positive finite number", it->first, input_scale_);
    }
    if (spec_.bias) bias_ = dense_f32(*w.at(spec_.prefix + ".bias"));
  }

  void apply(const float* x, size_t M, float* y, ThreadPool* pool) const override {
    const size_t K = spec_.in, N = spec_.out;
    std::vector<float> xs;
    if (!pre_quant_scale_.empty()) {
      xs.resize(M * K);
      for (size_t m = 0; m < M; ++m)
        for (size_t k = 0; k < K; ++k) xs[m * K + k] = x[m * K + k] * pre_quant_scale_[k];
      x = xs.data();
    }
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
      // The activation quantizers are the references' own (bit-identical by construction; they
      // cost O(M·K) against the GEMM's O(M·N·K)).
      std::vector<float> xq;
      if (mode_ != Mxfp4Mode::w4a16) {
        xq.resize(M * K);
        for (size_t m = 0; m < M; ++m) {
          if (mode_ == Mxfp4Mode::w4a8) act_fp8_quantize_row(x + m * K, K, input_scale_, xq.data() + m * K);
          else act_mxfp4_quantize_row(x + m * K, K, xq.data() + m * K);
        }
        x = xq.data();
      }
      gemm_mxfp4(x, M, K, codes_.data(), scales_.data(), N, y, pool);
    }
    add_bias(bias_, M, N, y);
  }

  size_t weight_bytes() const override { return codes_.size() + scales_.size(); }

 private:
  Mxfp4Mode mode_;
  KernelPath path_;
  LinearSpec spec_;
  std::vector<uint8_t> codes_, scales_;
  std::vector<float> pre_quant_scale_, bias_;
  float input_scale_ = 0.0f;  // 0: per-token dynamic
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
           "modelopt / mxq exports with quant_algo MXFP4 or W4A8_MXFP4_FP8)", ck.dir(), method);
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
  if (algo != "MXFP4" && algo != "W4A8_MXFP4_FP8")
    fail("{}: quant_algo '{}' is not supported by the runtime (supported: MXFP4, W4A8_MXFP4_FP8, "
         "or an unquantized checkpoint)", ck.dir(), q.quant_algo);
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
  return make_mxfp4_linear(mode, path);
}

}  // namespace mxq::runtime
