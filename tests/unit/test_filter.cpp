// Attributes and filter expressions (include/mindrec/attributes.hpp): the grammar against
// allowed sets worked out by hand, its errors (position and token), and the filtered search of
// every in-process store against brute force among the allowed items computed here.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "common/random_data.hpp"
#include "common/store_contract.hpp"
#include "detail/fault.hpp"
#include "detail/random.hpp"
#include "mindrec/attributes.hpp"
#include "mindrec/error.hpp"
#include "mindrec/version.hpp"
#include "mindrec/vector_store.hpp"
#include "test_util.hpp"

using namespace mindrec;

namespace {

// Six items with attributes chosen by hand (ids 0..5; id 7 has attributes but no vector).
//   id  price  category  in_stock  rating
//   0   10     shoes     true      4.5
//   1   60     bags      true      3.0
//   2   35     shoes     false     5.0
//   3   5      hats      true      2.5
//   4   49.99? (int: 49) bags false  4.0
//   5   0 (never set: the defaults 0, "", false, 0.0)
//   7   100    hats      true      1.0
std::unique_ptr<VectorStore> hand_store() {
  auto s = make_vector_store("flat", 2);
  const std::vector<float> x = {1, 0, 0.9f, 0.1f, 0.8f, 0.2f, 0.7f, 0.3f, 0.6f, 0.4f, 0.5f, 0.5f};
  const std::vector<int64_t> ids = {0, 1, 2, 3, 4, 5};
  s->add(6, x.data(), ids.data());
  s->declare_attributes({{"price", AttributeType::int64},
                         {"category", AttributeType::string},
                         {"in_stock", AttributeType::boolean},
                         {"rating", AttributeType::float64}});
  const std::vector<int64_t> with = {0, 1, 2, 3, 4, 7};
  AttributeBatch b;
  b.add("price", std::vector<int64_t>{10, 60, 35, 5, 49, 100});
  b.add("category", std::vector<std::string>{"shoes", "bags", "shoes", "hats", "bags", "hats"});
  b.add_bool("in_stock", {1, 1, 0, 1, 0, 1});
  b.add("rating", std::vector<double>{4.5, 3.0, 5.0, 2.5, 4.0, 1.0});
  s->set_attributes(6, with.data(), b);
  return s;
}

std::vector<int64_t> allowed_of(const VectorStore& s, const std::string& filter) {
  const std::vector<int64_t> ids = {0, 1, 2, 3, 4, 5, 6, 7, 8, 1000000};
  const auto ok = s.filter_allows(filter, int64_t(ids.size()), ids.data());
  std::vector<int64_t> out;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ok[i]) out.push_back(ids[i]);
  return out;
}

}  // namespace

TEST_CASE("filter expressions - allowed sets worked out by hand") {
  const auto s = hand_store();
  using V = std::vector<int64_t>;
  // ids 5, 6, 8 and 1000000 have no attribute values: price 0, category "", in_stock false, rating 0.
  CHECK(allowed_of(*s, "price < 50") == V{0, 2, 3, 4, 5, 6, 8, 1000000});
  CHECK(allowed_of(*s, "price >= 50") == V{1, 7});
  CHECK(allowed_of(*s, "category in [\"shoes\", \"bags\"] and price < 50 and in_stock") == V{0});
  CHECK(allowed_of(*s, "category in ['shoes', 'bags'] && price < 50 || category == \"hats\"") == V{0, 2, 3, 4, 7});
  CHECK(allowed_of(*s, "in_stock") == V{0, 1, 3, 7});
  CHECK(allowed_of(*s, "not in_stock") == V{2, 4, 5, 6, 8, 1000000});
  CHECK(allowed_of(*s, "!(in_stock == true)") == allowed_of(*s, "in_stock == false"));
  CHECK(allowed_of(*s, "category not in [\"shoes\", \"\"]") == V{1, 3, 4, 7});
  CHECK(allowed_of(*s, "category == \"\"") == V{5, 6, 8, 1000000});
  CHECK(allowed_of(*s, "rating >= 4 AND rating < 5") == V{0, 4});
  CHECK(allowed_of(*s, "rating > 2.5e0 and price != 60") == V{0, 2, 4});
  CHECK(allowed_of(*s, "price > 9.5 and price < 35.5") == V{0, 2});  // an int column with float literals
  CHECK(allowed_of(*s, "price in [5, 100, -3]") == V{3, 7});
  CHECK(allowed_of(*s, "id in [1, 3, 8, 1000000]") == V{1, 3, 8, 1000000});
  CHECK(allowed_of(*s, "id not in [0, 1, 2]") == V{3, 4, 5, 6, 7, 8, 1000000});
  CHECK(allowed_of(*s, "id >= 4 and id < 8") == V{4, 5, 6, 7});
  CHECK(allowed_of(*s, "id > 7") == V{8, 1000000});
  CHECK(allowed_of(*s, "category > \"bags\" and category <= \"shoes\"") == V{0, 2, 3, 7});  // byte-wise
  CHECK(allowed_of(*s, "(price < 20 or price > 50) and (not (category == 'hats'))") == V{0, 1, 5, 6, 8, 1000000});
  CHECK(allowed_of(*s, "in_stock in [false]") == V{2, 4, 5, 6, 8, 1000000});
  CHECK(allowed_of(*s, "price in []") == V{});
  CHECK(allowed_of(*s, "") == V{0, 1, 2, 3, 4, 5, 6, 7, 8, 1000000});
  CHECK(allowed_of(*s, "price == -0") == V{5, 6, 8, 1000000});
  CHECK(allowed_of(*s, "price > -1 and price < +6") == V{3, 5, 6, 8, 1000000});
}

