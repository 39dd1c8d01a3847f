// mindrec-serve: every endpoint of RecService (the API without HTTP) against the library's own
// recall path, every refusal with the field it names and the store left unchanged; then the
// real server binary on a loopback port, driven by an HTTP client, shut down by SIGTERM.
#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <limits>
#include <regex>
#include <sstream>
#include <set>
#include <thread>

#include "detail/fault.hpp"
#include "mindrec/catalogue.hpp"
#include "mindrec/recommender.hpp"
#include "mindrec/version.hpp"
#include "mindrec/retriever.hpp"
#include "rec_service.hpp"
#include "small_model.hpp"
#include "test_util.hpp"

extern char** environ;

using namespace mindrec;
using nlohmann::json;

namespace {

using test::small_weights;

serve::RecService make_service(serve::ServiceOptions o = {}) {
  MindWeights w = small_weights();
  w.popular_items = {11, 3, 250, 42};  // what mindrec train records: the no-click fallback
  return serve::RecService(MindModel(w), make_vector_store("flat", 8), o);
}

json body_of(const serve::Reply& r) { return json::parse(r.body); }

// The library's answer for one user's history (last maxlen items), for comparison.
std::vector<int64_t> library_recall(const MindModel& m, const VectorStore& s, std::vector<int64_t> h, int k,
                                    bool exclude = false) {
  const int L = m.config().maxlen;
  if (int(h.size()) > L) h.erase(h.begin(), h.end() - L);
  const int32_t len = int32_t(h.size());
  h.resize(size_t(L), 0);
  std::vector<int64_t> ids(static_cast<size_t>(k));
  std::vector<float> sc(static_cast<size_t>(k));
  RecallOptions o;
  o.topn = k;
  o.exclude_history = exclude;
  recall_items(m, s, h.data(), &len, 1, o, ids.data(), sc.data());
  while (!ids.empty() && ids.back() < 0) ids.pop_back();
  return ids;
}

void check_error(const serve::Reply& r, int status, const std::string& field, const std::string& words) {
  CAPTURE(r.body);
  CHECK(r.status == status);
  const json j = body_of(r);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["status"] == status);
  CHECK(j["error"]["field"] == field);
  CHECK(j["error"]["message"].get<std::string>().find(words) != std::string::npos);
}

}  // namespace

TEST_CASE("serve: insert_data - count - recall and drop answer like the library") {
  auto svc = make_service();
  CHECK(body_of(svc.handle("POST", "/rec/count", "")) == json{{"count", 0}});
  auto r = svc.handle("POST", "/rec/insert_data", "");
  CHECK(r.status == 200);
  CHECK(body_of(r) == json{{"inserted", 299}, {"count", 299}});
  // Inserting again replaces: still one vector per item.
  CHECK(body_of(svc.handle("POST", "/rec/insert_data", "{}"))["count"] == 299);
  CHECK(body_of(svc.handle("GET", "/rec/count", ""))["count"] == 299);

  // The seed's request: one row per user, merged multi-interest top_k with scores.
  r = svc.handle("POST", "/rec/recall", R"({"top_k": 7, "hist_item": [[43, 23, 65], [12, 250, 9, 8, 7, 6, 5, 4]]})");
  REQUIRE(r.status == 200);
  const json j = body_of(r);
  CHECK(j["top_k"] == 7);
  REQUIRE(j["ids"].size() == 2);
  auto oracle = build_item_store(svc.model(), "flat");
  CHECK(j["ids"][0].get<std::vector<int64_t>>() == library_recall(svc.model(), *oracle, {43, 23, 65}, 7));
  CHECK(j["ids"][1].get<std::vector<int64_t>>() ==
        library_recall(svc.model(), *oracle, {12, 250, 9, 8, 7, 6, 5, 4}, 7));  // last 6 used
  // Scores: the inner product of the best interest with the item, best first.
  for (int u = 0; u < 2; ++u) {
    const auto sc = j["scores"][u].get<std::vector<double>>();
    REQUIRE(sc.size() == 7);
    for (size_t i = 1; i < sc.size(); ++i) CHECK(sc[i - 1] >= sc[i]);
  }
  // top_k defaults to 50; exclude_history drops the user's items.
  r = svc.handle("POST", "/rec/recall", R"({"hist_item": [[43, 23, 65]], "exclude_history": true})");
  const auto ids = body_of(r)["ids"][0].get<std::vector<int64_t>>();
  CHECK(ids.size() == 50);
  CHECK(ids == library_recall(svc.model(), *oracle, {43, 23, 65}, 50, true));
  for (int64_t h : {43, 23, 65}) CHECK(std::count(ids.begin(), ids.end(), h) == 0);

  r = svc.handle("POST", "/qa/drop", "");
  CHECK(body_of(r) == json{{"dropped", 299}, {"count", 0}});
  svc.handle("POST", "/rec/insert_data", "");
  CHECK(body_of(svc.handle("POST", "/rec/drop", ""))["dropped"] == 299);
  // An empty store says so: 503, not empty rows.
  check_error(svc.handle("POST", "/rec/recall", R"({"top_k": 3, "hist_item": [[1]]})"), 503, "", "the store is empty");
}

TEST_CASE("serve: a user with no clicks gets the popular items - flagged - exclude_history drops a whole long history") {
  auto svc = make_service();
  svc.handle("POST", "/rec/insert_data", "");
  auto r = svc.handle("POST", "/rec/recall", R"({"top_k": 3, "hist_item": [[], [43, 23, 65]]})");
  REQUIRE(r.status == 200);
  json j = body_of(r);
  CHECK(j["fallback"] == json::parse("[true, false]"));
  CHECK(j["ids"][0] == json::parse("[11, 3, 250]"));
  CHECK(j["scores"][0] == json::parse("[0.0, 0.0, 0.0]"));
  auto oracle = build_item_store(svc.model(), "flat");
  CHECK(j["ids"][1].get<std::vector<int64_t>>() == library_recall(svc.model(), *oracle, {43, 23, 65}, 3));
  // A 40-item history: the model reads the last 6, and every one of the 40 is left out.
  // Oracle: the library's ranking for the last 6, without the 40 ids.
  const std::vector<int64_t> last = {43, 23, 65, 12, 250, 9};
  const auto ranked = library_recall(svc.model(), *oracle, last, 60);
  json hist = json::array();
  for (size_t i = 0; i < ranked.size() && hist.size() < 34; ++i)
    if (std::find(last.begin(), last.end(), ranked[i]) == last.end()) hist.push_back(ranked[i]);
  for (const int64_t id : last) hist.push_back(id);
  REQUIRE(hist.size() == 40);
  r = svc.handle("POST", "/rec/recall", json{{"top_k", 10}, {"hist_item", json::array({hist})}, {"exclude_history", true}}.dump());
  REQUIRE(r.status == 200);
  std::vector<int64_t> want;
  const auto h = hist.get<std::vector<int64_t>>();
  for (const int64_t id : ranked)
    if (want.size() < 10 && std::find(h.begin(), h.end(), id) == h.end()) want.push_back(id);
  REQUIRE(want.size() == 10);
  CHECK(body_of(r)["ids"][0].get<std::vector<int64_t>>() == want);
}

TEST_CASE("serve: added items are recallable at once - replaced and deleted ones are gone") {
  auto svc = make_service();
  svc.handle("POST", "/rec/insert_data", "");
  const std::vector<int64_t> hist = {43, 23, 65};
  // A new item (beyond the model's ids) pointing along the user's first interest, scaled up:
  // it must come first.
  const int L = svc.model().config().maxlen;
  std::vector<int64_t> h(hist);
  h.resize(size_t(L), 0);
  const int32_t len = 3;
  std::vector<float> interests(3 * 8);
  svc.model().extract_interests(h.data(), &len, 1, interests.data());
  json vec = json::array();
  for (int d = 0; d < 8; ++d) vec.push_back(1000.0 * interests[size_t(d)]);
  json req = {{"ids", {5000}}, {"vectors", {vec}}};
  auto r = svc.handle("POST", "/rec/items", req.dump());
  CHECK(body_of(r) == json{{"added", 1}, {"replaced", 0}, {"count", 300}});
  r = svc.handle("POST", "/rec/recall", R"({"top_k": 5, "hist_item": [[43, 23, 65]]})");
  CHECK(body_of(r)["ids"][0][0] == 5000);

  // Replacing item 5000 by its opposite sends it out of the top 5; count unchanged.
  for (auto& x : vec) x = -x.get<double>();
  req = {{"ids", {5000}}, {"vectors", {vec}}};
  r = svc.handle("POST", "/rec/items", req.dump());
  CHECK(body_of(r) == json{{"added", 0}, {"replaced", 1}, {"count", 300}});
  r = svc.handle("POST", "/rec/recall", R"({"top_k": 5, "hist_item": [[43, 23, 65]]})");
  auto top = body_of(r)["ids"][0].get<std::vector<int64_t>>();
  CHECK(std::count(top.begin(), top.end(), 5000) == 0);

  // Deleting the current top items: never returned again; unknown ids are ignored.
  const json del = {{"ids", {top[0], top[1], 999999}}};
  r = svc.handle("POST", "/rec/items/delete", del.dump());
  CHECK(body_of(r) == json{{"removed", 2}, {"count", 298}});
  r = svc.handle("POST", "/rec/recall", R"({"top_k": 50, "hist_item": [[43, 23, 65]]})");
  const auto after = body_of(r)["ids"][0].get<std::vector<int64_t>>();
  CHECK(std::count(after.begin(), after.end(), top[0]) == 0);
  CHECK(std::count(after.begin(), after.end(), top[1]) == 0);
  CHECK(after[0] == top[2]);
}

