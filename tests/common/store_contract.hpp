// The VectorStore contract as functions, so that every backend runs the same suite against
// brute force computed here: the in-process ones from test_vector_store.cpp, milvus:// from
// tests/milvus against a real server. `make(dim, metric, role)` gives an empty store; each
// role ("main", "small", "handed", "upsert") is a separate store (a remote backend: a separate collection).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/random_data.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::test {

using StoreMaker = std::function<std::unique_ptr<VectorStore>(int dim, Metric metric, const std::string& role)>;

// Brute force: the k best (id, score) of `ids`/`x` for query q.
inline std::vector<std::pair<int64_t, float>> brute(const std::vector<float>& x, const std::vector<int64_t>& ids,
                                             const float* q, int d, int k, Metric metric) {
  std::vector<std::pair<int64_t, float>> all;
  for (size_t i = 0; i < ids.size(); ++i) {
    double s = 0;
    for (int j = 0; j < d; ++j) {
      const double a = q[j], b = x[i * d + j];
      s += metric == Metric::inner_product ? a * b : (a - b) * (a - b);
    }
    all.emplace_back(ids[i], float(s));
  }
  std::sort(all.begin(), all.end(), [&](auto& a, auto& b) {
    return metric == Metric::inner_product ? a.second > b.second : a.second < b.second;
  });
  all.resize(std::min<size_t>(all.size(), size_t(k)));
  return all;
}

inline void check_against_brute(const VectorStore& s, const std::vector<float>& x,
                         const std::vector<int64_t>& ids, bool exact, double min_recall = 0.9) {
  const int d = s.dim(), k = 10, nq = 25;
  const auto q = random_vectors(nq, d, 99);
  std::vector<int64_t> got(nq * k);
  std::vector<float> sc(nq * k);
  s.search(nq, q.data(), k, got.data(), sc.data());
  int found = 0, total = 0;
  for (int i = 0; i < nq; ++i) {
    const auto want = brute(x, ids, q.data() + i * d, d, k, s.metric());
    std::set<int64_t> got_set(got.begin() + i * k, got.begin() + (i + 1) * k);
    for (int j = 0; j < k; ++j) {
      found += got_set.count(want[j].first);
      ++total;
      if (exact) {
        CHECK(sc[i * k + j] == doctest::Approx(want[j].second).epsilon(1e-4).scale(1e-3));
        if (j + 1 < k && std::abs(want[j].second - want[j + 1].second) > 1e-3f)
          CHECK(got[i * k + j] == want[j].first);
      }
    }
  }
  const double recall = double(found) / total;
  if (exact) CHECK(recall == doctest::Approx(1.0));
  else CHECK(recall >= min_recall);  // HNSW, PQ (with a removal filter after removals): approximate
}

// How many of brute force's k best per query are among `got` [nq, k].
inline int count_found(const std::vector<float>& x, const std::vector<int64_t>& ids, const std::vector<float>& q,
                const std::vector<int64_t>& got, int nq, int d, int k, Metric metric) {
  int found = 0;
  for (int i = 0; i < nq; ++i) {
    const auto want = brute(x, ids, q.data() + size_t(i) * d, d, k, metric);
    const std::set<int64_t> g(got.begin() + size_t(i) * k, got.begin() + size_t(i + 1) * k);
    for (const auto& w : want) found += int(g.count(w.first));
  }
  return found;
}

// The spec's merge computed here: each of the user's `count` interests' brute-force top
// `fetch`, pooled, sorted by score (best first, the smaller id on ties), ids <= 0 and
// duplicates dropped, the first `topn` kept.
inline std::vector<std::pair<int64_t, float>> brute_merged(const std::vector<float>& x, const std::vector<int64_t>& ids,
                                                           const float* q, int count, int d, int fetch, int topn,
                                                           Metric metric) {
  std::vector<std::pair<int64_t, float>> pool;
  for (int k = 0; k < count; ++k)
    for (const auto& e : brute(x, ids, q + size_t(k) * d, d, fetch, metric)) pool.push_back(e);
  const bool ip = metric == Metric::inner_product;
  std::sort(pool.begin(), pool.end(), [&](const auto& a, const auto& b) {
    if (a.second != b.second) return ip ? a.second > b.second : a.second < b.second;
    return a.first < b.first;
  });
  std::vector<std::pair<int64_t, float>> out;
  std::set<int64_t> seen;
  for (const auto& e : pool)
    if (e.first > 0 && seen.insert(e.first).second && int(out.size()) < topn) out.push_back(e);
  return out;
}

