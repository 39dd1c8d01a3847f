// The milvus:// store's own logic, against a fake Milvus REST v1 server in this process (no
// real server needed; tests/milvus runs the contract against a real one): URL parsing, how
// hits become results, typed errors, retries, timeouts and a server that goes away.
#include "mindrec/version.hpp"
#if MINDREC_HAS_MILVUS
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/vector_store.hpp"
#include "test_util.hpp"

using namespace mindrec;

namespace {

// A fake Milvus: one collection "items" (dim 4, IP, auto id + dynamic fields, loaded); what
// search/insert answer is set by `mode`; every request is counted by path.
class FakeMilvus {
 public:
  std::atomic<int> searches{0}, inserts{0};
  std::string mode = "ok";  // set before requests are made
  std::mutex body_mutex;
  std::string last_search;  // the body of the latest search request

  FakeMilvus() {
    svr_.Get("/v1/vector/collections/describe", [&](const httplib::Request& req, httplib::Response& res) {
      if (req.get_param_value("collectionName") != "items") {
        res.set_content(R"({"code":100,"message":"collection not found[collection=x]"})", "application/json");
        return;
      }
      res.set_content(R"J({"code":200,"data":{"collectionName":"items","enableDynamicField":true,
        "fields":[{"autoId":true,"name":"id","primaryKey":true,"type":"Int64"},
                  {"autoId":false,"name":"vector","primaryKey":false,"type":"FloatVector(4)"}],
        "indexes":[{"fieldName":"vector","indexName":"vector_idx","metricType":"IP"}],
        "load":"LoadStateLoaded","shardsNum":1}})J", "application/json");
    });
    svr_.Post("/v1/vector/search", [&](const httplib::Request& req, httplib::Response& res) {
      ++searches;
      {
        std::lock_guard<std::mutex> l(body_mutex);
        last_search = req.body;
      }
      answer(res, R"({"code":200,"data":[{"distance":0.9,"id":"11","item_id":5},{"distance":0.9,"id":"12","item_id":3},
        {"distance":0.8,"id":"13","item_id":5},{"distance":0.7,"id":"14","item_id":"7"}]})");
    });
    svr_.Post("/v1/vector/insert", [&](const httplib::Request&, httplib::Response& res) {
      ++inserts;
      answer(res, R"({"code":200,"data":{"insertCount":1,"insertIds":["99"]}})");
    });
    svr_.Post("/v1/vector/query", [&](const httplib::Request& req, httplib::Response& res) {
      // count(*) -> 3; existence checks -> nothing stored; visibility polls -> pk 99 is there.
      if (req.body.find("count(*)") != std::string::npos)
        res.set_content(R"J({"code":200,"data":[{"count(*)":3}]})J", "application/json");
      else if (req.body.find("id in [99]") != std::string::npos)
        res.set_content(R"({"code":200,"data":[{"id":99}]})", "application/json");
      else
        res.set_content(R"({"code":200,"data":[]})", "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([&] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeMilvus() { stop(); }
  void stop() {
    svr_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string url(const std::string& options = "") const {
    return "milvus://127.0.0.1:" + std::to_string(port_) + "/items" + (options.empty() ? "" : "?" + options);
  }

 private:
  void answer(httplib::Response& res, const char* ok) {
    if (mode == "ok") res.set_content(ok, "application/json");
    else if (mode == "error") res.set_content(R"({"code":65535,"message":"boom: service internal error"})", "application/json");
    else if (mode == "gone") res.set_content(R"({"code":100,"message":"collection not found[collection=items]"})", "application/json");
    else if (mode == "auth") res.status = 401, res.set_content(R"({"code":1800,"message":"user hasn't authenticated"})", "application/json");
    else if (mode == "503") res.status = 503, res.set_content("unavailable", "text/plain");
    else if (mode == "garbage") res.set_content("<html>proxy error</html>", "text/html");
    else if (mode == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(1500)), res.set_content(ok, "application/json");
  }

  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
};

const float kQuery[4] = {1, 0, 0, 0};

}  // namespace

TEST_CASE("milvus URL: malformed ones are InvalidArgument naming the problem - before any request") {
  for (const char* bad : {"milvus://", "milvus://host:19530", "milvus://:19530/items", "milvus://host:99999/items",
                          "milvus://host:1/9items", "milvus://host:1/it-ems", "milvus://host:1/items?fetch=0",
                          "milvus://host:1/items?fetch=20000", "milvus://host:1/items?nprobe=3",
                          "milvus://host:1/items?timeout=x", "milvus://host:1/items?db=a-b", "milvus://host:1/items?token"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(make_vector_store(bad, 4), InvalidArgument);
  }
  CHECK(test::error_of([] { make_vector_store("milvus://host:1/items?nprobe=3", 4); }).find("unknown option 'nprobe'") !=
        std::string::npos);
}

TEST_CASE("milvus store over a fake server: hits sorted exactly - ties by smaller id - an item's rows once - padded") {
  FakeMilvus fake;
  auto s = make_vector_store(fake.url("fetch=64"), 4);
  CHECK(s->backend() == fake.url());
  CHECK(s->size() == 3);
  int64_t ids[5];
  float sc[5];
  s->search(1, kQuery, 5, ids, sc);
  CHECK(ids[0] == 3);  // 0.9 tie: the smaller id first
  CHECK(ids[1] == 5);
  CHECK(ids[2] == 7);  // the second row of item 5 (0.8) is not repeated; "7" read as an id
  CHECK(sc[0] == doctest::Approx(0.9));
  CHECK(sc[2] == doctest::Approx(0.7));
  CHECK(ids[3] == -1);
  CHECK(ids[4] == -1);
  CHECK(std::isinf(sc[4]));
  // Several queries go out concurrently, one request each.
  std::vector<float> q(8 * 4, 0.f);
  for (int i = 0; i < 8; ++i) q[size_t(i) * 4] = 1;
  std::vector<int64_t> many(8 * 2);
  std::vector<float> msc(8 * 2);
  const int before = fake.searches;
  s->search(8, q.data(), 2, many.data(), msc.data());
  CHECK(fake.searches - before == 8);
  for (int i = 0; i < 8; ++i) CHECK(many[size_t(i) * 2] == 3);
  CHECK_THROWS_AS(s->search(1, kQuery, 16385, ids, sc), Unsupported);
}

TEST_CASE("milvus store over a fake server: a filter goes to the server - id renamed to the key field - exclusions appended - fetch per call") {
  FakeMilvus fake;
  auto s = make_vector_store(fake.url("fetch=64"), 4);
  int64_t ids[3];
  float sc[3];
  const std::vector<std::vector<int64_t>> hist = {{7, 12}};
  SearchOptions o;
  o.filter = "id in [3, 5] and in_stock and category == \"id\"";
  o.exclude = &hist;
  o.params = {{"fetch", 10}};
  // Fields are checked against the declared columns before any request.
  CHECK(test::error_of([&] { s->search(1, kQuery, 3, ids, sc, o); }).find("unknown field 'in_stock'") != std::string::npos);
  CHECK(fake.searches == 0);
  s->declare_attributes({{"in_stock", AttributeType::boolean}, {"category", AttributeType::string}, {"price", AttributeType::float64}});
  s->search(1, kQuery, 3, ids, sc, o);
  nlohmann::json body;
  {
    std::lock_guard<std::mutex> l(fake.body_mutex);
    body = nlohmann::json::parse(fake.last_search);
  }
  // The layout of this collection keys items by the dynamic field item_id; the string "id" is
  // a literal, not the field, and stays. Attributes are dynamic fields: a row without one
  // reads as the column's default (false, ""), which these leaves refuse: "exists" and.
  CHECK(body["filter"] ==
        "(((item_id in [3, 5]) and ((exists in_stock) and (in_stock == true))) and "
        "((exists category) and (category == \"id\"))) and item_id not in [7,12]");
  CHECK(body["limit"] == 10);
  // Without a filter no "filter" key is sent; attributes live in the collection.
  s->search(1, kQuery, 3, ids, sc);
  {
    std::lock_guard<std::mutex> l(fake.body_mutex);
    CHECK(nlohmann::json::parse(fake.last_search).count("filter") == 0);
  }
  // Leaves the default passes (price 0.0 < 50, in_stock false != true) admit rows without the
  // field; keywords and literals in Milvus' forms (lower case, 50.0 for a float column,
  // strings double-quoted and escaped, a bool column alone as == true).
  o.exclude = nullptr;
  o.filter = "NOT in_stock OR price < 50 && category in ['a\"b', \"c\\\\d\"] or id > 2.5";
  s->search(1, kQuery, 3, ids, sc, o);
  {
    std::lock_guard<std::mutex> l(fake.body_mutex);
    body = nlohmann::json::parse(fake.last_search);
  }
  CHECK(body["filter"] ==
        "((not (((exists in_stock) and (in_stock == true))) or (((not exists price) or (price < 50.0)) and "
        "((exists category) and (category in [\"a\\\"b\", \"c\\\\d\"])))) or (item_id > 2.5))");
  o.params = {{"ef", 10}};
  CHECK_THROWS_AS(s->search(1, kQuery, 3, ids, sc, o), InvalidArgument);
}

TEST_CASE("milvus store over a fake server: the server's errors are typed - naming the operation and its message") {
  FakeMilvus fake;
  auto s = make_vector_store(fake.url("retries=0"), 4);
  int64_t id;
  float sc;
  fake.mode = "error";
  try {
    s->search(1, kQuery, 1, &id, &sc);
    FAIL("no error");
  } catch (const RemoteError& e) {
    CHECK(e.code() == 65535);
    const std::string m = e.what();
    CHECK(m.find("search 'items'") != std::string::npos);
    CHECK(m.find("boom") != std::string::npos);
  }
  fake.mode = "gone";
  CHECK_THROWS_AS(s->search(1, kQuery, 1, &id, &sc), RemoteNotFound);
  fake.mode = "auth";
  CHECK_THROWS_AS(s->search(1, kQuery, 1, &id, &sc), RemoteAuthError);
  fake.mode = "garbage";
  CHECK(test::error_of([&] { s->search(1, kQuery, 1, &id, &sc); }).find("not a Milvus REST v1 answer") != std::string::npos);
  CHECK_THROWS_AS(make_vector_store(fake.url(), 8), InvalidArgument);  // the collection is dim 4
  CHECK_THROWS_AS(make_vector_store(fake.url(), 4, Metric::l2), InvalidArgument);
  CHECK_THROWS_AS(make_vector_store("milvus://127.0.0.1:" + fake.url().substr(fake.url().rfind(':') + 1, 5) + "/other?create=0", 4),
                  RemoteNotFound);
}

TEST_CASE("milvus store over a fake server: idempotent calls are retried on 5xx - inserts never - then IoError") {
  FakeMilvus fake;
  auto s = make_vector_store(fake.url("retries=2"), 4);
  int64_t id = 1;
  float sc;
  fake.mode = "503";
  CHECK_THROWS_AS(s->search(1, kQuery, 1, &id, &sc), IoError);
  CHECK(fake.searches == 3);  // 1 + retries
  const float v[4] = {1, 2, 3, 4};
  CHECK_THROWS_AS(s->add(1, v, &id), IoError);
  CHECK(fake.inserts == 1);  // an insert is not idempotent: never repeated
  fake.mode = "ok";
  s->add(1, v, &id);  // inserted as pk 99, then seen by the visibility poll
  CHECK(fake.inserts == 2);
}

TEST_CASE("milvus store over a fake server: no answer within timeout= and a server gone are IoError - not a hang") {
  FakeMilvus fake;
  auto s = make_vector_store(fake.url("timeout=0.3&retries=0"), 4);
  int64_t id;
  float sc;
  fake.mode = "slow";
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(s->search(1, kQuery, 1, &id, &sc), IoError);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1400));  // gave up before the answer
  fake.mode = "ok";
  fake.stop();
  const std::string m = test::error_of([&] { s->search(1, kQuery, 1, &id, &sc); });
  CHECK(m.find("search 'items'") != std::string::npos);
  CHECK(m.find("cannot connect") != std::string::npos);
  CHECK_THROWS_AS(s->search(1, kQuery, 1, &id, &sc), IoError);
  CHECK_THROWS_AS(make_vector_store(fake.url(), 4), IoError);
}

namespace {

// An in-memory Milvus REST v1 collection "items" (dim 2, IP, auto id + dynamic field item_id,
// or primary key = item id), enough of the API for the store's writes: insert, upsert, delete
// by primary keys or by filter, query (filters of the forms the store sends: F in [..],
// F not in [..], joined by "and"; "id >= 0 or id < 0"; count(*)), search (brute force). Request
// number fail_at (all requests counted, describe excepted) fails: "refuse" answers an error
// and changes nothing, "lost" applies the request and then answers HTTP 500 (as a reply lost
// to a timeout). Every Authorization header seen is kept.
class FakeCollection {
 public:
  struct Row {
    int64_t pk, item;
    float v0, v1;
    nlohmann::json extra = nlohmann::json::object();  // the row's other (dynamic) fields
  };
  explicit FakeCollection(bool auto_id) : auto_id_(auto_id) {
    svr_.Get("/v1/vector/collections/describe", [&](const httplib::Request& req, httplib::Response& res) {
      note_auth(req);
      if (req.get_param_value("collectionName") != "items") {
        res.set_content(R"({"code":100,"message":"collection not found"})", "application/json");
        return;
      }
      res.set_content(std::string(R"J({"code":200,"data":{"collectionName":"items","enableDynamicField":true,
        "fields":[{"autoId":)J") + (auto_id_ ? "true" : "false") + R"J(,"name":"id","primaryKey":true,"type":"Int64"},
                  {"autoId":false,"name":"vector","primaryKey":false,"type":"FloatVector(2)"}],
        "indexes":[{"fieldName":"vector","indexName":"vector_idx","metricType":"IP"}],"load":"LoadStateLoaded"}})J",
                      "application/json");
    });
    for (const char* path : {"/v1/vector/insert", "/v1/vector/upsert", "/v1/vector/delete", "/v1/vector/query",
                             "/v1/vector/search", "/v1/vector/collections/create"})
      svr_.Post(path, [&, p = std::string(path)](const httplib::Request& req, httplib::Response& res) { serve(p, req, res); });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([&] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeCollection() {
    svr_.stop();
    thread_.join();
  }
  std::string url(const std::string& options = "") const {
    return "milvus://127.0.0.1:" + std::to_string(port_) + "/items" + (options.empty() ? "" : "?" + options);
  }
  // Items 1..n with vector (item, 0), one row each.
  void fill(int64_t n) {
    std::lock_guard<std::mutex> l(m_);
    for (int64_t i = 1; i <= n; ++i) rows_.push_back({auto_id_ ? next_pk_++ : i, i, float(i), 0.f});
  }
  void fail(int at, std::string mode) {
    std::lock_guard<std::mutex> l(m_);
    fail_at_ = {at};
    mode_ = std::move(mode);
  }
  void fail_also(int at) {
    std::lock_guard<std::mutex> l(m_);
    fail_at_.insert(at);
  }
  int requests() {
    std::lock_guard<std::mutex> l(m_);
    return requests_;
  }
  int writes() {
    std::lock_guard<std::mutex> l(m_);
    return writes_;
  }
  // item -> its rows' v0 values
  std::map<int64_t, std::vector<float>> by_item() {
    std::lock_guard<std::mutex> l(m_);
    std::map<int64_t, std::vector<float>> out;
    for (const Row& r : rows_) out[r.item].push_back(r.v0);
    return out;
  }
  std::vector<std::string> auth() {
    std::lock_guard<std::mutex> l(m_);
    return auth_;
  }
  // item -> its rows: (v0, the row's other fields)
  std::map<int64_t, std::vector<std::pair<float, nlohmann::json>>> rows_by_item() {
    std::lock_guard<std::mutex> l(m_);
    std::map<int64_t, std::vector<std::pair<float, nlohmann::json>>> out;
    for (const Row& r : rows_) out[r.item].emplace_back(r.v0, r.extra);
    return out;
  }

 private:
  using json = nlohmann::json;
  void note_auth(const httplib::Request& req) {
    std::lock_guard<std::mutex> l(m_);
    auth_.push_back(req.get_header_value("Authorization"));
  }
  // "F in [1,2]" / "F not in [..]" terms joined by " and ", or everything: parsed once.
  struct Filter {
    bool all = false;
    struct Term {
      bool pk, negated;
      std::set<int64_t> values;
    };
    std::vector<Term> terms;
    explicit Filter(const std::string& filter) {
      if (filter == "id >= 0 or id < 0") {
        all = true;
        return;
      }
      size_t at = 0;
      while (at < filter.size()) {
        size_t end = filter.find(" and ", at);
        if (end == std::string::npos) end = filter.size();
        const std::string term = filter.substr(at, end - at);
        at = end + 5;
        const std::string field = term.substr(0, term.find(' '));
        if (field != "id" && field != "item_id") throw std::runtime_error("fake: unknown field " + field);
        Term t{field == "id", term.find(" not in [") != std::string::npos, {}};
        const size_t open = term.find('['), close = term.find(']');
        std::stringstream ss(term.substr(open + 1, close - open - 1));
        for (std::string v; std::getline(ss, v, ',');) t.values.insert(std::stoll(v));
        terms.push_back(std::move(t));
      }
    }
    bool operator()(const Row& r) const {
      if (all) return true;
      for (const Term& t : terms)
        if (bool(t.values.count(t.pk ? r.pk : r.item)) == t.negated) return false;
      return true;
    }
  };
  void serve(const std::string& path, const httplib::Request& req, httplib::Response& res) {
    note_auth(req);
    std::lock_guard<std::mutex> l(m_);
    const int n = ++requests_;
    const bool fails = fail_at_.count(n) > 0;
    if (fails && mode_ == "refuse") {
      res.set_content(R"({"code":65535,"message":"injected failure"})", "application/json");
      return;
    }
    const json body = json::parse(req.body);
    json data;
    if (path == "/v1/vector/insert" || path == "/v1/vector/upsert") {
      ++writes_;
      data["insertIds"] = json::array();
      for (const auto& d : body["data"]) {
        const int64_t item = auto_id_ ? d["item_id"].get<int64_t>() : d["id"].get<int64_t>();
        if (!auto_id_) rows_.erase(std::remove_if(rows_.begin(), rows_.end(), [&](const Row& r) { return r.pk == item; }), rows_.end());
        const int64_t pk = auto_id_ ? next_pk_++ : item;
        json extra = d;
        for (const char* k : {"vector", "item_id", "id"}) extra.erase(k);
        rows_.push_back({pk, item, d["vector"][0].get<float>(), d["vector"][1].get<float>(), extra});
        data["insertIds"].push_back(pk);
      }
    } else if (path == "/v1/vector/delete") {
      ++writes_;
      std::set<int64_t> pks;
      if (body.contains("id")) for (const auto& v : body["id"]) pks.insert(v.get<int64_t>());
      const Filter filter(body.value("filter", "id >= 0 or id < 0"));
      rows_.erase(std::remove_if(rows_.begin(), rows_.end(), [&](const Row& r) {
                    return body.contains("id") ? pks.count(r.pk) > 0 : filter(r);
                  }), rows_.end());
      data = json::object();
    } else if (path == "/v1/vector/query") {
      const Filter filter(body["filter"].get<std::string>());
      const auto& fields = body["outputFields"];
      data = json::array();
      if (fields.size() == 1 && fields[0] == "count(*)") {
        int64_t c = 0;
        for (const Row& r : rows_) c += filter(r);
        data.push_back({{"count(*)", c}});
      } else {
        for (const Row& r : rows_) {
          if (!filter(r)) continue;
          json row;
          for (const auto& f : fields) {
            if (f == "id") row["id"] = r.pk;
            else if (f == "item_id") row["item_id"] = r.item;
            else if (f == "vector") row["vector"] = {r.v0, r.v1};
            else if (r.extra.contains(f)) row[f] = r.extra[f];
          }
          data.push_back(row);
        }
      }
    } else if (path == "/v1/vector/search") {
      std::vector<std::pair<float, const Row*>> hits;
      for (const Row& r : rows_) hits.emplace_back(body["vector"][0].get<float>() * r.v0 + body["vector"][1].get<float>() * r.v1, &r);
      std::sort(hits.begin(), hits.end(), [](auto& a, auto& b) { return a.first > b.first; });
      data = json::array();
      for (size_t i = 0; i < hits.size() && int(i) < body["limit"].get<int>(); ++i)
        data.push_back({{"distance", hits[i].first}, {"id", hits[i].second->pk}, {"item_id", hits[i].second->item}});
    }
    if (fails) {  // "lost": applied, the answer never arrives as one
      res.status = 500;
      res.set_content("lost", "text/plain");
      return;
    }
    res.set_content(json{{"code", 200}, {"data", data}}.dump(), "application/json");
  }

  bool auto_id_;
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex m_;
  std::vector<Row> rows_;
  int64_t next_pk_ = 1000000;
  int requests_ = 0, writes_ = 0;
  std::set<int> fail_at_;
  std::string mode_;
  std::vector<std::string> auth_;
};

// An upsert of items 1..n (new vectors (item + 0.5, 1)) and of `extra` new ids after n.
struct Upsert {
  std::vector<int64_t> ids;
  std::vector<float> v;
  Upsert(int64_t n, int64_t extra) {
    for (int64_t i = 1; i <= n + extra; ++i) ids.push_back(i), v.push_back(float(i) + 0.5f), v.push_back(1.f);
  }
};

// Every item of 1..n holds exactly one row, its old vector or its new one; new ids at most one
// new row.
void check_one_row_each(FakeCollection& c, int64_t n, int64_t extra) {
  const auto rows = c.by_item();
  int64_t bad = 0, zero = 0;
  for (int64_t i = 1; i <= n; ++i) {
    const auto it = rows.find(i);
    if (it == rows.end()) { ++zero; continue; }
    if (it->second.size() != 1 || (it->second[0] != float(i) && it->second[0] != float(i) + 0.5f)) ++bad;
  }
  for (int64_t i = n + 1; i <= n + extra; ++i) {
    const auto it = rows.find(i);
    if (it != rows.end() && (it->second.size() != 1 || it->second[0] != float(i) + 0.5f)) ++bad;
  }
  CHECK(zero == 0);  // no item lost
  CHECK(bad == 0);   // none with two rows or a foreign vector
}

// The compensation tests' stores wait up to 120 s for an answer (timeout=120): they inject
// refusals and lost answers themselves, and the default 10 s was once reached by the fake
// server's answer to a 5,000-item upsert under AddressSanitizer on a loaded 2-core machine.

// Runs one(mode, k) for each request k of a write that made `requests` requests, failing it
// both ways: "refuse" (an error answer, nothing applied) and "lost" (applied, answer lost).
void each_failure(int requests, const std::function<void(const char*, int)>& one) {
  for (const char* mode : {"refuse", "lost"})
    for (int k = 1; k <= requests; ++k) {
      CAPTURE(mode);
      CAPTURE(k);
      one(mode, k);
    }
}

}  // namespace

TEST_CASE("milvus compensations: any one request of a 17000-item replacement failing - refused or applied with its answer lost - leaves every item one row, old or new") {
  // Review F18-F20. Auto-id rows: the store inserts the new rows and deletes the old ones
  // chunk by chunk (5,000 items: deletes of up to 16,384 rows went out in several requests before, F18);
  // whatever request fails, the compensating requests (here
  // succeeding) must leave each item exactly one row. The primary-key layout puts back the old
  // vectors entirely.
  for (const bool auto_id : {true, false}) {
    CAPTURE(auto_id);
    const int64_t n = 17000, extra = 100;
    const Upsert u(n, extra);
    int clean = 0;
    {
      FakeCollection c(auto_id);
      c.fill(n);
      auto s = make_vector_store(c.url("batch=5000&retries=0&wait=0&timeout=120"), 2);
      const int before = c.requests();
      CHECK(s->upsert(int64_t(u.ids.size()), u.v.data(), u.ids.data()) == n);
      clean = c.requests() - before;
      const auto rows = c.by_item();
      for (int64_t i = 1; i <= n + extra; ++i) REQUIRE(rows.at(i) == std::vector<float>{float(i) + 0.5f});
    }
    CHECK(clean >= 8);
    each_failure(clean, [&](const char* mode, int k) {
      FakeCollection c(auto_id);
      c.fill(n);
      auto s = make_vector_store(c.url("batch=5000&retries=0&wait=0&timeout=120"), 2);
      c.fail(c.requests() + k, mode);
      try {
        s->upsert(int64_t(u.ids.size()), u.v.data(), u.ids.data());
      } catch (const Error&) {
      }
      check_one_row_each(c, n, extra);
      if (!auto_id) {  // a failed upsert by primary key is undone whole (if the query before it ran)
        const auto rows = c.by_item();
        bool all_old = true, all_new = true;
        for (int64_t i = 1; i <= n; ++i) all_old &= rows.at(i)[0] == float(i), all_new &= rows.at(i)[0] == float(i) + 0.5f;
        CHECK((all_old || all_new));
      }
    });
  }
}

TEST_CASE("milvus compensations: a compensating request that fails too never loses an item - and says so at error level") {
  std::vector<std::string> errors;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::error) errors.emplace_back(m);
  });
  const int64_t n = 3000, extra = 0;
  const Upsert u(n, extra);
  for (int k = 1; k <= 12; ++k) {
    CAPTURE(k);
    FakeCollection c(true);
    c.fill(n);
    auto s = make_vector_store(c.url("batch=1000&retries=0&wait=0&timeout=120"), 2);
    const int at = c.requests() + k;
    c.fail(at, "lost");
    c.fail_also(at + 1);  // the next request (a compensation, when there is one) fails too
    c.fail_also(at + 2);
    errors.clear();
    bool failed = false;
    try {
      s->upsert(n, u.v.data(), u.ids.data());
    } catch (const Error&) {
      failed = true;
    }
    const auto rows = c.by_item();
    for (int64_t i = 1; i <= n; ++i) CHECK(rows.count(i) == 1);  // never zero rows
    if (failed && !errors.empty()) CHECK(errors[0].find("could not be undone") != std::string::npos);
  }
  set_log_sink(nullptr);
}