TEST_CASE("filter expressions - errors name the position and the token") {
  const auto s = hand_store();
  const auto specs = s->attributes();
  auto err = [&](const std::string& f) { return test::error_of([&] { check_filter(f, specs); }); };
  auto has = [](const std::string& msg, const std::string& part) {
    INFO(msg);
    CHECK(msg.find(part) != std::string::npos);
  };
  has(err("price < "), "position 8: 'price' is int64: expected a number, got 'end of expression'");
  has(err("colour == \"red\""), "position 0: unknown field 'colour' (the store has: id, price, category, in_stock, rating)");
  has(err("price == \"x\""), "position 9: 'price' is int64: expected a number, got '\"x\"'");
  has(err("in_stock > true"), "position 9: 'in_stock' is bool: '>' does not apply");
  has(err("price = 1"), "position 6: unexpected '=' (equality is '==')");
  has(err("category in [\"a\", 3]"), "position 18: 'category' is string: expected a quoted string, got '3'");
  has(err("(price < 3"), "position 10: expected ')', got 'end of expression'");
  has(err("price < 3 rating"), "position 10: unexpected 'rating' after a complete expression");
  has(err("price"), "position 5: expected an operator after 'price'");
  has(err("category == 'open"), "position 12: unterminated string");
  has(err("price < 99999999999999999999"), "position 8: integer '99999999999999999999' is out of range");
  has(err("price like 'a%'"), "position 6: 'like' is not supported");
  has(err("and price < 3"), "position 0: expected a field name, 'not' or '(', got 'and'");
  has(err("price in [1 2]"), "position 12: expected ',' or ']', got '2'");
  has(err("price @ 3"), "position 6: unexpected character '@'");
  has(err(std::string(300, '(') + "in_stock" + std::string(300, ')')), "nested deeper than 200");
  // Every error is InvalidArgument, and a search with a bad filter changes nothing.
  CHECK_THROWS_AS(check_filter("price <", specs), InvalidArgument);
  std::vector<int64_t> ids(3);
  std::vector<float> sc(3);
  const std::vector<float> q = {1, 0};
  SearchOptions o;
  o.filter = "price <";
  CHECK_THROWS_AS(s->search(1, q.data(), 3, ids.data(), sc.data(), o), InvalidArgument);
  // An id literal beyond 2^26 (and the attribute rows) is refused rather than allocating for it.
  o.filter = "id == 100000000";
  CHECK(test::error_of([&] { s->search(1, q.data(), 3, ids.data(), sc.data(), o); }).find("beyond the ids a filter can name") !=
        std::string::npos);
}

