// Multi-interest recall through a VectorStore and the spec's merge.
#include "mindrec/retriever.hpp"

#include <algorithm>
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

void recall_items(const MindModel& model, const VectorStore& store, const int64_t* hist,
                  const int32_t* lengths, int64_t batch, const RecallOptions& opt, int64_t* ids,
                  float* scores) {
  const auto& c = model.config();
  const int K = c.capsule.max_k, H = c.hidden_size, L = c.maxlen;
  MINDREC_EXPECTS(opt.topn >= 1, "recall_items: topn must be >= 1");
  MINDREC_EXPECTS(store.dim() == H, "recall_items: the store's dimension differs from the model's");
  if (batch <= 0) return;
  std::vector<float> interests(size_t(batch) * K * H);
  std::vector<int32_t> counts(batch);
  model.extract_interests(hist, lengths, batch, interests.data(), counts.data(), opt.threads);
  MINDREC_EXPECTS(opt.rerank >= 0 && opt.rerank <= 100, "recall_items: rerank must be in [0, 100]");
  const int fetch = (opt.topn + (opt.exclude_history ? L : 0)) * std::max(1, opt.rerank);
  // A backend with a fused search + merge (cuda:flat) does it all on its device.
  if (!opt.exclude_history && opt.rerank == 0 &&
      store.search_merged(batch, K, counts.data(), interests.data(), opt.topn, opt.topn, ids, scores))
    return;
  std::vector<int64_t> fid(size_t(batch) * K * fetch);
  std::vector<float> fsc(size_t(batch) * K * fetch);
  store.search(batch * K, interests.data(), fetch, fid.data(), fsc.data());
  const bool l2 = store.metric() == Metric::l2;
  const float pad = padding_score(store.metric());
  if (opt.rerank > 0) {
    // Exact scores from the model's item vectors; items it has none for (or whose stored
    // vector was written later) keep the store's score.
    const float* emb = model.weights().item_emb.data();
    const int64_t items = c.item_count;
    const auto& k = detail::simd();
    const std::vector<int64_t>* later = opt.store_scored;
#pragma omp parallel for schedule(static) if (batch * K * fetch >= 65536) num_threads(resolve_threads(opt.threads))
    for (int64_t q = 0; q < batch * K; ++q) {
      const float* x = interests.data() + size_t(q) * H;
      for (int j = 0; j < fetch; ++j) {
        const int64_t id = fid[size_t(q) * fetch + j];
        float& s = fsc[size_t(q) * fetch + j];
        if (id <= 0 || id >= items || (later && std::binary_search(later->begin(), later->end(), id))) continue;
        const float* v = emb + size_t(id) * H;
        s = l2 ? k.l2sq(x, v, size_t(H)) : k.dot(x, v, size_t(H));
      }
    }
  }
  std::vector<int64_t> merged(opt.topn);
  std::vector<float> merged_sc(opt.topn);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t* bid = fid.data() + size_t(b) * K * fetch;
    float* bsc = fsc.data() + size_t(b) * K * fetch;
    for (int i = 0; i < counts[b] * fetch; ++i) {
      if (l2) bsc[i] = -bsc[i];  // the merge ranks by larger-is-better
      if (opt.exclude_history && bid[i] > 0 &&
          std::find(hist + b * L, hist + b * L + lengths[b], bid[i]) != hist + b * L + lengths[b])
        bid[i] = -1;
    }
    const int n = merge_interests(bid, bsc, counts[b], fetch, opt.topn, merged.data(), merged_sc.data());
    for (int j = 0; j < opt.topn; ++j) {
      ids[b * opt.topn + j] = j < n ? merged[j] : -1;
      scores[b * opt.topn + j] = j < n ? (l2 ? -merged_sc[j] : merged_sc[j]) : pad;
    }
  }
}

RecallResult recall_histories(const MindModel& model, const VectorStore& store,
                              const std::vector<std::vector<int64_t>>& histories,
                              const RecallOptions& options) {
  MINDREC_EXPECTS(options.topn >= 1, "recall_histories: topn must be >= 1");
  RecallResult r;
  r.users = static_cast<int64_t>(histories.size());
  r.topn = options.topn;
  const int L = model.config().maxlen;
  std::vector<int64_t> hist(size_t(r.users) * L);
  std::vector<int32_t> lens(static_cast<size_t>(r.users));
  pack_histories(histories, L, hist.data(), lens.data());
  r.ids.resize(size_t(r.users) * r.topn);
  r.scores.resize(size_t(r.users) * r.topn);
  recall_items(model, store, hist.data(), lens.data(), r.users, options, r.ids.data(), r.scores.data());
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

}  // namespace mindrec