TEST_CASE("milvus compensations: a failed add - any one request refused or applied with its answer lost - leaves none of its items") {
  // Review F19: the rows of a batch whose answer was lost were left behind.
  for (const bool auto_id : {true, false}) {
    CAPTURE(auto_id);
    std::vector<int64_t> ids;
    std::vector<float> v;
    for (int64_t i = 0; i < 3000; ++i) ids.push_back(100 + i), v.push_back(1.f), v.push_back(2.f);
    int clean = 0;
    {
      FakeCollection c(auto_id);
      c.fill(10);
      auto s = make_vector_store(c.url("batch=1000&retries=0&wait=0&timeout=120"), 2);
      const int before = c.requests();
      s->add(3000, v.data(), ids.data());
      clean = c.requests() - before;
      CHECK(c.by_item().size() == 3010);
    }
    each_failure(clean, [&](const char* mode, int k) {
      FakeCollection c(auto_id);
      c.fill(10);
      auto s = make_vector_store(c.url("batch=1000&retries=0&wait=0&timeout=120"), 2);
      c.fail(c.requests() + k, mode);
      CHECK_THROWS_AS(s->add(3000, v.data(), ids.data()), Error);
      CHECK(c.by_item().size() == 10);  // only the 10 items from before
    });
  }
}

