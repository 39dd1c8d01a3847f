// A vector-store backend of the host's own, written against the installed headers only
// (mindrec/vector_store.hpp, mindrec/store_stream.hpp): an exact store over a std::map. It
// gets from VectorStore what every built-in backend gets (the locking scheme, attributes,
// filter expressions and their planner, exclusions, save/load with checksums and an atomic
// rename), and is checked here against brute force written in this file.
//
//   custom_store        prints "custom_store: ok", or what failed and exits 1
#include <mindrec/error.hpp>
#include <mindrec/vector_store.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

class MapStore final : public mindrec::VectorStore {
 public:
  explicit MapStore(int dim) : VectorStore("example:map", dim, mindrec::Metric::inner_product) {}

 private:
  using Map = std::map<int64_t, std::vector<float>>;

  // Writes: the new contents made aside, swapped in under the exclusive lock.
  void add_impl(int64_t n, const float* x, const int64_t* ids) override {
    Map next = items_;
    for (int64_t i = 0; i < n; ++i) next[ids[i]].assign(x + i * dim(), x + (i + 1) * dim());
    exclusive([&] { items_.swap(next); });
  }
  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    Map next = items_;
    int64_t removed = 0;
    for (int64_t i = 0; i < n; ++i) removed += int64_t(next.erase(ids[i]));
    exclusive([&] { items_.swap(next); });
    return removed;
  }
  void clear_impl() override { items_.clear(); }  // called inside the exclusive section

  // Reads (under the shared lock).
  void reconstruct_impl(int64_t id, float* out) const override {
    const auto& v = items_.at(id);
    std::copy(v.begin(), v.end(), out);
  }
  int64_t size_impl() const override { return int64_t(items_.size()); }
  bool contains_impl(int64_t id) const override { return items_.count(id) > 0; }
  bool list_ids_impl(std::vector<int64_t>& out) const override {
    for (const auto& kv : items_) out.push_back(kv.first);
    return true;
  }
  // Exact search; the filter and exclusions come in `ctx` (ctx.allows), applied inside.
  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores,
                   const mindrec::SearchContext& ctx) const override {
    for (int64_t i = 0; i < nq; ++i) {
      std::vector<std::pair<float, int64_t>> all;
      for (const auto& [id, v] : items_) {
        if (ctx.filtered() && !ctx.allows(i, id)) continue;
        float s = 0;
        for (int j = 0; j < dim(); ++j) s += q[i * dim() + j] * v[size_t(j)];
        all.emplace_back(-s, id);
      }
      std::sort(all.begin(), all.end());
      for (int j = 0; j < k; ++j) {
        const bool have = j < int(all.size());
        ids[i * k + j] = have ? all[size_t(j)].second : -1;
        scores[i * k + j] = have ? -all[size_t(j)].first : mindrec::padding_score(metric());
      }
    }
  }
  void set_param_impl(const std::string& name, double) override {
    throw mindrec::InvalidArgument("example:map takes no search parameter (" + name + ")");
  }

  // The payload: ids, then the vectors, as two frames.
  std::function<void(mindrec::StoreWriter&)> payload_writer_impl() const override {
    return [this](mindrec::StoreWriter& out) {
      std::vector<int64_t> ids;
      std::vector<float> x;
      for (const auto& [id, v] : items_) ids.push_back(id), x.insert(x.end(), v.begin(), v.end());
      out.put(ids.data(), ids.size());
      out.put(x.data(), x.size());
    };
  }
  std::function<void()> read_payload_impl(mindrec::StoreReader& in, int64_t count) override {
    const auto ids = in.get_vector<int64_t>();
    const auto x = in.get_vector<float>();
    if (int64_t(ids.size()) != count || x.size() != ids.size() * size_t(dim()))
      throw mindrec::FormatError(in.what() + ": " + std::to_string(ids.size()) + " ids and " +
                                 std::to_string(x.size()) + " floats for " + std::to_string(count) + " vectors");
    auto made = std::make_shared<Map>();
    for (size_t i = 0; i < ids.size(); ++i) (*made)[ids[i]].assign(x.begin() + ptrdiff_t(i) * dim(), x.begin() + ptrdiff_t(i + 1) * dim());
    return [this, made] { items_.swap(*made); };
  }

  Map items_;
};

int failures = 0;
void check(bool ok, const std::string& what) {
  if (!ok) std::printf("custom_store: FAILED %s\n", what.c_str()), ++failures;
}

