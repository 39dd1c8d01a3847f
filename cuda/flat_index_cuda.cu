// Exact top-k and fused multi-interest recall on a CUDA device (see flat_index_cuda.hpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "check.cuh"
#include "device_buffer.cuh"
#include "detail/vector_math.hpp"
#include "flat_index_cuda.hpp"

namespace mindrec::cuda {
namespace {

constexpr int kTile = 2048;    // scores sorted per block (shared memory: 2048 x 8 bytes)
constexpr int kThreads = 256;
constexpr size_t kScoreBudget = size_t(256) << 20;  // bytes of GEMM output per query chunk

// (score, position) order: higher score first, then smaller position.
__device__ __forceinline__ bool better(float sa, int32_t pa, float sb, int32_t pb) {
  return sa > sb || (sa == sb && pa < pb);
}

// Sorts kTile (score, position) pairs in shared memory, best first (bitonic network).
__device__ void bitonic_sort(float* s, int32_t* p) {
  for (int size = 2; size <= kTile; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      __syncthreads();
      for (int i = threadIdx.x; i < kTile / 2; i += blockDim.x) {
        const int lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
        const bool best_first = (lo & size) == 0;
        const bool swap = best_first ? better(s[hi], p[hi], s[lo], p[lo]) : better(s[lo], p[lo], s[hi], p[hi]);
        if (swap) {
          const float ts = s[lo];
          s[lo] = s[hi];
          s[hi] = ts;
          const int32_t tp = p[lo];
          p[lo] = p[hi];
          p[hi] = tp;
        }
      }
    }
  }
  __syncthreads();
}

// One block per (tile, query row): the k best of in[row, tile*kTile ...] go to
// out[row, tile*k ...]. Positions come from in_p, or are the column index when in_p is null
// (the first pass over the GEMM output, where bias[col] is added: -|x|^2/2 for L2).
__global__ void tile_topk_kernel(const float* __restrict__ in_s, const int32_t* __restrict__ in_p,
                                 const float* __restrict__ bias, int64_t row_len, int k,
                                 float* __restrict__ out_s, int32_t* __restrict__ out_p, int64_t out_row_len) {
  __shared__ float s[kTile];
  __shared__ int32_t p[kTile];
  const int64_t row = blockIdx.y, tile = blockIdx.x;
  for (int i = threadIdx.x; i < kTile; i += blockDim.x) {
    const int64_t idx = tile * kTile + i;
    if (idx < row_len) {
      const int32_t pos = in_p ? in_p[row * row_len + idx] : int32_t(idx);
      float v = in_s[row * row_len + idx];
      if (pos < 0) v = -INFINITY;
      else if (bias) v += bias[pos];
      s[i] = v;
      p[i] = pos;
    } else {
      s[i] = -INFINITY;
      p[i] = -1;
    }
  }
  bitonic_sort(s, p);
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    out_s[row * out_row_len + tile * k + i] = s[i];
    out_p[row * out_row_len + tile * k + i] = p[i];
  }
}

// Final (rank, position) -> (public score, id): rank = q.x (IP) or q.x - |x|^2/2 (L2, whose
// squared distance is |q|^2 - 2 rank).
__global__ void finalize_kernel(int64_t rows, int k, const float* __restrict__ rank, const int32_t* __restrict__ pos,
                                const int64_t* __restrict__ ids, const float* __restrict__ qnorm, bool l2,
                                int64_t* __restrict__ out_ids, float* __restrict__ out_scores) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * k) return;
  const int32_t p = pos[i];
  const int64_t row = i / k;
  out_ids[i] = p < 0 ? -1 : ids[p];
  out_scores[i] = p < 0 ? (l2 ? INFINITY : -INFINITY) : (l2 ? qnorm[row] - 2.f * rank[i] : rank[i]);
}

// The spec's merge per user: pool counts[u] x fetch (id, score), sort by merge key (score,
// or -distance) descending with smaller id first, drop ids <= 0 and duplicates, keep topn.
__global__ void merge_kernel(int K, int fetch, int topn, const int32_t* __restrict__ counts,
                             const int64_t* __restrict__ in_ids, const float* __restrict__ in_scores, bool l2,
                             int64_t* __restrict__ out_ids, float* __restrict__ out_scores) {
  __shared__ float s[kTile];
  __shared__ int32_t p[kTile];  // index into the user's pool
  const int64_t u = blockIdx.x;
  const int pool = K * fetch, kk = counts[u];
  const int64_t* ids = in_ids + u * pool;
  const float* sc = in_scores + u * pool;
  for (int i = threadIdx.x; i < kTile; i += blockDim.x) {
    const bool live = i < pool && i / fetch < kk && ids[i] > 0;
    s[i] = live ? (l2 ? -sc[i] : sc[i]) : -INFINITY;
    p[i] = live ? i : -1;
  }
  // Ties in score must order by id, not pool index: bitonic on (score, id) via a key pass.
  bitonic_sort(s, p);
  if (threadIdx.x == 0) {
    // Equal-score runs are re-ordered by id (runs are short; insertion sort).
    for (int a = 0; a < pool;) {
      int b = a + 1;
      while (b < pool && p[b] >= 0 && s[b] == s[a]) ++b;
      for (int i = a + 1; i < b; ++i)
        for (int j = i; j > a && ids[p[j]] < ids[p[j - 1]]; --j) {
          const int32_t t = p[j];
          p[j] = p[j - 1];
          p[j - 1] = t;
        }
      a = b;
    }
    int n = 0;
    for (int i = 0; i < pool && n < topn; ++i) {
      if (p[i] < 0) break;
      const int64_t id = ids[p[i]];
      bool dup = false;
      for (int j = 0; j < n && !dup; ++j) dup = out_ids[u * topn + j] == id;
      if (dup) continue;
      out_ids[u * topn + n] = id;
      out_scores[u * topn + n] = sc[p[i]];
      ++n;
    }
    for (; n < topn; ++n) {
      out_ids[u * topn + n] = -1;
      out_scores[u * topn + n] = l2 ? INFINITY : -INFINITY;
    }
  }
}

