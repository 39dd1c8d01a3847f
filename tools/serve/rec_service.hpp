// RecService: the HTTP API of mindrec-serve without the HTTP. Each endpoint takes the request
// body and returns a status and a JSON body, so the same code is exercised by the unit tests
// (directly) and by the server (through cpp-httplib). The API is the seed system's
// (/rec/insert_data, /rec/recall, /rec/count, /qa/drop) plus item updates, health, save and
// an OpenAPI description; see openapi_json() for the request and response shapes.
//
// Thread safety: every method may be called from many threads at once. Model and store are
// one snapshot (mindrec::Recommender): each request takes the current one and finishes on it,
// so POST /admin/reload (or SIGHUP) swaps in new weights and a new index without failing a
// request. The model is immutable; the store serialises writers against searches
// (VectorStore's contract), and every write is validated completely before the store is
// touched, so a refused request changes nothing. Writes to the store while a reload loads go
// to the old snapshot and are not carried over.
//
// Access: with options.token set, the mutating endpoints (insert_data, items, drops, save,
// reload) need "Authorization: Bearer <token>" (401 without, 403 with another); the others
// stay open. Every answer is counted for GET /metrics (Prometheus text format).
//
// Threads: a request computes on the thread that calls it (one compute thread, no OpenMP
// team of its own: that thread's omp_set_num_threads becomes 1), and at most options.compute_slots requests compute at once; the others
// wait for a slot. With compute_slots = default_threads() (the default) the server never
// runs more compute threads than the process has cores, however many HTTP workers it has.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "mindrec/config.hpp"

#include "mindrec/model.hpp"
#include "mindrec/recommender.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::serve {

struct ServiceOptions {
  int max_users = 1024;           ///< users per /rec/recall request
  int max_top_k = 1000;           ///< top_k per request
  int64_t max_items = 100000;     ///< ids per /rec/items or /rec/items/delete request
  bool exclude_history = false;   ///< default of the request's "exclude_history"
  std::string index_path;         ///< where /rec/save and shutdown write the store ("" = none)
  int compute_slots = 0;          ///< requests computing at once (0 = default_threads())
  std::string token;              ///< bearer token of the mutating endpoints ("" = none needed)
  /// What POST /admin/reload loads when its body names nothing (the start-up flags); a
  /// request may override config, weights, index, store and allow_mismatched_index.
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

class RecService {
 public:
  /// Refuses (InvalidArgument) a store whose dimension is not the model's interest size.
  RecService(MindModel model, std::unique_ptr<VectorStore> store, ServiceOptions options);
  RecService(std::shared_ptr<const RecommenderSnapshot> snapshot, ServiceOptions options);
  ~RecService();
  RecService(RecService&&) noexcept;
  RecService& operator=(RecService&&) noexcept;

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
  Reply save() const;                        // POST /rec/save
  Reply health() const;                      // GET /healthz
  Reply reload(std::string_view body);       // POST /admin/reload
  Reply metrics() const;                     // GET /metrics

  /// Saves the store to options.index_path if one was given (atomic write); returns whether
  /// it saved. Used on shutdown.
  bool save_if_configured() const;

  /// The snapshot requests use now.
  std::shared_ptr<const RecommenderSnapshot> snapshot() const { return rec_->current(); }
  /// The current snapshot's store and model (valid until the next reload).
  const VectorStore& store() const { return *snapshot()->store; }
  const MindModel& model() const { return *snapshot()->model; }
  /// Reloads so far (successful swaps).
  uint64_t generation() const { return rec_->generation(); }

  static const std::string& openapi_json();  // GET /openapi.json
  static const std::string& docs_html();     // GET /docs
  /// The most requests that have computed at the same time so far (for tests and metrics).
  int peak_computing() const;

 private:
  class Slots;  // counting semaphore of compute_slots
  /// Runs `fn` in a compute slot, on this thread alone.
  template <class Fn>
  auto computing(Fn&& fn) const;
  std::unique_ptr<Slots> slots_;
  std::unique_ptr<Recommender> rec_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<std::mutex> reload_mutex_;  // one reload at a time
  ServiceOptions options_;
};

}  // namespace mindrec::serve
