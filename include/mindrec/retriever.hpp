// Multi-interest candidate generation: users' histories -> their K interests -> each
// interest's nearest items in a VectorStore -> the spec's merge (pool K·N, sort by score,
// drop id 0 and duplicates, keep N).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mindrec/catalogue.hpp"
#include "mindrec/export.hpp"
#include "mindrec/model.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec {

/// The spec's merge of one user's per-interest results: pool the `num_interests` x
/// `per_interest` (id, score) pairs, sort by score descending (ties: smaller id first), drop
/// id 0, -1 and duplicates, keep the first `topn`. Returns how many were written to `out`
/// (and their scores to `out_scores` if not null).
MINDREC_API int merge_interests(const int64_t* ids, const float* scores, int num_interests,
                                int per_interest, int topn, int64_t* out,
                                float* out_scores = nullptr);

struct MINDREC_API RecallOptions {
  int topn = 50;
  /// Leave out the items of the user's own history: recall_histories every id of each list
  /// (the model still reads only the last maxlen), recall_items the ids of the packed rows.
  /// Inside the store's search (SearchOptions::exclude) where the store filters; a store
  /// that does not (cuda:flat, faiss-gpu:) fetches as many more candidates per interest as
  /// the longest list has distinct ids instead.
  bool exclude_history = false;
  /// A filter expression over the store's attributes (attributes.hpp): only items it allows
  /// are recalled, chosen inside the store's search; users without clicks get the allowed
  /// popular items. "" = every item.
  std::string filter;
  /// Search parameters for these calls only (SearchOptions::params: "ef", "nprobe").
  std::vector<std::pair<std::string, double>> search_params;
  /// Threads of the interest extraction (0 = all cores); the store's scan has its own.
  int threads = 0;
  /// Re-ranking for a store with approximate scores (e.g. faiss:IVF4096,SQ8): each interest
  /// fetches rerank x topn candidates, which are scored again exactly against the model's own
  /// item vectors before the merge. 0 (the default) merges the store's scores as they are.
  /// Items the model has no vector for (ids >= item_count) and those in store_scored keep the
  /// store's score: vectors written into the store after the model was trained.
  int rerank = 0;
  /// Sorted ids whose stored vector is not the model's (written later, e.g. through
  /// mindrec-serve's /rec/items): rerank leaves them the store's score. May be null.
  const std::vector<int64_t>* store_scored = nullptr;
};

/// For `batch` users (`hist` [B, L] right-padded, `lengths` [B]) writes the merged top-N item
/// ids [B, topn] and their scores (inner products; for an L2 store, squared distances), best
/// first, padded with -1. Thread-safe: concurrent calls may share the model and the store.
/// A store with a fused search + merge (`cuda:flat`) does both on its device, unless
/// exclude_history is set.
///
/// One rule for every interface (CLI, server, Python): an id 0 (the padding id) or one
/// outside [1, item_count) inside a user's length is refused (InvalidArgument naming the user
/// and position); a user with no clicks (length 0) gets the model's popular items
/// (MindWeights::popular_items, the training log's most clicked; scores 0), marked in
/// `fallback` [B] (1; 0 for a recalled user) when not null; weights without popular items
/// refuse such a user (InvalidArgument).
MINDREC_API void recall_items(const MindModel& model, const VectorStore& store, const int64_t* hist,
                              const int32_t* lengths, int64_t batch, const RecallOptions& options,
                              int64_t* ids, float* scores, uint8_t* fallback = nullptr);

/// recall_items' result for a list of users.
struct MINDREC_API RecallResult {
  int64_t users = 0;
  int topn = 0;
  std::vector<int64_t> ids;  ///< [users, topn], best first, padded with -1
  std::vector<float> scores;  ///< [users, topn]
  std::vector<uint8_t> fallback;  ///< [users]: 1 where the user had no clicks and got the popular items
};

/// recall_items for histories given as lists of item ids, oldest first (each user's last
/// maxlen items are read by the model; exclude_history leaves out every id of the list). Every
/// id of every list is checked (InvalidArgument naming the user and position); an empty list
/// gets the popular items (recall_items' rule).
MINDREC_API RecallResult recall_histories(const MindModel& model, const VectorStore& store,
                                          const std::vector<std::vector<int64_t>>& histories,
                                          const RecallOptions& options);

/// Histories of raw ids translated through a catalogue (the edge's one lookup).
struct MINDREC_API DenseHistories {
  std::vector<std::vector<int64_t>> dense;        ///< per user: the known ids, in order
  std::vector<std::vector<std::string>> unknown;  ///< per user: the raw ids skipped, in order
};

