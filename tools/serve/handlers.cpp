// RecService's recall and item endpoints (the seed's API and item updates).
#include <algorithm>
#include <cmath>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "compute_slots.hpp"
#include "metrics.hpp"
#include "mindrec/error.hpp"
#include "mindrec/retriever.hpp"
#include "rec_service.hpp"
#include "request_json.hpp"

namespace mindrec::serve {

namespace {
// "attributes": {"name": [one value per id], ...} for declared columns: numbers for int64
// (integers) and float64, true/false for bool, strings for string.
AttributeBatch attribute_batch(const json& a, const std::vector<AttributeSpec>& declared, size_t count) {
  if (!a.is_object()) bad("attributes", std::string("must be an object of columns, e.g. {\"in_stock\": [true]}, got ") + a.type_name());
  AttributeBatch b;
  for (auto it = a.begin(); it != a.end(); ++it) {
    const std::string field = "attributes." + it.key();
    const AttributeSpec* spec = nullptr;
    for (const auto& d : declared)
      if (d.name == it.key()) spec = &d;
    if (!spec) {
      std::string have;
      for (const auto& d : declared) have += (have.empty() ? "" : ", ") + d.name;
      bad(field, "is not an attribute of the store (declared: " + (have.empty() ? std::string("none; mindrec index --attributes") : have) + ")");
    }
    const json& v = it.value();
    if (!v.is_array() || v.size() != count) bad(field, "must be an array of " + std::to_string(count) + " values (one per id)");
    AttributeBatch::Column c;
    c.name = spec->name;
    c.type = spec->type;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string at = field + "[" + std::to_string(i) + "]";
      switch (spec->type) {
        case AttributeType::int64: c.ints.push_back(as_int(v[i], at)); break;
        case AttributeType::float64:
          if (!v[i].is_number() || !std::isfinite(v[i].get<double>())) bad(at, "must be a finite number");
          c.floats.push_back(v[i].get<double>());
          break;
        case AttributeType::boolean: c.bools.push_back(as_bool(v[i], at) ? 1 : 0); break;
        case AttributeType::string: c.strings.push_back(as_string(v[i], at)); break;
      }
    }
    b.columns.push_back(std::move(c));
  }
  return b;
}
}  // namespace

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
  check_keys(j, {"top_k", "hist_item", "exclude_history", "rerank", "ids", "filter", "params"});
  // "filter": an expression over the store's attributes (README "Filters"); "params": search
  // parameters for this request ({"ef": 256}, {"nprobe": 32}).
  std::string filter;
  if (j.contains("filter")) {
    filter = as_string(j["filter"], "filter");
    try {
      check_filter(filter, store.attributes());
    } catch (const InvalidArgument& e) {
      bad("filter", e.what());
    }
  }
  std::vector<std::pair<std::string, double>> params;
  if (j.contains("params")) {
    const json& p = j["params"];
    if (!p.is_object()) bad("params", std::string("must be an object of numbers, e.g. {\"ef\": 256}, got ") + p.type_name());
    for (auto it = p.begin(); it != p.end(); ++it) {
      if (!it.value().is_number()) bad("params." + it.key(), "must be a number");
      params.emplace_back(it.key(), it.value().get<double>());
    }
  }
  bool raw = false;  // "ids": "raw": hist_item holds raw ids and the answer too (the catalogue's)
  if (j.contains("ids")) {
    const std::string mode = as_string(j["ids"], "ids");
    if (mode != "raw" && mode != "dense") bad("ids", "must be \"raw\" or \"dense\", got \"" + mode + "\"");
    raw = mode == "raw";
    if (raw && !snap->catalogue)
      bad("ids", "raw ids need the model's catalogue: the served weights have none (train on data from mindrec "
                 "prepare, or start with --catalogue)");
  }
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
  std::vector<std::vector<std::string>> raw_hists(raw ? users.size() : 0);
  for (size_t u = 0; u < users.size(); ++u) {
    const std::string row = "hist_item[" + std::to_string(u) + "]";
    const json& h = users[u];
    if (!h.is_array()) bad(row, std::string("must be an array of item ids, got ") + h.type_name());
    if (h.size() > 100000) bad(row, "is longer than 100000 items");
    for (size_t l = 0; l < h.size(); ++l) {
      const std::string field = row + "[" + std::to_string(l) + "]";
      if (raw) {  // strings; numbers are read as their decimal text
        if (h[l].is_string()) raw_hists[u].push_back(h[l].get<std::string>());
        else if (h[l].is_number_integer()) raw_hists[u].push_back(h[l].dump());
        else bad(field, std::string("must be a raw item id (a string, or an integer), got ") + h[l].type_name());
        continue;
      }
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
  o.filter = filter;
  o.search_params = params;
  const auto later = rerank > 0 ? written_ids(*snap) : nullptr;
  o.store_scored = later.get();
  if (raw) return recall_raw(*snap, raw_hists, o);
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

Reply RecService::recall_raw(const RecommenderSnapshot& snap, const std::vector<std::vector<std::string>>& hists,
                             const RecallOptions& o) const {
  const RawRecallResult r = slots_->run([&] {
    std::shared_lock<std::shared_mutex> l(catalogue_mutex());
    return recall_raw_histories(*snap.model, *snap.store, *snap.catalogue, hists, o);
  });
  json out_ids = json::array(), out_scores = json::array(), out_fallback = json::array(), out_unknown = json::array();
  int64_t fallback = 0, short_lists = 0, empty_lists = 0, unknown = 0;
  for (int64_t b = 0; b < r.users; ++b) {
    unknown += int64_t(r.unknown[size_t(b)].size());
    fallback += r.fallback[size_t(b)] != 0;
    short_lists += int64_t(r.ids[size_t(b)].size()) < o.topn;
    empty_lists += r.ids[size_t(b)].empty();
    out_ids.push_back(r.ids[size_t(b)]);
    out_scores.push_back(r.scores[size_t(b)]);
    out_unknown.push_back(r.unknown[size_t(b)]);
    out_fallback.push_back(r.fallback[size_t(b)] ? json("popularity") : json(nullptr));
  }
  metrics_->recalled(r.users, fallback, short_lists, empty_lists);
  metrics_->unknown_raw_ids(unknown);
  // unknown[u]: the raw ids of user u's history the catalogue does not know (skipped);
  // fallback[u]: "popularity" when none was known: the popular items (scores 0), else null.
  return ok({{"top_k", o.topn}, {"ids", std::move(out_ids)}, {"scores", std::move(out_scores)},
             {"unknown", std::move(out_unknown)}, {"fallback", std::move(out_fallback)}});
}

Reply RecService::count() const { return ok({{"count", loaded()->store->size()}}); }

Reply RecService::drop() {
  check_writable();
  const auto snap = loaded();
  const int64_t n = snap->store->size();
  snap->store->clear();
  return ok({{"dropped", n}, {"count", snap->store->size()}});
}

namespace {
// "raw_ids": distinct raw item ids (strings; integers read as their decimal text), at most
// max_items, each a valid raw id of `catalogue` (its canonical form is returned).
std::vector<std::string> raw_id_list(const json& j, int64_t max_items, const Catalogue& catalogue) {
  const json& a = array_field(j, "raw_ids", 1, size_t(max_items));
  std::vector<std::string> out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string field = "raw_ids[" + std::to_string(i) + "]";
    std::string raw;
    if (a[i].is_string()) raw = a[i].get<std::string>();
    else if (a[i].is_number_integer()) raw = a[i].dump();
    else bad(field, std::string("must be a raw item id (a string, or an integer), got ") + a[i].type_name());
    try {
      out.push_back(catalogue.canonical(raw));
    } catch (const InvalidArgument& e) {
      bad(field, e.what());
    }
  }
  std::vector<std::string> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  if (const auto d = std::adjacent_find(sorted.begin(), sorted.end()); d != sorted.end())
    bad("raw_ids", "raw id '" + *d + "' appears twice");
  return out;
}
}  // namespace

Reply RecService::put_items(std::string_view body) {
  check_writable();
  const auto snap = loaded();
  VectorStore& store = *snap->store;
  const json j = parse_object(body);
  check_keys(j, {"ids", "raw_ids", "vectors", "attributes"});
  if (j.contains("ids") == j.contains("raw_ids")) bad("ids", "one of \"ids\" (dense ids) or \"raw_ids\" is required, not both");
  if (!j.contains("vectors") && !j.contains("attributes")) bad("vectors", "one of \"vectors\" or \"attributes\" (or both) is required");
  const bool raw = j.contains("raw_ids");
  if (raw && !snap->catalogue)
    bad("raw_ids", "raw ids need the model's catalogue: the served weights have none");
  std::vector<int64_t> ids;
  std::vector<std::string> raws;
  if (raw) raws = raw_id_list(j, options_.max_items, *snap->catalogue);
  else ids = id_list(j, options_.max_items, 1);
  const size_t count = raw ? raws.size() : ids.size();
  const bool with_attributes = j.contains("attributes");
  const AttributeBatch attrs = with_attributes ? attribute_batch(j["attributes"], store.attributes(), count) : AttributeBatch{};
  if (!j.contains("vectors")) {
    // Attributes alone (an in-stock flag flipping): no vector touched, no compute slot needed.
    if (raw) {
      std::shared_lock<std::shared_mutex> l(catalogue_mutex());
      json unknown = json::array();
      std::vector<int64_t> known;
      for (size_t i = 0; i < raws.size(); ++i) {
        const int64_t id = snap->catalogue->to_dense(raws[i]);
        if (id == 0) unknown.push_back(raws[i]);
        else known.push_back(id);
      }
      if (!unknown.empty()) bad("raw_ids", "unknown raw ids (give their vectors to add them): " + to_text(unknown));
      store.set_attributes(int64_t(known.size()), known.data(), attrs);
      return ok({{"attributes_set", known.size()}, {"count", store.size()}});
    }
    store.set_attributes(int64_t(ids.size()), ids.data(), attrs);
    return ok({{"attributes_set", ids.size()}, {"count", store.size()}});
  }
  const json& vecs = array_field(j, "vectors", 1, size_t(options_.max_items));
  if (vecs.size() != count)
    bad("vectors", "holds " + std::to_string(vecs.size()) + " vectors for " + std::to_string(count) + " ids");
  const int d = store.dim();
  std::vector<float> x;
  x.reserve(count * size_t(d));
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
  const int64_t n = static_cast<int64_t>(count);
  if (!raw) {
    const int64_t replaced = slots_->run([&] {
      return with_attributes ? store.upsert(n, x.data(), ids.data(), attrs) : store.upsert(n, x.data(), ids.data());
    });
    note_written(*snap, ids);
    return ok({{"added", n - replaced}, {"replaced", replaced}, {"count", store.size()}});
  }
  // By raw id: a known item keeps its id (and is active again), a new one gets the next id and
  // enters the served catalogue once its vector is in the store (a failed upsert adds nothing).
  Catalogue& cat = *snap->catalogue;
  int64_t replaced = 0, entered = 0;
  // The compute slot first, then the catalogue's lock (the order raw recalls take them in:
  // holding the lock while waiting for a slot could wait forever on recalls that hold every
  // slot and wait for the lock).
  slots_->run([&] {
    std::unique_lock<std::shared_mutex> l(catalogue_mutex());
    int64_t next = cat.item_count();
    for (const auto& r : raws) {
      const int64_t id = cat.to_dense(r);
      ids.push_back(id != 0 ? id : next++);
    }
    replaced = with_attributes ? store.upsert(n, x.data(), ids.data(), attrs) : store.upsert(n, x.data(), ids.data());
    for (size_t i = 0; i < raws.size(); ++i) {
      if (ids[i] >= cat.item_count()) {
        cat.insert(ids[i], raws[i]);
        ++entered;
      } else if (cat.status(ids[i]) == ItemStatus::retired) {
        cat.set_status(ids[i], ItemStatus::active);
      }
    }
    return 0;
  });
  note_written(*snap, ids);
  return ok({{"added", n - replaced}, {"replaced", replaced}, {"new_ids", entered}, {"count", store.size()}});
}

Reply RecService::delete_items(std::string_view body) {
  check_writable();
  const auto snap = loaded();
  const json j = parse_object(body);
  check_keys(j, {"ids", "raw_ids"});
  if (j.contains("ids") == j.contains("raw_ids")) bad("ids", "one of \"ids\" (dense ids) or \"raw_ids\" is required, not both");
  if (j.contains("ids")) {
    const std::vector<int64_t> ids = id_list(j, options_.max_items, 0);
    const int64_t removed = snap->store->remove(static_cast<int64_t>(ids.size()), ids.data());
    return ok({{"removed", removed}, {"count", snap->store->size()}});
  }
  if (!snap->catalogue) bad("raw_ids", "raw ids need the model's catalogue: the served weights have none");
  Catalogue& cat = *snap->catalogue;
  const std::vector<std::string> raws = raw_id_list(j, options_.max_items, cat);
  // Removed items are marked retired in the served catalogue (never returned; an upsert of the
  // same raw id brings them back with their id); unknown raw ids are listed, not an error.
  std::unique_lock<std::shared_mutex> l(catalogue_mutex());
  std::vector<int64_t> ids;
  json unknown = json::array();
  for (const auto& r : raws) {
    if (const int64_t id = cat.to_dense(r); id != 0) ids.push_back(id);
    else unknown.push_back(r);
  }
  const int64_t removed = ids.empty() ? 0 : snap->store->remove(static_cast<int64_t>(ids.size()), ids.data());
  for (const int64_t id : ids) cat.set_status(id, ItemStatus::retired);
  return ok({{"removed", removed}, {"unknown", std::move(unknown)}, {"count", snap->store->size()}});
}

}  // namespace mindrec::serve
