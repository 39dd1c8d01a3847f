#include "mindrec/eval.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mindrec/error.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/topk.hpp"
#include "mindrec/vector_store.hpp"
#include "detail/simd.hpp"
#include "store/topk_select.hpp"

namespace mindrec {

Metrics user_metrics(const int64_t* retrieved, int n, const int64_t* gt, int64_t gt_len) {
  Metrics m;
  if (gt_len <= 0) return m;
  std::unordered_set<int64_t> truth(gt, gt + gt_len);
  int hits = 0;
  double dcg = 0;
  for (int r = 0; r < n; ++r)
    if (truth.count(retrieved[r])) {
      ++hits;
      dcg += 1.0 / std::log2(r + 2.0);
    }
  double idcg = 0;
  for (int i = 0; i < hits; ++i) idcg += 1.0 / std::log2(i + 2.0);
  m.recall = double(hits) / double(gt_len);
  m.hitrate = hits > 0 ? 1.0 : 0.0;
  m.ndcg = hits > 0 ? dcg / idcg : 0.0;
  return m;
}

std::string EvalReport::to_json() const {
  nlohmann::ordered_json j;
  j["users"] = users;
  for (size_t i = 0; i < topk.size(); ++i) {
    const std::string n = std::to_string(topk[i]);
    j["recall@" + n] = metrics[i].recall;
    j["ndcg@" + n] = metrics[i].ndcg;
    j["hitrate@" + n] = metrics[i].hitrate;
  }
  if (!popularity.empty()) {
    // the baseline, then the model's ratio to it (null where the baseline scores 0)
    auto ratio = [](double a, double b) { return b > 0 ? nlohmann::ordered_json(a / b) : nlohmann::ordered_json(); };
    for (size_t i = 0; i < topk.size(); ++i) {
      const std::string n = std::to_string(topk[i]);
      j["popularity_recall@" + n] = popularity[i].recall;
      j["popularity_ndcg@" + n] = popularity[i].ndcg;
      j["popularity_hitrate@" + n] = popularity[i].hitrate;
    }
    for (size_t i = 0; i < topk.size(); ++i) {
      const std::string n = std::to_string(topk[i]);
      j["ratio_recall@" + n] = ratio(metrics[i].recall, popularity[i].recall);
      j["ratio_ndcg@" + n] = ratio(metrics[i].ndcg, popularity[i].ndcg);
      j["ratio_hitrate@" + n] = ratio(metrics[i].hitrate, popularity[i].hitrate);
    }
  }
  if (!filter.empty()) {
    j["filter"] = filter;
    j["targets_total"] = targets_total;
    j["targets_allowed"] = targets_allowed;
    j["users_without_allowed_targets"] = users_without_allowed;
  }
  return j.dump(2);
}

std::string EvalReport::table() const {
  std::string s = "users: " + std::to_string(users) + "\n";
  if (!filter.empty())
    s += "filter: " + filter + " (only allowed targets counted: " + std::to_string(targets_allowed) + " of " +
         std::to_string(targets_total) + " eval items; " + std::to_string(users_without_allowed) +
         " users without one not evaluated)\n";
  char line[160];
  if (popularity.empty()) {
    std::snprintf(line, sizeof line, "%6s %10s %10s %10s\n", "N", "Recall", "NDCG", "HitRate");
    s += line;
    for (size_t i = 0; i < topk.size(); ++i) {
      std::snprintf(line, sizeof line, "%6d %9.4f%% %9.4f%% %9.4f%%\n", topk[i], 100 * metrics[i].recall,
                    100 * metrics[i].ndcg, 100 * metrics[i].hitrate);
      s += line;
    }
    return s;
  }
  // With the baseline: per N the model, popularity, and model / popularity.
  std::snprintf(line, sizeof line, "%6s %-11s %10s %10s %10s\n", "N", "", "Recall", "NDCG", "HitRate");
  s += line;
  auto ratio = [](double a, double b) { return b > 0 ? a / b : std::numeric_limits<double>::quiet_NaN(); };
  for (size_t i = 0; i < topk.size(); ++i) {
    const Metrics &m = metrics[i], &p = popularity[i];
    std::snprintf(line, sizeof line, "%6d %-11s %9.4f%% %9.4f%% %9.4f%%\n", topk[i], "model", 100 * m.recall,
                  100 * m.ndcg, 100 * m.hitrate);
    s += line;
    std::snprintf(line, sizeof line, "%6d %-11s %9.4f%% %9.4f%% %9.4f%%\n", topk[i], "popularity", 100 * p.recall,
                  100 * p.ndcg, 100 * p.hitrate);
    s += line;
    std::snprintf(line, sizeof line, "%6d %-11s %9.2fx %9.2fx %9.2fx\n", topk[i], "model/pop.",
                  ratio(m.recall, p.recall), ratio(m.ndcg, p.ndcg), ratio(m.hitrate, p.hitrate));
    s += line;
  }
  return s;
}

namespace {

void check_options(const char* fn, const EvalOptions& opt) {
  MINDREC_EXPECTS(!opt.topk.empty(), std::string(fn) + ": topk is empty");
  for (int n : opt.topk) MINDREC_EXPECTS(n >= 1, std::string(fn) + ": every topk must be >= 1");
  MINDREC_EXPECTS(opt.batch_size >= 1, std::string(fn) + ": batch_size must be >= 1");
  MINDREC_EXPECTS(opt.rerank >= 0 && opt.rerank <= 100, std::string(fn) + ": rerank must be in [0, 100]");
}

// Users evaluated (PaddleRec's drop-last in compat mode) and the ground truth length counted.
int64_t users_counted(const EvalSet& set, const EvalOptions& opt) {
  int64_t U = set.num_users();
  if (opt.paddlerec_compat) U -= U % opt.batch_size;
  return U;
}

int64_t gt_counted(const EvalSet& set, int64_t u, const EvalOptions& opt) {
  const int64_t n = set.eval_length(u);
  return opt.paddlerec_compat ? std::min<int64_t>(n, 20) : n;
}

void finish(EvalReport& rep, int64_t U, const EvalOptions& opt,
            std::chrono::steady_clock::time_point t0) {
  rep.users = U;
  const double denom = double(U) + (opt.paddlerec_compat ? 1.0 : 0.0);
  for (auto& m : rep.metrics)
    if (denom > 0) m.recall /= denom, m.ndcg /= denom, m.hitrate /= denom;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The set with only the eval items `opt.filter` allows, users left without one dropped; the
// counts into `rep`.
EvalSet filtered_set(const EvalSet& set, const EvalOptions& opt, EvalReport& rep) {
  if (!opt.store)
    throw InvalidArgument("evaluate: a filter ('" + opt.filter + "') needs a store holding the items' attributes (--index)");
  const std::vector<uint8_t> ok = opt.store->filter_allows(opt.filter, int64_t(set.eval_items.size()), set.eval_items.data());
  EvalSet out;
  out.hist_offsets.push_back(0);
  out.eval_offsets.push_back(0);
  rep.filter = opt.filter;
  rep.targets_total = int64_t(set.eval_items.size());
  for (int64_t u = 0; u < set.num_users(); ++u) {
    const size_t before = out.eval_items.size();
    for (int64_t i = set.eval_offsets[size_t(u)]; i < set.eval_offsets[size_t(u) + 1]; ++i)
      if (ok[size_t(i)]) out.eval_items.push_back(set.eval_items[size_t(i)]);
    if (out.eval_items.size() == before) {
      ++rep.users_without_allowed;
      continue;
    }
    out.user_ids.push_back(set.user_ids[size_t(u)]);
    out.target_items.push_back(set.target_items[size_t(u)]);
    out.hist_items.insert(out.hist_items.end(), set.hist(u), set.hist(u) + set.hist_length(u));
    out.hist_offsets.push_back(int64_t(out.hist_items.size()));
    out.eval_offsets.push_back(int64_t(out.eval_items.size()));
  }
  rep.targets_allowed = int64_t(out.eval_items.size());
  return out;
}

void add(Metrics& sum, const Metrics& m) {
  sum.recall += m.recall;
  sum.ndcg += m.ndcg;
  sum.hitrate += m.hitrate;
}

}  // namespace

std::vector<int64_t> most_popular(const ClickLog& log, size_t n) {
  std::unordered_map<int64_t, int64_t> clicks;
  for (int64_t item : log.items) ++clicks[item];
  std::vector<std::pair<int64_t, int64_t>> ranked(clicks.begin(), clicks.end());  // (item, clicks)
  const size_t keep = std::min(ranked.size(), n);
  std::partial_sort(ranked.begin(), ranked.begin() + keep, ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<int64_t> top(keep);
  for (size_t i = 0; i < keep; ++i) top[i] = ranked[i].first;
  return top;
}

EvalReport evaluate_popularity(const ClickLog& train, const EvalSet& all, const EvalOptions& opt) {
  check_options("evaluate_popularity", opt);
  const auto t0 = std::chrono::steady_clock::now();
  const int maxn = *std::max_element(opt.topk.begin(), opt.topk.end());
  EvalReport rep;
  EvalSet filtered;
  const EvalSet& set = opt.filter.empty() ? all : (filtered = filtered_set(all, opt, rep));
  std::vector<int64_t> top;
  if (opt.filter.empty()) {
    top = most_popular(train, size_t(maxn));
  } else {  // the allowed items among the popular ones, most clicked first
    const std::vector<int64_t> ranked = most_popular(train, ~size_t(0));
    const std::vector<uint8_t> ok = opt.store->filter_allows(opt.filter, int64_t(ranked.size()), ranked.data());
    for (size_t i = 0; i < ranked.size() && top.size() < size_t(maxn); ++i)
      if (ok[i]) top.push_back(ranked[i]);
  }
  const size_t keep = top.size();
  const int64_t U = users_counted(set, opt);
  rep.topk = opt.topk;
  rep.metrics.assign(opt.topk.size(), Metrics{});
  for (int64_t u = 0; u < U; ++u)
    for (size_t t = 0; t < opt.topk.size(); ++t)
      add(rep.metrics[t], user_metrics(top.data(), std::min<int>(opt.topk[t], int(keep)), set.eval(u),
                                       gt_counted(set, u, opt)));
  finish(rep, U, opt, t0);
  return rep;
}

EvalReport evaluate(const MindModel& model, const EvalSet& all, const EvalOptions& opt) {
  check_options("evaluate", opt);
  const auto t0 = std::chrono::steady_clock::now();
  const auto& c = model.config();
  const int K = c.capsule.max_k, H = c.hidden_size, L = c.maxlen;
  const int maxn = *std::max_element(opt.topk.begin(), opt.topk.end());
  EvalReport rep;
  EvalSet filtered;
  const EvalSet& set = opt.filter.empty() ? all : (filtered = filtered_set(all, opt, rep));
  const int64_t U = users_counted(set, opt);
  SearchOptions so;
  so.filter = opt.filter;
  rep.topk = opt.topk;
  rep.metrics.assign(opt.topk.size(), Metrics{});
  const int64_t B = opt.batch_size;
  std::vector<int64_t> hist(size_t(B) * L);
  std::vector<int32_t> lens(B), counts(B);
  std::vector<float> interests(size_t(B) * K * H);
  std::vector<int64_t> ids(size_t(B) * K * maxn);
  std::vector<float> scores(size_t(B) * K * maxn);
  std::vector<int64_t> merged(maxn), pid(size_t(K) * maxn);
  std::vector<float> psc(size_t(K) * maxn);
  const float* emb = model.weights().item_emb.data();
  for (int64_t first = 0; first < U; first += B) {
    const int64_t n = std::min(B, U - first);
    pack_histories(set.hist_offsets, set.hist_items, first, n, L, hist.data(), lens.data());
    model.extract_interests(hist.data(), lens.data(), n, interests.data(), counts.data(), opt.threads);
    if (opt.store && opt.rerank > 0) {
      MINDREC_EXPECTS(opt.store->dim() == c.embedding_dim && opt.store->metric() == Metric::inner_product,
                      "evaluate: the store must hold inner-product vectors of the model's dimension");
      // rerank x maxn candidates per interest, scored exactly, the best maxn kept in order.
      const int fetch = maxn * opt.rerank;
      std::vector<int64_t> fid(size_t(n) * K * fetch);
      std::vector<float> fsc(size_t(n) * K * fetch);
      opt.store->search(n * K, interests.data(), fetch, fid.data(), fsc.data(), so);
      const auto& kern = detail::simd();
      std::vector<std::pair<float, int64_t>> cand;
      for (int64_t q = 0; q < n * K; ++q) {
        cand.clear();
        for (int j = 0; j < fetch; ++j) {
          const int64_t id = fid[size_t(q) * fetch + j];
          if (id < 0) continue;
          const float s = id > 0 && id < c.item_count
                              ? kern.dot(interests.data() + size_t(q) * H, emb + size_t(id) * H, size_t(H))
                              : fsc[size_t(q) * fetch + j];
          cand.emplace_back(s, id);
        }
        const size_t keep = std::min(cand.size(), size_t(maxn));
        std::partial_sort(cand.begin(), cand.begin() + ptrdiff_t(keep), cand.end(), [](const auto& a, const auto& b) {
          return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        for (int j = 0; j < maxn; ++j) {
          ids[size_t(q) * maxn + j] = size_t(j) < keep ? cand[size_t(j)].second : -1;
          scores[size_t(q) * maxn + j] = size_t(j) < keep ? cand[size_t(j)].first : -INFINITY;
        }
      }
    } else if (opt.store) {
      MINDREC_EXPECTS(opt.store->dim() == c.embedding_dim && opt.store->metric() == Metric::inner_product,
                      "evaluate: the store must hold inner-product vectors of the model's dimension");
      opt.store->search(n * K, interests.data(), maxn, ids.data(), scores.data(), so);
    } else {
      // the evaluation's own batches: Eigen's GEMM, faster than the batch-invariant scan
      store::exact_topk_gemm(emb, c.item_count, c.embedding_dim, interests.data(), n * K, maxn, ids.data(),
                             scores.data(), opt.threads);
    }
    for (int64_t b = 0; b < n; ++b) {
      const int64_t u = first + b;
      const int64_t gt_len = gt_counted(set, u, opt);
      for (size_t t = 0; t < opt.topk.size(); ++t) {
        const int N = opt.topk[t];
        // Per-interest top-N of the top-maxn lists (a prefix of an exact sorted list).
        for (int k = 0; k < counts[b]; ++k)
          for (int j = 0; j < N; ++j) {
            pid[size_t(k) * N + j] = ids[(size_t(b) * K + k) * maxn + j];
            psc[size_t(k) * N + j] = scores[(size_t(b) * K + k) * maxn + j];
          }
        const int got = merge_interests(pid.data(), psc.data(), counts[b], N, N, merged.data());
        add(rep.metrics[t], user_metrics(merged.data(), got, set.eval(u), gt_len));
      }
    }
  }
  if (opt.popularity_from) rep.popularity = evaluate_popularity(*opt.popularity_from, set, opt).metrics;
  finish(rep, U, opt, t0);
  return rep;
}

}  // namespace mindrec