TEST_CASE("milvus://: the environment's token goes to the caller's hosts - never to one read from a store file - and never into a message") {
  FakeCollection c(true);
  test::TempDir tmp;
  ::setenv("MINDREC_MILVUS_TOKEN", "root:s3cret", 1);
  ::unsetenv("MINDREC_MILVUS_TOKEN_HOSTS");
  {
    auto s = make_vector_store(c.url(), 2);  // the caller named this host
    CHECK(c.auth().back() == "Bearer root:s3cret");
    s->save(tmp.file("d.idx"));
  }
  load_vector_store(tmp.file("d.idx"));  // the URL comes from the file: no credentials
  CHECK(c.auth().back() == "");
  load_vector_store(tmp.file("d.idx"), c.url());  // the caller names the host again
  CHECK(c.auth().back() == "Bearer root:s3cret");
  ::setenv("MINDREC_MILVUS_TOKEN_HOSTS", "example.org,127.0.0.1", 1);  // scoped to this host
  load_vector_store(tmp.file("d.idx"));
  CHECK(c.auth().back() == "Bearer root:s3cret");
  ::unsetenv("MINDREC_MILVUS_TOKEN_HOSTS");
  ::unsetenv("MINDREC_MILVUS_TOKEN");
  make_vector_store(c.url("token=alice:pw"), 2);  // token= in the caller's spec
  CHECK(c.auth().back() == "Bearer alice:pw");
  const std::string m = test::error_of([&] { make_vector_store("milvus://h:1/items?token=alice:pw&fetch=0", 2); });
  CHECK(m.find("alice:pw") == std::string::npos);
  CHECK(m.find("token=***") != std::string::npos);
}

