// Multi-interest recall through a VectorStore and the spec's merge.
#include "mindrec/retriever.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "detail/simd.hpp"
#include "mindrec/config.hpp"
#include "mindrec/data.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "store/topk_select.hpp"

namespace mindrec {

int merge_interests(const int64_t* ids, const float* scores, int num_interests, int per_interest,
                    int topn, int64_t* out, float* out_scores) {
  const int total = num_interests * per_interest;
  std::vector<int> order(total);
  for (int i = 0; i < total; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return store::ranks_before(scores[a], ids[a], scores[b], ids[b]);
  });
  int n = 0;
  for (int i : order) {
    if (n >= topn) break;
    const int64_t id = ids[i];
    if (id <= 0) continue;
    if (std::find(out, out + n, id) != out + n) continue;
    if (out_scores) out_scores[n] = scores[i];
    out[n++] = id;
  }
  return n;
}

namespace {
std::string bad_id(const std::string& what, size_t b, size_t l, int64_t id, int64_t N) {
  return what + ": user " + std::to_string(b) + ", position " + std::to_string(l) + ": " +
         (id == 0 ? std::string("item id 0 is the padding id, not an item")
                  : "item id " + std::to_string(id) + " is outside the model's [1, item_count=" + std::to_string(N) + ")");
}
std::string no_clicks(const std::string& what, size_t b) {
  return what + ": user " + std::to_string(b) + " has no clicks: no interests to extract (recall answers such a user "
         "with the model's popular items, flagged as the fallback)";
}
}  // namespace

