// MindModel: MIND's forward pass over batches of users (interest extraction, label-aware
// attention) on the CPU or a CUDA device.
#pragma once

#include <cstdint>
#include <memory>

#include "mindrec/config.hpp"
#include "mindrec/device.hpp"
#include "mindrec/export.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {

/// How a MindModel trades memory for speed.
struct MINDREC_API ModelOptions {
  /// The CPU model precomputes item_emb · S ([N, H] floats, as large as the embedding table)
  /// when it takes at most this many bytes, and otherwise multiplies each user's history rows
  /// by S per request (the same function, slower extraction, half the memory). Default 1 GiB
  /// (about 4M items at H = 64); 0 never precomputes.
  int64_t max_projection_bytes = int64_t(1) << 30;
};

/// The MIND forward pass over batches of users. Immutable after construction; every method
/// is const and may be called from many threads at once.
///
/// Inputs are the model's layout: `hist` [B, L] right-padded item ids (row-major), `lengths`
/// [B] with 0 <= lengths[b] <= L; ids beyond lengths[b] are ignored. Ids must be in [0, N).
class MINDREC_API MindModel {
 public:
  explicit MindModel(MindWeights weights, Device device = Device::cpu,
                     const ModelOptions& options = {});
  ~MindModel();
  MindModel(MindModel&&) noexcept;
  MindModel& operator=(MindModel&&) noexcept;

  const ModelConfig& config() const;
  const MindWeights& weights() const;
  Device device() const;

  /// item_fingerprint(weights()), computed on the first call (hashes item_emb) and cached.
  uint64_t item_fingerprint() const;

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