TEST_CASE("serve: bad requests get 400 naming the field and change nothing") {
  serve::ServiceOptions o;
  o.max_users = 2;
  o.max_top_k = 100;
  o.max_items = 3;
  auto svc = make_service(o);
  svc.handle("POST", "/rec/insert_data", "");
  const std::string probe = R"({"top_k": 10, "hist_item": [[43, 23, 65]]})";
  const std::string before = svc.handle("POST", "/rec/recall", probe).body;

  check_error(svc.handle("POST", "/rec/recall", R"({"top_k": 5, "hist_item": [[43, 23)"), 400, "", "malformed JSON");
  check_error(svc.handle("POST", "/rec/recall", "[1, 2]"), 400, "", "JSON object");
  check_error(svc.handle("POST", "/rec/recall", R"({"top_k": 5})"), 400, "hist_item", "required");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": []})"), 400, "hist_item", "empty");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1], [2], [3]]})"), 400, "hist_item", "at most 2");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1], 7]})"), 400, "hist_item[1]", "array");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1], [5, 300]]})"), 400, "hist_item[1][1]",
              "not in the model's range [1, 300)");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[0]]})"), 400, "hist_item[0][0]", "item id 0 is the padding id");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[5, 7, 0]]})"), 400, "hist_item[0][2]", "padding id");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [["43"]]})"), 400, "hist_item[0][0]", "integer");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[4.5]]})"), 400, "hist_item[0][0]", "integer");
  check_error(svc.handle("POST", "/rec/recall", R"({"top_k": 0, "hist_item": [[1]]})"), 400, "top_k", "[1, 100]");
  check_error(svc.handle("POST", "/rec/recall", R"({"top_k": 101, "hist_item": [[1]]})"), 400, "top_k", "[1, 100]");
  check_error(svc.handle("POST", "/rec/recall", R"({"top_k": "5", "hist_item": [[1]]})"), 400, "top_k", "integer");
  check_error(svc.handle("POST", "/rec/recall", R"({"topk": 5, "hist_item": [[1]]})"), 400, "topk", "unknown field");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1]], "exclude_history": 1})"), 400,
              "exclude_history", "true or false");
  // Bytes that are not UTF-8 are refused by the parser, and the error (which quotes them) is
  // still valid JSON (check_error parses it).
  check_error(svc.handle("POST", "/rec/recall", "{\"hist_item\": [[1]], \"\xff\xfe\": 1}"), 400, "",
              "ill-formed UTF-8");
  CHECK(svc.handle("POST", "/rec/recall", "{\"hist_item\": [[1]] \xff").status == 400);

  const std::string v8 = "[1, 2, 3, 4, 5, 6, 7, 8]";
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [7, 7], "vectors": [)" + v8 + "," + v8 + "]}"), 400,
              "ids[1]", "twice");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [0], "vectors": [)" + v8 + "]}"), 400, "ids[0]",
              "padding");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [7, 8], "vectors": [)" + v8 + "]}"), 400, "vectors",
              "1 vectors for 2 ids");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [7], "vectors": [[1, 2, 3]]})"), 400, "vectors[0]",
              "8 numbers");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [7, 9], "vectors": [)" + v8 +
                                                   R"(, [1, 2, 1e39, 4, 5, 6, 7, 8]]})"),
              400, "vectors[1][2]", "finite");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [7], "vectors": [[1, 2, "x", 4, 5, 6, 7, 8]]})"), 400,
              "vectors[0][2]", "number");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [1, 2, 3, 4], "vectors": []})"), 400, "ids", "at most 3");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [1]})"), 400, "vectors", "required");
  check_error(svc.handle("POST", "/rec/items/delete", R"({"ids": ["a"]})"), 400, "ids[0]", "integer");
  check_error(svc.handle("POST", "/rec/items/delete", R"({})"), 400, "ids", "required");

  check_error(svc.handle("GET", "/rec/recall", ""), 405, "", "GET");
  check_error(svc.handle("POST", "/rec/nothing", ""), 404, "", "/rec/nothing");
  check_error(svc.handle("POST", "/rec/save", ""), 409, "", "nowhere to save");

  // Nothing above changed the store.
  CHECK(body_of(svc.handle("POST", "/rec/count", ""))["count"] == 299);
  CHECK(svc.handle("POST", "/rec/recall", probe).body == before);
}

TEST_CASE("serve: save writes a store that loads with the same answers - health and docs") {
  test::TempDir tmp;
  auto svc = make_service();
  svc.handle("POST", "/rec/insert_data", "");
  // A model built in memory has no index file: a save names one.
  check_error(svc.handle("POST", "/rec/save", ""), 409, "", "nowhere to save");
  const std::string path = tmp.file("items.idx");
  auto r = svc.handle("POST", "/rec/save", R"({"path": ")" + path + R"("})");
  CHECK(body_of(r) == json{{"saved", path}, {"count", 299}});
  check_error(svc.handle("POST", "/rec/save", R"({"path": 3})"), 400, "path", "must be a string");
  check_error(svc.handle("POST", "/rec/save", R"({"file": "x"})"), 400, "file", "unknown field");
  auto loaded = load_vector_store(path);
  CHECK(loaded->size() == 299);
  CHECK(library_recall(svc.model(), *loaded, {43, 23, 65}, 20) ==
        body_of(svc.handle("POST", "/rec/recall", R"({"top_k": 20, "hist_item": [[43, 23, 65]]})"))["ids"][0]
            .get<std::vector<int64_t>>());

  const json h = body_of(svc.handle("GET", "/healthz", ""));
  CHECK(h["status"] == "ok");
  CHECK(h["count"] == 299);
  CHECK(h["backend"] == "flat");
  CHECK(h["dim"] == 8);
  CHECK(h["model"]["item_count"] == 300);

  // The OpenAPI document is valid JSON and lists every endpoint; /docs shows each.
  const json api = json::parse(serve::RecService::openapi_json());
  CHECK(api["openapi"] == "3.0.3");
  const std::string html = svc.handle("GET", "/docs", "").body;
  for (const char* p : {"/rec/insert_data", "/rec/recall", "/rec/count", "/qa/drop", "/rec/drop", "/rec/items",
                        "/rec/items/delete", "/rec/save", "/healthz", "/openapi.json", "/docs"}) {
    CAPTURE(p);
    CHECK(api["paths"].contains(p));
    CHECK(html.find(std::string("<code>") + p + "</code>") != std::string::npos);
  }
  CHECK(svc.handle("GET", "/docs", "").content_type.find("text/html") == 0);
}

TEST_CASE("serve: a number too large for a double is a 400 naming the body - not a 500 (found by fuzz_serve_json)") {
  auto svc = make_service();
  const std::string huge = "5" + std::string(400, '5') + "E5555";
  const serve::Reply r = svc.handle("POST", "/rec/items/delete", R"({"ids": [0, )" + huge + "]}");
  CHECK(r.status == 400);
  CHECK(r.body.find("malformed JSON") != std::string::npos);
}

TEST_CASE("serve: at most compute_slots requests compute at once - each on one thread") {
  for (const int slots : {1, 2}) {
    serve::ServiceOptions o;
    o.compute_slots = slots;
    auto svc = make_service(o);
    REQUIRE(svc.insert_data().status == 200);
    std::atomic<int> ok{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 6; ++c)
      clients.emplace_back([&, c] {
        for (int i = 0; i < 20; ++i) {
          const std::string body = R"({"top_k": 20, "hist_item": [[)" + std::to_string(1 + c) + "," +
                                   std::to_string(50 + i) + "]]}";
          if (svc.recall(body).status == 200) ++ok;
        }
      });
    for (auto& t : clients) t.join();
    CHECK(ok == 6 * 20);
    CHECK(svc.peak_computing() >= 1);
    CHECK(svc.peak_computing() <= slots);
  }
  // The default is the process's thread policy.
  auto svc = make_service();
  svc.recall(R"({"hist_item": [[1, 2]]})");
  CHECK(svc.peak_computing() <= default_threads());
}

TEST_CASE("serve: a store of another dimension is refused") {
  CHECK_THROWS_AS(serve::RecService(MindModel(small_weights()), make_vector_store("flat", 16), {}), InvalidArgument);
}

// ---- production: reload, pairing, metrics, access control ----

namespace {

const char* kSmallConfig =
    "runner:\n  train_data_dir: x\n  test_data_dir: y\n"
    "hyper_parameters:\n  item_count: 300\n  embedding_dim: 8\n  hidden_size: 8\n  maxlen: 6\n"
    "  neg_samples: 10\n  capsule:\n    max_k: 3\n";

// Other weights of the same shape (another seed).
MindWeights other_weights() {
  MindWeights w = init_weights(test::small_config(), 77);
  for (size_t i = 8; i < w.item_emb.size(); ++i) w.item_emb[i] *= 100;
  return w;
}

// The small model's config and weights as files in `tmp` (c.yaml, w.safetensors).
void write_small_model(const test::TempDir& tmp) {
  tmp.write("c.yaml", kSmallConfig);
  // as mindrec train writes them: the no-click fallback and the epoch's evaluation
  save_weights(tmp.file("w.safetensors"), small_weights(), {11, 3, 250},
               {{"recall@50", 0.2}, {"popularity_recall@50", 0.05}});
}

// Options that serve the small model's files in `tmp` (and `index` there, if named).
serve::ServiceOptions file_options(const test::TempDir& tmp, const std::string& index = "",
                                   serve::ServiceOptions o = {}) {
  o.reload.config = tmp.file("c.yaml");
  o.reload.weights = tmp.file("w.safetensors");
  if (!index.empty()) o.reload.index = tmp.file(index);
  return o;
}

// A service started from files, as mindrec-serve starts (reload source = the same files).
serve::RecService service_from_files(const test::TempDir& tmp, serve::ServiceOptions o = {}) {
  write_small_model(tmp);
  o = file_options(tmp, "", o);
  return serve::RecService(load_snapshot(o.reload), o);
}

// Strict check of the Prometheus text exposition format (0.0.4): every sample line is
// name{label="value",...} value, every family announced by HELP and TYPE before its samples,
// histogram buckets cumulative and ending at le="+Inf" equal to _count. Returns the samples.
std::map<std::string, double> parse_prometheus(const std::string& text) {
  std::map<std::string, double> samples;
  std::set<std::string> typed;
  std::map<std::string, std::string> type_of;
  const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+)");
  const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\])*")*\})? (-?[0-9][0-9.e+-]*|\+Inf|-Inf|NaN))");
  std::istringstream in(text);
  std::string line, last_help;
  while (std::getline(in, line)) {
    CAPTURE(line);
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      last_help = m[1];
    } else if (std::regex_match(line, m, type)) {
      CHECK(m[1] == last_help);  // HELP, then TYPE of the same family
      CHECK(typed.insert(m[1]).second);  // each family once
      type_of[m[1]] = m[2];
    } else if (std::regex_match(line, m, sample)) {
      std::string family = m[1];
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (!typed.count(family) && family.size() > std::strlen(suffix) &&
            family.compare(family.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
          family = family.substr(0, family.size() - std::strlen(suffix));
      CHECK_MESSAGE(typed.count(family), "sample before its TYPE line");
      CHECK(samples.emplace(std::string(m[1]) + std::string(m[2]), std::stod(m[3])).second);  // no duplicates
    } else {
      FAIL_CHECK("not a valid exposition line");
    }
  }
  // Histograms: buckets cumulative in le order, +Inf == _count.
  const std::regex bucket(R"re((.*)_bucket\{(.*),le="([^"]+)"\})re");
  std::map<std::string, std::vector<std::pair<double, double>>> series;  // family{labels} -> (le, value)
  for (const auto& [key, v] : samples) {
    std::smatch m;
    if (!std::regex_match(key, m, bucket)) continue;
    const double le = m[3] == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(m[3]);
    series[std::string(m[1]) + "{" + std::string(m[2]) + "}"].emplace_back(le, v);
  }
  CHECK(series.size() >= 4);  // recall, insert_data, reload, other
  for (auto& [name, points] : series) {
    CAPTURE(name);
    std::sort(points.begin(), points.end());
    for (size_t i = 1; i < points.size(); ++i) CHECK(points[i - 1].second <= points[i].second);
    REQUIRE(std::isinf(points.back().first));
    const std::string family = name.substr(0, name.find('{'));
    const std::string labels = name.substr(name.find('{'));
    CHECK(samples[family + "_count" + labels] == points.back().second);
  }
  return samples;
}

}  // namespace

