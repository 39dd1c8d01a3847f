#include "mindrec/retriever.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "mindrec/error.hpp"
#include "mindrec/metrics.hpp"

namespace mindrec {

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
  const int fetch = opt.topn + (opt.exclude_history ? L : 0);
  // A backend with a fused search + merge (cuda:flat) does it all on its device.
  if (!opt.exclude_history &&
      store.search_merged(batch, K, counts.data(), interests.data(), opt.topn, opt.topn, ids, scores))
    return;
  std::vector<int64_t> fid(size_t(batch) * K * fetch);
  std::vector<float> fsc(size_t(batch) * K * fetch);
  store.search(batch * K, interests.data(), fetch, fid.data(), fsc.data());
  const bool l2 = store.metric() == Metric::l2;
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
      const float pad = l2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
      scores[b * opt.topn + j] = j < n ? (l2 ? -merged_sc[j] : merged_sc[j]) : pad;
    }
  }
}

std::unique_ptr<VectorStore> build_item_store(const MindModel& model, const std::string& spec,
                                              Metric metric) {
  const auto& c = model.config();
  auto store = make_vector_store(spec, c.embedding_dim, metric);
  const int64_t n = c.item_count - 1;
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = i + 1;
  store->add(n, model.weights().item_emb.data() + c.embedding_dim, ids.data());
  return store;
}

}  // namespace mindrec