template <class T>
using Buf = cuda_detail::DeviceBuffer<T>;

}  // namespace

struct FlatIndexCuda::State {
  int device = 0, dim = 0;
  bool l2 = false;
  int64_t n = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  Buf<float> x, bias, q, qnorm, S, cs[2], out_s, merged_s;
  Buf<int32_t> cp[2], counts;
  Buf<int64_t> ids, out_ids, merged_ids;
  std::mutex mutex;
  ~State() {
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }

  // Top-k of nq queries already in q.ptr (with |q|^2 in qnorm.ptr) into out_ids/out_s.
  void topk(int64_t nq, int k) {
    int64_t* oid = out_ids.get(size_t(nq) * k);
    float* osc = out_s.get(size_t(nq) * k);
    if (n == 0) {
      std::vector<int64_t> none(size_t(nq) * k, -1);
      MINDREC_CUDA_CHECK(cudaMemcpyAsync(oid, none.data(), none.size() * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
      return;
    }
    // Queries per chunk: bounded by the score buffer and by the grid's y dimension.
    const int64_t chunk = std::max<int64_t>(
        1, std::min<int64_t>({nq, int64_t(kScoreBudget / (size_t(n) * sizeof(float))), int64_t(65535)}));
    for (int64_t q0 = 0; q0 < nq; q0 += chunk) {
      const int64_t m = std::min(chunk, nq - q0);
      float* scores = S.get(size_t(m) * n);
      const float one = 1.f, zero = 0.f;
      // scores[m, n] (row-major) = Q[m, d] X[n, d]^T, i.e. column-major X^T(op) x Q.
      MINDREC_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), dim, &one, x.ptr, dim,
                                       q.ptr + q0 * dim, dim, &zero, scores, int(n)));
      int64_t len = n;
      const float* in_s = scores;
      const int32_t* in_p = nullptr;
      int buf = 0;
      bool first = true;
      do {
        const int64_t tiles = (len + kTile - 1) / kTile;
        const int kk = int(std::min<int64_t>(k, kTile));
        const int64_t out_len = tiles * kk;
        float* o_s = cs[buf].get(size_t(m) * out_len);
        int32_t* o_p = cp[buf].get(size_t(m) * out_len);
        tile_topk_kernel<<<dim3(unsigned(tiles), unsigned(m)), kThreads, 0, stream>>>(
            in_s, in_p, first && l2 ? bias.ptr : nullptr, len, kk, o_s, o_p, out_len);
        MINDREC_CUDA_CHECK(cudaGetLastError());
        in_s = o_s;
        in_p = o_p;
        len = out_len;
        buf ^= 1;
        first = false;
        if (tiles == 1) break;
      } while (true);
      // len == k now (one tile's best k, padded with position -1).
      const int64_t total = m * k;
      finalize_kernel<<<unsigned((total + 255) / 256), 256, 0, stream>>>(
          m, k, in_s, in_p, ids.ptr, l2 ? qnorm.ptr + q0 : nullptr, l2, oid + q0 * k, osc + q0 * k);
      MINDREC_CUDA_CHECK(cudaGetLastError());
    }
  }

  void upload_queries(int64_t nq, const float* queries) {
    float* dq = q.get(size_t(nq) * dim);
    MINDREC_CUDA_CHECK(cudaMemcpyAsync(dq, queries, size_t(nq) * dim * sizeof(float), cudaMemcpyHostToDevice, stream));
    std::vector<float> norms;
    if (l2) {  // |q|^2 turns L2 ranks into distances; inner products do not need it
      norms.resize(static_cast<size_t>(nq));
      for (int64_t i = 0; i < nq; ++i) norms[size_t(i)] = float(detail::squared_norm(queries + i * dim, dim));
      float* dn = qnorm.get(size_t(nq));
      MINDREC_CUDA_CHECK(cudaMemcpyAsync(dn, norms.data(), norms.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
    }
    MINDREC_CUDA_CHECK(cudaStreamSynchronize(stream));  // `norms` leaves scope
  }
};

FlatIndexCuda::FlatIndexCuda(int dim, bool l2, int device) : s_(std::make_unique<State>()) {
  cuda_detail::require_device("cuda:flat", device);
  s_->device = device;
  s_->dim = dim;
  s_->l2 = l2;
  MINDREC_CUDA_CHECK(cudaSetDevice(device));
  MINDREC_CUDA_CHECK(cudaStreamCreateWithFlags(&s_->stream, cudaStreamNonBlocking));
  MINDREC_CUBLAS_CHECK(cublasCreate(&s_->blas));
  MINDREC_CUBLAS_CHECK(cublasSetStream(s_->blas, s_->stream));
  // FP32 exactly: no TF32 tensor-core rounding, so results match the CPU store.
  MINDREC_CUBLAS_CHECK(cublasSetMathMode(s_->blas, CUBLAS_DEFAULT_MATH));
}

FlatIndexCuda::~FlatIndexCuda() = default;

void FlatIndexCuda::set(const float* vectors, const int64_t* ids, int64_t n) {
  std::lock_guard<std::mutex> lock(s_->mutex);
  MINDREC_CUDA_CHECK(cudaSetDevice(s_->device));
  if (n >= (int64_t(1) << 31)) throw Unsupported("cuda:flat: more than 2^31 - 1 vectors");
  const int d = s_->dim;
  float* dx = s_->x.get(size_t(n) * d);
  int64_t* di = s_->ids.get(size_t(n));
  if (n > 0) {
    MINDREC_CUDA_CHECK(cudaMemcpyAsync(dx, vectors, size_t(n) * d * sizeof(float), cudaMemcpyHostToDevice, s_->stream));
    MINDREC_CUDA_CHECK(cudaMemcpyAsync(di, ids, size_t(n) * sizeof(int64_t), cudaMemcpyHostToDevice, s_->stream));
  }
  std::vector<float> bias;
  if (s_->l2 && n > 0) {
    bias.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) bias[size_t(i)] = float(-0.5 * detail::squared_norm(vectors + i * d, d));
    MINDREC_CUDA_CHECK(cudaMemcpyAsync(s_->bias.get(size_t(n)), bias.data(), bias.size() * sizeof(float),
                                       cudaMemcpyHostToDevice, s_->stream));
  }
  MINDREC_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  s_->n = n;
}