TEST_CASE("milvus://: attached read-only - a store refuses every write and creates nothing") {
  FakeCollection c(true);
  c.fill(5);
  auto s = attach_vector_store(c.url(), 2);
  const int writes = c.writes();
  const float v[2] = {1, 2};
  const int64_t id = 99;
  CHECK_THROWS_AS(s->add(1, v, &id), Unsupported);
  CHECK_THROWS_AS(s->upsert(1, v, &id), Unsupported);
  CHECK_THROWS_AS(s->remove(1, &id), Unsupported);
  CHECK_THROWS_AS(s->clear(), Unsupported);
  CHECK(c.writes() == writes);
  CHECK(s->size() == 5);
  int64_t got = -1;
  float sc = 0;
  s->search(1, v, 1, &got, &sc);
  CHECK(got == 5);
  CHECK_THROWS_AS(attach_vector_store("milvus://127.0.0.1:" + c.url().substr(c.url().rfind(':') + 1, 5) + "/other", 2), RemoteNotFound);
  CHECK_THROWS_AS(attach_vector_store("flat", 2), InvalidArgument);
}

TEST_CASE("milvus attributes over a fake server: set_attributes rewrites each item's row with its vector - values merged - a vector upsert keeps them") {
  using json = nlohmann::json;
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::warn) warnings.emplace_back(m);
  });
  for (const bool auto_id : {true, false}) {
    CAPTURE(auto_id);
    test::TempDir tmp;
    FakeCollection c(auto_id);
    c.fill(10);
    auto s = make_vector_store(c.url("wait=0"), 2);
    s->declare_attributes({{"in_stock", AttributeType::boolean}, {"price", AttributeType::float64},
                           {"cat", AttributeType::string}, {"n", AttributeType::int64}});
    CHECK(c.writes() == 0);  // a declaration writes nothing: rows without a field read as its default
    const std::vector<int64_t> ids = {2, 3, 11};
    AttributeBatch b;
    b.add_bool("in_stock", {1, 0, 1}).add("price", std::vector<double>{5.0, 60.0, 1.0});
    warnings.clear();
    s->set_attributes(3, ids.data(), b);
    auto rows = c.rows_by_item();
    REQUIRE(rows.at(2).size() == 1);
    CHECK(rows.at(2)[0].first == 2.f);  // the vector written back as it was
    CHECK(rows.at(2)[0].second == json{{"in_stock", true}, {"price", 5.0}});
    CHECK(rows.at(3)[0].second == json{{"in_stock", false}, {"price", 60.0}});
    CHECK(rows.at(4)[0].second == json::object());
    CHECK(rows.count(11) == 0);  // no row to hold them: not kept, and said so
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("attributes of 1 ids without a row (id 11 first) not kept") != std::string::npos);
    // A batch of other columns keeps the ones it does not name.
    const int64_t two = 2;
    AttributeBatch b2;
    b2.add("cat", std::vector<std::string>{"x\"y"}).add("n", std::vector<int64_t>{-7});
    s->set_attributes(1, &two, b2);
    const json full = {{"in_stock", true}, {"price", 5.0}, {"cat", "x\"y"}, {"n", -7}};
    rows = c.rows_by_item();
    REQUIRE(rows.at(2).size() == 1);
    CHECK(rows.at(2)[0].second == full);
    // A vector upsert rewrites the row whole: the attributes go along.
    const float v[2] = {20, 1};
    CHECK(s->upsert(1, v, &two) == 1);
    rows = c.rows_by_item();
    REQUIRE(rows.at(2).size() == 1);
    CHECK(rows.at(2)[0].first == 20.f);
    CHECK(rows.at(2)[0].second == full);
    // An upsert with values: a new item with its attributes, a stored one merged.
    const std::vector<int64_t> up = {12, 3};
    const std::vector<float> uv = {12, 0, 3, 0};
    AttributeBatch b3;
    b3.add("n", std::vector<int64_t>{4, 5});
    CHECK(s->upsert(2, uv.data(), up.data(), b3) == 1);
    rows = c.rows_by_item();
    CHECK(rows.at(12)[0].second == json{{"n", 4}});
    CHECK(rows.at(3)[0].second == json{{"in_stock", false}, {"price", 60.0}, {"n", 5}});
    // Refused before any request: values Milvus cannot hold exactly, an unknown column, the
    // collection's own fields as attributes.
    const int writes = c.writes();
    AttributeBatch big;
    big.add("n", std::vector<int64_t>{int64_t(1) << 60});
    CHECK(test::error_of([&] { s->set_attributes(1, &two, big); }).find("exact within +-2^53") != std::string::npos);
    AttributeBatch inf;
    inf.add("price", std::vector<double>{HUGE_VAL});
    CHECK_THROWS_AS(s->set_attributes(1, &two, inf), InvalidArgument);
    AttributeBatch unknown;
    unknown.add("colour", std::vector<int64_t>{1});
    CHECK_THROWS_AS(s->set_attributes(1, &two, unknown), InvalidArgument);
    CHECK_THROWS_AS(s->declare_attributes({{"vector", AttributeType::int64}}), InvalidArgument);
    if (auto_id) CHECK_THROWS_AS(s->declare_attributes({{"item_id", AttributeType::int64}}), InvalidArgument);
    CHECK(c.writes() == writes);
    CHECK(s->attributes().size() == 4);
    // The declaration is kept in the store file (the values stay in the collection).
    s->save(tmp.file("d.idx"));
    CHECK(load_vector_store(tmp.file("d.idx"))->attributes() == s->attributes());
  }
  set_log_sink(nullptr);
}