TEST_CASE("attributes - declaration and values refused whole with the reason - nothing changes") {
  auto s = hand_store();
  const auto before = allowed_of(*s, "price < 50");
  auto err = [&](const std::function<void()>& f) { return test::error_of(f); };
  CHECK(err([&] { s->declare_attributes({{"id", AttributeType::int64}}); }).find("reserved") != std::string::npos);
  CHECK(err([&] { s->declare_attributes({{"and", AttributeType::int64}}); }).find("reserved") != std::string::npos);
  CHECK(err([&] { s->declare_attributes({{"2x", AttributeType::int64}}); }).find("letters, digits") != std::string::npos);
  CHECK(err([&] { s->declare_attributes({{"price", AttributeType::string}}); }).find("already declared as int64") !=
        std::string::npos);
  s->declare_attributes({{"price", AttributeType::int64}});  // the same again: kept
  const std::vector<int64_t> ids = {0, 1};
  AttributeBatch wrong_type;
  wrong_type.add("price", std::vector<double>{1.0, 2.0});
  CHECK(err([&] { s->set_attributes(2, ids.data(), wrong_type); }).find("'price' is int64, the batch gives float64") !=
        std::string::npos);
  AttributeBatch short_batch;
  short_batch.add("price", std::vector<int64_t>{1});
  CHECK(err([&] { s->set_attributes(2, ids.data(), short_batch); }).find("has 1 values for 2 ids") != std::string::npos);
  AttributeBatch unknown;
  unknown.add("colour", std::vector<std::string>{"a", "b"});
  CHECK(err([&] { s->set_attributes(2, ids.data(), unknown); }).find("no attribute 'colour'") != std::string::npos);
  const std::vector<int64_t> twice = {3, 3};
  AttributeBatch ok;
  ok.add("price", std::vector<int64_t>{1, 2});
  CHECK(err([&] { s->set_attributes(2, twice.data(), ok); }).find("id 3 appears twice") != std::string::npos);
  const std::vector<int64_t> huge = {0, int64_t(1) << 32};
  CHECK(err([&] { s->set_attributes(2, huge.data(), ok); }).find("outside [0, 2^32)") != std::string::npos);
  AttributeBatch nan;
  nan.add("rating", std::vector<double>{std::nan(""), 1.0});
  CHECK(err([&] { s->set_attributes(2, ids.data(), nan); }).find("NaN") != std::string::npos);
  CHECK(allowed_of(*s, "price < 50") == before);
  // Failures injected where a write allocates (a grown table, a new dictionary value) change nothing.
  for (const char* site : {"attributes.set", "attributes.declare"}) {
    CAPTURE(site);
    detail::arm_fault(site, 1);
    const std::vector<int64_t> far = {0, 5000};
    AttributeBatch b;
    b.add("price", std::vector<int64_t>{1000, 1000});
    b.add("category", std::vector<std::string>{"new", "new"});
    if (std::string(site) == "attributes.set") CHECK_THROWS_AS(s->set_attributes(2, far.data(), b), std::bad_alloc);
    else CHECK_THROWS_AS(s->declare_attributes({{"extra", AttributeType::boolean}}), std::bad_alloc);
    CHECK(detail::disarm_fault() == 1);
    CHECK(allowed_of(*s, "price < 50") == before);
    CHECK(allowed_of(*s, "category == 'new'").empty());
    CHECK(s->attributes().size() == 4);
  }
  // An upsert of vectors with attributes: the attributes are refused before any vector changes.
  const std::vector<float> v = {0, 1};
  const std::vector<int64_t> one = {9};
  AttributeBatch bad;
  bad.add("price", std::vector<int64_t>{1, 2});
  CHECK_THROWS_AS(s->upsert(1, v.data(), one.data(), bad), InvalidArgument);
  CHECK(s->size() == 6);
}