TEST_CASE("serve: /admin/reload swaps model and store - requests holding the old snapshot finish on it") {
  test::TempDir tmp;
  auto svc = service_from_files(tmp);
  svc.handle("POST", "/rec/insert_data", "");
  const auto old_snap = svc.snapshot();  // a request in flight holds this
  const uint64_t old_fp = old_snap->model->item_fingerprint();
  const std::string recall_body = R"({"top_k": 10, "hist_item": [[43, 23, 65]]})";
  const auto before = body_of(svc.handle("POST", "/rec/recall", recall_body))["ids"][0].get<std::vector<int64_t>>();

  // New weights on disk (a retrain), reloaded from the request body.
  save_weights(tmp.file("w2.safetensors"), other_weights());
  auto r = svc.handle("POST", "/admin/reload", R"({"weights": ")" + tmp.file("w2.safetensors") + R"("})");
  REQUIRE(r.status == 200);
  const json j = body_of(r);
  CHECK(j["generation"] == 1);
  CHECK(j["count"] == 299);  // no index file: the store was built from the new weights
  CHECK(j["fingerprint"] == fingerprint_hex(item_fingerprint(other_weights())));
  CHECK(svc.generation() == 1);
  // New requests use the new model: the library's answer on the new weights.
  const MindModel fresh(other_weights());
  auto oracle = build_item_store(fresh, "flat");
  const auto after = body_of(svc.handle("POST", "/rec/recall", recall_body))["ids"][0].get<std::vector<int64_t>>();
  CHECK(after == library_recall(fresh, *oracle, {43, 23, 65}, 10));
  CHECK(after != before);
  // The old snapshot is intact for whoever still holds it.
  CHECK(old_snap->model->item_fingerprint() == old_fp);
  CHECK(library_recall(*old_snap->model, *old_snap->store, {43, 23, 65}, 10) == before);
  CHECK(body_of(svc.handle("GET", "/healthz", ""))["fingerprint"] == fingerprint_hex(item_fingerprint(other_weights())));

  // An index built from the first weights is refused beside the new ones (409, nothing
  // changes), unless allowed.
  old_snap->store->save(tmp.file("old.idx"));
  r = svc.handle("POST", "/admin/reload",
                 R"({"weights": ")" + tmp.file("w2.safetensors") + R"(", "index": ")" + tmp.file("old.idx") + R"("})");
  check_error(r, 409, "", "reload failed, still serving the previous model");
  CHECK(r.body.find("--allow-mismatched-index") != std::string::npos);
  CHECK(svc.generation() == 1);
  r = svc.handle("POST", "/admin/reload",
                 R"({"weights": ")" + tmp.file("w2.safetensors") + R"(", "index": ")" + tmp.file("old.idx") +
                     R"(", "allow_mismatched_index": true})");
  CHECK(r.status == 200);
  CHECK(svc.generation() == 2);
  CHECK(svc.ready().status == 200);
  // A bare reload reads the files served now again (w2 + old.idx): the mismatch was allowed
  // for that request only, so it is refused now, and readiness fails until a reload succeeds.
  check_error(svc.handle("POST", "/admin/reload", ""), 409, "", "not of the loaded weights");
  CHECK(svc.ready().status == 503);
  CHECK(body_of(svc.ready())["reason"].get<std::string>().find("the last reload failed") != std::string::npos);
  r = svc.handle("POST", "/admin/reload", R"({"weights": ")" + tmp.file("w.safetensors") + R"("})");
  REQUIRE(r.status == 200);  // old.idx holds w's vectors
  CHECK(body_of(r)["fingerprint"] == fingerprint_hex(old_fp));
  CHECK(body_of(r)["index"] == tmp.file("old.idx"));
  CHECK(svc.ready().status == 200);
  // Bad requests: unknown key, wrong type, missing file; a service not started from files.
  check_error(svc.handle("POST", "/admin/reload", R"({"weight": "x"})"), 400, "weight", "unknown field");
  check_error(svc.handle("POST", "/admin/reload", R"({"weights": 3})"), 400, "weights", "must be a string");
  check_error(svc.handle("POST", "/admin/reload", R"({"weights": "/nonexistent.safetensors"})"), 409, "",
              "/nonexistent.safetensors");
  CHECK(svc.generation() == 3);
  CHECK(svc.ready().status == 503);  // the last reload failed
  auto plain = make_service();
  check_error(plain.handle("POST", "/admin/reload", ""), 409, "", "nothing to reload from");
}

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The item whose vector is `v` (an extreme one: it is every query's best) and its score.
std::pair<int64_t, float> best_for(const VectorStore& s, const std::vector<float>& v) {
  int64_t id = -1;
  float sc = 0;
  s.search(1, v.data(), 1, &id, &sc);
  return {id, sc};
}

}  // namespace

TEST_CASE("serve: after a reload naming other files - save and the shutdown save write the served index - never the start-up one") {
  // Review F9: /rec/save and the shutdown save wrote the start-up --index with the new model's
  // store, so a restart with the start-up flags was refused by the pairing check.
  test::TempDir tmp;
  write_small_model(tmp);
  build_item_store(MindModel(small_weights()), "flat")->save(tmp.file("i1.idx"));
  save_weights(tmp.file("w2.safetensors"), other_weights());
  build_item_store(MindModel(other_weights()), "flat")->save(tmp.file("i2.idx"));
  const serve::ServiceOptions o = file_options(tmp, "i1.idx");
  serve::RecService svc(o);
  svc.start();
  const std::string i1 = file_bytes(tmp.file("i1.idx"));
  auto r = svc.handle("POST", "/admin/reload",
                      R"({"weights": ")" + tmp.file("w2.safetensors") + R"(", "index": ")" + tmp.file("i2.idx") + R"("})");
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["index"] == tmp.file("i2.idx"));
  // A write, then save: it goes to i2.idx, the file served now.
  const std::vector<float> v = {9, 9, 9, 9, 9, 9, 9, 9};
  REQUIRE(svc.handle("POST", "/rec/items", R"({"ids": [5], "vectors": [[9,9,9,9,9,9,9,9]]})").status == 200);
  r = svc.handle("POST", "/rec/save", "");
  CHECK(body_of(r)["saved"] == tmp.file("i2.idx"));
  CHECK(best_for(*load_vector_store(tmp.file("i2.idx")), v) == std::pair<int64_t, float>{5, 648.f});
  CHECK(file_bytes(tmp.file("i1.idx")) == i1);  // the start-up index: untouched
  // Shutdown: nothing written since the save, so nothing to do; after a write, i2.idx again.
  CHECK(svc.save_on_shutdown().find("up to date") != std::string::npos);
  REQUIRE(svc.handle("POST", "/rec/items", R"({"ids": [6], "vectors": [[9,9,9,9,9,9,9,10]]})").status == 200);
  CHECK(svc.save_on_shutdown() == "saved 299 vectors to " + tmp.file("i2.idx"));
  CHECK(best_for(*load_vector_store(tmp.file("i2.idx")), {9, 9, 9, 9, 9, 9, 9, 10}).first == 6);
  CHECK(file_bytes(tmp.file("i1.idx")) == i1);
  // A restart with the start-up flags works: i1.idx still holds w's vectors.
  CHECK(load_snapshot(o.reload)->store->size() == 299);
  // A deploy that replaced the served file on disk is never overwritten: not by the shutdown
  // save, not by /rec/save (409); a copy can still be saved elsewhere.
  REQUIRE(svc.handle("POST", "/rec/items", R"({"ids": [7], "vectors": [[50,0,0,0,0,0,0,0]]})").status == 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  build_item_store(MindModel(other_weights()), "flat")->save(tmp.file("i2.idx"));  // the deploy
  const std::string deployed = file_bytes(tmp.file("i2.idx"));
  CHECK(svc.save_on_shutdown().find("changed on disk") != std::string::npos);
  check_error(svc.handle("POST", "/rec/save", ""), 409, "", "changed on disk");
  CHECK(file_bytes(tmp.file("i2.idx")) == deployed);
  CHECK(svc.handle("POST", "/rec/save", R"({"path": ")" + tmp.file("copy.idx") + R"("})").status == 200);
  CHECK(best_for(*load_vector_store(tmp.file("copy.idx")), {1, 0, 0, 0, 0, 0, 0, 0}).first == 7);
}

