// Multi-interest candidate generation: users' histories -> their K interests -> each
// interest's nearest items in a VectorStore -> the spec's merge (pool K·N, sort by score,
// drop id 0 and duplicates, keep N).
#pragma once

#include <cstdint>

#include "mindrec/model.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec {

struct RecallOptions {
  int topn = 50;
  /// Drop the items of the user's own history (fetches that many more per interest).
  bool exclude_history = false;
  int threads = 0;
};

/// For `batch` users (`hist` [B, L] right-padded, `lengths` [B]) writes the merged top-N item
/// ids [B, topn] and their scores (inner products; for an L2 store, squared distances), best
/// first, padded with -1. Thread-safe: concurrent calls may share the model and the store.
/// A store with a fused search + merge (`cuda:flat`) does both on its device, unless
/// exclude_history is set.
void recall_items(const MindModel& model, const VectorStore& store, const int64_t* hist,
                  const int32_t* lengths, int64_t batch, const RecallOptions& options,
                  int64_t* ids, float* scores);

/// A store of every item vector of `model` (ids 1..N-1; 0 is padding), built with `spec`.
std::unique_ptr<VectorStore> build_item_store(const MindModel& model, const std::string& spec,
                                              Metric metric = Metric::inner_product);

}  // namespace mindrec
