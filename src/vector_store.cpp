// VectorStore: the shared front (validation, locking, file format) and the built-in flat
// backend. The Faiss backends are in faiss_store.cpp.
#include "mindrec/vector_store.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <ostream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mindrec/aligned.hpp"
#include "mindrec/detail/file_util.hpp"
#include "mindrec/detail/store_io.hpp"
#include "mindrec/error.hpp"
#include "mindrec/metrics.hpp"
#include "mindrec/version.hpp"
#if MINDREC_HAS_CUDA
#include "flat_index_cuda.hpp"  // cuda/: plain pointers only
#endif

namespace mindrec {

const char* to_string(Metric m) { return m == Metric::inner_product ? "inner_product" : "l2"; }

VectorStore::VectorStore(std::string backend, int dim, Metric metric)
    : backend_(std::move(backend)), dim_(dim), metric_(metric) {
  MINDREC_EXPECTS(dim >= 1, "VectorStore: dim must be >= 1");
}
VectorStore::~VectorStore() = default;

void VectorStore::check_batch(const char* op, int64_t n, const float* vectors, const int64_t* ids,
                              bool refuse_stored) const {
  const std::string who = std::string("VectorStore::") + op + ": ";
  std::unordered_set<int64_t> batch;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0) throw InvalidArgument(who + "id " + std::to_string(ids[i]) + " is negative");
    if (!batch.insert(ids[i]).second)
      throw InvalidArgument(who + "id " + std::to_string(ids[i]) + " appears twice in the batch");
    if (refuse_stored && contains_impl(ids[i]))
      throw InvalidArgument(who + "id " + std::to_string(ids[i]) + " is already stored");
  }
  for (int64_t i = 0; i < n * dim_; ++i)
    if (!std::isfinite(vectors[i]))
      throw InvalidArgument(who + "vector " + std::to_string(i / dim_) + " holds NaN or Inf");
}

void VectorStore::add(int64_t n, const float* vectors, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::add: n must be >= 0");
  if (n == 0) return;
  MINDREC_EXPECTS(vectors && ids, "VectorStore::add: null vectors or ids");
  std::unique_lock lock(mutex_);
  check_batch("add", n, vectors, ids, true);
  add_impl(n, vectors, ids);
}

int64_t VectorStore::upsert(int64_t n, const float* vectors, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::upsert: n must be >= 0");
  if (n == 0) return 0;
  MINDREC_EXPECTS(vectors && ids, "VectorStore::upsert: null vectors or ids");
  std::unique_lock lock(mutex_);
  check_batch("upsert", n, vectors, ids, false);
  std::vector<int64_t> stored;
  for (int64_t i = 0; i < n; ++i)
    if (contains_impl(ids[i])) stored.push_back(ids[i]);
  if (!stored.empty()) {
    if (!supports_remove_impl())
      throw Unsupported("VectorStore::upsert: backend '" + backend_ + "' cannot replace vectors");
    remove_impl(static_cast<int64_t>(stored.size()), stored.data());
  }
  add_impl(n, vectors, ids);
  return static_cast<int64_t>(stored.size());
}

int64_t VectorStore::remove(int64_t n, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::remove: n must be >= 0");
  if (!supports_remove_impl())
    throw Unsupported("VectorStore::remove: backend '" + backend_ + "' cannot remove vectors");
  if (n == 0) return 0;
  MINDREC_EXPECTS(ids, "VectorStore::remove: null ids");
  std::unique_lock lock(mutex_);
  return remove_impl(n, ids);
}

void VectorStore::search(int64_t nq, const float* queries, int k, int64_t* ids, float* scores) const {
  MINDREC_EXPECTS(nq >= 0, "VectorStore::search: nq must be >= 0");
  MINDREC_EXPECTS(k >= 1, "VectorStore::search: k must be >= 1");
  if (nq == 0) return;
  MINDREC_EXPECTS(queries && ids && scores, "VectorStore::search: null pointer");
  std::shared_lock lock(mutex_);
  search_impl(nq, queries, k, ids, scores);
  const float pad = metric_ == Metric::inner_product ? -std::numeric_limits<float>::infinity()
                                                     : std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < nq * k; ++i)
    if (ids[i] < 0) ids[i] = -1, scores[i] = pad;
}