TEST_CASE("serve: a reload whose index is missing fails (409) and builds nothing - the backend stays the served one") {
  // Review F10: a missing index file made a reload build a flat store from the weights.
  test::TempDir tmp;
  write_small_model(tmp);
  save_weights(tmp.file("w2.safetensors"), other_weights());
  build_item_store(MindModel(small_weights()), "hnsw:M=8,ef_construction=40?ef=300")->save(tmp.file("h.idx"));
  const serve::ServiceOptions o = file_options(tmp, "h.idx");
  serve::RecService svc(o);
  svc.start();
  CHECK(svc.snapshot()->store->backend() == "hnsw:M=8,ef_construction=40");
  check_error(svc.handle("POST", "/admin/reload", R"({"weights": ")" + tmp.file("w2.safetensors") + R"(", "index": ")" +
                                                      tmp.file("typo.idx") + R"("})"),
              409, "", "typo.idx' does not exist");
  CHECK(svc.generation() == 0);
  CHECK(svc.ready().status == 503);
  CHECK(!FileStamp::of(tmp.file("typo.idx")).exists);
  // Asked for: built from the new weights with the served backend, saved where named.
  auto r = svc.handle("POST", "/admin/reload", R"({"weights": ")" + tmp.file("w2.safetensors") + R"(", "index": ")" +
                                                  tmp.file("new.idx") + R"(", "create_index": true})");
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["index_created"] == true);
  CHECK(svc.snapshot()->store->backend() == "hnsw:M=8,ef_construction=40");
  CHECK(svc.ready().status == 200);
  CHECK(svc.save_on_shutdown() == "saved 299 vectors to " + tmp.file("new.idx"));
  CHECK(stored_backend(tmp.file("new.idx")) == "hnsw:M=8,ef_construction=40");
  CHECK(load_vector_store(tmp.file("new.idx"))->source_fingerprint() == item_fingerprint(other_weights()));
  // A remote store is never built into by a reload.
  check_error(svc.handle("POST", "/admin/reload", R"({"store": "milvus://127.0.0.1:1/items", "index": ")" +
                                                      tmp.file("none.idx") + R"(", "create_index": true})"),
              409, "", "never writes into a store other services");
}

#if MINDREC_HAS_HNSW
TEST_CASE("serve: a reload computes outside the compute slots - requests are answered while it builds - writes meanwhile get 409") {
  // Review F12: the reload ran inside a compute slot (on one thread): with one slot, every
  // request waited for it. Here a hook inside the reload's build (the new graph complete, not
  // yet swapped) makes a recall and a write on another thread.
  test::TempDir tmp;
  serve::ServiceOptions o;
  o.compute_slots = 1;
  auto svc = service_from_files(tmp, o);
  const std::string probe = R"({"top_k": 5, "hist_item": [[43, 23, 65]]})";
  const auto before = svc.handle("POST", "/rec/recall", probe).body;
  std::string during_recall;
  int during_write = 0;
  detail::arm_hook("hnsw.rebuilt", [&] {
    auto f = std::async(std::launch::async, [&] {
      during_recall = svc.handle("POST", "/rec/recall", probe).body;
      during_write = svc.handle("POST", "/rec/items", R"({"ids": [5], "vectors": [[1,1,1,1,1,1,1,1]]})").status;
    });
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready)
      FAIL_CHECK("a recall waited for the reload (it holds the only compute slot)");
  });
  const auto r = svc.handle("POST", "/admin/reload", R"({"store": "hnsw:M=8,ef_construction=40?ef=300"})");
  detail::disarm_fault();
  CHECK(r.status == 200);
  CHECK(during_recall == before);  // the old model answered
  CHECK(during_write == 409);      // refused: it would have gone to the store being replaced
  CHECK(svc.snapshot()->store->backend() == "hnsw:M=8,ef_construction=40");
}
#endif

TEST_CASE("serve: /readyz fails while no model is loaded - after a failed reload - on an empty store - /healthz stays liveness") {
  test::TempDir tmp;
  write_small_model(tmp);
  serve::ServiceOptions o = file_options(tmp);
  serve::RecService svc(o);  // not started: loading
  CHECK(svc.ready().status == 503);
  CHECK(body_of(svc.ready())["reason"].get<std::string>().find("no model loaded yet") != std::string::npos);
  CHECK(body_of(svc.health())["status"] == "loading");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1, 2]]})"), 503, "", "no model loaded yet");
  check_error(svc.handle("POST", "/rec/count", ""), 503, "", "no model loaded yet");
  CHECK(svc.handle("GET", "/metrics", "").body.find("mindrec_ready 0") != std::string::npos);
  svc.start();  // no --index: built from the weights
  CHECK(svc.ready().status == 200);
  CHECK(body_of(svc.ready())["count"] == 299);
  CHECK(body_of(svc.health())["status"] == "ok");
  CHECK(svc.handle("GET", "/metrics", "").body.find("mindrec_ready 1") != std::string::npos);
  CHECK(svc.handle("POST", "/qa/drop", "").status == 200);
  CHECK(svc.ready().status == 503);
  CHECK(body_of(svc.ready())["reason"].get<std::string>().find("the store is empty") != std::string::npos);
  CHECK(svc.handle("POST", "/rec/insert_data", "").status == 200);
  CHECK(svc.ready().status == 200);
  // A start whose index file is missing fails, naming it (no silent empty or built store).
  serve::ServiceOptions bad_index = o;
  bad_index.reload.index = tmp.file("itmes.idx");
  serve::RecService typo(bad_index);
  CHECK_THROWS_WITH_AS(typo.start(), doctest::Contains("itmes.idx' does not exist"), IoError);
  CHECK(typo.ready().status == 503);
}

#if MINDREC_HAS_MILVUS
TEST_CASE("serve: /readyz fails while the store's server cannot be reached") {
  // A Milvus stand-in that answers what attaching and counting need, then goes away.
  httplib::Server fake;
  fake.Get("/v1/vector/collections/describe", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"J({"code":200,"data":{"collectionName":"items","enableDynamicField":true,
      "fields":[{"autoId":true,"name":"id","primaryKey":true,"type":"Int64"},
                {"autoId":false,"name":"vector","primaryKey":false,"type":"FloatVector(8)"}],
      "indexes":[{"fieldName":"vector","indexName":"vector_idx","metricType":"IP"}],"load":"LoadStateLoaded"}})J",
                    "application/json");
  });
  fake.Post("/v1/vector/query", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"J({"code":200,"data":[{"count(*)":299}]})J", "application/json");
  });
  const int port = fake.bind_to_any_port("127.0.0.1");
  std::thread t([&] { fake.listen_after_bind(); });
  while (!fake.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto store = make_vector_store("milvus://127.0.0.1:" + std::to_string(port) + "/items?timeout=0.5&retries=0", 8);
  serve::RecService svc(make_snapshot(std::make_shared<const MindModel>(small_weights()), std::move(store)), {});
  CHECK(svc.ready().status == 200);
  fake.stop();
  t.join();
  CHECK(svc.ready().status == 503);
  CHECK(body_of(svc.ready())["reason"].get<std::string>().find("cannot be reached") != std::string::npos);
  CHECK(svc.health().status == 200);  // liveness: the process is fine
}
#endif

TEST_CASE("serve: /rec/recall takes rerank per request - items written through /rec/items keep the store's score") {
  auto svc = make_service();
  svc.handle("POST", "/rec/insert_data", "");
  const std::string probe = R"({"top_k": 5, "hist_item": [[43, 23, 65]]})";
  const json plain = body_of(svc.handle("POST", "/rec/recall", probe));
  // A flat store's scores are exact: reranked, the same answer.
  const json rr = body_of(svc.handle("POST", "/rec/recall", R"({"top_k": 5, "rerank": 3, "hist_item": [[43, 23, 65]]})"));
  CHECK(rr["ids"] == plain["ids"]);
  // Item 40 replaced by a vector far along the user's best interest: first, with and without
  // rerank (which would score it by the model's old row, far down, without the service's note).
  const MindModel& m = svc.model();
  const int H = m.config().hidden_size, K = m.config().capsule.max_k;
  int64_t hist[6] = {43, 23, 65, 0, 0, 0};
  const int32_t len = 3;
  std::vector<float> interests(size_t(K) * H);
  int32_t count = 0;
  m.extract_interests(hist, &len, 1, interests.data(), &count);
  json vec = json::array();
  for (int j = 0; j < H; ++j) vec.push_back(interests[size_t(j)] * 50);
  REQUIRE(svc.handle("POST", "/rec/items", json{{"ids", {40}}, {"vectors", {vec}}}.dump()).status == 200);
  CHECK(body_of(svc.handle("POST", "/rec/recall", probe))["ids"][0][0] == 40);
  const json after = body_of(svc.handle("POST", "/rec/recall", R"({"top_k": 5, "rerank": 3, "hist_item": [[43, 23, 65]]})"));
  CHECK(after["ids"][0][0] == 40);
  check_error(svc.handle("POST", "/rec/recall", R"({"rerank": 101, "hist_item": [[1]]})"), 400, "rerank", "[0, 100]");
  check_error(svc.handle("POST", "/rec/recall", R"({"rerank": "x", "hist_item": [[1]]})"), 400, "rerank", "integer");
}

