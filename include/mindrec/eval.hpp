// Evaluation (mind-spec.md, "Evaluation"; ComiRec's protocol): Recall / NDCG / HitRate of the
// merged multi-interest retrieval (exact, topk.hpp, or through a store), per user and averaged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mindrec/data.hpp"
#include "mindrec/export.hpp"
#include "mindrec/model.hpp"

namespace mindrec {

struct MINDREC_API Metrics {
  double recall = 0, ndcg = 0, hitrate = 0;
};

/// One user's metrics for a retrieved list (ComiRec): hits = retrieved ids that are in the
/// ground truth; Recall = hits / |GT| (|GT| counts the eval items as listed);
/// HitRate = [hits > 0]; NDCG = Σ_hit ranks r 1/log2(r+2) / Σ_{i<hits} 1/log2(i+2) (0 without
/// hits). An empty ground truth gives all zeros.
MINDREC_API Metrics user_metrics(const int64_t* retrieved, int n, const int64_t* gt, int64_t gt_len);

class VectorStore;

struct MINDREC_API EvalOptions {
  /// Search this store (built with build_item_store) instead of the exact search over all
  /// rows of item_emb; shows what an ANN index costs in recall. Not owned.
  const VectorStore* store = nullptr;
  /// With a store of approximate scores (IVF-SQ8, PQ): each interest fetches rerank x max(topk)
  /// candidates, scored again exactly against item_emb before the lists are cut (ids the
  /// model has no vector for keep the store's score). 0 = the store's scores as they are.
  int rerank = 0;
  std::vector<int> topk = {20, 50};
  /// PaddleRec's infer.py: GT cut to its first 20 items, the user count starting at 1, and
  /// the last partial batch (of batch_size) dropped. For side-by-side reproduction only.
  bool paddlerec_compat = false;
  /// Users per batch of interest extraction and retrieval (PaddleRec's infer batch size;
  /// with paddlerec_compat also the unit of its drop-last rule). Does not change the metrics.
  int batch_size = 128;
  int threads = 0;
  /// Also evaluate the popularity baseline (evaluate_popularity) from this training log on the
  /// same users and cut-offs: EvalReport::popularity. Not owned; null = no baseline.
  const ClickLog* popularity_from = nullptr;
  /// A filter expression over the store's attributes (attributes.hpp; needs `store`): the
  /// retrieval returns only items it allows (inside the store's search), and only allowed
  /// targets are counted: disallowed eval items leave the ground truth, users left without one
  /// are not evaluated (EvalReport says how many). The popularity baseline recommends the
  /// allowed popular items. "" = every item.
  std::string filter;
};

struct MINDREC_API EvalReport {
  int64_t users = 0;             ///< users evaluated (the mean's denominator, compat aside)
  std::vector<int> topk;         ///< N values
  std::vector<Metrics> metrics;  ///< one per N, means over users
  /// The popularity baseline on the same users, one per N (empty unless asked for:
  /// EvalOptions::popularity_from).
  std::vector<Metrics> popularity;
  double seconds = 0;
  /// With EvalOptions::filter: the filter, the eval items before and after it, and the users
  /// left without an allowed target (not evaluated).
  std::string filter;
  int64_t targets_total = 0, targets_allowed = 0, users_without_allowed = 0;

  /// {"users": n, "recall@20": x, "ndcg@20": y, "hitrate@20": z, ...}; with the baseline also
  /// "popularity_recall@20", ... and the model's ratios "ratio_recall@20", ... (null where the
  /// baseline is 0).
  std::string to_json() const;
  /// A fixed-width table, one row per N (with the baseline: model, popularity and their ratio).
  std::string table() const;
};

/// Evaluates `model` on `set`: interests from the last L history items, exact retrieval
/// over all rows of item_emb (row 0 included, never returned), the merge, and the metrics.
MINDREC_API EvalReport evaluate(const MindModel& model, const EvalSet& set, const EvalOptions& options);

/// The `n` items clicked most often in `log`, most first (ties: smaller id first): the
/// popularity baseline's list, and the fallback `mindrec train` records in the weights
/// (MindWeights::popular_items). Fewer if the log has fewer distinct items.
MINDREC_API std::vector<int64_t> most_popular(const ClickLog& log, size_t n);

/// The popularity baseline on the same users and cut-offs: every user is recommended the
/// `max(topk)` items clicked most often in `train` (ties: smaller id first), with the metrics
/// and counting rules of evaluate() (paddlerec_compat included; `store` and `threads` unused).
MINDREC_API EvalReport evaluate_popularity(const ClickLog& train, const EvalSet& set, const EvalOptions& options);

}  // namespace mindrec
