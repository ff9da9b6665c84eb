// mxq/runtime/linear_method.h — the quantization-layer interface (docs: ../shared/DESIGN.md).
//
// A model's linear layer holds one LinearMethod, chosen per layer by QuantConfig from the
// checkpoint's quantization config. The model never looks at a weight format; it calls
//
//   create_weights(spec)                  -> the tensors the checkpoint must supply (names, shapes,
//                                            accepted stored formats, whether optional)
//   process_weights_after_loading(found)  -> take the loaded tensors, repack once if the kernel
//                                            wants another layout (today: a copy or zero-copy view)
//   apply(x [M, K] f32, M, y [M, N] f32)  -> y = x · Wᵀ (+ bias)
// and, once the model has loaded (and merged) every layer, move_weights_to(arena) puts the
// streamed weights in huge pages.
//
// Methods: Unquantized (BF16 / F16 / F32 weights) and Mxfp4Linear in three modes:
//   W4A16  weights stay 4-bit in memory and are widened in registers; activations f32;
//   W4A8   activations to FP8 E4M3, per token (dynamic) or by the checkpoint's static input_scale;
//   W4A4   activations to MXFP4 per 32-block, ceil scale, ties to even (ModelOpt's W4A4 run time).
// and, for comparison, Nvfp4Linear (ModelOpt's NVFP4 layout) in two of those modes:
//   W4A16  NVFP4 weights, f32 activations;
//   W4A4   activations to NVFP4 per 16-block (act_nvfp4_quantize_row: the checkpoint's input_scale
//          as the second-level scale where it has one, else per token).
// Where a checkpoint carries `<layer>.pre_quant_scale` [K] (AWQ, SmoothQuant), x is multiplied by it
// before any activation quantization.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mxq/io/quantized_checkpoint.h"
#include "mxq/kernels/cpu/thread_pool.h"
#include "mxq/runtime/huge_page_arena.h"

namespace mxq::runtime {

enum class Mxfp4Mode : uint8_t { w4a16, w4a8, w4a4 };
const char* mxfp4_mode_name(Mxfp4Mode m);               // "W4A16", "W4A8", "W4A4"
std::optional<Mxfp4Mode> mxfp4_mode_from_name(std::string_view s);  // case-insensitive

// Which implementation apply() runs: the SIMD kernels, or the scalar definitions (tests compare
// whole models run both ways).
enum class KernelPath : uint8_t { simd, ref };

// What the model asks of one linear layer: y[M, out] = x[M, in] · Wᵀ (+ b).
struct LinearSpec {
  std::string prefix;  // e.g. "model.layers.0.self_attn.q_proj"
  size_t in = 0, out = 0;
  bool bias = false;
  std::string weight_name;  // the weight tensor if not `<prefix>.weight` (tied lm_head)
};

// A tensor a method asks the checkpoint for.
struct WeightParam {
  std::string name;                          // the full tensor name
  std::vector<uint64_t> shape;               // logical shape; empty = a scalar ([] or [1])
  std::vector<io::StoredFormat> formats;     // accepted stored formats
  bool required = true;
};

// The tensors found for a layer's params, by full name (absent optional ones are missing).
using LoadedWeights = std::map<std::string, const io::LogicalTensor*, std::less<>>;

class LinearMethod {
 public:
  virtual ~LinearMethod() = default;
  // e.g. "Unquantized(bf16)", "Mxfp4Linear(W4A8, static input_scale)"
  virtual std::string describe() const = 0;
  virtual std::vector<WeightParam> create_weights(const LinearSpec& spec) = 0;
  virtual void process_weights_after_loading(const LoadedWeights& w) = 0;
  virtual void apply(const float* x, size_t M, float* y, ThreadPool* pool) const = 0;
  // Moves the weights apply() streams into `arena` (huge pages: huge_page_arena.h), releasing the
  // method's own copy or its view of the checkpoint's mapping. Once, after loading (and merging).
  virtual void move_weights_to(HugePageArena& arena) = 0;
  // Bytes of weight data apply() reads per call (codes + scales, or 16-bit values).
  virtual size_t weight_bytes() const = 0;
};

std::unique_ptr<LinearMethod> make_unquantized_linear(KernelPath path);
std::unique_ptr<LinearMethod> make_mxfp4_linear(Mxfp4Mode mode, KernelPath path);
// W4A16 or W4A4 (W4A8 is an error: NVFP4 weights with FP8 activations are not implemented).
std::unique_ptr<LinearMethod> make_nvfp4_linear(Mxfp4Mode mode, KernelPath path);

// Layers that read the same input (q/k/v; gate/up) as one method whose output rows are the parts'
// stacked in order: y[M, Σ out] = x · [W_0; W_1; …]ᵀ, each part's columns equal to its own apply's
// bit for bit (every output row is computed alone, and the activation quantization depends on x
// only). One call means one pass over x and one pool job where decode would otherwise pay three.
// nullptr where the parts cannot be one method: different method types, storage types, modes or
// activation scales (static input_scale, pre_quant_scale, NVFP4's tensor scale), or different in.
// The parts must have loaded their weights; the merged method owns a copy.
std::unique_ptr<LinearMethod> merge_linear_methods(std::span<const LinearMethod* const> parts);

// The weight format of a checkpoint's quantized layers.
enum class LinearFormat : uint8_t { mxfp4, nvfp4 };

// Validates that `ck` has every required tensor of `params` in an accepted format and shape (an
// error names the tensor), and returns what it found. `tensors` maps names to logical tensors.
LoadedWeights find_weights(const std::vector<WeightParam>& params,
                           const std::map<std::string, const io::LogicalTensor*, std::less<>>& tensors,
                           const std::string& checkpoint_dir);

// Which LinearMethod each layer gets, from the checkpoint's quantization config:
//   config.json "quantization_config" {quant_algo, ignore, mxq_recipe}, else
//   hf_quant_config.json {"quantization": {quant_algo, exclude_modules}}; neither = unquantized.
// quant_algo MXFP4 / W4A8_MXFP4_FP8 -> Mxfp4Linear; NVFP4 (W4A4) / W4A16_NVFP4 -> Nvfp4Linear.
struct QuantConfig {
  std::string quant_algo;            // as the checkpoint spells it; "" = not quantized
  std::vector<std::string> exclude;  // fnmatch patterns; a bare name also matches its children
  LinearFormat format = LinearFormat::mxfp4;
  Mxfp4Mode mode = Mxfp4Mode::w4a16;  // the activation mode of the quantized layers
  std::string mode_reason;           // why this mode (recipe name, quant_algo, default, override)
  KernelPath path = KernelPath::simd;

  static QuantConfig from_checkpoint(const io::HfCheckpoint& ck,
                                     std::optional<Mxfp4Mode> override_mode = std::nullopt);
  bool excluded(std::string_view layer_prefix) const;
  std::unique_ptr<LinearMethod> linear_method(std::string_view layer_prefix) const;
};

}  // namespace mxq::runtime