bool VectorStore::search_merged(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                                int topn, int64_t* ids, float* scores) const {
  MINDREC_EXPECTS(users >= 0 && K >= 1 && fetch >= 1 && topn >= 1, "VectorStore::search_merged: bad sizes");
  if (users == 0) return true;
  MINDREC_EXPECTS(counts && queries && ids && scores, "VectorStore::search_merged: null pointer");
  std::shared_lock lock(mutex_);
  return search_merged_impl(users, K, counts, queries, fetch, topn, ids, scores);
}

int64_t VectorStore::size() const {
  std::shared_lock lock(mutex_);
  return size_impl();
}

void VectorStore::clear() {
  std::unique_lock lock(mutex_);
  clear_impl();
}

void VectorStore::set_search_param(const std::string& name, double value) {
  std::unique_lock lock(mutex_);
  set_param_impl(name, value);
}

void VectorStore::save(const std::string& path) const {
  std::string payload;
  int64_t count = 0;
  {
    std::shared_lock lock(mutex_);
    payload = serialize_impl();
    count = size_impl();
  }
  detail::StoreHeader h{backend_, dim_, metric_, count};
  detail::write_file_atomic(path, [&](std::ostream& out) { detail::write_store(out, h, payload); });
}

void VectorStore::load(const std::string& path) {
  std::string payload;
  const detail::StoreHeader h = detail::read_store(path, &payload);
  if (h.backend != backend_ || h.dim != dim_ || h.metric != metric_)
    throw FormatError(path + ": holds a '" + h.backend + "' store of dim " + std::to_string(h.dim) +
                      " (" + to_string(h.metric) + "), this store is '" + backend_ + "' of dim " +
                      std::to_string(dim_) + " (" + to_string(metric_) + ")");
  std::unique_lock lock(mutex_);
  deserialize_impl(payload, h.count);  // strong guarantee: throws before changing anything
}

// ---------------------------------------------------------------- flat
namespace {

class FlatStore : public VectorStore {
 public:
  FlatStore(int dim, Metric metric) : VectorStore("flat", dim, metric) {}

