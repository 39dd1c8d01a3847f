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

#include "mindrec/catalogue.hpp"
#include "mindrec/device.hpp"
#include "mindrec/export.hpp"
#include "mindrec/model.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec {

/// A file's size and modification time when it was read, to tell later whether it changed on
/// disk (a deploy replaced it).
struct MINDREC_API FileStamp {
  bool exists = false;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  /// The stamp of `path` now (exists false if there is no such file).
  static FileStamp of(const std::string& path);
  bool operator==(const FileStamp& o) const {
    return exists == o.exists && size == o.size && mtime_ns == o.mtime_ns;
  }
  bool operator!=(const FileStamp& o) const { return !(*this == o); }
};

/// One model and the store of its item vectors, paired for good.
struct MINDREC_API RecommenderSnapshot {
  std::shared_ptr<const MindModel> model;
  std::shared_ptr<VectorStore> store;
  std::string config_path;     ///< the config it was loaded with ("" if built in memory)
  std::string weights_path;    ///< where the weights came from ("" if built in memory)
  /// The store file this snapshot belongs to: the one loaded, or, when the store was built
  /// from the weights (index_created), the one it is meant to be saved to ("" if none).
  std::string index_path;
  bool index_created = false;  ///< the store was built from the weights, not loaded from index_path
  FileStamp index_stamp;       ///< index_path's stamp just before it was loaded (or found missing)
  /// The store spec it was made with: the backend and its search parameters ("flat",
  /// "hnsw:M=32?ef=128"; the file's backend when loaded without one).
  std::string store_spec;
  /// The raw ids of the items (null: dense ids only): the weights' catalogue, or the served
  /// one saved beside the index (served_catalogue_path), a superset a host wrote after adding
  /// items by raw id. Not thread-safe itself: a host that adds items guards it (mindrec-serve
  /// with a reader-writer lock).
  std::shared_ptr<Catalogue> catalogue;
  std::string catalogue_path;  ///< the file it was loaded from ("" if none)
  double load_seconds = 0;     ///< how long load_snapshot took
  int64_t loaded_at_unix = 0;  ///< when it finished (seconds since 1970)
};

/// What load_snapshot reads. One rule for the store:
///   - `index` names a file that exists: it is loaded and checked against the weights
///     (check_store_pairing; refused with ConfigError unless allow_mismatched_index);
///   - `index` names a file that does not exist: IoError naming it, unless `create_index`:
///     then the store is built from the weights (with store_spec) and index_path names the
///     file, for the host to save it there;
///   - `index` is empty: the store is built from the weights' item vectors (with store_spec;
///     with a catalogue, its active items only),
///     except for a remote store (milvus://), which is attached as it is: a load never
///     writes into a store other services may be reading. create_index with a remote spec
///     is refused (ConfigError): index a new collection with mindrec index instead.
struct MINDREC_API SnapshotSource {
  std::string config;   ///< model config (YAML); its hyper_parameters must match the weights
  std::string weights;  ///< weights (.safetensors)
  std::string index;    ///< a store file (see above)
  bool create_index = false;
  /// Backend when building ("" = flat); when loading, "" takes the file's backend and a spec
  /// must name the file's backend (its search parameters are applied).
  std::string store_spec;
  /// Where to read the catalogue ("" = served_catalogue_path(index) when that file exists,
  /// else catalogue.csv beside the weights, else none). Checked against the weights
  /// (check_catalogue_pairing; a mismatch is allowed by allow_mismatched_index, as the store's).
  std::string catalogue;
  bool allow_mismatched_index = false;
  Device device = Device::cpu;
  ModelOptions model_options;
};

/// Where a host saves the catalogue of a store file it saves (the served catalogue, with the
/// items it added by raw id): `index_path` + ".catalogue.csv".
MINDREC_API std::string served_catalogue_path(const std::string& index_path);

/// Loads a snapshot aside (nothing shared with any other): config, weights, model, store.
/// Throws what those loads throw (IoError, FormatError, ConfigError for a mismatched index;
/// IoError for a missing index file without create_index).
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