TEST_CASE("serve: requests keep answering on either model while reloads swap it (threads)") {
  test::TempDir tmp;
  auto svc = service_from_files(tmp);
  svc.handle("POST", "/rec/insert_data", "");
  save_weights(tmp.file("w2.safetensors"), other_weights());
  const std::string recall_body = R"({"top_k": 10, "hist_item": [[43, 23, 65]]})";
  const auto a = body_of(svc.handle("POST", "/rec/recall", recall_body))["ids"][0];
  const MindModel fresh(other_weights());
  auto oracle = build_item_store(fresh, "flat");
  const json b = library_recall(fresh, *oracle, {43, 23, 65}, 10);
  std::atomic<bool> done{false};
  std::atomic<int> ok_a{0}, ok_b{0}, bad{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t)
    clients.emplace_back([&] {
      while (!done) {
        const auto r = svc.handle("POST", "/rec/recall", recall_body);
        if (r.status != 200) ++bad;
        else if (body_of(r)["ids"][0] == a) ++ok_a;
        else if (body_of(r)["ids"][0] == b) ++ok_b;
        else ++bad;  // never a mix of the two models
      }
    });
  for (int i = 0; i < 6; ++i) {
    const int seen = ok_a + ok_b + bad;
    while (ok_a + ok_b + bad < seen + 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // requests run
    const std::string w = i % 2 == 0 ? tmp.file("w2.safetensors") : tmp.file("w.safetensors");
    CHECK(svc.handle("POST", "/admin/reload", R"({"weights": ")" + w + R"("})").status == 200);
  }
  done = true;
  for (auto& t : clients) t.join();
  CHECK(bad == 0);
  CHECK(ok_a > 0);  // both models answered
  CHECK(ok_b > 0);
  CHECK(svc.generation() == 6);
}

TEST_CASE("serve: GET /metrics is valid Prometheus text with per-endpoint counts - latencies and the model") {
  test::TempDir tmp;
  auto svc = service_from_files(tmp);
  svc.handle("POST", "/rec/insert_data", "");
  for (int i = 0; i < 5; ++i) svc.handle("POST", "/rec/recall", R"({"top_k": 3, "hist_item": [[1, 2]]})");
  svc.handle("POST", "/rec/recall", R"({"top_k": 0, "hist_item": [[1]]})");  // 400
  svc.handle("GET", "/nowhere", "");                                        // 404
  // 3 users, one without clicks (fallback: 3 popular items of the 5 asked: a short list);
  // refused ids: one padding, one out of range (400s)
  CHECK(svc.handle("POST", "/rec/recall", R"({"top_k": 5, "hist_item": [[1, 2], [], [7]]})").status == 200);
  CHECK(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1, 0]]})").status == 400);
  CHECK(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1, 300]]})").status == 400);
  svc.handle("POST", "/admin/reload", "");
  svc.handle("POST", "/admin/reload", R"({"weights": "/missing"})");
  const auto r = svc.handle("GET", "/metrics", "");
  REQUIRE(r.status == 200);
  CHECK(r.content_type.find("text/plain; version=0.0.4") == 0);
  const auto m = parse_prometheus(r.body);
  CHECK(m.at(R"(mindrec_requests_total{endpoint="/rec/recall",status="200"})") == 6);
  CHECK(m.at(R"(mindrec_requests_total{endpoint="/rec/recall",status="400"})") == 3);
  CHECK(m.at(R"(mindrec_request_errors_total{endpoint="/rec/recall",status="400"})") == 3);
  CHECK(m.at(R"(mindrec_requests_total{endpoint="other",status="404"})") == 1);
  CHECK(m.at(R"(mindrec_request_duration_seconds_count{endpoint="/rec/recall"})") == 9);
  CHECK(m.at(R"(mindrec_request_duration_seconds_bucket{endpoint="/rec/recall",le="+Inf"})") == 9);
  // what a user can alert on: fallbacks, short lists, refused ids, batch sizes, the model's
  // recorded evaluation and its ratio to popularity, the process
  CHECK(m.at(R"(mindrec_recall_users_total{result="recalled"})") == 7);
  CHECK(m.at(R"(mindrec_recall_users_total{result="fallback"})") == 1);
  CHECK(m.at("mindrec_recall_short_results_total") == 1);
  CHECK(m.at("mindrec_recall_empty_results_total") == 0);
  CHECK(m.at(R"(mindrec_refused_ids_total{reason="padding"})") == 1);
  CHECK(m.at(R"(mindrec_refused_ids_total{reason="out_of_range"})") == 1);
  CHECK(m.at(R"(mindrec_recall_batch_users_bucket{le="1"})") == 5);
  CHECK(m.at(R"(mindrec_recall_batch_users_bucket{le="4"})") == 6);
  CHECK(m.at("mindrec_recall_batch_users_sum") == 8);
  CHECK(m.at(R"(mindrec_model_evaluation{metric="recall@50"})") == doctest::Approx(0.2));
  CHECK(m.at("mindrec_model_recall50_vs_popularity") == doctest::Approx(4.0));
  CHECK(m.at("mindrec_model_popular_items") == 3);
  CHECK(m.count(std::string(R"(mindrec_build_info{version=")") + MINDREC_VERSION_STRING + R"("})"));
#if defined(__linux__)
  CHECK(m.at("process_resident_memory_bytes") > 1e6);
  CHECK(m.at("process_open_fds") >= 3);
  CHECK(m.at("process_cpu_seconds_total") > 0);
#endif
  CHECK(m.at(R"(mindrec_request_duration_seconds_sum{endpoint="/rec/recall"})") > 0);
  CHECK(m.at("mindrec_store_vectors") == 299);
  CHECK(m.at(R"(mindrec_reloads_total{result="ok"})") == 1);
  CHECK(m.at(R"(mindrec_reloads_total{result="error"})") == 1);
  CHECK(m.at("mindrec_snapshot_generation") == 1);
  CHECK(m.at("mindrec_model_loaded_timestamp_seconds") > 1.7e9);
  CHECK(m.count(R"(mindrec_model_info{fingerprint=")" + fingerprint_hex(item_fingerprint(small_weights())) +
                R"(",backend="flat",store="flat",weights=")" + tmp.file("w.safetensors") + R"("})"));
  // The text is also written out for the independent parser of the CI (prometheus_client).
  if (const char* out = std::getenv("MINDREC_METRICS_SAMPLE")) std::ofstream(out) << r.body;
}

TEST_CASE("serve: with a token the mutating endpoints need it (401 without - 403 wrong) and the others stay open") {
  serve::ServiceOptions o;
  o.token = "s3cret-token";
  auto svc = make_service(o);
  const char* mutating[][2] = {{"/rec/insert_data", ""}, {"/rec/items", R"({"ids": [1], "vectors": [[1,1,1,1,1,1,1,1]]})"},
                               {"/rec/items/delete", R"({"ids": [1]})"}, {"/qa/drop", ""}, {"/rec/drop", ""},
                               {"/rec/save", ""}, {"/admin/reload", ""}};
  for (const auto& [path, body] : mutating) {
    CAPTURE(path);
    check_error(svc.handle("POST", path, body), 401, "", "Authorization: Bearer");
    check_error(svc.handle("POST", path, body, "Bearer wrong"), 403, "", "not the one");
    check_error(svc.handle("POST", path, body, "Basic czNjcmV0LXRva2Vu"), 403, "", "not the one");
    check_error(svc.handle("POST", path, body, "Bearer s3cret-token-longer"), 403, "", "not the one");
  }
  CHECK(svc.store().size() == 0);  // nothing got through
  CHECK(svc.handle("POST", "/rec/insert_data", "", "Bearer s3cret-token").status == 200);
  CHECK(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1]]})").status == 200);  // open
  CHECK(svc.handle("GET", "/healthz", "").status == 200);
  CHECK(svc.handle("GET", "/metrics", "").status == 200);
  CHECK(svc.handle("POST", "/rec/count", "").status == 200);
  // Without a token configured nothing is asked.
  auto open = make_service();
  CHECK(open.handle("POST", "/rec/insert_data", "").status == 200);
}

// ---- the real server ----

