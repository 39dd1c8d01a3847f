#include "rec_service.hpp"

#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>

#include <cmath>
#include <unordered_set>
#include <utility>
#include <vector>

#include "mindrec/data.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/version.hpp"
#include "mindrec/weights.hpp"

namespace mindrec::serve {

using nlohmann::json;

namespace {

// A request the client got wrong: answered with 400 and the JSON path of the field.
struct BadRequest {
  std::string field, message;
};

[[noreturn]] void bad(std::string field, std::string message) {
  throw BadRequest{std::move(field), std::move(message)};
}

// Replies may echo client bytes (an unknown key, a parse error's context) that are not valid
// UTF-8, which dump() would throw on: such bytes become U+FFFD instead.
std::string to_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Reply ok(const json& j) { return Reply{200, to_text(j), "application/json"}; }

json parse_object(std::string_view body) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {  // parse errors, and numbers too large for a double
    bad("", std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) bad("", "the request body must be a JSON object");
  return j;
}

// Only the listed keys may appear: a misspelt field is an error, not silently ignored.
void check_keys(const json& j, std::initializer_list<const char*> allowed) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* a : allowed) known = known || it.key() == a;
    if (!known) bad(it.key(), "unknown field");
  }
}

int64_t as_int(const json& v, const std::string& field) {
  if (!v.is_number_integer()) bad(field, "must be an integer, got " + std::string(v.type_name()));
  return v.get<int64_t>();
}

const json& array_field(const json& j, const char* name, size_t min_size, size_t max_size) {
  if (!j.contains(name)) bad(name, "is required");
  const json& a = j.at(name);
  if (!a.is_array()) bad(name, std::string("must be an array, got ") + a.type_name());
  if (a.size() < min_size) bad(name, "must not be empty");
  if (a.size() > max_size)
    bad(name, "holds " + std::to_string(a.size()) + " entries; at most " + std::to_string(max_size) +
                  " are accepted per request");
  return a;
}

// "ids": distinct integers >= min_id.
std::vector<int64_t> id_list(const json& j, int64_t max_items, int64_t min_id) {
  const json& a = array_field(j, "ids", 1, size_t(max_items));
  std::vector<int64_t> ids;
  ids.reserve(a.size());
  std::unordered_set<int64_t> seen;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string field = "ids[" + std::to_string(i) + "]";
    const int64_t id = as_int(a[i], field);
    if (id < min_id) bad(field, "item id " + std::to_string(id) + " is below " + std::to_string(min_id) +
                                    (min_id == 1 ? " (0 is the padding id)" : ""));
    if (!seen.insert(id).second) bad(field, "item id " + std::to_string(id) + " appears twice");
    ids.push_back(id);
  }
  return ids;
}

