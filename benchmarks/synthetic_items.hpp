// Clustered item vectors for the benchmarks (bench_store, bench_scale gen-weights --noise):
// 2,000 cluster centres ~ N(0, I), item i = 0.1 (centre[c_i] + noise * N(0, I)), c_i uniform;
// noise 0.6 gives well separated topics, 1.5 the diffuse set of ann_target.sh. The bilinear map
// is set to the identity (the model config must say capsule.relu_layer: false), so a user's
// interests point at the clusters the user clicked, as a trained MIND's do; with random
// weights the interests are random directions whose exact top-50 are the catalogue's extreme
// items, a case no ANN index and no trained model presents. Row 0 (padding) is left as is.
// Draws from `rng` (centres, then per item its cluster and noise) and returns each item's
// cluster (callers draw users' histories from it with the same generator).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "detail/random.hpp"
#include "mindrec/config.hpp"
#include "mindrec/weights.hpp"

namespace mindrec::bench {

constexpr int kClusters = 2000;

inline std::vector<int> make_clustered_items(MindWeights& w, const ModelConfig& c, float noise, detail::Rng& rng) {
  const int D = c.embedding_dim, clusters = kClusters;
  std::vector<float> centre(size_t(clusters) * size_t(D));
  for (auto& x : centre) x = float(rng.normal());
  std::vector<int> cluster_of(size_t(c.item_count));
  for (int64_t i = 1; i < c.item_count; ++i) {
    cluster_of[size_t(i)] = int(rng.below(clusters));
    const size_t cl = size_t(cluster_of[size_t(i)]);
    for (int d = 0; d < D; ++d)
      w.item_emb[size_t(i) * size_t(D) + size_t(d)] = 0.1f * (centre[cl * size_t(D) + size_t(d)] + noise * float(rng.normal()));
  }
  for (int i = 0; i < D; ++i)
    for (int j = 0; j < c.hidden_size; ++j) w.bilinear[size_t(i) * size_t(c.hidden_size) + size_t(j)] = i == j ? 1.f : 0.f;
  return cluster_of;
}

}  // namespace mindrec::bench
