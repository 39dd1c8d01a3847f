// Evaluation: metrics and the multi-interest merge on cases worked out by hand, exact top-k
// against brute force, and evaluate() on a model whose retrieval is known.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "detail/random.hpp"
#include "mindrec/error.hpp"
#include "mindrec/eval.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/topk.hpp"

using namespace mindrec;

TEST_CASE("metrics of one user - worked by hand") {
  // Retrieved [5, 3, 9, 1], GT [3, 1, 7]: hits at ranks 1 and 3 (0-based).
  // Recall = 2/3; HitRate = 1; DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606;
  // IDCG = 1/log2(2) + 1/log2(3) = 1.630930; NDCG = 0.650921.
  const int64_t got[] = {5, 3, 9, 1}, gt[] = {3, 1, 7};
  const Metrics m = user_metrics(got, 4, gt, 3);
  CHECK(m.recall == doctest::Approx(2.0 / 3.0));
  CHECK(m.hitrate == 1.0);
  CHECK(m.ndcg == doctest::Approx(0.650921).epsilon(1e-6));
  // A hit at rank 0 only: NDCG = 1.
  const int64_t got2[] = {7, 2};
  CHECK(user_metrics(got2, 2, gt, 3).ndcg == doctest::Approx(1.0));
  CHECK(user_metrics(got2, 2, gt, 3).recall == doctest::Approx(1.0 / 3.0));
  // No hit: all zero.
  const int64_t got3[] = {8, 9};
  const Metrics z = user_metrics(got3, 2, gt, 3);
  CHECK(z.recall == 0.0);
  CHECK(z.ndcg == 0.0);
  CHECK(z.hitrate == 0.0);
  // |GT| counts the eval items as listed (ComiRec): GT [3, 3] with 3 retrieved -> 1/2.
  const int64_t gt_dup[] = {3, 3};
  CHECK(user_metrics(got, 4, gt_dup, 2).recall == doctest::Approx(0.5));
  CHECK(user_metrics(got, 4, gt, 0).recall == 0.0);
}

TEST_CASE("merge: pool K·N - sort by score - drop id 0 and duplicates - keep N") {
  // Interest 0: 4 (0.9), 0 (0.8), 7 (0.5); interest 1: 7 (0.95), 2 (0.6), 4 (0.3).
  // Sorted pool: 7 .95, 4 .9, 0 .8, 2 .6, 7 .5, 4 .3 -> drop 0 and repeats -> [7, 4, 2].
  const int64_t ids[] = {4, 0, 7, 7, 2, 4};
  const float sc[] = {0.9f, 0.8f, 0.5f, 0.95f, 0.6f, 0.3f};
  int64_t out[3];
  CHECK(merge_interests(ids, sc, 2, 3, 3, out) == 3);
  CHECK(out[0] == 7);
  CHECK(out[1] == 4);
  CHECK(out[2] == 2);
  // N = 2 keeps [7, 4]; fewer distinct ids than N returns fewer.
  CHECK(merge_interests(ids, sc, 2, 3, 2, out) == 2);
  const int64_t same[] = {5, 5, 0, -1};
  const float ssc[] = {1, 1, 2, 0};
  CHECK(merge_interests(same, ssc, 2, 2, 3, out) == 1);
  CHECK(out[0] == 5);
  // Equal scores: smaller id first.
  const int64_t tie[] = {9, 3};
  const float tsc[] = {0.5f, 0.5f};
  merge_interests(tie, tsc, 2, 1, 2, out);
  CHECK(out[0] == 3);
  CHECK(out[1] == 9);
}

TEST_CASE("exact_topk equals brute force - including k > n") {
  detail::Rng rng(11);
  const int64_t nb = 5000, nq = 70;
  const int d = 12, k = 25;
  std::vector<float> base(nb * d), q(nq * d);
  for (auto& x : base) x = float(rng.uniform() - 0.5);
  for (auto& x : q) x = float(rng.uniform() - 0.5);
  std::vector<int64_t> ids(nq * k);
  std::vector<float> sc(nq * k);
  exact_topk(base.data(), nb, d, q.data(), nq, k, ids.data(), sc.data(), 2);
  for (int64_t i = 0; i < nq; ++i) {
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t j = 0; j < nb; ++j) {
      double s = 0;
      for (int t = 0; t < d; ++t) s += double(q[i * d + t]) * base[j * d + t];
      all.emplace_back(float(s), j);
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int j = 0; j < k; ++j) {
      CHECK(sc[i * k + j] == doctest::Approx(all[j].first).epsilon(1e-5));
      // Ids agree except where two scores are within float noise of each other.
      if (j + 1 < k && std::abs(all[j].first - all[j + 1].first) > 1e-5f && (j == 0 || std::abs(all[j].first - all[j - 1].first) > 1e-5f))
        CHECK(ids[i * k + j] == all[j].second);
    }
  }
  std::vector<int64_t> id2(8);
  std::vector<float> sc2(8);
  exact_topk(base.data(), 3, d, q.data(), 2, 4, id2.data(), sc2.data());
  CHECK(id2[3] == -1);
  CHECK(sc2[3] == -std::numeric_limits<float>::infinity());
}