const std::string kOpenApi = R"json({
  "openapi": "3.0.3",
  "info": {
    "title": "mindrec-serve",
    "version": "@VERSION@",
    "description": "MIND multi-interest candidate generation served in-process: the seed system's API (/rec/insert_data, /rec/recall, /rec/count, /qa/drop) over an in-process vector store. Errors are {\"error\": {\"status\", \"field\", \"message\"}} with status 400 (bad field), 401/403 (a mutating endpoint without the right bearer token, when the server has one), 404, 405, 409 or 413 (body too large). Every answer carries X-Request-Id (the request's, or a new one)."
  },
  "paths": {
    "/rec/insert_data": {"post": {
      "summary": "Insert every item vector of the model",
      "description": "Adds (or replaces) the vectors of items 1 .. item_count-1 (0 is padding). The request body is ignored.",
      "responses": {"200": {"description": "How many were inserted and the store's size", "content": {"application/json": {"example": {"inserted": 367982, "count": 367982}}}}}}},
    "/rec/recall": {"post": {
      "summary": "Candidates for users' click histories",
      "description": "For each history (item ids, oldest first; the last maxlen are used), extracts the user's interests and returns the merged multi-interest top_k (pool K*top_k, sort by score, drop id 0 and duplicates), best first, with their scores (inner products). top_k defaults to 50; exclude_history drops the user's own items.",
      "requestBody": {"required": true, "content": {"application/json": {
        "schema": {"type": "object", "required": ["hist_item"], "properties": {
          "top_k": {"type": "integer", "minimum": 1, "default": 50},
          "hist_item": {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 1}}},
          "exclude_history": {"type": "boolean", "default": false}}},
        "example": {"top_k": 50, "hist_item": [[43, 23, 65], [675, 3456]]}}}},
      "responses": {"200": {"description": "One row of ids and scores per user", "content": {"application/json": {"example": {"top_k": 2, "ids": [[77, 12], [5, 901]], "scores": [[1.92, 1.85], [2.4, 2.1]]}}}}}}},
    "/rec/count": {"post": {
      "summary": "Number of stored vectors",
      "responses": {"200": {"description": "The count", "content": {"application/json": {"example": {"count": 367982}}}}}},
      "get": {"summary": "Number of stored vectors (GET form)", "responses": {"200": {"description": "The count"}}}},
    "/qa/drop": {"post": {
      "summary": "Remove every stored vector (the seed's name)",
      "responses": {"200": {"description": "How many were removed", "content": {"application/json": {"example": {"dropped": 367982, "count": 0}}}}}}},
    "/rec/drop": {"post": {
      "summary": "Remove every stored vector",
      "responses": {"200": {"description": "How many were removed", "content": {"application/json": {"example": {"dropped": 367982, "count": 0}}}}}}},
    "/rec/items": {"post": {
      "summary": "Add or replace item vectors",
      "description": "Stores the given vectors under the given ids (>= 1, distinct), replacing stored ones, in one step: new items are recallable by the next request. Each vector has the store's dimension.",
      "requestBody": {"required": true, "content": {"application/json": {
        "schema": {"type": "object", "required": ["ids", "vectors"], "properties": {
          "ids": {"type": "array", "items": {"type": "integer", "minimum": 1}},
          "vectors": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}},
        "example": {"ids": [400001], "vectors": [[0.1, -0.2, "... dim numbers"]]}}}},
      "responses": {"200": {"description": "Counts", "content": {"application/json": {"example": {"added": 1, "replaced": 0, "count": 367983}}}}}}},
    "/rec/items/delete": {"post": {
      "summary": "Remove item vectors by id",
      "requestBody": {"required": true, "content": {"application/json": {
        "schema": {"type": "object", "required": ["ids"], "properties": {"ids": {"type": "array", "items": {"type": "integer"}}}},
        "example": {"ids": [400001, 17]}}}},
      "responses": {"200": {"description": "How many were removed (unknown ids are ignored)", "content": {"application/json": {"example": {"removed": 2, "count": 367981}}}}}}},
    "/rec/save": {"post": {
      "summary": "Save the store to the --index file now (atomic write)",
      "responses": {"200": {"description": "Saved", "content": {"application/json": {"example": {"saved": "items.idx", "count": 367982}}}},
                    "409": {"description": "The server was started without --index"}}}},
    "/admin/reload": {"post": {
      "summary": "Swap in new weights and a new index without a restart",
      "description": "Loads config, weights and index (by default the server's start-up files, read again; the body may name others) aside, checks that the index holds the new weights' item vectors (refused unless allow_mismatched_index), builds the store from the weights when there is no index file, then swaps model and store atomically: requests in flight finish on the old pair, new ones use the new. A failed reload answers 409 and changes nothing. SIGHUP does the same with the start-up files. Needs the bearer token when the server has one.",
      "requestBody": {"required": false, "content": {"application/json": {
        "schema": {"type": "object", "properties": {
          "config": {"type": "string"}, "weights": {"type": "string"}, "index": {"type": "string"},
          "store": {"type": "string"}, "allow_mismatched_index": {"type": "boolean", "default": false}}},
        "example": {"weights": "/srv/models/2026-12-01/w.safetensors", "index": "/srv/models/2026-12-01/items.idx"}}}},
      "responses": {"200": {"description": "The new snapshot", "content": {"application/json": {"example": {"reloaded": true, "generation": 1, "fingerprint": "c917efac3bb054e3", "weights": "w.safetensors", "index": "items.idx", "count": 367982, "seconds": 1.9}}}},
                    "409": {"description": "The load failed (missing file, mismatched index): still serving the previous model"}}}},
    "/metrics": {"get": {
      "summary": "Prometheus metrics (text exposition format 0.0.4)",
      "description": "mindrec_requests_total and mindrec_request_errors_total by endpoint and status, mindrec_request_duration_seconds histograms by endpoint, mindrec_store_vectors, mindrec_model_info (fingerprint, backend, weights), mindrec_model_load_seconds, mindrec_model_loaded_timestamp_seconds, mindrec_snapshot_generation, mindrec_reloads_total by result.",
      "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
    "/healthz": {"get": {
      "summary": "Liveness and what is loaded",
      "responses": {"200": {"description": "Status", "content": {"application/json": {"example": {"status": "ok", "count": 367982, "backend": "flat", "dim": 64, "fingerprint": "c917efac3bb054e3", "generation": 0}}}}}}},
    "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI 3 document"}}}},
    "/docs": {"get": {"summary": "This description as an HTML page", "responses": {"200": {"description": "HTML"}}}}
  }
})json";

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

}  // namespace