 protected:
  FlatStore(std::string backend, int dim, Metric metric) : VectorStore(std::move(backend), dim, metric) {}
  void add_impl(int64_t n, const float* x, const int64_t* ids) override {
    const int d = dim();
    data_.insert(data_.end(), x, x + n * d);
    for (int64_t i = 0; i < n; ++i) {
      row_of_[ids[i]] = static_cast<int64_t>(ids_.size());
      ids_.push_back(ids[i]);
      double s = 0;
      for (int j = 0; j < d; ++j) s += double(x[i * d + j]) * x[i * d + j];
      half_norm_.push_back(float(-0.5 * s));
    }
  }

  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    const int d = dim();
    int64_t removed = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto it = row_of_.find(ids[i]);
      if (it == row_of_.end()) continue;
      const int64_t row = it->second, last = static_cast<int64_t>(ids_.size()) - 1;
      row_of_.erase(it);
      if (row != last) {  // move the last row into the hole
        std::copy(data_.begin() + last * d, data_.begin() + (last + 1) * d, data_.begin() + row * d);
        ids_[size_t(row)] = ids_[size_t(last)];
        half_norm_[size_t(row)] = half_norm_[size_t(last)];
        row_of_[ids_[size_t(row)]] = row;
      }
      data_.resize(size_t(last) * d);
      ids_.pop_back();
      half_norm_.pop_back();
      ++removed;
    }
    return removed;
  }

  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores) const override {
    const int64_t nb = static_cast<int64_t>(ids_.size());
    const bool l2 = metric() == Metric::l2;
    // L2 ranks by q.x - |x|^2/2 (= -(|q-x|^2 - |q|^2)/2), then converts to distances.
    exact_topk(data_.data(), nb, dim(), q, nq, k, ids, scores, threads_,
               l2 ? half_norm_.data() : nullptr);
    for (int64_t i = 0; i < nq; ++i) {
      double qn = 0;
      if (l2)
        for (int j = 0; j < dim(); ++j) qn += double(q[i * dim() + j]) * q[i * dim() + j];
      for (int j = 0; j < k; ++j) {
        int64_t& id = ids[i * k + j];
        if (id < 0) continue;
        id = ids_[size_t(id)];
        if (l2) scores[i * k + j] = float(std::max(0.0, qn - 2.0 * scores[i * k + j]));
      }
    }
  }

  int64_t size_impl() const override { return static_cast<int64_t>(ids_.size()); }
  bool contains_impl(int64_t id) const override { return row_of_.count(id) != 0; }
  void clear_impl() override {
    data_.clear();
    ids_.clear();
    half_norm_.clear();
    row_of_.clear();
  }
  bool supports_remove_impl() const override { return true; }
  void set_param_impl(const std::string& name, double value) override {
    if (name != "threads" || value < 0)
      throw InvalidArgument("flat store: unknown search parameter '" + name + "' (it has 'threads')");
    threads_ = static_cast<int>(value);
  }

  std::string serialize_impl() const override {
    std::string s;
    detail::put(s, ids_.data(), ids_.size());
    detail::put(s, data_.data(), data_.size());
    return s;
  }

  void deserialize_impl(const std::string& payload, int64_t count) override {
    const int d = dim();
    detail::Cursor c{payload, 0, "flat store payload"};
    std::vector<int64_t> ids(static_cast<size_t>(count));
    AlignedVector<float> data(static_cast<size_t>(count) * d);
    c.get(ids.data(), ids.size());
    c.get(data.data(), data.size());
    c.expect_end();
    std::unordered_map<int64_t, int64_t> row_of;
    std::vector<float> half;
    for (int64_t i = 0; i < count; ++i) {
      if (ids[i] < 0 || !row_of.emplace(ids[i], i).second)
        throw FormatError("flat store payload: bad or repeated id " + std::to_string(ids[i]));
      double s = 0;
      for (int j = 0; j < d; ++j) s += double(data[i * d + j]) * data[i * d + j];
      half.push_back(float(-0.5 * s));
    }
    ids_ = std::move(ids);
    data_ = std::move(data);
    row_of_ = std::move(row_of);
    half_norm_ = std::move(half);
  }

  AlignedVector<float> data_;  // [n, dim]
  std::vector<int64_t> ids_;
  std::vector<float> half_norm_;  // -|x|^2 / 2, for L2
  std::unordered_map<int64_t, int64_t> row_of_;
  int threads_ = 0;
};

#if MINDREC_HAS_CUDA
// cuda:flat: the flat store's host copy (add, remove, save, load as `flat`) mirrored on the
// GPU, where searches run (cuda/flat_index_cuda.cu). The device copy is refreshed by the
// first search after a change; multi-interest recall is merged on the device.
class CudaFlatStore final : public FlatStore {
 public:
  CudaFlatStore(int dim, Metric metric)
      : FlatStore("cuda:flat", dim, metric), gpu_(std::make_unique<cuda::FlatIndexCuda>(dim, metric == Metric::l2, 0)) {}

 private:
  void add_impl(int64_t n, const float* x, const int64_t* ids) override {
    FlatStore::add_impl(n, x, ids);
    dirty_ = true;
  }
  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    const int64_t r = FlatStore::remove_impl(n, ids);
    dirty_ = true;
    return r;
  }
  void clear_impl() override {
    FlatStore::clear_impl();
    dirty_ = true;
  }
  void deserialize_impl(const std::string& payload, int64_t count) override {
    FlatStore::deserialize_impl(payload, count);
    dirty_ = true;
  }
  void set_param_impl(const std::string& name, double) override {
    throw InvalidArgument("cuda:flat: unknown search parameter '" + name + "' (it has none)");
  }
  // Writers hold the store's exclusive lock, searches a shared one: several searches may
  // race to refresh the device copy, hence the mutex.
  void sync() const {
    std::lock_guard<std::mutex> lock(sync_mutex_);
    if (!dirty_) return;
    gpu_->set(data_.data(), ids_.data(), static_cast<int64_t>(ids_.size()));
    dirty_ = false;
  }
  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores) const override {
    sync();
    gpu_->search(nq, q, k, ids, scores);
  }
  bool search_merged_impl(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                          int topn, int64_t* ids, float* scores) const override {
    if (K * fetch > cuda::FlatIndexCuda::kMaxPool || fetch > cuda::FlatIndexCuda::kMaxK) return false;
    sync();
    gpu_->search_merged(users, K, counts, queries, fetch, topn, ids, scores);
    return true;
  }

  std::unique_ptr<cuda::FlatIndexCuda> gpu_;
  mutable std::mutex sync_mutex_;
  mutable bool dirty_ = true;
};
#endif

}  // namespace

