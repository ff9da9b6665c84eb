// mxq/runtime/profile.h — where a forward pass spends its time, part by part (bench_model_cpu's
// per-part table). Model::forward adds steady_clock nanoseconds to a Profile only while one is
// attached (Model::set_profile); detached, each timed section costs one null-pointer test.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace mxq::runtime {

struct Profile {
  enum Part : uint8_t {
    embedding,      // token ids -> rows of the embedding table; this call's RoPE cos / sin
    qkv,            // the q, k and v projections
    attention,      // the KV-cache write, scores, softmax, the weighted sum of V
    o_proj,         // the attention output projection
    mlp_up,         // gate and up projections
    mlp_down,       // down projection
    lm_head,        // the LM head projection
    norm_rope_residual,  // RMSNorms (q/k and final norms too), RoPE, residual adds, SiLU·up
    kPartCount
  };
  static constexpr std::array<const char*, kPartCount> kNames = {
      "embedding", "q/k/v proj", "attention core", "o proj", "gate/up proj", "down proj",
      "lm head", "norms+rope+residual"};

  std::array<uint64_t, kPartCount> ns{};

  uint64_t total_ns() const {
    uint64_t s = 0;
    for (uint64_t v : ns) s += v;
    return s;
  }
};

// Adds the time from construction to destruction to `part` of `p`; does nothing when p is null.
class ProfileScope {
 public:
  ProfileScope(Profile* p, Profile::Part part) : p_(p), part_(part) {
    if (p_) t0_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (p_)
      p_->ns[part_] += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_).count());
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  Profile* p_;
  Profile::Part part_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace mxq::runtime