// The brute-force answer: ids of the k best inner products among ids 1..n that `ok` allows,
// the smaller id first on ties.
std::vector<int64_t> brute(const std::vector<float>& x, int dim, const float* q, int k,
                           const std::function<bool(int64_t)>& ok) {
  std::vector<std::pair<float, int64_t>> all;
  for (size_t r = 0; r < x.size() / size_t(dim); ++r) {
    const int64_t id = int64_t(r) + 1;
    if (!ok(id)) continue;
    float s = 0;
    for (int j = 0; j < dim; ++j) s += q[j] * x[r * size_t(dim) + size_t(j)];
    all.emplace_back(-s, id);
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> out;
  for (int j = 0; j < k; ++j) out.push_back(j < int(all.size()) ? all[size_t(j)].second : -1);
  return out;
}

}  // namespace

int main() {
  constexpr int dim = 8, n = 300, k = 10, nq = 4;
  uint64_t state = 12345;
  auto next = [&] {  // a fixed sequence in [-1, 1)
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return float(int64_t(state >> 33) % 2000) / 1000.f - 1.f;
  };
  std::vector<float> x(size_t(n) * dim), q(size_t(nq) * dim);
  for (float& v : x) v = next();
  for (float& v : q) v = next();
  std::vector<int64_t> ids(n);
  for (int i = 0; i < n; ++i) ids[size_t(i)] = i + 1;
  const std::string path = "custom_store_test.mrvs";
  try {
    MapStore store(dim);
    store.add(n, x.data(), ids.data());
    std::vector<int64_t> got(size_t(nq) * k);
    std::vector<float> sc(size_t(nq) * k);
    auto same = [&](const std::function<bool(int64_t)>& ok, const std::string& what) {
      for (int i = 0; i < nq; ++i) {
        const auto want = brute(x, dim, q.data() + i * dim, k, ok);
        check(std::equal(want.begin(), want.end(), got.begin() + i * k), what + ", query " + std::to_string(i));
      }
    };
    store.search(nq, q.data(), k, got.data(), sc.data());
    same([](int64_t) { return true; }, "unfiltered search");

    // Attributes and filters: `bucket` = id % 10 and `red` = id % 3 == 0.
    store.declare_attributes({{"bucket", mindrec::AttributeType::int64}, {"red", mindrec::AttributeType::boolean}});
    std::vector<int64_t> bucket(n);
    std::vector<uint8_t> red(n);
    for (int i = 0; i < n; ++i) bucket[size_t(i)] = (i + 1) % 10, red[size_t(i)] = (i + 1) % 3 == 0;
    mindrec::AttributeBatch batch;
    batch.add("bucket", bucket).add_bool("red", red);
    store.set_attributes(n, ids.data(), batch);
    mindrec::SearchOptions opts;
    opts.filter = "bucket < 4 and not red";  // 40% x 2/3 of the items: the backend's search_impl
    store.search(nq, q.data(), k, got.data(), sc.data(), opts);
    same([](int64_t id) { return id % 10 < 4 && id % 3 != 0; }, "filter through search_impl");
    opts.filter = "bucket == 7 and id < 40";  // 4 items: the planner's exact path (gather)
    store.search(nq, q.data(), k, got.data(), sc.data(), opts);
    same([](int64_t id) { return id % 10 == 7 && id < 40; }, "filter on the exact path");
    std::vector<std::vector<int64_t>> excl(nq, std::vector<int64_t>{});
    opts.filter = "red";
    for (int i = 0; i < nq; ++i) excl[size_t(i)] = {3, 6, 9, 12, 15};
    opts.exclude = &excl;
    store.search(nq, q.data(), k, got.data(), sc.data(), opts);
    same([](int64_t id) { return id % 3 == 0 && id > 15; }, "filter with exclusions");
    opts.exclude = nullptr;

    // Save and load: the payload through StoreWriter/StoreReader, the attributes with it.
    const int64_t gone[] = {1, 2, 3};
    check(store.remove(3, gone) == 3, "remove returns 3");
    store.save(path);
    MapStore back(dim);
    back.load(path);
    check(back.size() == n - 3, "loaded size " + std::to_string(back.size()));
    opts.filter = "bucket < 4 and not red";
    back.search(nq, q.data(), k, got.data(), sc.data(), opts);
    same([](int64_t id) { return id > 3 && id % 10 < 4 && id % 3 != 0; }, "search after load");

    // A truncated file is refused and changes nothing.
    {
      std::ifstream in(path, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), std::streamsize(bytes.size() - 16));
    }
    bool refused = false;
    try {
      back.load(path);
    } catch (const mindrec::FormatError&) {
      refused = true;
    }
    check(refused, "a truncated file is refused with FormatError");
    check(back.size() == n - 3, "a refused load changes nothing");
  } catch (const std::exception& e) {
    std::printf("custom_store: FAILED with %s\n", e.what());
    ++failures;
  }
  std::remove(path.c_str());
  if (failures) return 1;
  std::printf("custom_store: ok\n");
  return 0;
}