std::unique_ptr<VectorStore> make_faiss_store(const std::string& base, int dim, Metric metric);
#if MINDREC_HAS_FAISS_GPU
std::unique_ptr<VectorStore> make_faiss_gpu_store(const std::string& base, int dim, Metric metric);
#endif

namespace {

// "backend[?name=value&name=value]" -> backend and its search parameters.
struct StoreSpec {
  std::string base;
  std::vector<std::pair<std::string, double>> params;
};

StoreSpec parse_spec(const std::string& spec) {
  StoreSpec out;
  const size_t q = spec.find('?');
  out.base = spec.substr(0, q);
  if (q == std::string::npos) return out;
  std::stringstream ss(spec.substr(q + 1));
  std::string kv;
  while (std::getline(ss, kv, '&')) {
    if (kv.empty()) continue;
    const size_t eq = kv.find('=');
    if (eq == std::string::npos)
      throw InvalidArgument("vector store '" + spec + "': expected name=value, got '" + kv + "'");
    char* end = nullptr;
    const std::string val = kv.substr(eq + 1);
    const double v = std::strtod(val.c_str(), &end);
    if (val.empty() || *end != '\0')
      throw InvalidArgument("vector store '" + spec + "': '" + val + "' is not a number");
    out.params.emplace_back(kv.substr(0, eq), v);
  }
  return out;
}

}  // namespace

std::unique_ptr<VectorStore> make_vector_store(const std::string& spec, int dim, Metric metric) {
  MINDREC_EXPECTS(dim >= 1, "make_vector_store: dim must be >= 1");
  const StoreSpec s = parse_spec(spec);
  std::unique_ptr<VectorStore> store;
  if (s.base == "flat") store = std::make_unique<FlatStore>(dim, metric);
#if MINDREC_HAS_CUDA
  else if (s.base == "cuda:flat") store = std::make_unique<CudaFlatStore>(dim, metric);
#else
  else if (s.base == "cuda:flat")
    throw Unsupported("vector store 'cuda:flat' needs a build with MINDREC_WITH_CUDA=ON");
#endif
  else if (s.base.rfind("faiss:", 0) == 0) store = make_faiss_store(s.base, dim, metric);
#if MINDREC_HAS_FAISS_GPU
  else if (s.base.rfind("faiss-gpu:", 0) == 0) store = make_faiss_gpu_store(s.base, dim, metric);
#else
  else if (s.base.rfind("faiss-gpu:", 0) == 0)
    throw Unsupported("vector store '" + spec + "' needs a GPU-enabled Faiss (scripts/build-faiss-gpu.sh, then "
                      "-DMINDREC_WITH_CUDA=ON -DCMAKE_PREFIX_PATH=<its prefix>)");
#endif
  else
    throw InvalidArgument("unknown vector store '" + spec +
                          "' (expected 'flat', 'cuda:flat', 'faiss:<index_factory string>' or 'faiss-gpu:<Flat|IVF<n>,Flat>', e.g. faiss:HNSW32)");
  for (const auto& [name, value] : s.params) store->set_search_param(name, value);
  return store;
}

std::unique_ptr<VectorStore> load_vector_store(const std::string& path, const std::string& spec) {
  std::string payload;
  const detail::StoreHeader h = detail::read_store(path, &payload);
  if (!spec.empty()) {
    const StoreSpec s = parse_spec(spec);
    if (s.base != h.backend)
      throw InvalidArgument(path + ": holds a '" + h.backend + "' store, not the requested '" +
                            s.base + "'");
  }
  auto store = make_vector_store(spec.empty() ? h.backend : spec, h.dim, h.metric);
  store->load(path);
  return store;
}

}  // namespace mindrec