namespace {

class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    args.insert(args.begin(), MINDREC_SERVE_BIN);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, MINDREC_SERVE_BIN, &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    // First stdout line: "... listening on http://127.0.0.1:PORT (...)".
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    // "... listening on http://HOST:PORT (...)"
    const auto http = line.find("http://");
    const auto colon = http == std::string::npos ? http : line.find(':', http + 7);
    if (colon == std::string::npos) {  // no server to talk to: do not leave it running
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    REQUIRE_MESSAGE(colon != std::string::npos, "server said: " << line);
    port_ = std::stoi(line.substr(colon + 1));
    // The model loads after the port is bound: wait until /healthz no longer says "loading".
    httplib::Client cli("127.0.0.1", port_);
    for (int i = 0; i < 6000; ++i) {
      auto r = cli.Get("/healthz");
      if (r && r->status == 200 && json::parse(r->body)["status"] != "loading") break;
      int status = 0;
      REQUIRE_MESSAGE(::waitpid(pid_, &status, WNOHANG) == 0, "the server exited while loading");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// Sends `sig` and returns the exit status.
  int stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("serve: the real server on a loopback port - the seed's curl session - SIGTERM saves") {
  test::TempDir tmp;
  save_weights(tmp.file("w.safetensors"), small_weights());
  tmp.write("c.yaml",
            "runner:\n  train_data_dir: x\n  test_data_dir: y\n"
            "hyper_parameters:\n  item_count: 300\n  embedding_dim: 8\n  hidden_size: 8\n  maxlen: 6\n"
            "  neg_samples: 10\n  capsule:\n    max_k: 3\n");
  const std::string index = tmp.file("items.idx");
  std::vector<int64_t> first_answer;
  {
    ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--index", index,
                       "--create-index", "--port", "0", "--threads", "4", "--max-body-mb", "0.01", "--quiet"});
    httplib::Client cli("127.0.0.1", srv.port());
    // The seed's four calls; insert_data and count are POSTs with no body at all.
    auto r = cli.Post("/rec/insert_data");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body) == json{{"inserted", 299}, {"count", 299}});
    r = cli.Post("/rec/count");
    REQUIRE(r);
    CHECK(json::parse(r->body) == json{{"count", 299}});
    r = cli.Post("/rec/recall", R"({"top_k": 10, "hist_item": [[43, 23, 65], [675 ,3]]})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);  // 675 is no item of this 300-item model
    CHECK(json::parse(r->body)["error"]["field"] == "hist_item[1][0]");
    r = cli.Post("/rec/recall", R"({"top_k": 10, "hist_item": [[43, 23, 65], [67, 3]]})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    const json j = json::parse(r->body);
    REQUIRE(j["ids"].size() == 2);
    first_answer = j["ids"][0].get<std::vector<int64_t>>();
    CHECK(first_answer.size() == 10);
    // Many clients at once: every answer the same.
    std::vector<std::thread> clients;
    std::atomic<int> same{0};
    for (int t = 0; t < 4; ++t)
      clients.emplace_back([&] {
        httplib::Client c("127.0.0.1", srv.port());
        for (int i = 0; i < 25; ++i) {
          auto rr = c.Post("/rec/recall", R"({"top_k": 10, "hist_item": [[43, 23, 65]]})", "application/json");
          if (rr && rr->status == 200 && json::parse(rr->body)["ids"][0].get<std::vector<int64_t>>() == first_answer)
            ++same;
        }
      });
    for (auto& t : clients) t.join();
    CHECK(same == 100);
    // Over the body limit: 413 with a JSON error.
    r = cli.Post("/rec/recall", std::string(20000, ' '), "application/json");
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(json::parse(r->body)["error"]["status"] == 413);
    r = cli.Get("/healthz");
    REQUIRE(r);
    CHECK(json::parse(r->body)["count"] == 299);
    r = cli.Get("/docs");
    REQUIRE(r);
    CHECK(r->get_header_value("Content-Type").find("text/html") == 0);
    // Remove two items, then SIGTERM: the store is saved with 297 vectors.
    r = cli.Post("/rec/items/delete", R"({"ids": [1, 2]})", "application/json");
    REQUIRE(r);
    CHECK(json::parse(r->body)["count"] == 297);
    CHECK(srv.stop(SIGTERM) == 0);
  }
  auto saved = load_vector_store(index);
  CHECK(saved->size() == 297);
  {
    // Restarted on the saved file: it answers from it at once, and /qa/drop empties it.
    ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--index", index,
                       "--port", "0", "--quiet"});
    httplib::Client cli("127.0.0.1", srv.port());
    auto r = cli.Post("/rec/count");
    REQUIRE(r);
    CHECK(json::parse(r->body)["count"] == 297);
    r = cli.Post("/rec/recall", R"({"top_k": 10, "hist_item": [[43, 23, 65]]})", "application/json");
    REQUIRE(r);
    auto ids = json::parse(r->body)["ids"][0].get<std::vector<int64_t>>();
    std::vector<int64_t> want;
    for (auto id : first_answer)
      if (id != 1 && id != 2) want.push_back(id);
    ids.resize(want.size());
    CHECK(ids == want);
    r = cli.Post("/qa/drop");
    REQUIRE(r);
    CHECK(json::parse(r->body) == json{{"dropped", 297}, {"count", 0}});
    CHECK(srv.stop(SIGINT) == 0);
  }
  CHECK(load_vector_store(index)->size() == 0);
}

namespace {

// Runs the server binary to completion; returns its exit status and stdout+stderr.
std::pair<int, std::string> run_server_binary(const std::string& args) {
  const std::string cmd = std::string(MINDREC_SERVE_BIN) + " " + args + " 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("serve: the real server - token over HTTP - no token on a non-loopback address is refused unless --insecure") {
  test::TempDir tmp;
  write_small_model(tmp);
  const std::string base = "--config " + tmp.file("c.yaml") + " --weights " + tmp.file("w.safetensors") + " --port 0 --quiet";
  const auto [code, out] = run_server_binary(base + " --host 0.0.0.0");
  CHECK(code == 1);
  CHECK(out.find("without a token: pass --token-file FILE, or --insecure") != std::string::npos);
  {
    ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--port", "0",
                       "--host", "0.0.0.0", "--insecure", "--quiet"});
    httplib::Client cli("127.0.0.1", srv.port());
    auto r = cli.Post("/rec/insert_data");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(srv.stop(SIGTERM) == 0);
  }
  tmp.write("token", "abc-123\n");
  ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--port", "0",
                     "--host", "0.0.0.0", "--token-file", tmp.file("token"), "--quiet"});
  httplib::Client cli("127.0.0.1", srv.port());
  auto r = cli.Post("/rec/insert_data");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->get_header_value("WWW-Authenticate") == "Bearer");
  CHECK(json::parse(r->body)["error"]["status"] == 401);
  r = cli.Post("/rec/insert_data", httplib::Headers{{"Authorization", "Bearer nope"}}, "", "application/json");
  REQUIRE(r);
  CHECK(r->status == 403);
  r = cli.Post("/rec/insert_data", httplib::Headers{{"Authorization", "Bearer abc-123"}}, "", "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  r = cli.Post("/rec/recall", R"({"hist_item": [[1, 2]]})", "application/json");  // open
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(srv.stop(SIGTERM) == 0);
}

TEST_CASE("serve: the real server - access log lines with X-Request-Id - SIGHUP reloads - a mismatched index is refused") {
  test::TempDir tmp;
  write_small_model(tmp);
  const std::string log = tmp.file("access.log");
  const std::string index = tmp.file("items.idx");
  ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--port", "0",
                     "--index", index, "--create-index", "--access-log", log});
  httplib::Client cli("127.0.0.1", srv.port());
  auto r = cli.Post("/rec/insert_data", httplib::Headers{{"X-Request-Id", "req-42.a_b"}}, "", "application/json");
  REQUIRE(r);
  CHECK(r->get_header_value("X-Request-Id") == "req-42.a_b");
  r = cli.Get("/healthz", httplib::Headers{{"X-Request-Id", "bad id with spaces"}});
  REQUIRE(r);
  const std::string generated = r->get_header_value("X-Request-Id");
  CHECK(std::regex_match(generated, std::regex("[0-9a-f]{16}")));
  const std::string fp1 = json::parse(r->body)["fingerprint"];
  // SIGHUP: the weights file was replaced by a deploy; the server reloads it (no index file
  // yet: the store is built from the new weights).
  save_weights(tmp.file("w.safetensors"), other_weights());
  ::kill(srv.pid(), SIGHUP);
  std::string fp2 = fp1;
  for (int i = 0; i < 100 && fp2 == fp1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    r = cli.Get("/healthz");
    if (r) fp2 = json::parse(r->body)["fingerprint"];
  }
  CHECK(fp2 == fingerprint_hex(item_fingerprint(other_weights())));
  CHECK(json::parse(r->body)["generation"] == 1);
  CHECK(json::parse(r->body)["count"] == 299);
  CHECK(srv.stop(SIGTERM) == 0);
  // The access log: one JSON line per request, in order, with the ids.
  std::istringstream lines(read_text(log));
  std::vector<json> entries;
  for (std::string line; std::getline(lines, line);) entries.push_back(json::parse(line));
  while (!entries.empty() && entries[0]["path"] == "/healthz") entries.erase(entries.begin());  // the start-up wait's
  REQUIRE(entries.size() >= 3);
  CHECK(entries[0]["method"] == "POST");
  CHECK(entries[0]["path"] == "/rec/insert_data");
  CHECK(entries[0]["status"] == 200);
  CHECK(entries[0]["request_id"] == "req-42.a_b");
  CHECK(entries[0]["latency_ms"].get<double>() >= 0);
  CHECK(std::regex_match(entries[0]["time"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  CHECK(entries[1]["request_id"] == generated);
  // The saved store holds the new weights' vectors; started beside the old weights it is
  // refused, unless allowed.
  save_weights(tmp.file("w.safetensors"), small_weights());
  const auto [code, out] = run_server_binary("--config " + tmp.file("c.yaml") + " --weights " + tmp.file("w.safetensors") +
                                             " --index " + index + " --port 0 --quiet");
  CHECK(code == 1);
  CHECK(out.find("not of the loaded weights") != std::string::npos);
  ServerProcess allowed({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--index", index,
                         "--port", "0", "--quiet", "--allow-mismatched-index"});
  CHECK(allowed.stop(SIGTERM) == 0);
}

TEST_CASE("serve: the real server - SIGTERM during a long SIGHUP reload exits at once - SIGHUP reopens the access log") {
  // Review F11: SIGHUP's reload ran on the signal thread, so SIGTERM waited for it; and the
  // access log was never reopened after logrotate moved it. Here the reload builds an HNSW
  // graph of 200,000 items (ef_construction 400: tens of seconds on 2 cores); SIGTERM must end
  // the server long before that.
  test::TempDir tmp;
  ModelConfig c = test::small_config();
  c.item_count = 200001;
  const MindWeights w = init_weights(c, 5);
  save_weights(tmp.file("w.safetensors"), w);
  tmp.write("c.yaml", "runner:\n  train_data_dir: x\n  test_data_dir: y\n"
                      "hyper_parameters:\n  item_count: 200001\n  embedding_dim: 8\n  hidden_size: 8\n  maxlen: 6\n"
                      "  neg_samples: 10\n  capsule:\n    max_k: 3\n");
  {
    auto small = make_vector_store("hnsw:M=16,ef_construction=400", 8);  // 10 items: loads at once
    std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    small->add(10, w.item_emb.data() + 8, ids.data());
    small->save(tmp.file("items.idx"));
  }
  const std::string log = tmp.file("access.log");
  ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--index", tmp.file("items.idx"),
                     "--create-index", "--access-log", log, "--drain-seconds", "2", "--port", "0"});
  httplib::Client cli("127.0.0.1", srv.port());
  REQUIRE(cli.Get("/healthz", httplib::Headers{{"X-Request-Id", "before-rotation"}}));
  std::filesystem::rename(log, log + ".1");           // logrotate
  std::filesystem::remove(tmp.file("items.idx"));     // the next reload builds (create_index)
  ::kill(srv.pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the build is under way
  auto r = cli.Get("/healthz", httplib::Headers{{"X-Request-Id", "after-rotation"}});
  REQUIRE(r);
  CHECK(json::parse(r->body)["generation"] == 0);  // still loading the new one
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(srv.stop(SIGTERM) == 0);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CAPTURE(waited);
  CHECK(waited < 10);
  CHECK(read_text(log + ".1").find("before-rotation") != std::string::npos);
  CHECK(read_text(log).find("after-rotation") != std::string::npos);   // the file reopened
  CHECK(read_text(log + ".1").find("after-rotation") == std::string::npos);
}

TEST_CASE("serve: SIGTERM under load - in-flight requests are answered - no request fails - the store is saved - exit 0") {
  test::TempDir tmp;
  write_small_model(tmp);
  const std::string index = tmp.file("items.idx");
  ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--port", "0",
                     "--index", index, "--create-index", "--threads", "8", "--quiet"});
  {
    httplib::Client cli("127.0.0.1", srv.port());
    auto r = cli.Post("/rec/insert_data");
    REQUIRE(r);
  }
  // Big requests (1,000 users each) keep the server busy; SIGTERM lands while some are in flight.
  std::string big = R"({"top_k": 50, "hist_item": [)";
  for (int u = 0; u < 1000; ++u) big += std::string(u ? "," : "") + "[" + std::to_string(1 + u % 299) + ", 7, 9]";
  big += "]}";
  std::atomic<int> answered{0}, failed{0}, unreachable{0};
  std::atomic<bool> go{true};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t)
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", srv.port());
      while (go) {
        auto r = c.Post("/rec/recall", big, "application/json");
        if (!r) {
          ++unreachable;  // after the server stopped accepting
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        if (r->status == 200) ++answered;
        else ++failed;
      }
    });
  while (answered < 12) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int status = srv.stop(SIGTERM);
  go = false;
  for (auto& t : clients) t.join();
  CHECK(status == 0);
  CHECK(failed == 0);  // every request that was answered was answered 200
  CHECK(answered >= 12);
  CHECK(load_vector_store(index)->size() == 299);
}

