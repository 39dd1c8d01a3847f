// RecService: routing and access, the served snapshot with its files, reload, save,
// health and readiness (see rec_service.hpp). The recall and item endpoints are in
// handlers.cpp.
#include "rec_service.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <shared_mutex>
#include <utility>

#include "compute_slots.hpp"
#include "metrics.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/version.hpp"
#include "mindrec/weights.hpp"
#include "request_json.hpp"

namespace mindrec::serve {

namespace {
// A request that cannot be answered now (no model loaded yet): 503.
struct Unavailable {
  std::string message;
};
// A request the service's state refuses (a write during a reload): 409.
struct Conflict {
  std::string message;
};
}  // namespace

// The served snapshot and what belongs to it: its index file's stamp when it was loaded or
// last saved, the store's change count then, and the reload state.
struct RecService::State {
  std::unique_ptr<Recommender> rec;  // null until the first load
  mutable std::mutex m;              // guards rec's creation, the files fields, last_reload_error
  FileStamp stamp;                   // index_path's, at load or the last save
  uint64_t saved_changes = 0;        // store->changes() then
  bool unsaved_build = false;        // built for index_path (create_index), not saved yet
  std::string last_reload_error;     // "" when the last reload succeeded (or none ran)
  const RecommenderSnapshot* written_of = nullptr;   // the snapshot `written` belongs to
  std::shared_ptr<const std::vector<int64_t>> written;  // ids written through /rec/items, sorted
  mutable std::shared_mutex catalogue_m;  // see RecService::catalogue_mutex
  std::mutex one_reload;             // one reload at a time
  std::atomic<bool> reloading{false};

