// Evaluation (mind-spec.md, "Evaluation"; ComiRec's protocol): exact inner-product retrieval,
// the multi-interest merge, and Recall / NDCG / HitRate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mindrec/data.hpp"
#include "mindrec/model.hpp"

namespace mindrec {

/// Exact inner-product top-k: for each of `nq` queries [nq, d] the k rows of `base` [nb, d]
/// with the largest inner product (row index = id), best first, ties to the smaller id.
/// Writes ids [nq, k] and scores [nq, k]; when k > nb the tail is id -1, score -inf.
/// Parallel over queries; deterministic. With `bias` [nb], row j scores <q, x_j> + bias[j].
void exact_topk(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k,
                int64_t* ids, float* scores, int threads = 0, const float* bias = nullptr);

/// The spec's merge of one user's per-interest results: pool the `num_interests` x
/// `per_interest` (id, score) pairs, sort by score descending (ties: smaller id first), drop
/// id 0, -1 and duplicates, keep the first `topn`. Returns how many were written to `out`
/// (and their scores to `out_scores` if not null).
int merge_interests(const int64_t* ids, const float* scores, int num_interests,
                    int per_interest, int topn, int64_t* out, float* out_scores = nullptr);

struct Metrics {
  double recall = 0, ndcg = 0, hitrate = 0;
};

/// One user's metrics for a retrieved list (ComiRec): hits = retrieved ids that are in the
/// ground truth; Recall = hits / |GT| (|GT| counts the eval items as listed);
/// HitRate = [hits > 0]; NDCG = Σ_hit ranks r 1/log2(r+2) / Σ_{i<hits} 1/log2(i+2) (0 without
/// hits). An empty ground truth gives all zeros.
Metrics user_metrics(const int64_t* retrieved, int n, const int64_t* gt, int64_t gt_len);

class VectorStore;

struct EvalOptions {
  /// Search this store (built with build_item_store) instead of the exact search over all
  /// rows of item_emb; shows what an ANN index costs in recall. Not owned.
  const VectorStore* store = nullptr;
  std::vector<int> topk = {20, 50};
  /// PaddleRec's infer.py: GT cut to its first 20 items, the user count starting at 1, and
  /// the last partial batch (of batch_size) dropped. For side-by-side reproduction only.
  bool paddlerec_compat = false;
  int batch_size = 128;
  int threads = 0;
};

struct EvalReport {
  int64_t users = 0;             ///< users evaluated (the mean's denominator, compat aside)
  std::vector<int> topk;         ///< N values
  std::vector<Metrics> metrics;  ///< one per N, means over users
  double seconds = 0;

  /// {"users": n, "recall@20": x, "ndcg@20": y, "hitrate@20": z, ...}
  std::string to_json() const;
  /// A fixed-width table, one row per N.
  std::string table() const;
};

/// Evaluates `model` on `set`: interests from the last L history items, exact retrieval
/// over all rows of item_emb (row 0 included, never returned), the merge, and the metrics.
EvalReport evaluate(const MindModel& model, const EvalSet& set, const EvalOptions& options);

}  // namespace mindrec