// Counters and latency histograms of every answer, rendered in the Prometheus text
// exposition format (version 0.0.4).
class Metrics {
 public:
  static constexpr double kBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,   5,     10};
  static constexpr size_t kNumBuckets = sizeof(kBuckets) / sizeof(kBuckets[0]);

  void observe(const std::string& endpoint, int status, double seconds) {
    std::lock_guard<std::mutex> lock(m_);
    Endpoint& e = endpoints_[endpoint];
    ++e.by_status[status];
    for (size_t b = 0; b < kNumBuckets; ++b)
      if (seconds <= kBuckets[b]) ++e.buckets[b];
    ++e.count;
    e.sum += seconds;
  }
  void reloaded(bool ok) {
    std::lock_guard<std::mutex> lock(m_);
    ++(ok ? reloads_ok_ : reloads_failed_);
  }
  std::string render(const RecommenderSnapshot& snap, uint64_t generation, int64_t store_size) const {
    const std::string fingerprint = fingerprint_hex(snap.model->item_fingerprint());  // outside the lock
    std::string o;
    auto head = [&](const char* name, const char* type, const char* help) {
      o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    auto num = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.9g", v);
      return std::string(b);
    };
    std::lock_guard<std::mutex> lock(m_);
    head("mindrec_requests_total", "counter", "Requests answered, by endpoint and HTTP status.");
    for (const auto& [ep, e] : endpoints_)
      for (const auto& [status, n] : e.by_status)
        o += "mindrec_requests_total{endpoint=\"" + label(ep) + "\",status=\"" + std::to_string(status) + "\"} " +
             std::to_string(n) + "\n";
    head("mindrec_request_errors_total", "counter", "Requests answered with a 4xx or 5xx status, by endpoint and status.");
    for (const auto& [ep, e] : endpoints_)
      for (const auto& [status, n] : e.by_status)
        if (status >= 400)
          o += "mindrec_request_errors_total{endpoint=\"" + label(ep) + "\",status=\"" + std::to_string(status) +
               "\"} " + std::to_string(n) + "\n";
    head("mindrec_request_duration_seconds", "histogram", "Time to answer a request, by endpoint.");
    for (const auto& [ep, e] : endpoints_) {
      const std::string l = "endpoint=\"" + label(ep) + "\"";
      for (size_t b = 0; b < kNumBuckets; ++b)
        o += "mindrec_request_duration_seconds_bucket{" + l + ",le=\"" + num(kBuckets[b]) + "\"} " +
             std::to_string(e.buckets[b]) + "\n";
      o += "mindrec_request_duration_seconds_bucket{" + l + ",le=\"+Inf\"} " + std::to_string(e.count) + "\n";
      o += "mindrec_request_duration_seconds_sum{" + l + "} " + num(e.sum) + "\n";
      o += "mindrec_request_duration_seconds_count{" + l + "} " + std::to_string(e.count) + "\n";
    }
    head("mindrec_store_vectors", "gauge", "Item vectors in the current store.");
    o += "mindrec_store_vectors " + std::to_string(store_size) + "\n";
    head("mindrec_model_info", "gauge", "The current model: item fingerprint of its weights, store backend, weights file.");
    o += "mindrec_model_info{fingerprint=\"" + fingerprint + "\",backend=\"" +
         label(snap.store->backend()) + "\",weights=\"" + label(snap.weights_path) + "\"} 1\n";
    head("mindrec_model_load_seconds", "gauge", "How long loading the current model and store took.");
    o += "mindrec_model_load_seconds " + num(snap.load_seconds) + "\n";
    head("mindrec_model_loaded_timestamp_seconds", "gauge", "When the current model and store were loaded (Unix time).");
    o += "mindrec_model_loaded_timestamp_seconds " + std::to_string(snap.loaded_at_unix) + "\n";
    head("mindrec_snapshot_generation", "gauge", "Model swaps since start.");
    o += "mindrec_snapshot_generation " + std::to_string(generation) + "\n";
    head("mindrec_reloads_total", "counter", "Reloads (POST /admin/reload, SIGHUP), by result.");
    o += "mindrec_reloads_total{result=\"ok\"} " + std::to_string(reloads_ok_) + "\n";
    o += "mindrec_reloads_total{result=\"error\"} " + std::to_string(reloads_failed_) + "\n";
    return o;
  }

 private:
  static std::string label(const std::string& v) {  // label value escaping
    std::string o;
    for (char c : v) {
      if (c == '\\') o += "\\\\";
      else if (c == '"') o += "\\\"";
      else if (c == '\n') o += "\\n";
      else o += c;
    }
    return o;
  }
  struct Endpoint {
    std::map<int, uint64_t> by_status;
    uint64_t buckets[kNumBuckets] = {};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex m_;
  std::map<std::string, Endpoint> endpoints_;
  uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
};

