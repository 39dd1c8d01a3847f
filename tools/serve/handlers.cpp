// RecService's recall and item endpoints (the seed's API and item updates).
#include <cmath>
#include <utility>
#include <vector>

#include "compute_slots.hpp"
#include "metrics.hpp"
#include "mindrec/error.hpp"
#include "mindrec/retriever.hpp"
#include "rec_service.hpp"
#include "request_json.hpp"

namespace mindrec::serve {

Reply RecService::insert_data() {
  check_writable();
  const auto snap = loaded();
  const int64_t n = slots_->run([&] { return upsert_item_vectors(*snap->model, *snap->store); });
  return ok({{"inserted", n}, {"count", snap->store->size()}});
}

Reply RecService::recall(std::string_view body) const {
  const auto snap = loaded();  // this request's model and store, whatever reloads meanwhile
  const MindModel& model = *snap->model;
  const VectorStore& store = *snap->store;
  const json j = parse_object(body);
  check_keys(j, {"top_k", "hist_item", "exclude_history", "rerank"});
  int64_t top_k = 50;
  if (j.contains("top_k")) {
    top_k = as_int(j["top_k"], "top_k");
    if (top_k < 1 || top_k > options_.max_top_k)
      bad("top_k", "must be in [1, " + std::to_string(options_.max_top_k) + "], got " + std::to_string(top_k));
  }
  const bool exclude = j.contains("exclude_history") ? as_bool(j["exclude_history"], "exclude_history") : options_.exclude_history;
  int rerank = 0;
  if (j.contains("rerank")) {
    const int64_t r = as_int(j["rerank"], "rerank");
    if (r < 0 || r > 100) bad("rerank", "must be in [0, 100] (candidates fetched per result, re-scored exactly), got " + std::to_string(r));
    rerank = int(r);
  }
  const json& users = array_field(j, "hist_item", 1, size_t(options_.max_users));
  const int64_t item_count = model.config().item_count;
  std::vector<std::vector<int64_t>> hists(users.size());
  for (size_t u = 0; u < users.size(); ++u) {
    const std::string row = "hist_item[" + std::to_string(u) + "]";
    const json& h = users[u];
    if (!h.is_array()) bad(row, std::string("must be an array of item ids, got ") + h.type_name());
    if (h.size() > 100000) bad(row, "is longer than 100000 items");
    for (size_t l = 0; l < h.size(); ++l) {
      const std::string field = row + "[" + std::to_string(l) + "]";
      const int64_t id = as_int(h[l], field);
      if (id == 0) {
        metrics_->refused("padding");
        bad(field, "item id 0 is the padding id, not an item");
      }
      if (id < 1 || id >= item_count) {
        metrics_->refused("out_of_range");
        bad(field, "item id " + std::to_string(id) + " is not in the model's range [1, " +
                       std::to_string(item_count) + ")");
      }
      hists[u].push_back(id);
    }
  }
  // An empty store answers nothing: said, not an empty 200 (GET /readyz says it too).
  if (store.size() == 0)
    return error_reply(503, "", "the store is empty: there is nothing to recall (POST /rec/insert_data fills it "
                                "from the served weights)");
  const int64_t B = static_cast<int64_t>(users.size());
  const int k = static_cast<int>(top_k);
  RecallOptions o;
  o.topn = k;
  o.exclude_history = exclude;
  o.threads = 1;  // one compute thread per request (see ComputeSlots)
  o.rerank = rerank;
  const auto later = rerank > 0 ? written_ids(*snap) : nullptr;
  o.store_scored = later.get();
  const RecallResult r = slots_->run([&] { return recall_histories(model, store, hists, o); });
  json out_ids = json::array(), out_scores = json::array(), out_fallback = json::array();
  int64_t fallback = 0, short_lists = 0, empty_lists = 0;
  for (int64_t b = 0; b < B; ++b) {
    json ri = json::array(), rs = json::array();
    for (int i = 0; i < k; ++i) {
      const size_t at = size_t(b) * k + i;
      if (r.ids[at] < 0) break;
      ri.push_back(r.ids[at]);
      rs.push_back(r.scores[at]);
    }
    fallback += r.fallback[size_t(b)] != 0;
    short_lists += int64_t(ri.size()) < top_k;
    empty_lists += ri.empty();
    out_ids.push_back(std::move(ri));
    out_scores.push_back(std::move(rs));
    out_fallback.push_back(r.fallback[size_t(b)] != 0);
  }
  metrics_->recalled(B, fallback, short_lists, empty_lists);
  // fallback[u]: user u had no clicks and got the model's popular items (scores 0).
  return ok({{"top_k", top_k}, {"ids", std::move(out_ids)}, {"scores", std::move(out_scores)},
             {"fallback", std::move(out_fallback)}});
}

Reply RecService::count() const { return ok({{"count", loaded()->store->size()}}); }

Reply RecService::drop() {
  check_writable();
  const auto snap = loaded();
  const int64_t n = snap->store->size();
  snap->store->clear();
  return ok({{"dropped", n}, {"count", snap->store->size()}});
}

Reply RecService::put_items(std::string_view body) {
  check_writable();
  const auto snap = loaded();
  VectorStore& store = *snap->store;
  const json j = parse_object(body);
  check_keys(j, {"ids", "vectors"});
  const std::vector<int64_t> ids = id_list(j, options_.max_items, 1);
  const json& vecs = array_field(j, "vectors", 1, size_t(options_.max_items));
  if (vecs.size() != ids.size())
    bad("vectors", "holds " + std::to_string(vecs.size()) + " vectors for " + std::to_string(ids.size()) + " ids");
  const int d = store.dim();
  std::vector<float> x;
  x.reserve(ids.size() * size_t(d));
  for (size_t i = 0; i < vecs.size(); ++i) {
    const std::string row = "vectors[" + std::to_string(i) + "]";
    if (!vecs[i].is_array() || vecs[i].size() != size_t(d))
      bad(row, "must be an array of " + std::to_string(d) + " numbers (the store's dimension)");
    for (size_t c = 0; c < size_t(d); ++c) {
      const json& v = vecs[i][c];
      if (!v.is_number()) bad(row + "[" + std::to_string(c) + "]", "must be a number");
      const double f = v.get<double>();
      if (!std::isfinite(f) || std::abs(f) > 3.0e38)
        bad(row + "[" + std::to_string(c) + "]", "must be a finite float32");
      x.push_back(static_cast<float>(f));
    }
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t replaced = slots_->run([&] { return store.upsert(n, x.data(), ids.data()); });
  note_written(*snap, ids);
  return ok({{"added", n - replaced}, {"replaced", replaced}, {"count", store.size()}});
}

Reply RecService::delete_items(std::string_view body) {
  check_writable();
  const auto snap = loaded();
  const json j = parse_object(body);
  check_keys(j, {"ids"});
  const std::vector<int64_t> ids = id_list(j, options_.max_items, 0);
  const int64_t removed = snap->store->remove(static_cast<int64_t>(ids.size()), ids.data());
  return ok({{"removed", removed}, {"count", snap->store->size()}});
}

}  // namespace mindrec::serve