/// The fused multi-interest search, where the backend has one (search_merged returns true):
/// 30 users of up to 4 interests (some with 0, 1 or 2 live) against brute_merged, ids and
/// scores; removed ids (`gone`) never returned, rows padded with -1.
inline void check_search_merged(const VectorStore& s, const std::vector<float>& x, const std::vector<int64_t>& ids,
                                const std::vector<int64_t>& gone, bool exact, double min_recall = 0.9) {
  const int d = s.dim(), K = 4, users = 30, topn = 12;
  const auto q = random_vectors(users * K, d, 31);
  std::vector<int32_t> counts(users);
  for (int u = 0; u < users; ++u) counts[size_t(u)] = u % 6 == 0 ? 0 : 1 + (u * 7) % K;
  std::vector<int64_t> got(size_t(users) * topn, 77);
  std::vector<float> sc(size_t(users) * topn, 77.f);
  if (!s.search_merged(users, K, counts.data(), q.data(), topn, topn, got.data(), sc.data())) {
    // No fused path: nothing was written.
    CHECK(std::all_of(got.begin(), got.end(), [](int64_t v) { return v == 77; }));
    return;
  }
  const std::set<int64_t> gone_set(gone.begin(), gone.end());
  int found = 0, total = 0;
  for (int u = 0; u < users; ++u) {
    CAPTURE(u);
    const auto want = brute_merged(x, ids, q.data() + size_t(u) * K * d, counts[size_t(u)], d, topn, topn, s.metric());
    const int64_t* g = got.data() + size_t(u) * topn;
    const float* gs = sc.data() + size_t(u) * topn;
    for (int j = int(want.size()); j < topn; ++j) CHECK(g[j] == -1);
    const std::set<int64_t> got_set(g, g + topn);
    for (int j = 0; j < int(want.size()); ++j) {
      found += int(got_set.count(want[size_t(j)].first));
      ++total;
      CHECK(gone_set.count(g[j]) == 0);
      if (exact) {
        CHECK(gs[j] == doctest::Approx(want[size_t(j)].second).epsilon(1e-4).scale(1e-3));
        if (j + 1 < int(want.size()) && std::abs(want[size_t(j)].second - want[size_t(j) + 1].second) > 1e-3f)
          CHECK(g[j] == want[size_t(j)].first);
      }
    }
  }
  if (exact) CHECK(found == total);
  else CHECK(double(found) / std::max(total, 1) >= min_recall);
}

/// Both stores answer `nq` queries with the same ids and the same scores, exactly.
inline void check_same_answers(const VectorStore& a, const VectorStore& b, int64_t nq, const float* queries, int k) {
  std::vector<int64_t> ia(size_t(nq) * size_t(k)), ib(ia.size());
  std::vector<float> sa(ia.size()), sb(ia.size());
  a.search(nq, queries, k, ia.data(), sa.data());
  b.search(nq, queries, k, ib.data(), sb.data());
  CHECK(ia == ib);
  CHECK(sa == sb);
}