Reply error_reply(int status, const std::string& field, const std::string& message) {
  json j = {{"error", {{"status", status}, {"field", field}, {"message", message}}}};
  return Reply{status, to_text(j), "application/json"};
}

// At most n requests compute at once (a counting semaphore), each on one thread: the calling
// thread's OpenMP default is set to 1, so the stores' and the model's parallel regions run on
// it alone.
class RecService::Slots {
 public:
  explicit Slots(int n) : free_(n) {}
  void acquire() {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
    peak_ = std::max(peak_, ++busy_);
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m_);
      ++free_;
      --busy_;
    }
    cv_.notify_one();
  }
  int peak() const {
    std::lock_guard<std::mutex> lock(m_);
    return peak_;
  }

 private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  int free_, busy_ = 0, peak_ = 0;
};

template <class Fn>
auto RecService::computing(Fn&& fn) const {
  struct Hold {
    Slots& s;
    explicit Hold(Slots& x) : s(x) { s.acquire(); }
    ~Hold() { s.release(); }
  } hold(*slots_);
  omp_set_num_threads(1);
  return fn();
}

int RecService::peak_computing() const { return slots_->peak(); }

RecService::~RecService() = default;
RecService::RecService(RecService&&) noexcept = default;
RecService& RecService::operator=(RecService&&) noexcept = default;

RecService::RecService(MindModel model, std::unique_ptr<VectorStore> store, ServiceOptions options)
    : RecService(make_snapshot(std::make_shared<const MindModel>(std::move(model)), std::move(store)),
                 std::move(options)) {}

