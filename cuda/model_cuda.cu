// MIND interest extraction and label-aware attention on a CUDA device (mind-spec.md,
// "Interest extraction" steps 1-5 and "Label-aware attention"), the same function as
// include/mindrec/cpu/interests.hpp, whose summation orders the kernels follow (l, h and j
// ascending) so that the two agree to FP32 rounding. One thread block per user: a user's
// routing state (û [n, H], logits [K, n], read-outs [K, H]) fits in shared memory, and the
// block's threads split the H columns or the K x n routing entries between them.
#include <algorithm>
#include <mutex>
#include <string>

#include "check.cuh"
#include "device_buffer.cuh"
#include "mindrec/cpu/interest_count.hpp"
#include "model_cuda.hpp"

namespace mindrec::cuda {
namespace {

constexpr int kAxisInterests = 0, kAxisBehaviors = 1, kAxisHybrid = 2;

struct KernelModel {
  const float* projected;  // [N, H]
  const float* logits;     // [K, L]
  const float* relu_w;     // [H, H] or null
  const float* relu_b;     // [H] or null
  int hidden, max_k, maxlen, iters, axis;
  bool dynamic_k;
};

// Shared memory layout per block: U [L, H] | B, W, Delta [K, L] each | Z, V [K, H] | scale [K]
__global__ void extract_interests_kernel(KernelModel m, const int64_t* __restrict__ hist,
                                         const int32_t* __restrict__ lengths,
                                         float* __restrict__ out, int32_t* __restrict__ counts) {
  extern __shared__ float sh[];
  const int H = m.hidden, L = m.maxlen, K = m.max_k;
  float* U = sh;
  float* B = U + L * H;
  float* W = B + K * L;
  float* Delta = W + K * L;
  float* Z = Delta + K * L;
  float* V = Z + K * H;
  float* scale = V + K * H;
  const int64_t b = blockIdx.x;
  const int t = threadIdx.x, nt = blockDim.x;
  const int n = lengths[b];
  const int kk = cpu::interest_count(n, K, m.dynamic_k);
  const int64_t* h_b = hist + b * L;

  // 1. û[l] = projected[hist[l]] (id 0 reads as zeros).
  for (int i = t; i < n * H; i += nt) {
    const int l = i / H, h = i % H;
    const int64_t id = h_b[l];
    U[i] = id == 0 ? 0.f : m.projected[id * H + h];
  }
  // 2. b = routing_logits[:kk, :n]
  for (int i = t; i < kk * n; i += nt) B[i] = m.logits[(i / n) * L + (i % n)];
  __syncthreads();

  for (int it = 0; it < m.iters; ++it) {
    const bool last = it == m.iters - 1;
    const bool over_k = m.axis == kAxisInterests || (m.axis == kAxisHybrid && last);
    // W = softmax(B): over k for each column l, or over l for each row k.
    if (over_k) {
      for (int l = t; l < n; l += nt) {
        float mx = B[l];
        for (int k = 1; k < kk; ++k) mx = fmaxf(mx, B[k * n + l]);
        float sum = 0.f;
        for (int k = 0; k < kk; ++k) sum += (W[k * n + l] = expf(B[k * n + l] - mx));
        for (int k = 0; k < kk; ++k) W[k * n + l] /= sum;
      }
    } else if (n > 0) {
      for (int k = t; k < kk; k += nt) {
        float mx = B[k * n];
        for (int l = 1; l < n; ++l) mx = fmaxf(mx, B[k * n + l]);
        float sum = 0.f;
        for (int l = 0; l < n; ++l) sum += (W[k * n + l] = expf(B[k * n + l] - mx));
        for (int l = 0; l < n; ++l) W[k * n + l] /= sum;
      }
    }
    __syncthreads();
    // z_k = Σ_l w[k,l] û[l]
    for (int i = t; i < kk * H; i += nt) {
      const int k = i / H, h = i % H;
      float acc = 0.f;
      for (int l = 0; l < n; ++l) acc += W[k * n + l] * U[l * H + h];
      Z[i] = acc;
    }
    __syncthreads();
    // v_k = squash(z_k) = z · (‖z‖² / (1 + ‖z‖²)) / sqrt(‖z‖² + 1e-8)
    for (int k = t; k < kk; k += nt) {
      float n2 = 0.f;
      for (int h = 0; h < H; ++h) n2 += Z[k * H + h] * Z[k * H + h];
      scale[k] = (n2 / (1.f + n2)) / sqrtf(n2 + 1e-8f);
    }
    __syncthreads();
    for (int i = t; i < kk * H; i += nt) V[i] = Z[i] * scale[i / H];
    __syncthreads();
    if (last) break;
    // Δb[k,l] = <v_k, û[l]>; behaviours: each row divided by max(‖Δb[k,:]‖, 1); b += Δb
    for (int i = t; i < kk * n; i += nt) {
      const int k = i / n, l = i % n;
      float acc = 0.f;
      for (int h = 0; h < H; ++h) acc += V[k * H + h] * U[l * H + h];
      Delta[i] = acc;
    }
    __syncthreads();
    if (m.axis == kAxisBehaviors) {
      for (int k = t; k < kk; k += nt) {
        float n2 = 0.f;
        for (int l = 0; l < n; ++l) n2 += Delta[k * n + l] * Delta[k * n + l];
        scale[k] = fmaxf(1.f, sqrtf(n2));
      }
      __syncthreads();
      for (int i = t; i < kk * n; i += nt) Delta[i] /= scale[i / n];
      __syncthreads();
    }
    for (int i = t; i < kk * n; i += nt) B[i] += Delta[i];
    __syncthreads();
  }
  // 5. u_k = ReLU(v_k W + b), rows past kk are zero.
  float* o = out + b * K * H;
  for (int i = t; i < K * H; i += nt) {
    const int k = i / H, h = i % H;
    float r = 0.f;
    if (k < kk) {
      if (m.relu_w) {
        float acc = 0.f;
        for (int j = 0; j < H; ++j) acc += V[k * H + j] * m.relu_w[j * H + h];
        r = fmaxf(acc + m.relu_b[h], 0.f);
      } else {
        r = V[i];
      }
    }
    o[i] = r;
  }
  if (t == 0 && counts) counts[b] = kk;
}

// Label-aware attention: c_k = <u_k, q>, a_k = c_k^p; hard: one-hot of the first argmax,
// soft: softmax(a); user = Σ alpha_k u_k. One block per user, threads over H.
__global__ void attention_kernel(const float* __restrict__ interests, const int32_t* __restrict__ counts,
                                 const int64_t* __restrict__ targets, const float* __restrict__ item_emb,
                                 int K, int H, int pow_p, bool hard, float* __restrict__ out) {
  extern __shared__ float alpha[];  // [K]
  const int64_t b = blockIdx.x;
  const int t = threadIdx.x, nt = blockDim.x;
  const int kk = counts[b];
  const float* u = interests + b * K * H;
  const float* q = item_emb + targets[b] * H;
  if (t == 0) {
    int best = 0;
    float best_a = 0.f;
    for (int k = 0; k < kk; ++k) {
      float c = 0.f;
      for (int h = 0; h < H; ++h) c += u[k * H + h] * q[h];
      float a = c;
      for (int i = 1; i < pow_p; ++i) a *= c;
      alpha[k] = a;
      if (k == 0 || a > best_a) best_a = a, best = k;
    }
    if (hard) {
      for (int k = 0; k < kk; ++k) alpha[k] = k == best ? 1.f : 0.f;
    } else {
      float sum = 0.f;
      for (int k = 0; k < kk; ++k) sum += (alpha[k] = expf(alpha[k] - best_a));
      for (int k = 0; k < kk; ++k) alpha[k] /= sum;
    }
  }
  __syncthreads();
  for (int h = t; h < H; h += nt) {
    float acc = 0.f;
    for (int k = 0; k < kk; ++k)
      if (alpha[k] != 0.f) acc += alpha[k] * u[k * H + h];
    out[b * H + h] = acc;
  }
}

template <class T>
using DeviceBuffer = cuda_detail::DeviceBuffer<T>;

int threads_for(int hidden) { return std::min(1024, std::max(32, (hidden + 31) / 32 * 32)); }

}  // namespace

struct ModelCuda::State {
  int device = 0;
  cudaStream_t stream = nullptr;
  ModelHost shape;
  DeviceBuffer<float> projected, item_emb, logits, relu_w, relu_b;
  DeviceBuffer<int64_t> hist, targets;
  DeviceBuffer<int32_t> lengths, counts;
  DeviceBuffer<float> out, interests, user;
  size_t shared_bytes = 0;
  std::mutex mutex;
  ~State() {
    if (stream) cudaStreamDestroy(stream);
  }
};

ModelCuda::ModelCuda(const ModelHost& m, int device) : s_(std::make_unique<State>()) {
  cuda_detail::require_device("MindModel on CUDA", device);
  if (m.hidden != m.dim) throw InvalidArgument("MindModel on CUDA: hidden_size must equal embedding_dim");
  if (m.hidden > 1024) throw Unsupported("MindModel on CUDA: hidden_size > 1024");
  s_->device = device;
  s_->shape = m;
  MINDREC_CUDA_CHECK(cudaSetDevice(device));
  MINDREC_CUDA_CHECK(cudaStreamCreateWithFlags(&s_->stream, cudaStreamNonBlocking));
  const size_t N = size_t(m.item_count), H = size_t(m.hidden), K = size_t(m.max_k), L = size_t(m.maxlen);
  s_->shared_bytes = (L * H + 3 * K * L + 2 * K * H + K) * sizeof(float);
  int max_shared = 0;
  MINDREC_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (s_->shared_bytes > size_t(max_shared))
    throw Unsupported("MindModel on CUDA: a user's routing state (" + std::to_string(s_->shared_bytes) +
                      " bytes) exceeds the device's shared memory per block");
  if (s_->shared_bytes > 48 * 1024)
    MINDREC_CUDA_CHECK(cudaFuncSetAttribute(extract_interests_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            int(s_->shared_bytes)));
  s_->projected.upload(m.projected, N * H, s_->stream);
  s_->item_emb.upload(m.item_emb, N * size_t(m.dim), s_->stream);
  s_->logits.upload(m.routing_logits, K * L, s_->stream);
  if (m.relu_weight) {
    s_->relu_w.upload(m.relu_weight, H * H, s_->stream);
    s_->relu_b.upload(m.relu_bias, H, s_->stream);
  }
  MINDREC_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  s_->shape.projected = s_->shape.item_emb = s_->shape.routing_logits = nullptr;  // host copies not kept
  s_->shape.relu_weight = m.relu_weight ? s_->relu_w.ptr : nullptr;
}

ModelCuda::~ModelCuda() = default;

void ModelCuda::extract_interests(const int64_t* hist, const int32_t* lengths, int64_t batch, float* out,
                                  int32_t* counts) {
  if (batch <= 0) return;
  std::lock_guard<std::mutex> lock(s_->mutex);
  const ModelHost& m = s_->shape;
  MINDREC_CUDA_CHECK(cudaSetDevice(s_->device));
  const size_t B = size_t(batch), K = size_t(m.max_k), H = size_t(m.hidden), L = size_t(m.maxlen);
  s_->hist.upload(hist, B * L, s_->stream);
  s_->lengths.upload(lengths, B, s_->stream);
  s_->out.get(B * K * H);
  s_->counts.get(B);
  KernelModel km{s_->projected.ptr, s_->logits.ptr, m.relu_weight ? s_->relu_w.ptr : nullptr,
                 m.relu_weight ? s_->relu_b.ptr : nullptr, m.hidden, m.max_k, m.maxlen, m.iters, m.axis,
                 m.dynamic_k};
  // Grid x is limited to 2^31-1 blocks: far above any batch a host can hold.
  extract_interests_kernel<<<unsigned(batch), threads_for(m.hidden), s_->shared_bytes, s_->stream>>>(
      km, s_->hist.ptr, s_->lengths.ptr, s_->out.ptr, s_->counts.ptr);
  MINDREC_CUDA_CHECK(cudaGetLastError());
  MINDREC_CUDA_CHECK(cudaMemcpyAsync(out, s_->out.ptr, B * K * H * sizeof(float), cudaMemcpyDeviceToHost, s_->stream));
  if (counts)
    MINDREC_CUDA_CHECK(cudaMemcpyAsync(counts, s_->counts.ptr, B * sizeof(int32_t), cudaMemcpyDeviceToHost, s_->stream));
  MINDREC_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
}

void ModelCuda::label_aware_attention(const float* interests, const int32_t* counts, const int64_t* targets,
                                      int64_t batch, int pow_p, bool hard, float* out) {
  if (batch <= 0) return;
  std::lock_guard<std::mutex> lock(s_->mutex);
  const ModelHost& m = s_->shape;
  MINDREC_CUDA_CHECK(cudaSetDevice(s_->device));
  const size_t B = size_t(batch), K = size_t(m.max_k), H = size_t(m.hidden);
  s_->interests.upload(interests, B * K * H, s_->stream);
  s_->counts.upload(counts, B, s_->stream);
  s_->targets.upload(targets, B, s_->stream);
  s_->user.get(B * H);
  attention_kernel<<<unsigned(batch), threads_for(m.hidden), K * sizeof(float), s_->stream>>>(
      s_->interests.ptr, s_->counts.ptr, s_->targets.ptr, s_->item_emb.ptr, m.max_k, m.hidden, pow_p, hard,
      s_->user.ptr);
  MINDREC_CUDA_CHECK(cudaGetLastError());
  MINDREC_CUDA_CHECK(cudaMemcpyAsync(out, s_->user.ptr, B * H * sizeof(float), cudaMemcpyDeviceToHost, s_->stream));
  MINDREC_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
}

}  // namespace mindrec::cuda