/// add, duplicates refused, remove (unknown ids ignored), a removed id added again,
/// save -> load_vector_store with identical results, k > size padded, clear; both metrics.
/// `exact`: results equal brute force (scores within 1e-4), else recall@10 >= 0.9.
/// `dir`: where the store file is written.
inline void check_store_contract(const StoreMaker& make, bool exact, const std::string& dir, double min_recall = 0.9) {
  for (const Metric metric : {Metric::inner_product, Metric::l2}) {
    const std::string metric_name = to_string(metric);
    CAPTURE(metric_name);
    const int d = 16;
    const int64_t n = 600;
    auto s = make(d, metric, "main");
    CHECK(s->dim() == d);
    CHECK(s->metric() == metric);
    CHECK(s->size() == 0);
    std::vector<float> x = random_vectors(n, d, 1);
    std::vector<int64_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = 1000 + 7 * i;
    s->add(n, x.data(), ids.data());
    CHECK(s->size() == n);
    check_against_brute(*s, x, ids, exact, min_recall);
    {  // The same batch handed over (add of an AlignedVector&&): kept or copied, the buffer is
       // taken and the store answers as brute force does.
      auto t = make(d, metric, "handed");
      AlignedVector<float> buf(x.begin(), x.end());
      t->add(n, std::move(buf), ids.data());
      CHECK(buf.empty());
      CHECK(t->size() == n);
      check_against_brute(*t, x, ids, exact, min_recall);
      AlignedVector<float> short_buf(x.begin(), x.begin() + 5);  // not n x dim: refused, nothing taken
      CHECK_THROWS_AS(t->add(n, std::move(short_buf), ids.data()), InvalidArgument);
      CHECK(short_buf.size() == 5);
      CHECK(t->size() == n);
    }

    // Duplicate ids are refused and change nothing.
    const int64_t dup[2] = {5, 1000};
    CHECK_THROWS_AS(s->add(2, x.data(), dup), InvalidArgument);
    const int64_t twice[2] = {5, 5};
    CHECK_THROWS_AS(s->add(2, x.data(), twice), InvalidArgument);
    CHECK(s->size() == n);

    // Removed ids are never returned; the rest still match brute force.
    std::vector<int64_t> gone, kept_ids;
    std::vector<float> kept_x;
    for (int64_t i = 0; i < n; ++i) {
      if (i % 3 == 0) gone.push_back(ids[i]);
      else {
        kept_ids.push_back(ids[i]);
        kept_x.insert(kept_x.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
      }
    }
    gone.push_back(424242);  // unknown ids are ignored
    CHECK(s->remove(int64_t(gone.size()), gone.data()) == int64_t(gone.size()) - 1);
    CHECK(s->size() == int64_t(kept_ids.size()));
    check_against_brute(*s, kept_x, kept_ids, exact, min_recall);
    check_search_merged(*s, kept_x, kept_ids, gone, exact, min_recall);
    {
      const auto q = random_vectors(50, d, 5);
      std::vector<int64_t> got(50 * 30);
      std::vector<float> sc(50 * 30);
      s->search(50, q.data(), 30, got.data(), sc.data());
      const std::set<int64_t> gone_set(gone.begin(), gone.end());
      for (auto id : got) CHECK(gone_set.count(id) == 0);
    }
    // A removed id can be added again.
    s->add(1, x.data(), &gone[0]);
    CHECK(s->size() == int64_t(kept_ids.size()) + 1);
    s->remove(1, &gone[0]);

    // save -> load: identical results.
    const std::string path = dir + "/store.bin";
    s->save(path);
    auto loaded = load_vector_store(path);
    CHECK(loaded->backend() == s->backend());
    CHECK(loaded->size() == s->size());
    const auto q = random_vectors(10, d, 7);
    std::vector<int64_t> a(100), c(100);
    std::vector<float> as(100), cs(100);
    s->search(10, q.data(), 10, a.data(), as.data());
    loaded->search(10, q.data(), 10, c.data(), cs.data());
    CHECK(a == c);
    CHECK(as == cs);

    // k > size pads with -1 and the worst score.
    auto small = make(d, metric, "small");
    small->add(3, x.data(), ids.data());
    std::vector<int64_t> pid(5);
    std::vector<float> psc(5);
    small->search(1, q.data(), 5, pid.data(), psc.data());
    CHECK(std::set<int64_t>(pid.begin(), pid.begin() + 3) == std::set<int64_t>{1000, 1007, 1014});
    CHECK(pid[3] == -1);
    CHECK(pid[4] == -1);
    CHECK(std::isinf(psc[4]));

    s->clear();
    CHECK(s->size() == 0);
  }
}

/// upsert replaces stored ids and adds new ones in one step; bad batches change nothing.
inline void check_upsert_contract(const StoreMaker& make, bool exact, double min_recall = 0.9) {
  const int d = 16;
  const int64_t n = 300;
  auto s = make(d, Metric::inner_product, "upsert");
  std::vector<float> x = random_vectors(n, d, 3);
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = 10 + i;
  s->add(n, x.data(), ids.data());
  // Replace ids 10..14 with fresh vectors and add 5000..5004.
  const auto fresh = random_vectors(10, d, 4);
  std::vector<int64_t> up = {10, 11, 12, 13, 14, 5000, 5001, 5002, 5003, 5004};
  CHECK(s->upsert(10, fresh.data(), up.data()) == 5);
  CHECK(s->size() == n + 5);
  std::vector<float> want_x = x;
  std::vector<int64_t> want_ids = ids;
  std::copy(fresh.begin(), fresh.begin() + 5 * d, want_x.begin());
  want_x.insert(want_x.end(), fresh.begin() + 5 * d, fresh.end());
  want_ids.insert(want_ids.end(), up.begin() + 5, up.end());
  check_against_brute(*s, want_x, want_ids, exact, min_recall);
  // A replaced vector is found by itself as the query (L2 would be exact; IP: it is in the top 10).
  std::vector<int64_t> got(10);
  std::vector<float> sc(10);
  s->search(1, fresh.data(), 10, got.data(), sc.data());
  CHECK(std::count(got.begin(), got.end(), 10) == 1);
  // Bad batches change nothing.
  const int64_t twice[2] = {11, 11};
  CHECK_THROWS_AS(s->upsert(2, fresh.data(), twice), InvalidArgument);
  std::vector<float> nan_x(size_t(2) * d, 0.f);
  nan_x[d + 3] = std::numeric_limits<float>::quiet_NaN();
  const int64_t two[2] = {12, 7777};
  CHECK_THROWS_AS(s->upsert(2, nan_x.data(), two), InvalidArgument);
  CHECK(s->size() == n + 5);
  check_against_brute(*s, want_x, want_ids, exact, min_recall);
}

}  // namespace mindrec::test
