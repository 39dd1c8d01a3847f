// warm_start_weights (train.hpp): a new model started from yesterday's, item rows matched by
// raw id through both catalogues.
#include <algorithm>
#include <cstring>

#include "mindrec/error.hpp"
#include "mindrec/train.hpp"

namespace mindrec {

MindWeights warm_start_weights(const ModelConfig& config, uint64_t seed, const MindWeights& prev,
                               const Catalogue& prev_cat, const Catalogue& cat, const std::string& prev_name,
                               WarmStartReport* report) {
  const ModelConfig& p = prev.config;
  std::string diff;
  auto cmp = [&](const char* field, int64_t now, int64_t before) {
    if (now != before)
      diff += std::string(diff.empty() ? "" : ", ") + "hyper_parameters." + field + " is " + std::to_string(now) +
              " but " + std::to_string(before) + " in the previous model";
  };
  cmp("embedding_dim", config.embedding_dim, p.embedding_dim);
  cmp("hidden_size", config.hidden_size, p.hidden_size);
  cmp("maxlen", config.maxlen, p.maxlen);
  cmp("capsule.max_k", config.capsule.max_k, p.capsule.max_k);
  cmp("capsule.relu_layer", config.capsule.relu_layer, p.capsule.relu_layer);
  if (config.extractor != p.extractor)
    diff += std::string(diff.empty() ? "" : ", ") + "hyper_parameters.extractor is " + to_string(config.extractor) +
            " but " + to_string(p.extractor) + " in the previous model";
  else if (!config.capsule_extractor())
    cmp("self_attention.hidden", config.attention_hidden(), p.attention_hidden());
  else
    cmp("capsule.per_interest_transform", config.capsule.per_interest_transform, p.capsule.per_interest_transform);
  if (!diff.empty())
    throw ConfigError("cannot warm-start from " + prev_name + ": " + diff + " (only item_count may change)");
  if (cat.item_count() > config.item_count)
    throw ConfigError("cannot warm-start: the catalogue has ids up to " + std::to_string(cat.item_count() - 1) +
                      " but hyper_parameters.item_count is " + std::to_string(config.item_count));
  MindWeights w = init_weights(config, seed);
  w.bilinear = prev.bilinear;
  w.routing_logits = prev.routing_logits;
  w.relu_weight = prev.relu_weight;
  w.relu_bias = prev.relu_bias;
  w.attention = prev.attention;
  const size_t D = size_t(config.embedding_dim);
  WarmStartReport r;
  const int64_t prev_rows = std::min(p.item_count, prev_cat.item_count());
  for (int64_t id = 1; id < prev_rows; ++id) {
    if (!prev_cat.has_id(id)) continue;
    const int64_t now = cat.to_dense(prev_cat.to_raw(id));
    if (now <= 0 || now >= config.item_count) continue;
    std::memcpy(w.item_emb.data() + size_t(now) * D, prev.item_emb.data() + size_t(id) * D, D * sizeof(float));
    ++r.copied;
  }
  r.initialised = cat.size() - r.copied;
  if (report) *report = r;
  return w;
}

}  // namespace mindrec