TEST_CASE("exact_topk with few queries splits the base over threads: same result for any split - ties included") {
  // Integer coordinates make every score exact, and rows repeat every 1,000, so ties straddle
  // the per-thread ranges: the smaller id must still win (brute force over doubles).
  detail::Rng rng(5);
  const int64_t nb = 50000;
  const int d = 8, k = 30, nq = 3;
  std::vector<float> base(nb * d), q(nq * d);
  for (int64_t j = 0; j < 1000; ++j)
    for (int t = 0; t < d; ++t) base[j * d + t] = float(int(rng.uniform() * 9) - 4);
  for (int64_t j = 1000; j < nb; ++j)
    for (int t = 0; t < d; ++t) base[j * d + t] = base[(j % 1000) * d + t];
  for (auto& x : q) x = float(int(rng.uniform() * 9) - 4);
  std::vector<int64_t> want(nq * k);
  for (int64_t i = 0; i < nq; ++i) {
    std::vector<std::pair<double, int64_t>> all;
    for (int64_t j = 0; j < nb; ++j) {
      double s = 0;
      for (int t = 0; t < d; ++t) s += double(q[i * d + t]) * base[j * d + t];
      all.emplace_back(s, j);
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int j = 0; j < k; ++j) want[i * k + j] = all[j].second;
  }
  for (int threads : {1, 2, 3, 4}) {
    CAPTURE(threads);
    std::vector<int64_t> ids(nq * k);
    std::vector<float> sc(nq * k);
    exact_topk(base.data(), nb, d, q.data(), nq, k, ids.data(), sc.data(), threads);
    CHECK(ids == want);
  }
  // Inside a parallel region without nesting the team is one thread: still the same result.
  std::vector<int64_t> nested(nq * k);
  std::vector<float> sc(nq * k);
  const int levels = omp_get_max_active_levels();
  omp_set_max_active_levels(1);
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    exact_topk(base.data(), nb, d, q.data(), nq, k, nested.data(), sc.data(), 4);
  }
  omp_set_max_active_levels(levels);
  CHECK(nested == want);
}

TEST_CASE("evaluate: a model whose interests retrieve known items") {
  // K = 1, no ReLU, iters = 1, D = H = 2, S = I, routing logits 0: the interest of a user
  // with history [i] is squash(emb[i]) (softmax over one interest is 1). Items lie on a
  // circle, so the nearest items by inner product are known.
  MindWeights w;
  auto& c = w.config;
  c.item_count = 9;
  c.embedding_dim = c.hidden_size = 2;
  c.maxlen = 2;
  c.neg_samples = 2;
  c.capsule.max_k = 1;
  c.capsule.iters = 1;
  c.capsule.relu_layer = false;
  w.item_emb = {0, 0};
  for (int i = 1; i < 9; ++i) {
    const double a = 2 * M_PI * (i - 1) / 8;
    w.item_emb.push_back(float(std::cos(a)));
    w.item_emb.push_back(float(std::sin(a)));
  }
  w.bilinear = {1, 0, 0, 1};
  w.routing_logits = {0, 0};
  MindModel model(w);
  // User A: history [1] -> interest along item 1: ranking 1, then 2 and 8 (equal), 3 and 7...
  // GT {2, 5}: top-2 = [1, 2] (2 < 8 on the tie) -> hit 2 at rank 1.
  // User B: history [5] -> ranking 5, 4/6, ...; GT {1}: item 1 is opposite, the last: no hit.
  EvalSet set;
  set.user_ids = {1, 2};
  set.target_items = {0, 0};
  set.hist_offsets = {0, 1, 2};
  set.hist_items = {1, 5};
  set.eval_offsets = {0, 2, 3};
  set.eval_items = {2, 5, 1};
  EvalOptions o;
  o.topk = {2, 8, 9};
  const EvalReport r = evaluate(model, set, o);
  CHECK(r.users == 2);
  // N=2: A recall 1/2, ndcg (1/log2 3)/1 = 0.63093, hit; B zeros. Means over 2 users.
  CHECK(r.metrics[0].recall == doctest::Approx(0.25));
  CHECK(r.metrics[0].hitrate == doctest::Approx(0.5));
  CHECK(r.metrics[0].ndcg == doctest::Approx(0.5 / std::log2(3.0)));
  // N=8: row 0 (score 0) is searched and takes a slot before the negative scores, then is
  // dropped by the merge: A misses item 5 (opposite), B misses item 1 (opposite).
  CHECK(r.metrics[1].recall == doctest::Approx(0.25));
  CHECK(r.metrics[1].hitrate == doctest::Approx(0.5));
  // N=9: every row is retrieved: both users hit all of their GT.
  CHECK(r.metrics[2].recall == doctest::Approx(1.0));
  CHECK(r.metrics[2].hitrate == doctest::Approx(1.0));
  // PaddleRec counting: batch size 1 keeps both users, denominator 3.
  o.paddlerec_compat = true;
  o.batch_size = 1;
  const EvalReport p = evaluate(model, set, o);
  CHECK(p.metrics[0].recall == doctest::Approx(0.5 / 3));
  o.batch_size = 2;
  CHECK(evaluate(model, set, o).metrics[2].hitrate == doctest::Approx(2.0 / 3));
  o.batch_size = 3;  // the only batch is partial: dropped
  CHECK(evaluate(model, set, o).users == 0);
  CHECK(r.to_json().find("\"recall@2\": 0.25") != std::string::npos);
}