TEST_CASE("serve: SIGTERM while a long request runs - it is answered before the server saves and exits") {
  // 367,983 items x 64: /rec/insert_data takes a good fraction of a second here.
  test::TempDir tmp;
  tmp.write("c.yaml",
            "runner:\n  train_data_dir: x\n  test_data_dir: y\n"
            "hyper_parameters:\n  item_count: 367983\n  embedding_dim: 64\n  hidden_size: 64\n  neg_samples: 10\n");
  ModelConfig c;
  c.item_count = 367983;
  c.neg_samples = 10;
  save_weights(tmp.file("w.safetensors"), init_weights(c, 3));
  const std::string index = tmp.file("items.idx");
  ServerProcess srv({"--config", tmp.file("c.yaml"), "--weights", tmp.file("w.safetensors"), "--port", "0",
                     "--index", index, "--create-index", "--max-projection-mb", "0", "--quiet"});
  httplib::Client cli("127.0.0.1", srv.port());
  cli.set_read_timeout(60);
  auto slow = std::async(std::launch::async, [&] { return cli.Post("/rec/insert_data"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the request is in flight
  const int status = srv.stop(SIGTERM);
  const auto r = slow.get();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(json::parse(r->body)["inserted"] == 367982);
  CHECK(status == 0);
  CHECK(load_vector_store(index)->size() == 367982);  // saved after the request finished
}

TEST_CASE("serve: every endpoint is in /openapi.json and /docs") {
  const json doc = json::parse(serve::RecService::openapi_json());
  for (const char* path : {"/rec/insert_data", "/rec/recall", "/rec/count", "/qa/drop", "/rec/drop", "/rec/items",
                           "/rec/items/delete", "/rec/save", "/admin/reload", "/metrics", "/healthz",
                           "/openapi.json", "/docs"}) {
    CAPTURE(path);
    CHECK(doc["paths"].contains(path));
    CHECK(serve::RecService::docs_html().find(std::string("<code>") + path + "</code>") != std::string::npos);
  }
  // Every example of the document, request and response, "example" and each of "examples",
  // is on the page (the page once read a missing "example" through a const operator[]:
  // undefined behaviour that crashed the server now and then on GET /docs; and it skipped
  // "examples").
  const std::string& html = serve::RecService::docs_html();
  auto escaped = [](const json& e) {
    std::string out;
    for (char c : e.dump())
      out += c == '"' ? "&quot;" : c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
    return out;
  };
  auto examples_in = [](const json& media) {
    std::vector<json> shown;
    if (media.contains("example")) shown.push_back(media["example"]);
    if (media.contains("examples"))
      for (const auto& [name, e] : media["examples"].items()) shown.push_back(e["value"]);
    return shown;
  };
  int requests = 0, responses = 0;
  for (const auto& [path, methods] : doc["paths"].items())
    for (const auto& [method, op] : methods.items()) {
      CAPTURE(path);
      if (op.contains("requestBody") && op["requestBody"]["content"].contains("application/json"))
        for (const json& e : examples_in(op["requestBody"]["content"]["application/json"])) {
          CHECK(html.find("localhost:8000" + path + " -H 'Content-Type: application/json' -d '" + escaped(e) + "'</pre>") !=
                std::string::npos);
          ++requests;
        }
      if (!op.contains("responses")) continue;
      for (const auto& [code, r] : op["responses"].items()) {
        if (!r.contains("content") || !r["content"].contains("application/json")) continue;
        CAPTURE(code);
        for (const json& e : examples_in(r["content"]["application/json"])) {
          CHECK(html.find("<pre>" + escaped(e) + "</pre>") != std::string::npos);
          ++responses;
        }
      }
    }
  CHECK(requests >= 7);  // two of /rec/recall, two of /rec/items, one each of three others
  CHECK(responses >= 10);
}

namespace {
// The small model's raw ids: "SKU-<id>", and digits-only ids for multiples of 5 ("1065").
std::string raw_of(int64_t id) { return id % 5 == 0 ? std::to_string(1000 + id) : "SKU-" + std::to_string(id); }
std::vector<std::string> raws_of(const std::vector<int64_t>& ids) {
  std::vector<std::string> r;
  for (const int64_t id : ids) r.push_back(raw_of(id));
  return r;
}
}  // namespace

TEST_CASE("serve: raw ids with the model's catalogue - unknown ids listed - retired never returned - items by raw id") {
  test::TempDir tmp;
  tmp.write("c.yaml", kSmallConfig);
  const MindWeights w = small_weights();
  const MindModel model(w);
  // Retire the two items the full store ranks first for the test history: they must vanish.
  auto full = build_item_store(model, "flat");
  const std::vector<int64_t> full_top = library_recall(model, *full, {43, 23, 65}, 10);
  Catalogue cat;
  for (int64_t id = 1; id < 300; ++id)
    cat.add(raw_of(id), id == full_top[0] || id == full_top[1] ? ItemStatus::retired : ItemStatus::active);
  cat.save(tmp.file("catalogue.csv"));
  save_weights(tmp.file("w.safetensors"), w, {11, 3, 250}, {}, 0, cat.fingerprint(300));
  serve::ServiceOptions o = file_options(tmp, "items.idx");
  o.reload.create_index = true;
  serve::RecService svc(load_snapshot(o.reload), o);
  CHECK(svc.store().size() == 297);  // built from the weights: the active items only
  CHECK(body_of(svc.handle("GET", "/healthz", ""))["catalogue"] == tmp.file("catalogue.csv"));
  // the oracle: the library on a store without the retired items
  auto active = build_item_store(model, "flat", cat);
  const std::vector<int64_t> want = library_recall(model, *active, {43, 23, 65}, 10);
  CHECK(want[0] == full_top[2]);

  // The seed's dense call is unchanged.
  auto r = svc.handle("POST", "/rec/recall", R"({"top_k": 10, "hist_item": [[43, 23, 65]]})");
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["ids"][0].get<std::vector<int64_t>>() == want);
  // Raw: strings, a number read as its decimal text, an unknown id skipped and listed; a
  // history with no known id gets the popular items, flagged.
  r = svc.handle("POST", "/rec/recall",
                 R"({"ids": "raw", "top_k": 10, "hist_item": [["SKU-43", "SKU-23", 1065, "nope"], ["nope", "SKU-999"], []]})");
  REQUIRE(r.status == 200);
  json j = body_of(r);
  CHECK(j["ids"][0].get<std::vector<std::string>>() == raws_of(want));
  CHECK(j["ids"][1].get<std::vector<std::string>>() == raws_of({11, 3, 250}));
  CHECK(j["ids"][2].get<std::vector<std::string>>() == raws_of({11, 3, 250}));
  CHECK(j["unknown"] == json::parse(R"([["nope"], ["nope", "SKU-999"], []])"));
  CHECK(j["fallback"] == json::parse(R"([null, "popularity", "popularity"])"));
  for (const auto& id : j["ids"][0]) CHECK((id != raw_of(full_top[0]) && id != raw_of(full_top[1])));
  CHECK(svc.handle("GET", "/metrics", "").body.find("\nmindrec_recall_unknown_raw_ids_total 3\n") != std::string::npos);

  // /rec/items by raw id: a new raw id gets the next dense id (300) and is recalled at once;
  // it is no model row, so in a history it is unknown.
  std::vector<float> v(8);
  for (int c = 0; c < 8; ++c) v[size_t(c)] = 100 * w.item_emb[size_t(want[0]) * 8 + size_t(c)];
  r = svc.handle("POST", "/rec/items", json{{"raw_ids", {"NEW-1"}}, {"vectors", {v}}}.dump());
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["new_ids"] == 1);
  CHECK(body_of(r)["count"] == 298);
  CHECK(svc.snapshot()->catalogue->to_dense("NEW-1") == 300);
  const std::string raw_body = R"({"ids": "raw", "top_k": 10, "hist_item": [["SKU-43", "SKU-23", "1065", "NEW-1"]]})";
  j = body_of(svc.handle("POST", "/rec/recall", raw_body));
  CHECK(j["ids"][0][0] == "NEW-1");
  CHECK(j["unknown"][0] == json::array({"NEW-1"}));
  // a known raw id keeps its id
  r = svc.handle("POST", "/rec/items", json{{"raw_ids", {"SKU-43"}}, {"vectors", {v}}}.dump());
  CHECK(body_of(r)["replaced"] == 1);
  CHECK(body_of(r)["new_ids"] == 0);
  // delete by raw id: unknown ids listed; the item is gone and retired; an upsert brings it back with its id
  r = svc.handle("POST", "/rec/items/delete", R"({"raw_ids": ["NEW-1", "zzz"]})");
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["removed"] == 1);
  CHECK(body_of(r)["unknown"] == json::array({"zzz"}));
  CHECK(body_of(svc.handle("POST", "/rec/recall", raw_body))["ids"][0][0] != "NEW-1");
  r = svc.handle("POST", "/rec/items", json{{"raw_ids", {"NEW-1"}}, {"vectors", {v}}}.dump());
  CHECK(body_of(r)["new_ids"] == 0);
  CHECK(svc.snapshot()->catalogue->to_dense("NEW-1") == 300);
  CHECK(svc.snapshot()->catalogue->status(300) == ItemStatus::active);

  // Bad requests: 400 naming the field, nothing changed.
  const int64_t before = svc.store().size();
  check_error(svc.handle("POST", "/rec/items", json{{"raw_ids", {"a,b"}}, {"vectors", {v}}}.dump()), 400, "raw_ids[0]",
              "holds a comma");
  check_error(svc.handle("POST", "/rec/items", json{{"raw_ids", {"X", "X"}}, {"vectors", {v, v}}}.dump()), 400, "raw_ids",
              "'X' appears twice");
  check_error(svc.handle("POST", "/rec/items", json{{"raw_ids", {"Y"}}, {"ids", {5}}, {"vectors", {v}}}.dump()), 400, "ids",
              "is required, not both");
  check_error(svc.handle("POST", "/rec/recall", R"({"ids": "raw", "hist_item": [[["x"]]]})"), 400, "hist_item[0][0]",
              "must be a raw item id");
  check_error(svc.handle("POST", "/rec/recall", R"({"ids": "names", "hist_item": [[1]]})"), 400, "ids", "must be \"raw\" or \"dense\"");
  CHECK(svc.store().size() == before);
  CHECK(svc.snapshot()->catalogue->to_dense("Y") == 0);

  // /rec/save writes the served catalogue beside the index; a new server (and a bare reload)
  // loads it: NEW-1 keeps its id; its ids a client sees are the same.
  REQUIRE(svc.handle("POST", "/rec/save", "").status == 200);
  CHECK(Catalogue::load(served_catalogue_path(tmp.file("items.idx"))).to_dense("NEW-1") == 300);
  const json answer = body_of(svc.handle("POST", "/rec/recall", raw_body));
  o.reload.create_index = false;
  serve::RecService again(load_snapshot(o.reload), o);
  CHECK(again.snapshot()->catalogue_path == served_catalogue_path(tmp.file("items.idx")));
  CHECK(body_of(again.handle("POST", "/rec/recall", raw_body)) == answer);
  REQUIRE(again.handle("POST", "/admin/reload", "").status == 200);
  CHECK(body_of(again.handle("POST", "/rec/recall", raw_body)) == answer);

  // A served catalogue of other weights beside the index is not used (the weights' own is).
  save_weights(tmp.file("w2.safetensors"), other_weights(), {11}, {}, 0, cat.fingerprint(300) ^ 1);
  o.reload.weights = tmp.file("w2.safetensors");
  o.reload.create_index = true;
  o.reload.index = tmp.file("other.idx");
  std::filesystem::copy_file(served_catalogue_path(tmp.file("items.idx")), served_catalogue_path(tmp.file("other.idx")));
  CHECK(test::error_of([&] { (void)load_snapshot(o.reload); }).find("is not the one") != std::string::npos);

  // Without a catalogue: raw ids are refused, naming the field.
  auto plain = make_service();
  check_error(plain.handle("POST", "/rec/recall", R"({"ids": "raw", "hist_item": [["a"]]})"), 400, "ids",
              "raw ids need the model's catalogue");
}

