// RecService: the HTTP API of mindrec-serve without the HTTP. Each endpoint takes the request
// body and returns a status and a JSON body, so the same code is exercised by the unit tests
// (directly) and by the server (through cpp-httplib). The API is the seed system's
// (/rec/insert_data, /rec/recall, /rec/count, /qa/drop) plus item updates, save, reload,
// health, readiness, metrics and an OpenAPI description (openapi.json beside this file).
//
// Files (rec_service.cpp: routing, access, the served snapshot, reload and save;
// handlers.cpp: the recall and item endpoints; request_json.*: request parsing; metrics.*:
// Prometheus; openapi.*: the document; compute_slots.hpp: the compute bound).
//
// Snapshots: model and store are one snapshot (mindrec::Recommender), each with its own files
// (config, weights, index). A request takes the current snapshot and finishes on it, so
// POST /admin/reload (or SIGHUP) swaps in new weights and a new index without failing a
// request. The served files follow the reloads: a bare reload reads the files served now
// again (a deploy replaced them), /rec/save and the shutdown save write the index the current
// snapshot was loaded from (or is meant for), never a file of another model.
//
// Thread safety: every method may be called from many threads at once. The model is
// immutable; the store serialises writers against searches (VectorStore's contract), and
// every write is validated completely before the store is touched, so a refused request
// changes nothing. Writes are refused (409) while a reload loads: they would go to the store
// being replaced.
//
// Access: with options.token set, the mutating endpoints (insert_data, items, drops, save,
// reload) need "Authorization: Bearer <token>" (401 without, 403 with another); the others
// stay open. Every answer is counted for GET /metrics (Prometheus text format).
//
// Threads: a request computes on the thread that calls it (one compute thread, no OpenMP
// team of its own), and at most options.compute_slots requests compute at once; the others
// wait for a slot. A reload computes outside the slots, on options.reload_threads (all
// cores by default: requests slow down while it builds, none waits for it).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mindrec/config.hpp"
#include "mindrec/model.hpp"
#include "mindrec/recommender.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::serve {

struct ServiceOptions {
  int max_users = 1024;           ///< users per /rec/recall request
  int max_top_k = 1000;           ///< top_k per request
  int64_t max_items = 100000;     ///< ids per /rec/items or /rec/items/delete request
  bool exclude_history = false;   ///< default of the request's "exclude_history"
  int compute_slots = 0;          ///< requests computing at once (0 = default_threads())
  int reload_threads = 0;         ///< a reload's threads (0 = default_threads() when constructed)
  std::string token;              ///< bearer token of the mutating endpoints ("" = none needed)
  /// The start-up files: what start() loads (and what a reload falls back to for a field
  /// neither its body nor the served snapshot names). load_snapshot's rule for the index.
  SnapshotSource reload;
};

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

/// A JSON error reply: {"error": {"status": s, "field": f, "message": m}} (field may be "").
Reply error_reply(int status, const std::string& field, const std::string& message);

class Metrics;
class ComputeSlots;

class RecService {
 public:
  /// A service with no model yet: every endpoint that needs one answers 503 until start()
  /// has loaded options.reload; /healthz says "loading", /readyz 503.
  explicit RecService(ServiceOptions options);
  /// A service over a snapshot made by the caller. Refuses (InvalidArgument) a store whose
  /// dimension is not the model's interest size.
  RecService(std::shared_ptr<const RecommenderSnapshot> snapshot, ServiceOptions options);
  RecService(MindModel model, std::unique_ptr<VectorStore> store, ServiceOptions options);
  ~RecService();
  RecService(RecService&&) noexcept;
  RecService& operator=(RecService&&) noexcept;

  /// Loads options.reload as the first snapshot (outside the compute slots, on
  /// options.reload_threads). Throws what load_snapshot throws; then nothing is served.
  void start();

  /// Routes one request; unknown paths give 404, a known path with another method 405.
  /// `authorization` is the request's Authorization header ("" if none).
  Reply handle(std::string_view method, std::string_view path, std::string_view body,
               std::string_view authorization = {});

  Reply insert_data();                       // POST /rec/insert_data
  Reply recall(std::string_view body) const; // POST /rec/recall
  Reply count() const;                       // POST /rec/count (GET too)
  Reply drop();                              // POST /qa/drop, /rec/drop
  Reply put_items(std::string_view body);    // POST /rec/items
  Reply delete_items(std::string_view body); // POST /rec/items/delete
  Reply save(std::string_view body = {});    // POST /rec/save
  Reply health() const;                      // GET /healthz (liveness)
  Reply ready() const;                       // GET /readyz (readiness)
  Reply reload(std::string_view body);       // POST /admin/reload
  Reply metrics() const;                     // GET /metrics

  /// The shutdown save: writes the current store to its index file when the store changed
  /// since it was loaded or last saved (or was built for that file), unless the file changed
  /// on disk since (a deploy wrote it: then it is left alone). Returns what it did and why,
  /// for the log; throws what save throws.
  std::string save_on_shutdown();

  /// The snapshot requests use now (null until the first model is loaded).
  std::shared_ptr<const RecommenderSnapshot> snapshot() const;
  /// Reloads so far (successful swaps).
  uint64_t generation() const;
  /// The current snapshot's store and model (valid while the caller holds no reload off;
  /// for tests and tools). InvalidArgument before the first model is loaded.
  const VectorStore& store() const;
  const MindModel& model() const;

  static const std::string& openapi_json();  // GET /openapi.json
  static const std::string& docs_html();     // GET /docs
  /// The most requests that have computed at the same time so far (for tests and metrics).
  int peak_computing() const;

 private:
  struct State;  // the served snapshot, its files, the reload state (rec_service.cpp)
  /// The current snapshot, or throws the 503 "no model loaded yet".
  std::shared_ptr<const RecommenderSnapshot> loaded() const;
  /// Refuses (409) a write while a reload loads.
  void check_writable() const;
  std::shared_ptr<const RecommenderSnapshot> load(const SnapshotSource& src);
  void served(std::shared_ptr<const RecommenderSnapshot> snap);  // makes it current, with its files
  /// Ids written through /rec/items into `snap`'s store (sorted; null if none): their stored
  /// vectors are not the model's, so rerank leaves them the store's score.
  std::shared_ptr<const std::vector<int64_t>> written_ids(const RecommenderSnapshot& snap) const;
  void note_written(const RecommenderSnapshot& snap, const std::vector<int64_t>& ids);
  /// /rec/recall with "ids": "raw" (handlers.cpp).
  Reply recall_raw(const RecommenderSnapshot& snap, const std::vector<std::vector<std::string>>& hists,
                   const RecallOptions& options) const;
  /// Guards the served catalogues (snapshot->catalogue): shared by raw recalls, exclusive for
  /// the raw item writes that add to one and for saving one.
  std::shared_mutex& catalogue_mutex() const;
  void save_catalogue(const RecommenderSnapshot& snap, const std::string& index_path) const;
  std::unique_ptr<ComputeSlots> slots_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Metrics> metrics_;
  ServiceOptions options_;
};

}  // namespace mindrec::serve