TEST_CASE("attribute updates are visible to the next search - and survive save and load") {
  test::TempDir tmp;
  auto s = hand_store();
  const std::vector<float> q = {1, 0};
  std::vector<int64_t> ids(3);
  std::vector<float> sc(3);
  SearchOptions o;
  o.filter = "in_stock";
  s->search(1, q.data(), 3, ids.data(), sc.data(), o);
  CHECK(ids == std::vector<int64_t>{0, 1, 3});
  // The in-stock flag flips for item 1: the next search skips it.
  const std::vector<int64_t> one = {1};
  AttributeBatch flip;
  flip.add_bool("in_stock", {0});
  s->set_attributes(1, one.data(), flip);
  s->search(1, q.data(), 3, ids.data(), sc.data(), o);
  CHECK(ids == std::vector<int64_t>{0, 3, -1});  // two allowed: the rest padded
  CHECK(std::isinf(sc[2]));
  // A vector and its attributes in one upsert.
  const std::vector<float> v = {2, 0};
  const std::vector<int64_t> nine = {9};
  AttributeBatch b;
  b.add_bool("in_stock", {1});
  b.add("category", std::vector<std::string>{"socks"});
  s->upsert(1, v.data(), nine.data(), b);
  s->search(1, q.data(), 3, ids.data(), sc.data(), o);
  CHECK(ids == std::vector<int64_t>{9, 0, 3});
  // Saved and loaded: the same columns and results; the filter allowing nothing pads all.
  s->save(tmp.file("a.idx"));
  auto l = load_vector_store(tmp.file("a.idx"));
  CHECK(l->attributes() == s->attributes());
  std::vector<int64_t> ids2(3);
  l->search(1, q.data(), 3, ids2.data(), sc.data(), o);
  CHECK(ids2 == ids);
  CHECK(allowed_of(*l, "category == 'socks'") == std::vector<int64_t>{});  // id 9 is outside allowed_of's list
  const std::vector<int64_t> nine_only = {9};
  CHECK(l->filter_allows("category == 'socks'", 1, nine_only.data())[0] == 1);
  o.filter = "price > 1000";
  l->search(1, q.data(), 3, ids2.data(), sc.data(), o);
  CHECK(ids2 == std::vector<int64_t>{-1, -1, -1});
  // A damaged attribute section is refused by its checksum.
  std::string bytes;
  {
    std::ifstream in(tmp.file("a.idx"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() - 3] ^= 1;
  std::ofstream(tmp.file("bad.idx"), std::ios::binary) << bytes;
  CHECK(test::error_of([&] { load_vector_store(tmp.file("bad.idx")); }).find("checksum mismatch") != std::string::npos);
}

namespace {

struct Filtered {
  const char* spec;
  bool exact;  // equal to brute force among the allowed items
  // Else: recall@10 against it, at every selectivity, at least the same store's unfiltered
  // recall@10 (same parameters) less `margin` (what a store promises: a filter costs it no
  // more than that), and at least `floor`.
  double margin, floor;
};
const Filtered kFiltered[] = {
    {"flat", true, 0, 1},
#if MINDREC_HAS_FAISS
    {"faiss:Flat", true, 0, 1},
    {"faiss:IVF32,Flat?nprobe=4", false, 0.05, 0.7},
    {"faiss:IVF32,SQ8?nprobe=4", false, 0.05, 0.7},
    {"faiss:IVF32,PQ8x4fs?nprobe=4", false, 0.05, 0.12},  // 4-bit codes of 2 dimensions: recall against the raw vectors is low
    // Faiss's own HNSW with a selector keeps efSearch candidates, allowed or not: its recall
    // falls with the filter until the planner's exact path takes over (below a tenth).
    {"faiss:HNSW16?ef=64", false, 0.5, 0.3},
#endif
#if MINDREC_HAS_HNSW
    // The build is parallel: recall varies run to run (unfiltered, 200 queries: 0.80-0.81 under
    // inner product, 0.92 under L2; with 20 queries it ranged 0.695-0.745 and failed a CI run).
    {"hnsw:M=16,ef_construction=100?ef=64", false, 0.05, 0.7},
#endif
};

}  // namespace

TEST_CASE("filtered search in every store - selectivities 50% to 0.01% and none - brute force among allowed items") {
  // 200 queries: the recall floors hold with a margin of several standard errors (20 did not).
  const int d = 16, n = 20000, k = 10, nq = 200;
  // Clustered like real item vectors (64 centres, spread 0.4): what IVF and graphs are for.
  const auto centres = test::random_vectors(64, d, 4);
  auto x = test::random_vectors(n, d, 5);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) x[size_t(i) * d + j] = centres[size_t(i % 64) * d + j] + 0.4f * x[size_t(i) * d + j];
  std::vector<int64_t> ids(n), bucket(n);
  detail::Rng rng(17);
  for (int i = 0; i < n; ++i) ids[size_t(i)] = 3 * i + 1, bucket[size_t(i)] = int64_t(rng.uniform() * 10000);
  const auto q = test::random_vectors(nq, d, 6);
  for (const Metric metric : {Metric::inner_product, Metric::l2}) {
    for (const auto& f : kFiltered) {
      const std::string spec = f.spec, metric_name = to_string(metric);
      CAPTURE(spec);
      CAPTURE(metric_name);
      auto s = make_vector_store(f.spec, d, metric);
      s->add(n, x.data(), ids.data());
      if (!s->supports_filter()) {  // Faiss's own fast-scan search (L2): refused, never ignored
        SearchOptions o;
        o.filter = "id < 5";
        std::vector<int64_t> got(10);
        std::vector<float> sc(10);
        CHECK_THROWS_AS(s->search(1, q.data(), 10, got.data(), sc.data(), o), Unsupported);
        continue;
      }
      s->declare_attributes({{"bucket", AttributeType::int64}});
      AttributeBatch b;
      b.add("bucket", bucket);
      s->set_attributes(n, ids.data(), b);
      double unfiltered = 1;
      for (const int64_t below : {10000, 5000, 1000, 100, 10, 1, 0}) {
        CAPTURE(below);
        std::vector<float> ax;
        std::vector<int64_t> aid;
        for (int i = 0; i < n; ++i)
          if (bucket[size_t(i)] < below) {
            aid.push_back(ids[size_t(i)]);
            ax.insert(ax.end(), x.begin() + size_t(i) * d, x.begin() + size_t(i + 1) * d);
          }
        SearchOptions o;
        if (below < 10000) o.filter = "bucket < " + std::to_string(below);  // 10000: no filter
        std::vector<int64_t> got(size_t(nq) * k);
        std::vector<float> sc(size_t(nq) * k);
        s->search(nq, q.data(), k, got.data(), sc.data(), o);
        int found = 0, total = 0;
        for (int i = 0; i < nq; ++i) {
          const auto want = test::brute(ax, aid, q.data() + size_t(i) * d, d, k, metric);
          std::set<int64_t> allowed(aid.begin(), aid.end());
          for (int j = 0; j < k; ++j) {
            const int64_t g = got[size_t(i) * k + j];
            if (j >= int(want.size())) {
              CHECK(g == -1);  // fewer allowed than k: padded
              continue;
            }
            CHECK((g == -1 || allowed.count(g) == 1));  // never a disallowed item
            if (f.exact) {
              CHECK(g == want[size_t(j)].first);
              CHECK(sc[size_t(i) * k + j] == doctest::Approx(want[size_t(j)].second).epsilon(1e-4).scale(1e-3));
            }
            ++total;
            for (const auto& w : want) found += w.first == g;
          }
        }
        if (total > 0) {
          const double recall = double(found) / total;
          CAPTURE(recall);
          if (below == 10000) unfiltered = recall;
          CHECK(recall >= f.floor);
          CHECK(recall >= unfiltered - f.margin);
        }
      }
    }
  }
}

TEST_CASE("exclusions per query group inside the search - flat exact - every store never returns them") {
  const int d = 8, n = 3000, k = 5, K = 2, users = 3;
  const auto x = test::random_vectors(n, d, 8);
  std::vector<int64_t> ids(n);
  for (int i = 0; i < n; ++i) ids[size_t(i)] = i;
  const auto q = test::random_vectors(users * K, d, 9);
  for (const auto& f : kFiltered) {
    const std::string spec = f.spec;
    CAPTURE(spec);
    auto s = make_vector_store(f.spec, d);
    s->add(n, x.data(), ids.data());
    // Each user's history: the unfiltered top-3 of the user's first interest.
    std::vector<std::vector<int64_t>> hist(users);
    for (int u = 0; u < users; ++u)
      for (const auto& w : test::brute(x, ids, q.data() + size_t(u * K) * d, d, 3, Metric::inner_product)) hist[size_t(u)].push_back(w.first);
    SearchOptions o;
    o.exclude = &hist;
    o.queries_per_exclude = K;
    std::vector<int64_t> got(size_t(users * K) * k);
    std::vector<float> sc(got.size());
    s->search(users * K, q.data(), k, got.data(), sc.data(), o);
    for (int i = 0; i < users * K; ++i) {
      const auto& h = hist[size_t(i / K)];
      for (int j = 0; j < k; ++j) CHECK(std::find(h.begin(), h.end(), got[size_t(i) * k + j]) == h.end());
      if (f.exact) {
        std::vector<float> rx;
        std::vector<int64_t> rid;
        for (int r = 0; r < n; ++r)
          if (std::find(h.begin(), h.end(), r) == h.end()) rid.push_back(r), rx.insert(rx.end(), x.begin() + size_t(r) * d, x.begin() + size_t(r + 1) * d);
        const auto want = test::brute(rx, rid, q.data() + size_t(i) * d, d, k, Metric::inner_product);
        for (int j = 0; j < k; ++j) CHECK(got[size_t(i) * k + j] == want[size_t(j)].first);
      }
    }
  }
}

TEST_CASE("per-call search parameters - refused names say what the backend takes") {
  auto s = make_vector_store("flat", 4);
  const auto x = test::random_vectors(10, 4, 1);
  std::vector<int64_t> ids(10);
  for (int i = 0; i < 10; ++i) ids[size_t(i)] = i;
  s->add(10, x.data(), ids.data());
  std::vector<int64_t> got(3);
  std::vector<float> sc(3);
  SearchOptions o;
  o.params = {{"ef", 10}};
  CHECK(test::error_of([&] { s->search(1, x.data(), 3, got.data(), sc.data(), o); }).find("'ef' is not a per-call search parameter here (it takes threads") !=
        std::string::npos);
  o.params = {{"threads", 1}};
  s->search(1, x.data(), 3, got.data(), sc.data(), o);
  CHECK(got[0] == test::brute(x, ids, x.data(), 4, 1, Metric::inner_product)[0].first);
#if MINDREC_HAS_HNSW
  // hnsw: ef per call changes what this call does only (ef 1 vs the spec's 400 on a hard query set).
  auto h = make_vector_store("hnsw:M=4,ef_construction=8?ef=400", 16);
  const auto hx = test::random_vectors(4000, 16, 2);
  std::vector<int64_t> hid(4000);
  for (int i = 0; i < 4000; ++i) hid[size_t(i)] = i;
  h->add(4000, hx.data(), hid.data());
  const auto hq = test::random_vectors(50, 16, 3);
  auto recall = [&](const SearchOptions& opts) {
    std::vector<int64_t> g(50 * 10);
    std::vector<float> gs(g.size());
    h->search(50, hq.data(), 10, g.data(), gs.data(), opts);
    return test::count_found(hx, hid, hq, g, 50, 16, 10, Metric::inner_product);
  };
  SearchOptions lo;
  lo.params = {{"ef", 10}};
  const int low = recall(lo), high = recall(SearchOptions{});
  CHECK(low < high);
  CHECK(h->spec().find("ef=400") != std::string::npos);  // the store's own is untouched
  lo.params = {{"ef", 0}};
  CHECK_THROWS_AS(recall(lo), InvalidArgument);
#endif
}

TEST_CASE("attributes cost at most 16 bytes per item per numeric column (8 by construction)") {
  auto s = make_vector_store("flat", 2);
  s->declare_attributes({{"price", AttributeType::float64}, {"year", AttributeType::int64}});
  const int64_t n = 100000;
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = i + 1;
  AttributeBatch b;
  b.add("price", std::vector<double>(size_t(n), 1.5)).add("year", std::vector<int64_t>(size_t(n), 2020));
  s->set_attributes(n, ids.data(), b);
  CHECK(s->attribute_bytes() <= size_t(16 * 2 * (n + 1)));
  CHECK(s->attribute_bytes() >= size_t(8 * 2 * (n + 1)));
}

namespace {
// An exact store whose reads are counted: which path the planner took is seen from the calls
// (search_impl: the backend's filtered search; gather_impl: the planner's exact path).
class CountingStore final : public VectorStore {
 public:
  explicit CountingStore(int dim) : VectorStore("test:counting", dim, Metric::inner_product) {}
  mutable int searches = 0, gathers = 0;

 private:
  std::vector<float> x_;
  std::vector<int64_t> ids_;
  void add_impl(int64_t n, const float* x, const int64_t* ids) override {
    exclusive([&] {
      x_.insert(x_.end(), x, x + n * dim());
      ids_.insert(ids_.end(), ids, ids + n);
    });
  }
  int64_t remove_impl(int64_t, const int64_t*) override { throw Unsupported("test:counting removes nothing"); }
  void clear_impl() override { x_.clear(), ids_.clear(); }
  size_t row(int64_t id) const { return size_t(std::find(ids_.begin(), ids_.end(), id) - ids_.begin()); }
  void reconstruct_impl(int64_t id, float* out) const override {
    std::copy_n(x_.begin() + ptrdiff_t(row(id)) * dim(), dim(), out);
  }
  void gather_impl(const std::vector<int64_t>& want, std::vector<int64_t>& found, std::vector<float>& out) const override {
    ++gathers;
    for (const int64_t id : want) {
      if (!contains_impl(id)) continue;
      found.push_back(id);
      out.resize(out.size() + size_t(dim()));
      reconstruct_impl(id, out.data() + out.size() - size_t(dim()));
    }
  }
  bool list_ids_impl(std::vector<int64_t>& out) const override {
    out.insert(out.end(), ids_.begin(), ids_.end());
    return true;
  }
  int64_t size_impl() const override { return int64_t(ids_.size()); }
  bool contains_impl(int64_t id) const override { return row(id) < ids_.size(); }
  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores, const SearchContext& ctx) const override {
    ++searches;
    for (int64_t i = 0; i < nq; ++i) {
      std::vector<std::pair<float, int64_t>> all;
      for (size_t r = 0; r < ids_.size(); ++r) {
        if (ctx.filtered() && !ctx.allows(i, ids_[r])) continue;
        float s = 0;
        for (int j = 0; j < dim(); ++j) s += q[i * dim() + j] * x_[r * size_t(dim()) + size_t(j)];
        all.emplace_back(-s, ids_[r]);
      }
      std::sort(all.begin(), all.end());
      for (int j = 0; j < k; ++j) {
        ids[i * k + j] = j < int(all.size()) ? all[size_t(j)].second : -1;
        scores[i * k + j] = j < int(all.size()) ? -all[size_t(j)].first : padding_score(metric());
      }
    }
  }
  void set_param_impl(const std::string& name, double) override { throw InvalidArgument("no parameter " + name); }
  std::function<void(StoreWriter&)> payload_writer_impl() const override { throw Unsupported("test:counting is not saved"); }
  std::function<void()> read_payload_impl(StoreReader&, int64_t) override { throw Unsupported("test:counting is not loaded"); }
};
}  // namespace