TEST_CASE("evaluate_popularity: the most clicked training items for everyone - worked by hand") {
  // Training clicks: item 7 x3, item 2 x2, item 9 x2, item 4 x1 -> ranking 7, 2, 9 (tie 2/9: the
  // smaller id first), 4.
  ClickLog train;
  train.user_ids = {1, 2};
  train.offsets = {0, 4, 8};
  train.items = {7, 2, 9, 4, 7, 9, 2, 7};
  EvalSet set;
  set.user_ids = {10, 11, 12};
  set.target_items = {0, 0, 0};
  set.hist_offsets = {0, 1, 2, 3};
  set.hist_items = {1, 1, 1};
  set.eval_offsets = {0, 2, 3, 4};
  set.eval_items = {9, 5, 4, 8};  // user 10: GT {9, 5}; user 11: {4}; user 12: {8}
  EvalOptions o;
  o.topk = {2, 3};
  const EvalReport r = evaluate_popularity(train, set, o);
  REQUIRE(r.users == 3);
  // top-2 = [7, 2]: no hits for anyone.
  CHECK(r.metrics[0].recall == 0.0);
  CHECK(r.metrics[0].hitrate == 0.0);
  // top-3 = [7, 2, 9]: user 10 hits 9 at rank 2: recall 1/2, NDCG (1/log2(4)) / (1/log2(2)) (ComiRec's
  // ideal DCG counts the hits, not |GT|).
  const double ndcg10 = 1.0 / std::log2(4.0);
  CHECK(r.metrics[1].recall == doctest::Approx((0.5 + 0 + 0) / 3));
  CHECK(r.metrics[1].hitrate == doctest::Approx(1.0 / 3));
  CHECK(r.metrics[1].ndcg == doctest::Approx(ndcg10 / 3));
  // asking for more items than were ever clicked lists all four: user 11 hits 4 at rank 3
  o.topk = {10};
  const EvalReport all = evaluate_popularity(train, set, o);
  CHECK(all.metrics[0].recall == doctest::Approx((0.5 + 1.0) / 3));
  CHECK(all.metrics[0].hitrate == doctest::Approx(2.0 / 3));
  o.topk = {};
  CHECK_THROWS_AS(evaluate_popularity(train, set, o), InvalidArgument);
}

TEST_CASE("exact_topk gives a query the same ids and scores bit for bit alone and inside any batch") {
  // The flat store's scan (issue 30: bulk recall must equal single-user recall exactly): each
  // query scored alone, in batches of 4, 9 and 300 (GEMM-sized), at the front, middle and end
  // of the batch, on 1 and 2 threads: identical bits. And the brute-force oracle agrees.
  detail::Rng rng(17);
  const int64_t nb = 20011;  // not a multiple of 16: the last rows take the padded path
  const int d = 64, k = 40;
  const int64_t nq = 300;
  std::vector<float> base(nb * d), q(nq * d);
  for (auto& x : base) x = float(rng.uniform() - 0.5);
  for (auto& x : q) x = float(rng.uniform() - 0.5);
  std::vector<int64_t> all_ids(nq * k);
  std::vector<float> all_sc(nq * k);
  exact_topk(base.data(), nb, d, q.data(), nq, k, all_ids.data(), all_sc.data(), 2);
  for (int64_t size : {1, 4, 9, 300})
    for (int threads : {1, 2})
      for (int64_t first = 0; first + size <= nq; first += std::max<int64_t>(size, 37)) {
        CAPTURE(size);
        CAPTURE(threads);
        CAPTURE(first);
        std::vector<int64_t> ids(size * k);
        std::vector<float> sc(size * k);
        exact_topk(base.data(), nb, d, q.data() + first * d, size, k, ids.data(), sc.data(), threads);
        for (int64_t i = 0; i < size * k; ++i) {
          REQUIRE(ids[size_t(i)] == all_ids[size_t(first * k + i)]);
          REQUIRE(std::memcmp(&sc[size_t(i)], &all_sc[size_t(first * k + i)], sizeof(float)) == 0);
        }
      }
  for (int64_t i = 0; i < nq; i += 29) {  // against doubles
    double best = -1e30;
    for (int64_t j = 0; j < nb; ++j) {
      double s = 0;
      for (int t = 0; t < d; ++t) s += double(q[i * d + t]) * base[j * d + t];
      best = std::max(best, s);
    }
    CHECK(all_sc[size_t(i * k)] == doctest::Approx(best).epsilon(1e-5));
  }
}
