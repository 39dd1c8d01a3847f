// Private: the seam between MindModel and an accelerator. MindModel computes on the CPU
// itself (model.cpp); for Device::cuda it forwards to a DeviceModel made by
// make_cuda_model (cuda/cuda_model.cpp, or src/unavailable/no_cuda.cpp without CUDA).
#pragma once

#include <cstdint>
#include <memory>

#include "mindrec/weights.hpp"

namespace mindrec::model {

class DeviceModel {
 public:
  virtual ~DeviceModel() = default;
  /// Inputs validated by MindModel; host in, host out (see MindModel).
  virtual void extract_interests(const int64_t* hist, const int32_t* lengths, int64_t batch,
                                 float* out, int32_t* counts) = 0;
  virtual void label_aware_attention(const float* interests, const int32_t* counts,
                                     const int64_t* targets, int64_t batch, float* out) = 0;
};

/// A copy of `w` on CUDA device 0; `projected` [N, H] is item_emb · S as MindModel computed
/// it, so both paths gather equal rows. Unsupported without CUDA, CudaError without a device.
std::unique_ptr<DeviceModel> make_cuda_model(const MindWeights& w, const float* projected);

}  // namespace mindrec::model