TEST_CASE("the planner's exact path only for allowed sets whose vectors fit its 64 MiB cache - larger ones go to the backend") {
  // dim 4096: 16 KiB of floats, 4 KiB of SQ8 codes and 8 bytes per gathered item, so 64 MiB
  // holds 3,275 of them (less the bitmap's bytes). 4,200 items; exact_below 1 makes every
  // filter small enough by fraction.
  const int dim = 4096, n = 4200;
  CountingStore s(dim);
  std::vector<float> x(size_t(n) * dim);
  detail::Rng rng(3);
  for (float& v : x) v = float(rng.uniform()) - 0.5f;
  std::vector<int64_t> ids(n);
  for (int i = 0; i < n; ++i) ids[size_t(i)] = i + 1;
  s.add(n, x.data(), ids.data());
  s.declare_attributes({{"rank", AttributeType::int64}});
  std::vector<int64_t> rank(ids);
  s.set_attributes(n, ids.data(), AttributeBatch().add("rank", rank));
  const std::vector<float> q(x.begin() + 7 * dim, x.begin() + 8 * dim);  // item 8's vector
  auto top = [&](const std::string& filter) {
    SearchOptions o;
    o.filter = filter;
    o.params = {{"exact_below", 1.0}};
    std::vector<int64_t> got(5);
    std::vector<float> sc(5);
    s.search(1, q.data(), 5, got.data(), sc.data(), o);
    return got;
  };
  // 3,200 allowed (62.5 MiB): gathered once, scored exactly, the backend not asked.
  auto got = top("rank <= 3200");
  CHECK(s.gathers == 1);
  CHECK(s.searches == 0);
  CHECK(got[0] == 8);
  // 3,300 allowed (64.5 MiB): the backend's own filtered search, no gather.
  got = top("rank <= 3300");
  CHECK(s.gathers == 1);
  CHECK(s.searches == 1);
  CHECK(got[0] == 8);
  // The cached small set is reused (no second gather).
  top("rank <= 3200");
  CHECK(s.gathers == 1);
  CHECK(s.searches == 1);
}

