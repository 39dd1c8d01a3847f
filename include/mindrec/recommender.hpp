// Recommender: a model and the store of its item vectors held as one snapshot that can be
// replaced while requests run. A recall service retrains daily; with this it swaps in the new
// weights and index without a restart: load_snapshot() builds the new pair aside, swap()
// replaces the current one atomically, requests that already hold the old snapshot finish on
// it, and the old model and store are freed when the last of them lets go.
//
//   mindrec::Recommender rec(mindrec::load_snapshot(source));
//   auto snap = rec.current();                       // one request: hold it to the end
//   auto hits = mindrec::recall_histories(*snap->model, *snap->store, histories, options);
//   rec.swap(mindrec::load_snapshot(new_source));    // meanwhile, elsewhere: retrained
//
// Thread safety: current() and swap() may be called from any threads at once. The model of a
// snapshot is immutable; its store takes writes (VectorStore's contract), which stay with that
// snapshot: writes made to the old store while a new snapshot loads are not carried over.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "mindrec/device.hpp"
#include "mindrec/export.hpp"
#include "mindrec/model.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec {

/// One model and the store of its item vectors, paired for good.
struct MINDREC_API RecommenderSnapshot {
  std::shared_ptr<const MindModel> model;
  std::shared_ptr<VectorStore> store;
  std::string weights_path;    ///< where the weights came from ("" if built in memory)
  std::string index_path;      ///< the store file loaded ("" if built from the model)
  double load_seconds = 0;     ///< how long load_snapshot took
  int64_t loaded_at_unix = 0;  ///< when it finished (seconds since 1970)
};

/// What load_snapshot reads.
struct MINDREC_API SnapshotSource {
  std::string config;   ///< model config (YAML); its hyper_parameters must match the weights
  std::string weights;  ///< weights (.safetensors)
  /// A store file: loaded if it exists (and checked against the weights: check_store_pairing);
  /// otherwise, or if empty, the store is built from the weights' item vectors (or left empty
  /// with `build_missing_store` false, to be filled by the caller).
  std::string index;
  bool build_missing_store = true;
  /// Backend when building ("" = flat); when loading, "" takes the file's backend and a spec
  /// must name the file's backend (its search parameters are applied).
  std::string store_spec;
  bool allow_mismatched_index = false;
  Device device = Device::cpu;
  ModelOptions model_options;
};

/// Loads a snapshot aside (nothing shared with any other): config, weights, model, store.
/// Throws what those loads throw (IoError, FormatError, ConfigError for a mismatched index).
MINDREC_API std::shared_ptr<const RecommenderSnapshot> load_snapshot(const SnapshotSource& source);

/// Pairs an existing model and store (checks the store's dimension against the model's
/// interests: InvalidArgument).
MINDREC_API std::shared_ptr<const RecommenderSnapshot> make_snapshot(std::shared_ptr<const MindModel> model,
                                                                     std::shared_ptr<VectorStore> store);

class MINDREC_API Recommender {
 public:
  explicit Recommender(std::shared_ptr<const RecommenderSnapshot> first);
  Recommender(const Recommender&) = delete;
  Recommender& operator=(const Recommender&) = delete;

  /// The current snapshot; hold it for the whole request.
  std::shared_ptr<const RecommenderSnapshot> current() const;
  /// Makes `next` current; returns the previous snapshot. InvalidArgument if null.
  std::shared_ptr<const RecommenderSnapshot> swap(std::shared_ptr<const RecommenderSnapshot> next);
  /// How many swaps so far.
  uint64_t generation() const;

 private:
  mutable std::mutex m_;
  std::shared_ptr<const RecommenderSnapshot> current_;
  uint64_t generation_ = 0;
};

}  // namespace mindrec