TEST_CASE("milvus attributes: any one request of a set_attributes failing - refused or applied with its answer lost - leaves every item one row with its vector and old or new values") {
  using json = nlohmann::json;
  set_log_sink([](LogLevel, std::string_view) {});
  const int64_t n = 30;
  std::vector<int64_t> ids;
  for (int64_t i = 1; i <= n; ++i) ids.push_back(i);
  AttributeBatch b;
  b.add_bool("in_stock", std::vector<uint8_t>(size_t(n), 1));
  const std::vector<AttributeSpec> cols = {{"in_stock", AttributeType::boolean}};
  for (const bool auto_id : {true, false}) {
    CAPTURE(auto_id);
    int clean = 0;
    {
      FakeCollection c(auto_id);
      c.fill(n);
      auto s = make_vector_store(c.url("batch=8&retries=0&wait=0&timeout=120"), 2);
      s->declare_attributes(cols);
      const int before = c.requests();
      s->set_attributes(n, ids.data(), b);
      clean = c.requests() - before;
      const auto rows = c.rows_by_item();
      for (int64_t i = 1; i <= n; ++i) REQUIRE(rows.at(i) == std::vector<std::pair<float, json>>{{float(i), {{"in_stock", true}}}});
    }
    CHECK(clean >= (auto_id ? 9 : 5));  // a read, then 4 chunks (auto id: insert and delete each)
    each_failure(clean, [&](const char* mode, int k) {
      FakeCollection c(auto_id);
      c.fill(n);
      auto s = make_vector_store(c.url("batch=8&retries=0&wait=0&timeout=120"), 2);
      s->declare_attributes(cols);
      c.fail(c.requests() + k, mode);
      try {
        s->set_attributes(n, ids.data(), b);
      } catch (const Error&) {
      }
      const auto rows = c.rows_by_item();
      int64_t bad = 0, fresh = 0;
      for (int64_t i = 1; i <= n; ++i) {
        const auto& r = rows.at(i);
        if (r.size() != 1 || r[0].first != float(i)) ++bad;
        else if (r[0].second == json{{"in_stock", true}}) ++fresh;
        else if (r[0].second != json::object()) ++bad;
      }
      CHECK(bad == 0);
      if (!auto_id) CHECK((fresh == 0 || fresh == n));  // by primary key: undone whole
    });
  }
  set_log_sink(nullptr);
}

#endif