TEST_CASE("the exact path over SQ8 codes - near-duplicates below one code step and a large offset - equals brute force among the allowed items") {
  // flat's planner scores a filter allowing <= 5% exactly; from its cache entry's second search
  // on, a set of >= 1,024 rows is scored on its SQ8 codes first and the rows that can still
  // reach the k-th best re-scored exactly (the first search scans the floats).
  // Groups of 8 near-duplicates differ by up to 0.021 in one coordinate (the codes' step is
  // about 0.03 here: their codes mostly tie, their exact scores do not), so only the error
  // bound's re-scoring ranks them; a batch of 65 queries takes the float scan (the same
  // answer). Oracle: brute force in double; each answer's true score must equal the oracle's at
  // its rank within float rounding (2^-23 d sum |q x|), which a wrong member of a group misses.
  // (Mutation-checked: re-scoring only rows at or above the k-th approximate score fails.)
  const int d = 16, n = 40000, k = 10;
  const auto base = test::random_vectors(n / 8, d, 21);
  std::vector<float> x(size_t(n) * d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j)
      x[size_t(i) * d + j] = base[size_t(i / 8) * d + j] + (j == i % d ? 3e-3f * float(i % 8) : 0.f);
  std::vector<int64_t> ids(n), bucket(n);
  for (int i = 0; i < n; ++i) ids[size_t(i)] = i + 1, bucket[size_t(i)] = (i / 8) % 25;  // 1 in 25 groups: 4%
  // The queries: near allowed items, so that the top-k is made of near-duplicate groups.
  std::vector<float> q(size_t(65) * d);
  const auto noise = test::random_vectors(65, d, 22);
  for (int i = 0; i < 65; ++i)
    for (int j = 0; j < d; ++j) q[size_t(i) * d + j] = base[size_t(25 * (i + 3)) * d + j] + 0.1f * noise[size_t(i) * d + j];
  for (const float offset : {0.f, 10.f}) {
    std::vector<float> xo(x);
    for (int i = 0; i < n; ++i) xo[size_t(i) * d] += offset;  // dimension 0 shifted: a large constant in q.x
    for (const Metric metric : {Metric::inner_product, Metric::l2}) {
      const std::string metric_name = to_string(metric);
      CAPTURE(metric_name);
      CAPTURE(offset);
      auto s = make_vector_store("flat", d, metric);
      s->add(n, xo.data(), ids.data());
      s->declare_attributes({{"bucket", AttributeType::int64}});
      s->set_attributes(n, ids.data(), AttributeBatch().add("bucket", bucket));
      std::vector<float> ax;
      std::vector<int64_t> aid;
      for (int i = 0; i < n; ++i)
        if (bucket[size_t(i)] == 0) {
          aid.push_back(ids[size_t(i)]);
          ax.insert(ax.end(), xo.begin() + size_t(i) * d, xo.begin() + size_t(i + 1) * d);
        }
      REQUIRE(aid.size() == 1600);
      SearchOptions o;
      o.filter = "bucket == 0";
      int call = 0;
      for (const int batch : {12, 12, 65}) {  // the floats, the codes, the floats (a large batch)
        CAPTURE(batch);
        ++call;
        CAPTURE(call);
        std::vector<int64_t> got(size_t(batch) * k);
        std::vector<float> sc(size_t(batch) * k);
        s->search(batch, q.data(), k, got.data(), sc.data(), o);
        int wrong = 0;
        for (int i = 0; i < batch; ++i) {
          const float* qi = q.data() + size_t(i) * d;
          const auto want = test::brute(ax, aid, qi, d, k, metric);
          std::set<int64_t> seen;
          for (int j = 0; j < k; ++j) {
            const int64_t g = got[size_t(i) * k + j];
            REQUIRE(g >= 1);
            REQUIRE(bucket[size_t(g - 1)] == 0);
            CHECK(seen.insert(g).second);
            double truth = 0, mag = 0;
            for (int t = 0; t < d; ++t) {
              const double a = qi[t], b = xo[size_t(g - 1) * d + size_t(t)];
              truth += metric == Metric::inner_product ? a * b : (a - b) * (a - b);
              mag += std::fabs(a * b) + (metric == Metric::l2 ? a * a + b * b : 0.0);
            }
            const double tol = 2.0 * d * 1.2e-7 * mag;
            wrong += std::fabs(truth - double(want[size_t(j)].second)) > tol;
            CHECK(double(sc[size_t(i) * k + j]) == doctest::Approx(truth).epsilon(1e-5));
          }
        }
        CHECK(wrong == 0);
      }
    }
  }
}