/// Translates each user's raw ids: an id the catalogue does not know, or whose dense id is no
/// row of a model with `item_count` rows (an item added to the served catalogue after the
/// model was trained), is skipped and listed in `unknown`. Never throws for an unknown id.
MINDREC_API DenseHistories to_dense_histories(const Catalogue& catalogue,
                                              const std::vector<std::vector<std::string>>& histories,
                                              int64_t item_count);

/// recall_histories' result in raw ids.
struct MINDREC_API RawRecallResult {
  int64_t users = 0;
  int topn = 0;
  std::vector<std::vector<std::string>> ids;     ///< per user: up to topn raw ids, best first
  std::vector<std::vector<float>> scores;        ///< per user: their scores
  std::vector<uint8_t> fallback;                 ///< 1: no known id in the history; the popular items
  std::vector<std::vector<std::string>> unknown; ///< per user: the history's raw ids skipped
};

/// recall_histories for raw-id histories: unknown ids are skipped and listed; a history with
/// no known id gets the popular items (fallback, never an error). Results are raw ids; ids the
/// catalogue has no row for or marks retired are never returned (`mindrec index` with a
/// catalogue leaves retired items out of the store, so nothing is lost there).
MINDREC_API RawRecallResult recall_raw_histories(const MindModel& model, const VectorStore& store,
                                                 const Catalogue& catalogue,
                                                 const std::vector<std::vector<std::string>>& histories,
                                                 const RecallOptions& options);

/// Refuses (InvalidArgument naming `what`, the user and the position) what the interfaces do
/// not take: a length outside [0, maxlen], a user without clicks unless `allow_empty`, an id 0
/// (the padding id) or outside [1, item_count) within a user's length (`hist` [B, maxlen]).
MINDREC_API void check_histories(const MindModel& model, const int64_t* hist, const int32_t* lengths,
                                 int64_t batch, const std::string& what, bool allow_empty = true);
/// The same for lists of ids (every id of every list).
MINDREC_API void check_histories(const MindModel& model, const std::vector<std::vector<int64_t>>& histories,
                                 const std::string& what, bool allow_empty = true);

/// Checks that `store` holds the item vectors of `model`'s weights: their item fingerprints
/// (MindModel::item_fingerprint, VectorStore::source_fingerprint) must match. A mismatch
/// throws ConfigError naming `store_name`, both fingerprints and the fix, unless
/// `allow_mismatch` (then it only logs a warning). A store whose fingerprint is unknown (0: a
/// file older than store format 4, or vectors added by hand) passes with a warning.
MINDREC_API void check_store_pairing(const MindModel& model, const VectorStore& store,
                                     const std::string& store_name, bool allow_mismatch = false);

/// Adds or replaces every item vector of `model` (ids 1..N-1; 0 is padding) in `store`, in
/// one upsert, and records the model's item fingerprint in the store; returns how many were
/// written (N-1).
MINDREC_API int64_t upsert_item_vectors(const MindModel& model, VectorStore& store);

/// A store of every item vector of `model` (ids 1..N-1), built with `spec`.
MINDREC_API std::unique_ptr<VectorStore> build_item_store(const MindModel& model, const std::string& spec,
                                                          Metric metric = Metric::inner_product);

/// build_item_store of weights the caller gives up: the item table moves into the store
/// (VectorStore::add of a buffer handed over) where the backend keeps its vectors in one table
/// (hnsw:, flat), so the build holds the vectors once, not twice (issue 28: 5 GB less at 20M items);
/// other backends copy it and it is freed. The store records the weights' item fingerprint.
/// `weights` keeps its other tensors; its item_emb is empty afterwards, also after a throw.
MINDREC_API std::unique_ptr<VectorStore> build_item_store(MindWeights&& weights, const std::string& spec,
                                                          Metric metric = Metric::inner_product);
/// The same of the catalogue's active items only (their rows moved together in the table).
MINDREC_API std::unique_ptr<VectorStore> build_item_store(MindWeights&& weights, const std::string& spec,
                                                          const Catalogue& catalogue,
                                                          Metric metric = Metric::inner_product);

/// upsert_item_vectors of the catalogue's active items only (ids with a row, not retired,
/// below the model's item_count); returns how many.
MINDREC_API int64_t upsert_item_vectors(const MindModel& model, VectorStore& store, const Catalogue& catalogue);
/// A store of the catalogue's active items' vectors, built with `spec`.
MINDREC_API std::unique_ptr<VectorStore> build_item_store(const MindModel& model, const std::string& spec,
                                                          const Catalogue& catalogue,
                                                          Metric metric = Metric::inner_product);

}  // namespace mindrec