RecService::RecService(std::shared_ptr<const RecommenderSnapshot> snapshot, ServiceOptions options)
    : options_(std::move(options)) {
  MINDREC_EXPECTS(snapshot != nullptr, "RecService: null snapshot");
  if (options_.compute_slots <= 0) options_.compute_slots = default_threads();
  slots_ = std::make_unique<Slots>(options_.compute_slots);
  rec_ = std::make_unique<Recommender>(std::move(snapshot));
  metrics_ = std::make_unique<Metrics>();
  reload_mutex_ = std::make_unique<std::mutex>();
  MINDREC_EXPECTS(options_.max_users >= 1 && options_.max_top_k >= 1 && options_.max_items >= 1,
                  "RecService: limits must be >= 1");
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
      {"/rec/save", "POST", true, [&] { return save(); }},
      {"/admin/reload", "POST", true, [&] { return reload(body); }},
      {"/healthz", "GET", false, [&] { return health(); }},
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

Reply RecService::insert_data() {
  const auto snap = snapshot();
  const int64_t n = computing([&] { return upsert_item_vectors(*snap->model, *snap->store); });
  return ok({{"inserted", n}, {"count", snap->store->size()}});
}

Reply RecService::recall(std::string_view body) const {
  const auto snap = snapshot();  // this request's model and store, whatever reloads meanwhile
  const MindModel& model = *snap->model;
  const VectorStore& store = *snap->store;
  const json j = parse_object(body);
  check_keys(j, {"top_k", "hist_item", "exclude_history"});
  int64_t top_k = 50;
  if (j.contains("top_k")) {
    top_k = as_int(j["top_k"], "top_k");
    if (top_k < 1 || top_k > options_.max_top_k)
      bad("top_k", "must be in [1, " + std::to_string(options_.max_top_k) + "], got " + std::to_string(top_k));
  }
  bool exclude = options_.exclude_history;
  if (j.contains("exclude_history")) {
    if (!j["exclude_history"].is_boolean()) bad("exclude_history", "must be true or false");
    exclude = j["exclude_history"].get<bool>();
  }
  const json& users = array_field(j, "hist_item", 1, size_t(options_.max_users));
  const int64_t item_count = model.config().item_count;
  std::vector<std::vector<int64_t>> hists(users.size());
  for (size_t u = 0; u < users.size(); ++u) {
    const std::string row = "hist_item[" + std::to_string(u) + "]";
    const json& h = users[u];
    if (!h.is_array()) bad(row, std::string("must be an array of item ids, got ") + h.type_name());
    if (h.empty()) bad(row, "is empty: a user needs at least one clicked item");
    if (h.size() > 100000) bad(row, "is longer than 100000 items");
    for (size_t l = 0; l < h.size(); ++l) {
      const std::string field = row + "[" + std::to_string(l) + "]";
      const int64_t id = as_int(h[l], field);
      if (id < 1 || id >= item_count)
        bad(field, "item id " + std::to_string(id) + " is not in the model's range [1, " +
                       std::to_string(item_count) + ")");
      hists[u].push_back(id);
    }
  }
  const int64_t B = static_cast<int64_t>(users.size());
  const int k = static_cast<int>(top_k);
  RecallOptions o;
  o.topn = k;
  o.exclude_history = exclude;
  o.threads = 1;  // one compute thread per request (see Slots)
  const RecallResult r = computing([&] { return recall_histories(model, store, hists, o); });
  const auto& ids = r.ids;
  const auto& scores = r.scores;
  json out_ids = json::array(), out_scores = json::array();
  for (int64_t b = 0; b < B; ++b) {
    json ri = json::array(), rs = json::array();
    for (int i = 0; i < k; ++i) {
      const size_t at = size_t(b) * k + i;
      if (ids[at] < 0) break;
      ri.push_back(ids[at]);
      rs.push_back(scores[at]);
    }
    out_ids.push_back(std::move(ri));
    out_scores.push_back(std::move(rs));
  }
  return ok({{"top_k", top_k}, {"ids", std::move(out_ids)}, {"scores", std::move(out_scores)}});
}

Reply RecService::count() const { return ok({{"count", snapshot()->store->size()}}); }

Reply RecService::drop() {
  const auto snap = snapshot();
  const int64_t n = snap->store->size();
  snap->store->clear();
  return ok({{"dropped", n}, {"count", snap->store->size()}});
}

Reply RecService::put_items(std::string_view body) {
  const auto snap = snapshot();
  VectorStore& store = *snap->store;
  const json j = parse_object(body);
  check_keys(j, {"ids", "vectors"});
  const std::vector<int64_t> ids = id_list(j, options_.max_items, 1);
  const json& vecs = array_field(j, "vectors", 1, size_t(options_.max_items));
  if (vecs.size() != ids.size())
    bad("vectors", "holds " + std::to_string(vecs.size()) + " vectors for " + std::to_string(ids.size()) + " ids");
  const int d = store.dim();
  std::vector<float> x;
  x.reserve(ids.size() * size_t(d));
  for (size_t i = 0; i < vecs.size(); ++i) {
    const std::string row = "vectors[" + std::to_string(i) + "]";
    if (!vecs[i].is_array() || vecs[i].size() != size_t(d))
      bad(row, "must be an array of " + std::to_string(d) + " numbers (the store's dimension)");
    for (size_t c = 0; c < size_t(d); ++c) {
      const json& v = vecs[i][c];
      if (!v.is_number()) bad(row + "[" + std::to_string(c) + "]", "must be a number");
      const double f = v.get<double>();
      if (!std::isfinite(f) || std::abs(f) > 3.0e38)
        bad(row + "[" + std::to_string(c) + "]", "must be a finite float32");
      x.push_back(static_cast<float>(f));
    }
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t replaced = computing([&] { return store.upsert(n, x.data(), ids.data()); });
  return ok({{"added", n - replaced}, {"replaced", replaced}, {"count", store.size()}});
}

Reply RecService::delete_items(std::string_view body) {
  const auto snap = snapshot();
  const json j = parse_object(body);
  check_keys(j, {"ids"});
  const std::vector<int64_t> ids = id_list(j, options_.max_items, 0);
  const int64_t removed = snap->store->remove(static_cast<int64_t>(ids.size()), ids.data());
  return ok({{"removed", removed}, {"count", snap->store->size()}});
}

Reply RecService::save() const {
  if (options_.index_path.empty())
    return error_reply(409, "", "the server was started without --index: nowhere to save");
  const auto snap = snapshot();
  snap->store->save(options_.index_path);
  return ok({{"saved", options_.index_path}, {"count", snap->store->size()}});
}

bool RecService::save_if_configured() const {
  if (options_.index_path.empty()) return false;
  snapshot()->store->save(options_.index_path);
  return true;
}

Reply RecService::reload(std::string_view body) {
  SnapshotSource src = options_.reload;
  if (body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    const json j = parse_object(body);
    check_keys(j, {"config", "weights", "index", "store", "allow_mismatched_index"});
    auto text = [&](const char* key, std::string& into) {
      if (!j.contains(key)) return;
      if (!j[key].is_string()) bad(key, "must be a string (a path on the server)");
      into = j[key].get<std::string>();
    };
    text("config", src.config);
    text("weights", src.weights);
    text("index", src.index);
    text("store", src.store_spec);
    if (j.contains("allow_mismatched_index")) {
      if (!j["allow_mismatched_index"].is_boolean()) bad("allow_mismatched_index", "must be true or false");
      src.allow_mismatched_index = j["allow_mismatched_index"].get<bool>();
    }
  }
  if (src.config.empty() || src.weights.empty())
    return error_reply(409, "", "nothing to reload from: name \"config\" and \"weights\" in the request "
                                "(the server was not started from files)");
  std::lock_guard<std::mutex> one_at_a_time(*reload_mutex_);
  std::shared_ptr<const RecommenderSnapshot> next;
  try {
    next = computing([&] { return load_snapshot(src); });  // aside: requests go on meanwhile
  } catch (const Error& e) {
    metrics_->reloaded(false);
    log(LogLevel::error, std::string("reload failed, still serving the previous model: ") + e.what());
    return error_reply(409, "", std::string("reload failed, still serving the previous model: ") + e.what());
  }
  rec_->swap(next);
  metrics_->reloaded(true);
  return ok({{"reloaded", true},
             {"generation", rec_->generation()},
             {"fingerprint", fingerprint_hex(next->model->item_fingerprint())},
             {"weights", next->weights_path},
             {"index", next->index_path},
             {"count", next->store->size()},
             {"seconds", next->load_seconds}});
}

Reply RecService::metrics() const {
  const auto snap = snapshot();
  return Reply{200, metrics_->render(*snap, rec_->generation(), snap->store->size()),
               "text/plain; version=0.0.4; charset=utf-8"};
}

Reply RecService::health() const {
  const auto snap = snapshot();
  const auto& c = snap->model->config();
  json j;
  j["status"] = "ok";
  j["version"] = MINDREC_VERSION_STRING;
  j["count"] = snap->store->size();
  j["backend"] = snap->store->backend();
  j["dim"] = snap->store->dim();
  j["metric"] = to_string(snap->store->metric());
  j["fingerprint"] = fingerprint_hex(snap->model->item_fingerprint());
  j["generation"] = rec_->generation();
  j["model"] = {{"item_count", c.item_count}, {"interests", c.capsule.max_k}, {"maxlen", c.maxlen}};
  return ok(j);
}

const std::string& RecService::openapi_json() {
  static const std::string doc = [] {
    json j = json::parse(kOpenApi);
    j["info"]["version"] = MINDREC_VERSION_STRING;
    return j.dump(2);
  }();
  return doc;
}

const std::string& RecService::docs_html() {
  static const std::string page = [] {
    const json j = json::parse(openapi_json());
    std::string h =
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mindrec-serve API</title>\n"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "code,pre{background:#f4f4f4;padding:2px 4px}pre{padding:8px;overflow-x:auto}"
        "h2{border-top:1px solid #ccc;padding-top:1em}.m{font-weight:bold;color:#06c}</style>"
        "</head><body>\n<h1>mindrec-serve API " +
        html_escape(j["info"]["version"].get<std::string>()) + "</h1>\n<p>" +
        html_escape(j["info"]["description"].get<std::string>()) +
        "</p>\n<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>.</p>\n";
    for (auto p = j["paths"].begin(); p != j["paths"].end(); ++p) {
      for (auto m = p.value().begin(); m != p.value().end(); ++m) {
        std::string method = m.key();
        for (auto& ch : method) ch = char(std::toupper(static_cast<unsigned char>(ch)));
        const json& op = m.value();
        h += "<h2><span class=\"m\">" + method + "</span> <code>" + html_escape(p.key()) + "</code></h2>\n<p>" +
             html_escape(op.value("summary", "")) + "</p>\n";
        if (op.contains("description")) h += "<p>" + html_escape(op["description"].get<std::string>()) + "</p>\n";
        if (op.contains("requestBody")) {
          const json& c = op["requestBody"]["content"]["application/json"];
          if (c.contains("example"))
            h += "<p>Request:</p><pre>curl -s -X " + method + " localhost:8000" + html_escape(p.key()) +
                 " -H 'Content-Type: application/json' -d '" + html_escape(c["example"].dump()) + "'</pre>\n";
        }
        for (auto r = op["responses"].begin(); r != op["responses"].end(); ++r) {
          h += "<p>" + html_escape(r.key()) + ": " + html_escape(r.value().value("description", "")) + "</p>\n";
          if (r.value().contains("content"))
            h += "<pre>" + html_escape(r.value()["content"]["application/json"]["example"].dump()) + "</pre>\n";
        }
      }
    }
    h += "</body></html>\n";
    return h;
  }();
  return page;
}

}  // namespace mindrec::serve
