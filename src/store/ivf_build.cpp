// The first fill of an IVF index: two-level coarse training and assignment (ivf_build.hpp).
#include "store/ivf_build.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "detail/best_rows.hpp"
#include "detail/parallel.hpp"
#include "mindrec/detail/eigen.hpp"

namespace mindrec::store::ivf {
namespace {

constexpr int64_t kBlock = 256;  // vectors scored together against the centroids (one GEMM)

// Draws m distinct indices of [0, n) (m <= n), sorted (a sample read in order).
std::vector<int64_t> draw(int64_t n, int64_t m, uint64_t seed) {
  std::vector<int64_t> out;
  std::mt19937_64 rng(seed);
  if (m * 4 >= n) {  // a partial shuffle of every index
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    for (int64_t i = 0; i < m; ++i) std::swap(all[size_t(i)], all[size_t(i + int64_t(rng() % uint64_t(n - i)))]);
    out.assign(all.begin(), all.begin() + m);
  } else {  // few of many: rejection of repeats (Floyd's algorithm)
    std::vector<int64_t> picked;
    picked.reserve(size_t(m));
    std::vector<bool> taken(static_cast<size_t>(n), false);
    for (int64_t j = n - m; j < n; ++j) {
      const int64_t t = int64_t(rng() % uint64_t(j + 1));
      const int64_t v = taken[size_t(t)] ? j : t;
      taken[size_t(v)] = true;
      picked.push_back(v);
    }
    out.swap(picked);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Squared norms of the k centroids (the L2 assignment maximises 2 x.c - |c|^2).
std::vector<float> norms(int64_t k, const float* c, int d) {
  std::vector<float> out(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    float s = 0;
    for (int t = 0; t < d; ++t) s += c[j * d + t] * c[j * d + t];
    out[size_t(j)] = s;
  }
  return out;
}


// The first j < k maximising s[j] (cn: 2 s[j] - cn[j]): the maximum lane by lane (the loop the
// compiler vectorises), then the first position holding it; its score into *top when given.
int64_t row_best(const float* s, const float* cn, int64_t k, float* top) {
  constexpr int kLanes = 16;
  auto at = [&](int64_t j) { return cn ? 2 * s[j] - cn[j] : s[j]; };
  float lane[kLanes];
  std::fill(lane, lane + kLanes, -std::numeric_limits<float>::infinity());
  int64_t j = 0;
  if (cn) {
    for (; j + kLanes <= k; j += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const float v = 2 * s[j + l] - cn[j + l];
        lane[l] = v > lane[l] ? v : lane[l];
      }
  } else {
    for (; j + kLanes <= k; j += kLanes)
      for (int l = 0; l < kLanes; ++l) lane[l] = s[j + l] > lane[l] ? s[j + l] : lane[l];
  }
  float m = *std::max_element(lane, lane + kLanes);
  for (; j < k; ++j) m = std::max(m, at(j));
  int64_t first = 0;
  while (first + 1 < k && !(at(first) >= m)) ++first;
  if (top) *top = at(first);
  return first;
}

}  // namespace

std::vector<float> sample_rows(int64_t n, const float* x, int d, int64_t m, uint64_t seed) {
  const auto rows = draw(n, m, seed);
  std::vector<float> s(static_cast<size_t>(m * d));
  for (int64_t i = 0; i < m; ++i) std::memcpy(&s[size_t(i * d)], x + rows[size_t(i)] * d, sizeof(float) * size_t(d));
  return s;
}

void nearest(int64_t n, const float* x, int d, int64_t k, const float* c, bool ip, int threads, int64_t* best,
             float* score) {
  const std::vector<float> cn = ip ? std::vector<float>() : norms(k, c, d);
  {  // AMX tiles or VNNI where the CPU has them: the L2 assignment maximises x.c - |c|^2 / 2
    std::vector<float> half(cn.size());
    for (size_t j = 0; j < cn.size(); ++j) half[j] = cn[j] / 2;
    if (detail::lowp_best_rows(n, x, d, k, c, ip ? nullptr : half.data(), threads, best, score)) {
      if (score && !ip)
        for (int64_t i = 0; i < n; ++i) score[i] *= 2;
      return;
    }
  }
  const detail::MapConstMat<float> C(c, k, d);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  detail::parallel_for(blocks, threads, 1, [&](int64_t b) {
    const int64_t from = b * kBlock, rows = std::min(kBlock, n - from);
    const detail::MapConstMat<float> X(x + from * d, rows, d);
    detail::MatR<float> S = X * C.transpose();  // one thread: Eigen does not nest in an OpenMP region
    for (int64_t r = 0; r < rows; ++r) best[from + r] = row_best(&S(r, 0), ip ? nullptr : cn.data(), k, score ? score + from + r : nullptr);
  });
}

std::vector<float> kmeans(int64_t n, const float* x, int d, int64_t k, bool ip, int iterations, uint64_t seed,
                          int threads, std::vector<int64_t>* assigned) {
  std::vector<float> c(static_cast<size_t>(k * d));
  const auto init = draw(n, k, seed);
  for (int64_t j = 0; j < k; ++j) std::memcpy(&c[size_t(j * d)], x + init[size_t(j)] * d, sizeof(float) * size_t(d));
  std::vector<int64_t> of(static_cast<size_t>(n), 0);
  std::vector<double> sum(static_cast<size_t>(k * d));
  std::vector<int64_t> count(static_cast<size_t>(k));
  for (int it = 0; it < iterations; ++it) {
    nearest(n, x, d, k, c.data(), ip, threads, of.data());
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < n; ++i) {  // in order: the same sums on every run
      const int64_t j = of[size_t(i)];
      ++count[size_t(j)];
      for (int t = 0; t < d; ++t) sum[size_t(j * d + t)] += x[i * d + t];
    }
    for (int64_t j = 0; j < k; ++j)
      if (count[size_t(j)] > 0)
        for (int t = 0; t < d; ++t) c[size_t(j * d + t)] = float(sum[size_t(j * d + t)] / double(count[size_t(j)]));
    // An empty cluster takes half of the largest: its centroid copied with a symmetric
    // perturbation of 1/1024 (Faiss's rule), the counts split.
    for (int64_t j = 0; j < k; ++j) {
      if (count[size_t(j)] > 0) continue;
      const int64_t big = int64_t(std::max_element(count.begin(), count.end()) - count.begin());
      if (count[size_t(big)] < 2) break;
      for (int t = 0; t < d; ++t) {
        const float v = c[size_t(big * d + t)];
        const float eps = 1.0f / 1024.0f;
        c[size_t(j * d + t)] = t % 2 == 0 ? v * (1 + eps) : v * (1 - eps);
        c[size_t(big * d + t)] = t % 2 == 0 ? v * (1 - eps) : v * (1 + eps);
      }
      count[size_t(j)] = count[size_t(big)] / 2;
      count[size_t(big)] -= count[size_t(j)];
    }
    // Inner product: centroids of unit norm (spherical k-means, as Faiss trains an inner-
    // product IVF; a long mean would otherwise take its neighbours' vectors), after the splits.
    if (ip)
      for (int64_t j = 0; j < k; ++j) {
        double norm = 0;
        for (int t = 0; t < d; ++t) norm += double(c[size_t(j * d + t)]) * c[size_t(j * d + t)];
        if (norm > 0)
          for (int t = 0; t < d; ++t) c[size_t(j * d + t)] = float(double(c[size_t(j * d + t)]) / std::sqrt(norm));
      }
  }
  if (assigned) {
    nearest(n, x, d, k, c.data(), ip, threads, of.data());
    assigned->swap(of);
  }
  return c;
}

std::vector<float> train_coarse(int64_t n, const float* x, int d, int64_t nlist, bool ip, uint64_t seed) {
  const int64_t m = std::min(n, kSamplePerList * nlist);
  const std::vector<float> s = sample_rows(n, x, d, m, seed);
  return kmeans(m, s.data(), d, nlist, ip, kIterations, seed + 1, 0);
}

}  // namespace mindrec::store::ivf