void FlatIndexCuda::search(int64_t nq, const float* queries, int k, int64_t* ids, float* scores) {
  if (nq <= 0) return;
  if (k < 1 || k > kMaxK) throw Unsupported("cuda:flat: k must be in [1, " + std::to_string(kMaxK) + "]");
  std::lock_guard<std::mutex> lock(s_->mutex);
  MINDREC_CUDA_CHECK(cudaSetDevice(s_->device));
  s_->upload_queries(nq, queries);
  s_->topk(nq, k);
  MINDREC_CUDA_CHECK(cudaMemcpyAsync(ids, s_->out_ids.ptr, size_t(nq) * k * sizeof(int64_t), cudaMemcpyDeviceToHost, s_->stream));
  MINDREC_CUDA_CHECK(cudaMemcpyAsync(scores, s_->out_s.ptr, size_t(nq) * k * sizeof(float), cudaMemcpyDeviceToHost, s_->stream));
  MINDREC_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
}

void FlatIndexCuda::search_merged(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                                  int topn, int64_t* ids, float* scores) {
  if (users <= 0) return;
  if (fetch < 1 || fetch > kMaxK || K * fetch > kMaxPool)
    throw Unsupported("cuda:flat: K x fetch must be <= " + std::to_string(kMaxPool));
  std::lock_guard<std::mutex> lock(s_->mutex);
  MINDREC_CUDA_CHECK(cudaSetDevice(s_->device));
  const int64_t nq = users * K;
  s_->upload_queries(nq, queries);
  s_->topk(nq, fetch);
  int32_t* dc = s_->counts.get(size_t(users));
  MINDREC_CUDA_CHECK(cudaMemcpyAsync(dc, counts, size_t(users) * sizeof(int32_t), cudaMemcpyHostToDevice, s_->stream));
  int64_t* mid = s_->merged_ids.get(size_t(users) * topn);
  float* msc = s_->merged_s.get(size_t(users) * topn);
  merge_kernel<<<unsigned(users), kThreads, 0, s_->stream>>>(K, fetch, topn, dc, s_->out_ids.ptr, s_->out_s.ptr,
                                                            s_->l2, mid, msc);
  MINDREC_CUDA_CHECK(cudaGetLastError());
  MINDREC_CUDA_CHECK(cudaMemcpyAsync(ids, mid, size_t(users) * topn * sizeof(int64_t), cudaMemcpyDeviceToHost, s_->stream));
  MINDREC_CUDA_CHECK(cudaMemcpyAsync(scores, msc, size_t(users) * topn * sizeof(float), cudaMemcpyDeviceToHost, s_->stream));
  MINDREC_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
}

}  // namespace mindrec::cuda