#if MINDREC_HAS_FAISS
TEST_CASE("IVF: the planner scores a filter exactly while that costs about what the filtered list scan does - s^1.5 <= 3 nprobe / nlist") {
  // faiss:IVF64,Flat, diffuse data (the lists hold no structure to exploit), 30% allowed:
  // nprobe 8 gives the threshold (24/64)^(2/3) = 0.52, so the exact path: every query equals
  // brute force among the allowed items; nprobe 1 gives 0.13, so the filtered scan of
  // ceil(1 / sqrt(0.3)) = 2 lists, which misses some (shown, so that the first half can fail).
  const int d = 16, n = 6400, k = 10, nq = 30;
  const auto x = test::random_vectors(n, d, 21);
  const auto q = test::random_vectors(nq, d, 22);
  std::vector<int64_t> ids(n), bucket(n);
  for (int i = 0; i < n; ++i) ids[size_t(i)] = i, bucket[size_t(i)] = i % 10;
  auto s = make_vector_store("faiss:IVF64,Flat", d);
  s->add(n, x.data(), ids.data());
  s->declare_attributes({{"bucket", AttributeType::int64}});
  s->set_attributes(n, ids.data(), AttributeBatch().add("bucket", bucket));
  std::vector<int64_t> want(size_t(nq) * k);
  for (int i = 0; i < nq; ++i) {
    std::vector<std::pair<float, int64_t>> all;
    for (int r = 0; r < n; ++r) {
      if (r % 10 >= 3) continue;
      float sc = 0;
      for (int j = 0; j < d; ++j) sc += q[size_t(i) * d + j] * x[size_t(r) * d + j];
      all.emplace_back(-sc, r);
    }
    std::sort(all.begin(), all.end());
    for (int j = 0; j < k; ++j) want[size_t(i * k + j)] = all[size_t(j)].second;
  }
  auto matches = [&](double nprobe) {
    SearchOptions o;
    o.filter = "bucket < 3";
    o.params = {{"nprobe", nprobe}};
    std::vector<int64_t> got(size_t(nq) * k);
    std::vector<float> sc(size_t(nq) * k);
    s->search(nq, q.data(), k, got.data(), sc.data(), o);
    int same = 0;
    for (int i = 0; i < nq; ++i) same += std::equal(got.begin() + i * k, got.begin() + (i + 1) * k, want.begin() + i * k);
    return same;
  };
  CHECK(matches(8) == nq);
  CHECK(matches(1) < nq);
}
#endif  // MINDREC_HAS_FAISS