void check_histories(const MindModel& model, const int64_t* hist, const int32_t* lengths, int64_t batch,
                     const std::string& what, bool allow_empty) {
  const int L = model.config().maxlen;
  const int64_t N = model.config().item_count;
  for (int64_t b = 0; b < batch; ++b) {
    if (lengths[b] < 0 || lengths[b] > L)
      throw InvalidArgument(what + ": lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                            " is outside [0, maxlen=" + std::to_string(L) + "]");
    if (lengths[b] == 0 && !allow_empty) throw InvalidArgument(no_clicks(what, size_t(b)));
    for (int l = 0; l < lengths[b]; ++l) {
      const int64_t id = hist[b * L + l];
      if (id < 1 || id >= N) throw InvalidArgument(bad_id(what, size_t(b), size_t(l), id, N));
    }
  }
}

void check_histories(const MindModel& model, const std::vector<std::vector<int64_t>>& histories,
                     const std::string& what, bool allow_empty) {
  const int64_t N = model.config().item_count;
  for (size_t b = 0; b < histories.size(); ++b) {
    if (histories[b].empty() && !allow_empty) throw InvalidArgument(no_clicks(what, b));
    for (size_t l = 0; l < histories[b].size(); ++l)
      if (histories[b][l] < 1 || histories[b][l] >= N) throw InvalidArgument(bad_id(what, b, l, histories[b][l], N));
  }
}

namespace {

// recall_items' work. `drop` (sorted, unique; null = the packed rows) holds, per user, the ids
// exclude_history leaves out.
void recall_core(const MindModel& model, const VectorStore& store, const int64_t* hist, const int32_t* lengths,
                 int64_t batch, const RecallOptions& opt, const std::vector<std::vector<int64_t>>* drop,
                 int64_t* ids, float* scores, uint8_t* fallback) {
  const auto& c = model.config();
  const int K = c.capsule.max_k, H = c.hidden_size, L = c.maxlen;
  const int topn = opt.topn;
  const float pad = padding_score(store.metric());
  // Users without a click get the popular items (below); the others are recalled together.
  std::vector<int64_t> users;  // rows of hist that have clicks
  users.reserve(size_t(batch));
  for (int64_t b = 0; b < batch; ++b) {
    if (fallback) fallback[b] = lengths[b] == 0;
    if (lengths[b] > 0) users.push_back(b);
    else if (model.weights().popular_items.empty())
      throw InvalidArgument("recall: user " + std::to_string(b) + " has no clicks, and the weights carry no popular "
                            "items to answer with (mindrec train records them in the weights it writes; weights "
                            "made elsewhere have none)");
  }
  auto excluded = [&](int64_t b, int64_t id) {
    if (!opt.exclude_history || id <= 0) return false;
    if (drop) return std::binary_search((*drop)[size_t(b)].begin(), (*drop)[size_t(b)].end(), id);
    return std::find(hist + b * L, hist + b * L + lengths[b], id) != hist + b * L + lengths[b];
  };
  // The popular items a filter allows (users without clicks get those).
  std::vector<uint8_t> popular_ok;
  if (!opt.filter.empty() && users.size() < size_t(batch)) {
    const auto& pop = model.weights().popular_items;
    popular_ok = store.filter_allows(opt.filter, int64_t(pop.size()), pop.data());
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (lengths[b] > 0) continue;
    int n = 0;
    const auto& pop = model.weights().popular_items;
    for (size_t p = 0; p < pop.size(); ++p) {
      if (n == topn) break;
      const int64_t id = pop[p];
      if (!popular_ok.empty() && !popular_ok[p]) continue;
      if (!excluded(b, id)) ids[b * topn + n] = id, scores[b * topn + n] = 0.0f, ++n;
    }
    for (; n < topn; ++n) ids[b * topn + n] = -1, scores[b * topn + n] = pad;
  }
  const int64_t U = int64_t(users.size());
  if (U == 0) return;
  // The rows with clicks, packed together when some rows have none.
  const bool all = U == batch;
  std::vector<int64_t> hist_u;
  std::vector<int32_t> len_u;
  if (!all) {
    hist_u.resize(size_t(U) * L);
    len_u.resize(size_t(U));
    for (int64_t u = 0; u < U; ++u) {
      std::copy(hist + users[size_t(u)] * L, hist + (users[size_t(u)] + 1) * L, hist_u.begin() + u * L);
      len_u[size_t(u)] = lengths[users[size_t(u)]];
    }
  }
  const int64_t* h = all ? hist : hist_u.data();
  const int32_t* len = all ? lengths : len_u.data();
  std::vector<float> interests(size_t(U) * K * H);
  std::vector<int32_t> counts(static_cast<size_t>(U));
  model.extract_interests(h, len, U, interests.data(), counts.data(), opt.threads);
  // A store that filters leaves the user's history out inside its search (and applies the
  // filter there); one that does not fetches enough to leave topn after the excluded ids.
  const bool inside = store.supports_filter();
  SearchOptions so;
  so.filter = opt.filter;
  so.params = opt.search_params;
  std::vector<std::vector<int64_t>> user_drop;
  if (opt.exclude_history && inside) {
    user_drop.resize(size_t(U));
    for (int64_t u = 0; u < U; ++u) {
      const int64_t b = users[size_t(u)];
      if (drop) user_drop[size_t(u)] = (*drop)[size_t(b)];
      else user_drop[size_t(u)].assign(hist + b * L, hist + b * L + lengths[b]);
    }
    so.exclude = &user_drop;
    so.queries_per_exclude = K;
  }
  int64_t extra = 0;
  if (opt.exclude_history && !inside) {
    if (drop)
      for (const int64_t b : users) extra = std::max<int64_t>(extra, int64_t((*drop)[size_t(b)].size()));
    else
      extra = L;
  }
  extra = std::min<int64_t>(extra, std::max<int64_t>(store.size(), 0));
  const int fetch = int(std::min<int64_t>((int64_t(topn) + extra) * std::max(1, opt.rerank), int64_t(1) << 30));
  // A backend with a fused search + merge (cuda:flat) does it all on its device.
  std::vector<int64_t> out_ids(all ? 0 : size_t(U) * topn);
  std::vector<float> out_sc(all ? 0 : size_t(U) * topn);
  int64_t* rid = all ? ids : out_ids.data();
  float* rsc = all ? scores : out_sc.data();
  if (!(!opt.exclude_history && opt.rerank == 0 && so.empty() &&
        store.search_merged(U, K, counts.data(), interests.data(), topn, topn, rid, rsc))) {
    std::vector<int64_t> fid(size_t(U) * K * fetch);
    std::vector<float> fsc(size_t(U) * K * fetch);
    store.search(U * K, interests.data(), fetch, fid.data(), fsc.data(), so);
    const bool l2 = store.metric() == Metric::l2;
    if (opt.rerank > 0) {
      // Exact scores from the model's item vectors; items it has none for (or whose stored
      // vector was written later) keep the store's score.
      const float* emb = model.weights().item_emb.data();
      const int64_t items = c.item_count;
      const auto& k = detail::simd();
      const std::vector<int64_t>* later = opt.store_scored;
#pragma omp parallel for schedule(static) if (U * K * fetch >= 65536) num_threads(resolve_threads(opt.threads))
      for (int64_t q = 0; q < U * K; ++q) {
        const float* x = interests.data() + size_t(q) * H;
        for (int j = 0; j < fetch; ++j) {
          const int64_t id = fid[size_t(q) * fetch + j];
          float& sc = fsc[size_t(q) * fetch + j];
          if (id <= 0 || id >= items || (later && std::binary_search(later->begin(), later->end(), id))) continue;
          const float* v = emb + size_t(id) * H;
          sc = l2 ? k.l2sq(x, v, size_t(H)) : k.dot(x, v, size_t(H));
        }
      }
    }
    std::vector<int64_t> merged(static_cast<size_t>(topn));
    std::vector<float> merged_sc(static_cast<size_t>(topn));
    for (int64_t u = 0; u < U; ++u) {
      const int64_t b = users[size_t(u)];
      int64_t* bid = fid.data() + size_t(u) * K * fetch;
      float* bsc = fsc.data() + size_t(u) * K * fetch;
      for (int i = 0; i < counts[size_t(u)] * fetch; ++i) {
        if (l2) bsc[i] = -bsc[i];  // the merge ranks by larger-is-better
        if (excluded(b, bid[i])) bid[i] = -1;
      }
      const int n = merge_interests(bid, bsc, counts[size_t(u)], fetch, topn, merged.data(), merged_sc.data());
      for (int j = 0; j < topn; ++j) {
        rid[u * topn + j] = j < n ? merged[size_t(j)] : -1;
        rsc[u * topn + j] = j < n ? (l2 ? -merged_sc[size_t(j)] : merged_sc[size_t(j)]) : pad;
      }
    }
  }
  if (!all)
    for (int64_t u = 0; u < U; ++u) {
      std::copy(rid + u * topn, rid + (u + 1) * topn, ids + users[size_t(u)] * topn);
      std::copy(rsc + u * topn, rsc + (u + 1) * topn, scores + users[size_t(u)] * topn);
    }
}

}  // namespace

void recall_items(const MindModel& model, const VectorStore& store, const int64_t* hist,
                  const int32_t* lengths, int64_t batch, const RecallOptions& opt, int64_t* ids,
                  float* scores, uint8_t* fallback) {
  MINDREC_EXPECTS(opt.topn >= 1, "recall_items: topn must be >= 1");
  MINDREC_EXPECTS(store.dim() == model.config().hidden_size, "recall_items: the store's dimension differs from the model's");
  MINDREC_EXPECTS(opt.rerank >= 0 && opt.rerank <= 100, "recall_items: rerank must be in [0, 100]");
  if (batch <= 0) return;
  MINDREC_EXPECTS(hist && lengths && ids && scores, "recall_items: null input or output");
  check_histories(model, hist, lengths, batch, "recall_items");
  recall_core(model, store, hist, lengths, batch, opt, nullptr, ids, scores, fallback);
}

RecallResult recall_histories(const MindModel& model, const VectorStore& store,
                              const std::vector<std::vector<int64_t>>& histories,
                              const RecallOptions& options) {
  MINDREC_EXPECTS(options.topn >= 1, "recall_histories: topn must be >= 1");
  MINDREC_EXPECTS(store.dim() == model.config().hidden_size, "recall_histories: the store's dimension differs from the model's");
  MINDREC_EXPECTS(options.rerank >= 0 && options.rerank <= 100, "recall_histories: rerank must be in [0, 100]");
  check_histories(model, histories, "recall_histories");  // every id, not only the last maxlen the model reads
  RecallResult r;
  r.users = static_cast<int64_t>(histories.size());
  r.topn = options.topn;
  const int L = model.config().maxlen;
  std::vector<int64_t> hist(size_t(r.users) * L);
  std::vector<int32_t> lens(static_cast<size_t>(r.users));
  pack_histories(histories, L, hist.data(), lens.data());
  // exclude_history leaves out every id of each list, not only the last maxlen.
  std::vector<std::vector<int64_t>> drop;
  if (options.exclude_history) {
    drop.resize(histories.size());
    for (size_t b = 0; b < histories.size(); ++b) {
      drop[b] = histories[b];
      std::sort(drop[b].begin(), drop[b].end());
      drop[b].erase(std::unique(drop[b].begin(), drop[b].end()), drop[b].end());
    }
  }
  r.ids.resize(size_t(r.users) * r.topn);
  r.scores.resize(size_t(r.users) * r.topn);
  r.fallback.resize(static_cast<size_t>(r.users));
  if (r.users == 0) return r;
  recall_core(model, store, hist.data(), lens.data(), r.users, options, options.exclude_history ? &drop : nullptr,
              r.ids.data(), r.scores.data(), r.fallback.data());
  return r;
}

void check_store_pairing(const MindModel& model, const VectorStore& store, const std::string& store_name,
                         bool allow_mismatch) {
  const uint64_t want = model.item_fingerprint(), have = store.source_fingerprint();
  if (have == want) return;
  if (have == 0) {
    log(LogLevel::warn, store_name + ": the store does not record which weights its vectors came from "
                        "(a file older than store format 4, or vectors added by hand); serving it beside weights " +
                        fingerprint_hex(want) + " unchecked");
    return;
  }
  const std::string msg = store_name + ": the store holds the item vectors of weights " + fingerprint_hex(have) +
                          ", not of the loaded weights " + fingerprint_hex(want);
  if (allow_mismatch) {
    log(LogLevel::warn, msg + " (allowed by request)");
    return;
  }
  throw ConfigError(msg + ": rebuild it from these weights (mindrec index), or allow the mismatch explicitly "
                          "(--allow-mismatched-index)");
}

int64_t upsert_item_vectors(const MindModel& model, VectorStore& store) {
  const auto& c = model.config();
  MINDREC_EXPECTS(store.dim() == c.embedding_dim,
                  "upsert_item_vectors: the store's dimension differs from the model's embedding_dim");
  const int64_t n = c.item_count - 1;
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = i + 1;
  store.upsert(n, model.weights().item_emb.data() + c.embedding_dim, ids.data());
  store.set_source_fingerprint(model.item_fingerprint());
  return n;
}

std::unique_ptr<VectorStore> build_item_store(const MindModel& model, const std::string& spec,
                                              Metric metric) {
  auto store = make_vector_store(spec, model.config().embedding_dim, metric);
  upsert_item_vectors(model, *store);
  return store;
}

int64_t upsert_item_vectors(const MindModel& model, VectorStore& store, const Catalogue& catalogue) {
  const auto& c = model.config();
  MINDREC_EXPECTS(store.dim() == c.embedding_dim,
                  "upsert_item_vectors: the store's dimension differs from the model's embedding_dim");
  std::vector<int64_t> ids;
  const int64_t end = std::min(c.item_count, catalogue.item_count());
  for (int64_t id = 1; id < end; ++id)
    if (catalogue.has_id(id) && catalogue.status(id) == ItemStatus::active) ids.push_back(id);
  const size_t D = size_t(c.embedding_dim);
  std::vector<float> x(ids.size() * D);
  for (size_t i = 0; i < ids.size(); ++i)
    std::copy_n(model.weights().item_emb.data() + size_t(ids[i]) * D, D, x.data() + i * D);
  store.upsert(int64_t(ids.size()), x.data(), ids.data());
  store.set_source_fingerprint(model.item_fingerprint());
  return int64_t(ids.size());
}

std::unique_ptr<VectorStore> build_item_store(const MindModel& model, const std::string& spec, const Catalogue& catalogue,
                                              Metric metric) {
  auto store = make_vector_store(spec, model.config().embedding_dim, metric);
  upsert_item_vectors(model, *store, catalogue);
  return store;
}

namespace {
// A store of weights' item rows `ids` (ascending, each >= 1), the table handed over: row
// ids[i] moved to row i in place (ids[i] > i: every row moves towards the front, after the
// rows it passes were read), the rest cut off.
std::unique_ptr<VectorStore> build_from_table(MindWeights& weights, const std::string& spec, Metric metric,
                                              const std::vector<int64_t>& ids) {
  const auto& c = weights.config;
  const size_t D = size_t(c.embedding_dim);
  MINDREC_EXPECTS(weights.item_emb.size() == size_t(c.item_count) * D,
                  "build_item_store: item_emb does not hold item_count x embedding_dim floats");
  auto store = make_vector_store(spec, c.embedding_dim, metric);
  const uint64_t fingerprint = item_fingerprint(weights);
  AlignedVector<float> rows;
  rows.swap(weights.item_emb);
  for (size_t i = 0; i < ids.size(); ++i)
    std::memmove(rows.data() + i * D, rows.data() + size_t(ids[i]) * D, D * sizeof(float));
  rows.resize(ids.size() * D);  // shrinks in place: no reallocation
  store->add(int64_t(ids.size()), std::move(rows), ids.data());
  store->set_source_fingerprint(fingerprint);
  return store;
}
}  // namespace

std::unique_ptr<VectorStore> build_item_store(MindWeights&& weights, const std::string& spec, Metric metric) {
  std::vector<int64_t> ids(size_t(std::max<int64_t>(weights.config.item_count - 1, 0)));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(i) + 1;
  return build_from_table(weights, spec, metric, ids);
}

std::unique_ptr<VectorStore> build_item_store(MindWeights&& weights, const std::string& spec, const Catalogue& catalogue,
                                              Metric metric) {
  std::vector<int64_t> ids;
  const int64_t end = std::min(weights.config.item_count, catalogue.item_count());
  for (int64_t id = 1; id < end; ++id)
    if (catalogue.has_id(id) && catalogue.status(id) == ItemStatus::active) ids.push_back(id);
  return build_from_table(weights, spec, metric, ids);
}

DenseHistories to_dense_histories(const Catalogue& catalogue, const std::vector<std::vector<std::string>>& histories,
                                  int64_t item_count) {
  DenseHistories h;
  h.dense.resize(histories.size());
  h.unknown.resize(histories.size());
  std::vector<std::string_view> views;
  std::vector<int64_t> ids;
  for (size_t u = 0; u < histories.size(); ++u) {
    views.assign(histories[u].begin(), histories[u].end());
    ids.resize(views.size());
    catalogue.to_dense(views.data(), views.size(), ids.data());  // one batch: reads overlapped
    h.dense[u].reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= 1 && ids[i] < item_count) h.dense[u].push_back(ids[i]);
      else h.unknown[u].push_back(histories[u][i]);
    }
  }
  return h;
}

RawRecallResult recall_raw_histories(const MindModel& model, const VectorStore& store, const Catalogue& catalogue,
                                     const std::vector<std::vector<std::string>>& histories, const RecallOptions& options) {
  DenseHistories h = to_dense_histories(catalogue, histories, model.config().item_count);
  const RecallResult r = recall_histories(model, store, h.dense, options);
  RawRecallResult out;
  out.users = r.users;
  out.topn = r.topn;
  out.ids.resize(size_t(r.users));
  out.scores.resize(size_t(r.users));
  out.fallback = r.fallback;
  out.unknown = std::move(h.unknown);
  for (int64_t b = 0; b < r.users; ++b)
    for (int j = 0; j < r.topn; ++j) {
      const int64_t id = r.ids[size_t(b) * r.topn + j];
      if (id < 0) break;
      if (!catalogue.has_id(id) || catalogue.status(id) == ItemStatus::retired) continue;
      out.ids[size_t(b)].emplace_back(catalogue.to_raw(id));
      out.scores[size_t(b)].push_back(r.scores[size_t(b) * r.topn + j]);
    }
  return out;
}

}  // namespace mindrec
