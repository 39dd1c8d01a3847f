// MIND's forward pass on a CUDA device: the interface between cuda/cuda_model.cpp (host side,
// Eigen) and cuda/model_cuda.cu (kernels). Plain pointers and PODs only, so that nvcc never
// sees Eigen and the host compiler never sees CUDA headers.
#pragma once

#include <cstdint>
#include <memory>

namespace mindrec::cuda {

/// The model as the kernels need it: host pointers to row-major float32 arrays, copied to
/// the device once by ModelCuda's constructor.
struct ModelHost {
  const float* projected = nullptr;       ///< [N, H]: item_emb · S (row 0 = zeros)
  const float* item_emb = nullptr;        ///< [N, D]: for label-aware attention's targets
  const float* routing_logits = nullptr;  ///< [K, L]
  const float* relu_weight = nullptr;     ///< [H, H] or null without the ReLU layer
  const float* relu_bias = nullptr;       ///< [H] or null
  int64_t item_count = 0;
  int dim = 0, hidden = 0, max_k = 0, maxlen = 0, iters = 3;
  int axis = 0;  ///< SoftmaxAxis as int: 0 interests, 1 behaviors, 2 hybrid
  bool dynamic_k = false;
};

/// Device copy of the weights, one stream, one cuBLAS-free set of kernels, and a workspace
/// that only grows (no allocation per call once the largest batch has been seen). Calls are
/// serialised by an internal mutex, so a const MindModel may be shared between threads.
/// Every CUDA error is thrown as mindrec::CudaError naming the call, file and line.
class ModelCuda {
 public:
  ModelCuda(const ModelHost& host, int device);
  ~ModelCuda();
  ModelCuda(const ModelCuda&) = delete;
  ModelCuda& operator=(const ModelCuda&) = delete;

  /// Host in, host out: hist [B, L] (validated by the caller), lengths [B] -> out [B, K, H],
  /// counts [B] (may be null).
  void extract_interests(const int64_t* hist, const int32_t* lengths, int64_t batch, float* out,
                         int32_t* counts);
  /// interests [B, K, H], counts [B], targets [B] -> out [B, H]; hard = argmax read-out.
  void label_aware_attention(const float* interests, const int32_t* counts, const int64_t* targets,
                             int64_t batch, int pow_p, bool hard, float* out);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace mindrec::cuda
