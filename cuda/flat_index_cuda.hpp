// Exact search on a CUDA device for the `cuda:flat` store: the item matrix lives on the
// device; queries go through cuBLAS SGEMM, then a tiled top-k selection (bitonic sort of
// 2,048-score tiles in shared memory, repeated on the survivors until one tile is left), and,
// for multi-interest recall, the spec's merge (pool K x fetch, sort by score descending with
// smaller id first on ties, drop ids <= 0 and duplicates) on the device. Plain pointers only:
// no CUDA or Eigen types cross this header.
#pragma once

#include <cstdint>
#include <memory>

namespace mindrec::cuda {

class FlatIndexCuda {
 public:
  /// Largest k a search (or fetch of the fused merge) supports, and largest K x fetch pool.
  static constexpr int kMaxK = 1024;
  static constexpr int kMaxPool = 2048;

  /// Throws CudaError if `device` does not exist.
  FlatIndexCuda(int dim, bool l2, int device);
  ~FlatIndexCuda();
  FlatIndexCuda(const FlatIndexCuda&) = delete;
  FlatIndexCuda& operator=(const FlatIndexCuda&) = delete;

  /// Replaces the device copy: vectors [n, dim] row-major, ids [n].
  void set(const float* vectors, const int64_t* ids, int64_t n);
  /// Per query, the k best ids and scores (inner products, or squared L2 distances), best
  /// first, padded with id -1. k <= kMaxK.
  void search(int64_t nq, const float* queries, int k, int64_t* ids, float* scores);
  /// Fused multi-interest recall: queries [users, K, dim], counts [users] (interests past
  /// counts[u] are ignored); each interest's `fetch` best, merged per user into `topn`
  /// (ids [users, topn] padded with -1; scores as in search). K * fetch <= kMaxPool.
  void search_merged(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                     int topn, int64_t* ids, float* scores);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace mindrec::cuda
