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
#include <string>
#include <thread>

#include "mindrec/error.hpp"
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
    svr_.Post("/v1/vector/search", [&](const httplib::Request&, httplib::Response& res) {
      ++searches;
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

#endif
