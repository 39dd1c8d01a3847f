#include "rec_service.hpp"

#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include <cmath>
#include <unordered_set>
#include <utility>
#include <vector>

#include "mindrec/data.hpp"
#include "mindrec/error.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/version.hpp"

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
    "description": "MIND multi-interest candidate generation served in-process: the seed system's API (/rec/insert_data, /rec/recall, /rec/count, /qa/drop) over an in-process vector store. Errors are {\"error\": {\"status\", \"field\", \"message\"}} with status 400 (bad field), 404, 405, 409 or 413 (body too large)."
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
    "/healthz": {"get": {
      "summary": "Liveness and what is loaded",
      "responses": {"200": {"description": "Status", "content": {"application/json": {"example": {"status": "ok", "count": 367982, "backend": "flat", "dim": 64}}}}}}},
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
    : model_(std::move(model)), store_(std::move(store)), options_(std::move(options)) {
  if (options_.compute_slots <= 0) options_.compute_slots = default_threads();
  slots_ = std::make_unique<Slots>(options_.compute_slots);
  MINDREC_EXPECTS(store_ != nullptr, "RecService: null store");
  const int h = model_.config().hidden_size;
  if (store_->dim() != h)
    throw InvalidArgument("the store holds vectors of dimension " + std::to_string(store_->dim()) +
                          " but the model's interests have " + std::to_string(h));
  MINDREC_EXPECTS(options_.max_users >= 1 && options_.max_top_k >= 1 && options_.max_items >= 1,
                  "RecService: limits must be >= 1");
}

Reply RecService::handle(std::string_view method, std::string_view path, std::string_view body) {
  struct Route {
    const char* path;
    const char* method;
    std::function<Reply()> fn;
  };
  const Route routes[] = {
      {"/rec/insert_data", "POST", [&] { return insert_data(); }},
      {"/rec/recall", "POST", [&] { return recall(body); }},
      {"/rec/count", "POST", [&] { return count(); }},
      {"/rec/count", "GET", [&] { return count(); }},
      {"/qa/drop", "POST", [&] { return drop(); }},
      {"/rec/drop", "POST", [&] { return drop(); }},
      {"/rec/items", "POST", [&] { return put_items(body); }},
      {"/rec/items/delete", "POST", [&] { return delete_items(body); }},
      {"/rec/save", "POST", [&] { return save(); }},
      {"/healthz", "GET", [&] { return health(); }},
      {"/openapi.json", "GET", [&] { return Reply{200, openapi_json(), "application/json"}; }},
      {"/docs", "GET", [&] { return Reply{200, docs_html(), "text/html; charset=utf-8"}; }},
  };
  bool path_known = false;
  for (const auto& r : routes) {
    if (path != r.path) continue;
    path_known = true;
    if (method != r.method) continue;
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
}

Reply RecService::insert_data() {
  const int64_t n = computing([&] { return upsert_item_vectors(model_, *store_); });
  return ok({{"inserted", n}, {"count", store_->size()}});
}

Reply RecService::recall(std::string_view body) const {
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
  const int64_t item_count = model_.config().item_count;
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
  const RecallResult r = computing([&] { return recall_histories(model_, *store_, hists, o); });
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

Reply RecService::count() const { return ok({{"count", store_->size()}}); }

Reply RecService::drop() {
  const int64_t n = store_->size();
  store_->clear();
  return ok({{"dropped", n}, {"count", store_->size()}});
}

Reply RecService::put_items(std::string_view body) {
  const json j = parse_object(body);
  check_keys(j, {"ids", "vectors"});
  const std::vector<int64_t> ids = id_list(j, options_.max_items, 1);
  const json& vecs = array_field(j, "vectors", 1, size_t(options_.max_items));
  if (vecs.size() != ids.size())
    bad("vectors", "holds " + std::to_string(vecs.size()) + " vectors for " + std::to_string(ids.size()) + " ids");
  const int d = store_->dim();
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
  const int64_t replaced = computing([&] { return store_->upsert(n, x.data(), ids.data()); });
  return ok({{"added", n - replaced}, {"replaced", replaced}, {"count", store_->size()}});
}

Reply RecService::delete_items(std::string_view body) {
  const json j = parse_object(body);
  check_keys(j, {"ids"});
  const std::vector<int64_t> ids = id_list(j, options_.max_items, 0);
  const int64_t removed = store_->remove(static_cast<int64_t>(ids.size()), ids.data());
  return ok({{"removed", removed}, {"count", store_->size()}});
}

Reply RecService::save() const {
  if (options_.index_path.empty())
    return error_reply(409, "", "the server was started without --index: nowhere to save");
  store_->save(options_.index_path);
  return ok({{"saved", options_.index_path}, {"count", store_->size()}});
}

bool RecService::save_if_configured() const {
  if (options_.index_path.empty()) return false;
  store_->save(options_.index_path);
  return true;
}

Reply RecService::health() const {
  const auto& c = model_.config();
  json j;
  j["status"] = "ok";
  j["version"] = MINDREC_VERSION_STRING;
  j["count"] = store_->size();
  j["backend"] = store_->backend();
  j["dim"] = store_->dim();
  j["metric"] = to_string(store_->metric());
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