#if MINDREC_HAS_HNSW
TEST_CASE("hnsw: a filter allowing a large share is applied to an unfiltered beam - and a query whose beam holds too few allowed items takes the filtered walk") {
  // 60% of the items are allowed. The first query sits in the cluster of the 40% disallowed
  // ones, so the unfiltered beam (max(ef, k + 3 sqrt(k)) / 0.6 = 100 nodes) holds none of the
  // allowed items: it must fall back to the filtered walk and still return k allowed ones. The
  // second sits among allowed items: the beam answers. Both against brute force among the
  // allowed items.
  const int d = 8, n = 3000, k = 10;
  std::vector<float> x = test::random_vectors(n, d, 91);
  std::vector<int64_t> ids(n), bucket(n);
  for (int i = 0; i < n; ++i) {
    ids[size_t(i)] = i + 1;
    bucket[size_t(i)] = i < 1200 ? 1 : 0;  // the first 1,200 disallowed (filter: bucket == 0)
    const float shift = i < 1200 ? 5.f : -5.f;
    for (int j = 0; j < d; ++j) x[size_t(i) * d + j] = 0.3f * x[size_t(i) * d + j] + (j == 0 ? shift : 0.f);
  }
  auto s = make_vector_store("hnsw:M=16,ef_construction=100?ef=60", d, Metric::l2);
  s->add(n, x.data(), ids.data());
  s->declare_attributes({{"bucket", AttributeType::int64}});
  AttributeBatch b;
  b.add("bucket", bucket);
  s->set_attributes(n, ids.data(), b);
  std::vector<float> q(2 * d, 0.f);
  q[0] = 5.f;        // among the disallowed cluster
  q[d] = -5.f;       // among the allowed ones
  std::vector<float> ax;
  std::vector<int64_t> aid;
  for (int i = 1200; i < n; ++i) aid.push_back(ids[size_t(i)]), ax.insert(ax.end(), x.begin() + size_t(i) * d, x.begin() + size_t(i + 1) * d);
  SearchOptions o;
  o.filter = "bucket == 0";
  o.params = {{"exact_below", 0}};  // the walk, not the planner's exact path
  std::vector<int64_t> got(2 * k);
  std::vector<float> sc(2 * k);
  s->search(2, q.data(), k, got.data(), sc.data(), o);
  for (int u = 0; u < 2; ++u) {
    CAPTURE(u);
    const auto want = test::brute(ax, aid, q.data() + size_t(u) * d, d, k, Metric::l2);
    int found = 0;
    for (int j = 0; j < k; ++j) {
      const int64_t g = got[size_t(u) * k + j];
      CHECK(g > 1200);  // allowed, never padding: k allowed items exist
      for (const auto& w : want) found += w.first == g;
    }
    CHECK(found >= k - 1);
  }
}
#endif
