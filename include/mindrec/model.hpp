// MIND weights (mind-spec.md, "Parameters"), their safetensors file, and MindModel: batched
// interest extraction and label-aware attention.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mindrec/aligned.hpp"
#include "mindrec/config.hpp"

namespace mindrec {

/// Names of the tensors in a weights file (exactly as mind-spec.md's parameter table).
namespace tensor_names {
inline constexpr const char* item_emb = "item_emb.weight";              // [N, D]
inline constexpr const char* bilinear = "capsule.bilinear";             // [D, H]
inline constexpr const char* routing_logits = "capsule.routing_logits"; // [1, K, L]
inline constexpr const char* relu_weight = "capsule.relu.weight";       // [H, H]
inline constexpr const char* relu_bias = "capsule.relu.bias";           // [H]
}  // namespace tensor_names

/// The model's parameters, row-major float32 in 64-byte aligned storage, plus the config that
/// defines its function.
struct MindWeights {
  ModelConfig config;
  AlignedVector<float> item_emb;        ///< [N, D]; row 0 = padding (zeros after init)
  AlignedVector<float> bilinear;        ///< [D, H]
  AlignedVector<float> routing_logits;  ///< [K, L] (stored as [1, K, L])
  AlignedVector<float> relu_weight;     ///< [H, H] (empty without relu_layer)
  AlignedVector<float> relu_bias;       ///< [H]    (empty without relu_layer)

  /// Throws InvalidArgument if a vector's size does not match the config.
  void validate() const;
};

/// Random initial weights from `seed`, as the spec's table says: item_emb Xavier uniform
/// U(-a, a) with a = sqrt(6/(N+D)) (row 0 then zeroed: it is the padding row), bilinear
/// Normal(0, 1), routing logits Normal(0, capsule.init_std), relu weight Xavier uniform with
/// a = sqrt(6/(2H)), relu bias 0. Same seed, same weights, on every platform.
MindWeights init_weights(const ModelConfig& config, uint64_t seed);

/// Writes the weights as safetensors with the model config as JSON in __metadata__
/// ("mindrec.model_config"), atomically.
void save_weights(const std::string& path, const MindWeights& weights);

/// Reads and validates a weights file: names, dtypes (F32 only), shapes against the config
/// in its metadata. Throws IoError / FormatError naming the file and the tensor.
MindWeights load_weights(const std::string& path);

/// Loads weights and refuses them (ConfigError) if `expected` describes another model.
MindWeights load_weights(const std::string& path, const ModelConfig& expected);

/// Where a MindModel computes. `cuda` needs a build with MINDREC_WITH_CUDA (else Unsupported)
/// and a device (CUDA device 0; else CudaError); it computes the same function as `cpu`
/// (tests/cuda/test_model_parity.cpp: relative error <= 1e-5 in FP32).
enum class Device { cpu, cuda };

/// The MIND forward pass over batches of users. Immutable after construction; every method
/// is const and may be called from many threads at once.
///
/// Inputs are the model's layout: `hist` [B, L] right-padded item ids (row-major), `lengths`
/// [B] with 0 <= lengths[b] <= L; ids beyond lengths[b] are ignored. Ids must be in [0, N).
class MindModel {
 public:
  explicit MindModel(MindWeights weights, Device device = Device::cpu);
  ~MindModel();
  MindModel(MindModel&&) noexcept;
  MindModel& operator=(MindModel&&) noexcept;

  const ModelConfig& config() const;
  const MindWeights& weights() const;
  Device device() const;

  /// Interests computed for a user with n behaviours (K, or K'_u with dynamic_k).
  int interest_count(int n) const;

  /// Writes `out` [B, K, H] (interests beyond the user's count are zero rows) and, if not
  /// null, `counts` [B]. `threads` 0 = all cores. Throws InvalidArgument on bad ids/lengths
  /// before writing anything.
  void extract_interests(const int64_t* hist, const int32_t* lengths, int64_t batch,
                         float* out, int32_t* counts = nullptr, int threads = 0) const;

  /// Label-aware attention: `interests` [B, K, H] and `counts` [B] as written by
  /// extract_interests, `targets` [B] item ids; writes `out` [B, H].
  void label_aware_attention(const float* interests, const int32_t* counts,
                             const int64_t* targets, int64_t batch, float* out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mindrec
