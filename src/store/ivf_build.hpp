// Private: the first fill of a faiss: IVF index with a flat coarse quantizer, built by mindrec
// instead of Faiss's train + add_with_ids (faiss_store.cpp). Faiss's k-means runs on up to 256
// vectors a list for 25 rounds, and half of its time went to OpenMP workers spinning against
// OpenBLAS's threads (RESULTS "The nightly cycle"). Here the coarse centroids are trained by
// k-means on a sample of kSamplePerList vectors a list for kIterations rounds, and every vector
// is assigned to its best list exactly, each product a block GEMM (Eigen, one thread each)
// inside mindrec's own parallel loops: no BLAS thread pool beside OpenMP's.
// (Two-level training and assignment, sqrt(nlist) top clusters probed 4 at a time, was
// measured and not kept: recall@50 0.72-0.84 against 0.93 at nprobe 64 on the diffuse set.)
#pragma once

#include <cstdint>
#include <vector>

namespace mindrec::store::ivf {

/// Vectors a list in the coarse k-means' sample (min(n, kSamplePerList * nlist) vectors drawn
/// without replacement) and its rounds.
constexpr int64_t kSamplePerList = 64;
constexpr int kIterations = 10;

/// nlist coarse centroids [nlist, d] for the n vectors x [n, d] (nlist <= n): k-means on the
/// sample; inner product: spherical (centroids of unit norm), as Faiss trains an
/// inner-product IVF. Deterministic for a seed.
std::vector<float> train_coarse(int64_t n, const float* x, int d, int64_t nlist, bool ip, uint64_t seed);

/// m of the n vectors x [n, d] drawn without replacement (seeded), in their order, [m, d].
std::vector<float> sample_rows(int64_t n, const float* x, int d, int64_t m, uint64_t seed);

/// k-means (Lloyd) of x [n, d] into k centroids (k <= n; inner product: spherical): seeded
/// initial centroids drawn from x, `iterations` rounds of assignment and means, an empty
/// cluster split off the largest as Faiss does. Each vector's cluster in `assigned` when
/// given. On `threads` threads (0: the thread policy's).
std::vector<float> kmeans(int64_t n, const float* x, int d, int64_t k, bool ip, int iterations, uint64_t seed,
                          int threads, std::vector<int64_t>* assigned = nullptr);

/// Each of the n vectors' best of the k centroids c [k, d] (inner product: the largest
/// product; else the nearest; ties: the smaller index), and its score when `score` is given.
void nearest(int64_t n, const float* x, int d, int64_t k, const float* c, bool ip, int threads, int64_t* best,
             float* score = nullptr);

}  // namespace mindrec::store::ivf