TEST_CASE("serve: raw recalls and raw item writes at once never wait on each other forever (one compute slot)") {
  // A write used to take the catalogue's lock and then wait for a compute slot, while a raw
  // recall holds a slot and waits for the lock: with one slot, a deadlock.
  const MindWeights w = small_weights();
  auto model = std::make_shared<const MindModel>(w);
  auto snap = std::const_pointer_cast<RecommenderSnapshot>(make_snapshot(model, build_item_store(*model, "flat")));
  auto cat = std::make_shared<Catalogue>();
  for (int64_t id = 1; id < 300; ++id) cat->add(raw_of(id));
  snap->catalogue = cat;
  serve::ServiceOptions o;
  o.compute_slots = 1;
  serve::RecService svc(snap, o);
  std::vector<float> v(8, 0.5f);
  auto writer = std::async(std::launch::async, [&] {
    int ok = 0;
    for (int i = 0; i < 300; ++i)
      ok += svc.handle("POST", "/rec/items", json{{"raw_ids", {"W-" + std::to_string(i % 7)}}, {"vectors", {v}}}.dump()).status == 200;
    return ok;
  });
  auto reader = std::async(std::launch::async, [&] {
    int ok = 0;
    for (int i = 0; i < 300; ++i)
      ok += svc.handle("POST", "/rec/recall", R"({"ids": "raw", "top_k": 5, "hist_item": [["SKU-43", "SKU-23"]]})").status == 200;
    return ok;
  });
  REQUIRE(writer.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  REQUIRE(reader.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  CHECK(writer.get() == 300);
  CHECK(reader.get() == 300);
  CHECK(svc.snapshot()->catalogue->size() == 299 + 7);
}

TEST_CASE("serve: filter and params on /rec/recall - attributes through /rec/items - flips visible to the next recall") {
  MindWeights w = small_weights();
  w.popular_items = {11, 3, 17, 250, 42};
  auto store = make_vector_store("flat", 8);
  store->declare_attributes({{"shelf", AttributeType::int64}, {"in_stock", AttributeType::boolean}});
  serve::RecService svc(MindModel(w), std::move(store), {});
  svc.handle("POST", "/rec/insert_data", "");
  // Attributes alone: shelf = id % 5, in stock when id % 3 != 0 (no vector touched).
  json ids = json::array(), shelf = json::array(), stock = json::array();
  for (int64_t id = 1; id < 300; ++id) ids.push_back(id), shelf.push_back(id % 5), stock.push_back(id % 3 != 0);
  auto r = svc.handle("POST", "/rec/items", json{{"ids", ids}, {"attributes", {{"shelf", shelf}, {"in_stock", stock}}}}.dump());
  CHECK(body_of(r) == json{{"attributes_set", 299}, {"count", 299}});
  // The library's answer with the same filter on a store holding the same attributes.
  auto oracle = build_item_store(svc.model(), "flat");
  oracle->declare_attributes({{"shelf", AttributeType::int64}, {"in_stock", AttributeType::boolean}});
  std::vector<int64_t> all_ids;
  std::vector<int64_t> shelves;
  std::vector<uint8_t> stocks;
  for (int64_t id = 1; id < 300; ++id) all_ids.push_back(id), shelves.push_back(id % 5), stocks.push_back(id % 3 != 0);
  AttributeBatch b;
  b.add("shelf", shelves).add_bool("in_stock", stocks);
  oracle->set_attributes(int64_t(all_ids.size()), all_ids.data(), b);
  const std::string filter = "shelf == 2 and in_stock";
  r = svc.handle("POST", "/rec/recall",
                 json{{"top_k", 10}, {"hist_item", {{43, 23, 65}, json::array()}}, {"exclude_history", true}, {"filter", filter}}.dump());
  REQUIRE(r.status == 200);
  const auto got = body_of(r)["ids"][0].get<std::vector<int64_t>>();
  REQUIRE(got.size() == 10);
  for (int64_t id : got) CHECK((id % 5 == 2 && id % 3 != 0));
  RecallOptions o;
  o.topn = 10;
  o.exclude_history = true;
  o.filter = filter;
  CHECK(got == recall_histories(svc.model(), *oracle, {{43, 23, 65}}, o).ids);
  // The no-click user gets the allowed popular items only: of 11, 3, 17, 250, 42 just 17
  // (42 is on shelf 2 but out of stock).
  CHECK(body_of(r)["ids"][1] == json{17});
  // The first item goes out of stock: the next recall skips it.
  r = svc.handle("POST", "/rec/items", json{{"ids", {got[0]}}, {"attributes", {{"in_stock", {false}}}}}.dump());
  CHECK(r.status == 200);
  r = svc.handle("POST", "/rec/recall", json{{"top_k", 10}, {"hist_item", {{43, 23, 65}}}, {"exclude_history", true}, {"filter", filter}}.dump());
  const auto after = body_of(r)["ids"][0].get<std::vector<int64_t>>();
  CHECK(std::count(after.begin(), after.end(), got[0]) == 0);
  CHECK(after[0] == got[1]);
  // Mistakes: 400 naming the field (the filter's position and token), nothing changed.
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1]], "filter": "shelf < "})"), 400, "filter",
              "position 8: 'shelf' is int64: expected a number, got 'end of expression'");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1]], "filter": "colour == 'red'"})"), 400, "filter",
              "unknown field 'colour'");
  check_error(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1]], "params": {"ef": "x"}})"), 400, "params.ef", "must be a number");
  r = svc.handle("POST", "/rec/recall", R"({"hist_item": [[1]], "params": {"ef": 64}})");
  CHECK(r.status == 400);  // flat takes threads only
  CHECK(r.body.find("not a per-call search parameter here (it takes threads") != std::string::npos);
  CHECK(svc.handle("POST", "/rec/recall", R"({"hist_item": [[1]], "params": {"threads": 1}})").status == 200);
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [1], "attributes": {"colour": ["red"]}})"), 400, "attributes.colour",
              "is not an attribute of the store (declared: shelf, in_stock)");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [1, 2], "attributes": {"shelf": [1]}})"), 400, "attributes.shelf",
              "must be an array of 2 values");
  check_error(svc.handle("POST", "/rec/items", R"({"ids": [1], "attributes": {"in_stock": [3]}})"), 400, "attributes.in_stock[0]", "");
  CHECK(oracle->filter_allows("in_stock", 1, std::vector<int64_t>{1}.data())[0] == 1);
}