  std::shared_ptr<const RecommenderSnapshot> current() const {
    std::lock_guard<std::mutex> l(m);
    return rec ? rec->current() : nullptr;
  }
};

int RecService::peak_computing() const { return slots_->peak(); }

std::shared_mutex& RecService::catalogue_mutex() const { return state_->catalogue_m; }

RecService::~RecService() = default;
RecService::RecService(RecService&&) noexcept = default;
RecService& RecService::operator=(RecService&&) noexcept = default;

RecService::RecService(ServiceOptions options) : options_(std::move(options)) {
  if (options_.compute_slots <= 0) options_.compute_slots = default_threads();
  if (options_.reload_threads <= 0) options_.reload_threads = default_threads();
  MINDREC_EXPECTS(options_.max_users >= 1 && options_.max_top_k >= 1 && options_.max_items >= 1,
                  "RecService: limits must be >= 1");
  slots_ = std::make_unique<ComputeSlots>(options_.compute_slots);
  state_ = std::make_unique<State>();
  metrics_ = std::make_unique<Metrics>();
}

RecService::RecService(std::shared_ptr<const RecommenderSnapshot> snapshot, ServiceOptions options)
    : RecService(std::move(options)) {
  MINDREC_EXPECTS(snapshot != nullptr, "RecService: null snapshot");
  served(std::move(snapshot));
}

RecService::RecService(MindModel model, std::unique_ptr<VectorStore> store, ServiceOptions options)
    : RecService(make_snapshot(std::make_shared<const MindModel>(std::move(model)), std::move(store)),
                 std::move(options)) {}

std::shared_ptr<const RecommenderSnapshot> RecService::snapshot() const { return state_->current(); }

uint64_t RecService::generation() const {
  std::lock_guard<std::mutex> l(state_->m);
  return state_->rec ? state_->rec->generation() : 0;
}

const VectorStore& RecService::store() const {
  const auto snap = snapshot();
  MINDREC_EXPECTS(snap != nullptr, "RecService::store: no model loaded yet");
  return *snap->store;  // the snapshot outlives this call only while the service holds it
}

const MindModel& RecService::model() const {
  const auto snap = snapshot();
  MINDREC_EXPECTS(snap != nullptr, "RecService::model: no model loaded yet");
  return *snap->model;
}

std::shared_ptr<const RecommenderSnapshot> RecService::loaded() const {
  auto snap = snapshot();
  if (!snap) throw Unavailable{"no model loaded yet: the server is loading " + options_.reload.weights + " (GET /readyz)"};
  return snap;
}

void RecService::check_writable() const {
  if (state_->reloading.load())
    throw Conflict{"a reload is loading a new model and store: a write now would go to the store it replaces; "
                   "retry once it is done"};
}

void RecService::served(std::shared_ptr<const RecommenderSnapshot> snap) {
  std::lock_guard<std::mutex> l(state_->m);
  state_->stamp = snap->index_stamp;
  state_->saved_changes = snap->store->changes();
  state_->unsaved_build = snap->index_created;
  if (state_->rec) state_->rec->swap(std::move(snap));
  else state_->rec = std::make_unique<Recommender>(std::move(snap));
}

// A load outside the compute slots, on the reload thread budget (this thread's OpenMP
// default set for it: an HTTP worker's is reset to 1 by its next request).
std::shared_ptr<const RecommenderSnapshot> RecService::load(const SnapshotSource& src) {
  omp_set_num_threads(options_.reload_threads);
  return load_snapshot(src);
}

void RecService::start() {
  auto first = load(options_.reload);
  served(std::move(first));
}

namespace {
// Constant-time comparison of the presented token with the configured one.
bool same_token(std::string_view given, std::string_view token) {
  if (token.empty() || given.size() != token.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ token[i]);
  return diff == 0;
}
}  // namespace

Reply RecService::handle(std::string_view method, std::string_view path, std::string_view body,
                         std::string_view authorization) {
  const auto t0 = std::chrono::steady_clock::now();
  struct Route {
    const char* path;
    const char* method;
    bool mutating;  // needs the token when one is configured
    std::function<Reply()> fn;
  };
  const Route routes[] = {
      {"/rec/insert_data", "POST", true, [&] { return insert_data(); }},
      {"/rec/recall", "POST", false, [&] { return recall(body); }},
      {"/rec/count", "POST", false, [&] { return count(); }},
      {"/rec/count", "GET", false, [&] { return count(); }},
      {"/qa/drop", "POST", true, [&] { return drop(); }},
      {"/rec/drop", "POST", true, [&] { return drop(); }},
      {"/rec/items", "POST", true, [&] { return put_items(body); }},
      {"/rec/items/delete", "POST", true, [&] { return delete_items(body); }},
      {"/rec/save", "POST", true, [&] { return save(body); }},
      {"/admin/reload", "POST", true, [&] { return reload(body); }},
      {"/healthz", "GET", false, [&] { return health(); }},
      {"/readyz", "GET", false, [&] { return ready(); }},
      {"/metrics", "GET", false, [&] { return metrics(); }},
      {"/openapi.json", "GET", false, [&] { return Reply{200, openapi_json(), "application/json"}; }},
      {"/docs", "GET", false, [&] { return Reply{200, docs_html(), "text/html; charset=utf-8"}; }},
  };
  auto answer = [&]() -> Reply {
    bool path_known = false;
    for (const auto& r : routes) {
      if (path != r.path) continue;
      path_known = true;
      if (method != r.method) continue;
      if (r.mutating && !options_.token.empty()) {
        constexpr std::string_view kBearer = "Bearer ";
        if (authorization.empty())
          return error_reply(401, "", std::string(path) + " changes the service: it needs \"Authorization: Bearer <token>\"");
        if (authorization.substr(0, kBearer.size()) != kBearer ||
            !same_token(authorization.substr(kBearer.size()), options_.token))
          return error_reply(403, "", "the bearer token is not the one this server was started with");
      }
      try {
        return r.fn();
      } catch (const BadRequest& e) {
        return error_reply(400, e.field, e.message);
      } catch (const Unavailable& e) {
        return error_reply(503, "", e.message);
      } catch (const Conflict& e) {
        return error_reply(409, "", e.message);
      } catch (const InvalidArgument& e) {
        return error_reply(400, "", e.what());
      } catch (const Unsupported& e) {
        return error_reply(409, "", e.what());
      } catch (const std::exception& e) {
        return error_reply(500, "", e.what());
      }
    }
    if (path_known)
      return error_reply(405, "", "method " + std::string(method) + " is not allowed on " + std::string(path));
    return error_reply(404, "", "no endpoint " + std::string(path) + " (see GET /docs)");
  };
  Reply reply = answer();
  std::string endpoint = "other";  // unknown paths share one label
  for (const auto& r : routes)
    if (path == r.path) endpoint = r.path;
  metrics_->observe(endpoint, reply.status,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return reply;
}

std::shared_ptr<const std::vector<int64_t>> RecService::written_ids(const RecommenderSnapshot& snap) const {
  std::lock_guard<std::mutex> l(state_->m);
  return state_->written_of == &snap ? state_->written : nullptr;
}

void RecService::note_written(const RecommenderSnapshot& snap, const std::vector<int64_t>& ids) {
  std::lock_guard<std::mutex> l(state_->m);
  auto next = std::make_shared<std::vector<int64_t>>();
  if (state_->written_of == &snap && state_->written) *next = *state_->written;
  next->insert(next->end(), ids.begin(), ids.end());
  std::sort(next->begin(), next->end());
  next->erase(std::unique(next->begin(), next->end()), next->end());
  state_->written_of = &snap;
  state_->written = std::move(next);
}

// ---- reload ----

Reply RecService::reload(std::string_view body) {
  // Fields the body does not name: the served snapshot's files (a bare reload reads them
  // again), else the start-up ones.
  const auto cur = snapshot();
  SnapshotSource src = options_.reload;
  if (cur) {
    if (!cur->config_path.empty()) src.config = cur->config_path;
    if (!cur->weights_path.empty()) src.weights = cur->weights_path;
    src.index = cur->index_path;
  }
  bool store_named = false;
  const bool bare = body.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (!bare) {
    const json j = parse_object(body);
    check_keys(j, {"config", "weights", "index", "store", "allow_mismatched_index", "create_index", "catalogue"});
    if (j.contains("config")) src.config = as_string(j["config"], "config");
    if (j.contains("weights")) {
      src.weights = as_string(j["weights"], "weights");
      src.catalogue.clear();  // new weights: their own catalogue (beside them), unless named
    }
    if (j.contains("catalogue")) src.catalogue = as_string(j["catalogue"], "catalogue");
    if (j.contains("index")) src.index = as_string(j["index"], "index");
    if (j.contains("store")) src.store_spec = as_string(j["store"], "store"), store_named = true;
    if (j.contains("allow_mismatched_index"))
      src.allow_mismatched_index = as_bool(j["allow_mismatched_index"], "allow_mismatched_index");
    src.create_index = j.contains("create_index") ? as_bool(j["create_index"], "create_index") : false;
  }
  if (src.config.empty() || src.weights.empty())
    return error_reply(409, "", "nothing to reload from: name \"config\" and \"weights\" in the request "
                                "(the server was not started from files)");
  // The backend stays the served one unless the body names one or the index file holds
  // another (said in the log and the answer).
  std::string backend_note;
  if (!store_named && cur) {
    std::string file_backend;
    try {
      if (!src.index.empty() && FileStamp::of(src.index).exists) file_backend = stored_backend(src.index);
    } catch (const Error&) {
      // load_snapshot reports the file's problem below
    }
    const std::string cur_base = cur->store_spec.substr(0, cur->store_spec.find('?'));
    if (file_backend.empty() || file_backend == cur_base) {
      src.store_spec = cur->store_spec;
    } else {
      src.store_spec.clear();  // the file's own
      backend_note = "the backend changes from '" + cur_base + "' to the index file's '" + file_backend + "'";
      log(LogLevel::warn, "reload: " + backend_note);
    }
  }
  std::unique_lock<std::mutex> one_at_a_time(state_->one_reload);
  state_->reloading = true;
  struct Done {
    std::atomic<bool>& f;
    ~Done() { f = false; }
  } done{state_->reloading};
  std::shared_ptr<const RecommenderSnapshot> next;
  try {
    next = load(src);  // aside, outside the compute slots: requests go on meanwhile
  } catch (const std::exception& e) {  // Error, and bad_alloc or filesystem errors too (F14)
    metrics_->reloaded(false);
    const std::string msg = std::string("reload failed, still serving the previous model: ") + e.what();
    {
      std::lock_guard<std::mutex> l(state_->m);
      state_->last_reload_error = e.what();
    }
    log(LogLevel::error, msg);
    return error_reply(409, "", msg);
  }
  served(next);
  {
    std::lock_guard<std::mutex> l(state_->m);
    state_->last_reload_error.clear();
  }
  metrics_->reloaded(true);
  json out = {{"reloaded", true},
              {"generation", generation()},
              {"fingerprint", fingerprint_hex(next->model->item_fingerprint())},
              {"weights", next->weights_path},
              {"index", next->index_path},
              {"index_created", next->index_created},
              {"store", next->store_spec},
              {"catalogue", next->catalogue_path},
              {"count", next->store->size()},
              {"seconds", next->load_seconds}};
  if (!backend_note.empty()) out["note"] = backend_note;
  return ok(out);
}

// ---- save ----

Reply RecService::save(std::string_view body) {
  const auto snap = loaded();
  std::string path = snap->index_path;
  bool explicit_path = false;
  if (body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    const json j = parse_object(body);
    check_keys(j, {"path"});
    if (j.contains("path")) {
      path = as_string(j["path"], "path");
      explicit_path = true;
      if (path.empty()) bad("path", "must not be empty");
    }
  }
  if (path.empty())
    return error_reply(409, "", "nowhere to save: the served model has no index file (start with --index, or name "
                                "one: {\"path\": \"...\"})");
  const bool served_file = path == snap->index_path;
  std::unique_lock<std::mutex> l(state_->m);
  const bool current = state_->rec && state_->rec->current() == snap;
  if (served_file && current && FileStamp::of(path) != state_->stamp)
    return error_reply(409, "", path + " changed on disk since the server loaded or saved it (a deploy?): not "
                                "overwriting it; POST /admin/reload serves it, or save a copy: {\"path\": \"...\"}");
  l.unlock();
  const uint64_t changes = snap->store->changes();
  save_catalogue(*snap, path);
  snap->store->save(path);
  if (served_file && !explicit_path) {
    l.lock();
    if (state_->rec && state_->rec->current() == snap) {
      state_->stamp = FileStamp::of(path);
      state_->saved_changes = changes;
      state_->unsaved_build = false;
    }
  }
  return ok({{"saved", path}, {"count", snap->store->size()}});
}

// The served catalogue beside a store file saved (before the store: a catalogue that knows
// more ids than its store is harmless, the other way round loses raw ids).
void RecService::save_catalogue(const RecommenderSnapshot& snap, const std::string& index_path) const {
  if (!snap.catalogue) return;
  std::unique_lock<std::shared_mutex> l(catalogue_mutex());
  snap.catalogue->save(served_catalogue_path(index_path));
}

std::string RecService::save_on_shutdown() {
  const auto snap = snapshot();
  if (!snap) return "no model was loaded: nothing to save";
  const std::string& path = snap->index_path;
  const uint64_t changes = snap->store->changes();
  std::unique_lock<std::mutex> l(state_->m);
  const bool unsaved = state_->unsaved_build || changes != state_->saved_changes;
  const FileStamp recorded = state_->stamp;
  l.unlock();
  if (path.empty())
    return unsaved ? "the store has no index file (no --index): its writes since start-up are not saved"
                   : "no index file: nothing to save";
  if (!unsaved) return path + " is up to date (no write since it was loaded or saved): not saving";
  if (FileStamp::of(path) != recorded)
    return path + " changed on disk since the server loaded or saved it (a deploy?): not overwriting it; the store's "
                  "writes since are not saved";
  save_catalogue(*snap, path);
  snap->store->save(path);
  l.lock();
  state_->stamp = FileStamp::of(path);
  state_->saved_changes = changes;
  state_->unsaved_build = false;
  return "saved " + std::to_string(snap->store->size()) + " vectors to " + path;
}

// ---- health, readiness, metrics ----

Reply RecService::health() const {
  const auto snap = snapshot();
  json j;
  j["version"] = MINDREC_VERSION_STRING;
  if (!snap) {
    j["status"] = "loading";
    return ok(j);
  }
  const auto& c = snap->model->config();
  j["status"] = "ok";
  try {
    j["count"] = snap->store->size();
  } catch (const std::exception& e) {
    j["count"] = nullptr;
    j["store_error"] = e.what();
  }
  j["backend"] = snap->store->backend();
  j["store"] = snap->store->spec();  // search parameters in effect, defaults included
  j["dim"] = snap->store->dim();
  j["metric"] = to_string(snap->store->metric());
  j["fingerprint"] = fingerprint_hex(snap->model->item_fingerprint());
  j["generation"] = generation();
  j["weights"] = snap->weights_path;
  j["index"] = snap->index_path;
  j["catalogue"] = snap->catalogue_path;
  j["model"] = {{"item_count", c.item_count}, {"interests", c.capsule.max_k}, {"maxlen", c.maxlen}};
  return ok(j);
}

Reply RecService::ready() const {
  auto not_ready = [](const std::string& why) {
    return Reply{503, to_text(json{{"ready", false}, {"reason", why}}), "application/json"};
  };
  const auto snap = snapshot();
  if (!snap) return not_ready("no model loaded yet: the server is loading");
  {
    std::lock_guard<std::mutex> l(state_->m);
    if (!state_->last_reload_error.empty())
      return not_ready("the last reload failed (still serving the model before it): " + state_->last_reload_error);
  }
  int64_t n = 0;
  try {
    n = snap->store->size();
  } catch (const std::exception& e) {
    return not_ready(std::string("the store cannot be reached: ") + e.what());
  }
  if (n == 0) return not_ready("the store is empty: recalls would answer nothing (POST /rec/insert_data fills it)");
  return ok({{"ready", true}, {"count", n}, {"generation", generation()}, {"store", snap->store->spec()}});
}

Reply RecService::metrics() const {
  const auto snap = snapshot();
  int64_t n = -1;
  if (snap) {
    try {
      n = snap->store->size();
    } catch (const std::exception&) {
    }
  }
  const bool is_ready = ready().status == 200;
  return Reply{200, metrics_->render(snap.get(), generation(), n, is_ready), "text/plain; version=0.0.4; charset=utf-8"};
}

}  // namespace mindrec::serve
