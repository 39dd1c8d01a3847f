// VectorStore's shared front: argument validation, locking and the store file, around the
// backends' private virtuals (one file per backend beside this one; the factory in factory.cpp).
#include "mindrec/vector_store.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <ostream>
#include <vector>

#include "detail/fault.hpp"
#include "mindrec/detail/huge_pages.hpp"
#include "detail/file_util.hpp"
#include "detail/rw_lock.hpp"
#include "detail/simd.hpp"
#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/topk.hpp"
#include "store/attributes.hpp"
#include "store/backends.hpp"
#include "store/store_io.hpp"
#include "store/topk_select.hpp"
#include "detail/parallel.hpp"
#include "detail/vector_math.hpp"

namespace mindrec {

namespace {
// The filter plan cache's budget per entry (its allowed bitmap and, on the exact path, the
// gathered vectors); 8 entries at most.
constexpr size_t kPlanCacheBytes = size_t(64) << 20;
// The exact path scores SQ8 codes first for a set of at least this many rows and calls of at
// most kCodedExactQueries queries (a larger batch amortises the float scan's reads instead).
constexpr size_t kCodedExactRows = 1024;
constexpr int64_t kCodedExactQueries = 64;
}  // namespace

struct VectorStore::FilterEntry {
  std::string text;
  uint64_t version = 0;
  bool ids_complete = false;
  double fraction = 0;  // the planner's threshold it was made with
  store::Allowed allowed;
  uint64_t zero = 0;      // the bitmap of a table without rows (every id answers `beyond`)
  int64_t count = 0;      // allowed stored items when `counted`, else allowed ids below nbits
  bool counted = false;
  bool exact = false;     // the planner scores cand exactly
  std::vector<int64_t> cand;
  // The gathered vectors, scanned by every call: on huge pages (a 10% set at 368k items is 9 MiB).
  std::vector<float, detail::HugePageAllocator<float>> vecs;
  std::vector<float> bias;
  // A large set's vectors also as SQ8 codes of their own range (lo + step * code per
  // dimension), 16 to a block, dimension-major (simd.hpp's block16_dot_u8): a call scores the
  // codes (a quarter of the bytes) and re-scores exactly the rows whose approximate score can
  // still reach the k-th best, which keeps the result exact (coded_topk). Made by the entry's
  // second search (an entry used once, e.g. after every write, never pays for them), once.
  mutable std::atomic<int> uses{0};
  mutable std::once_flag coded;
  mutable std::vector<uint8_t, detail::HugePageAllocator<uint8_t>> codes;
  mutable std::vector<float> lo, step;
  mutable double bias_max = 0;  // the largest |bias|
};

struct VectorStore::Lock {
  detail::WriterPreferringMutex rw;  // searches shared, a write's change exclusive
  std::mutex writers;                // one write (or save) at a time
  bool exclusive_held = false;       // touched only by the thread holding `writers`
  std::atomic<uint64_t> changes{0};  // written by writers, read by anyone
  // spec()'s parameters: computed under `params`, which set_search_param and load hold while
  // they change them (so spec() never waits behind a long write's `writers`).
  std::mutex params;
  std::string params_text;
  bool params_valid = false;
  // Filters evaluated lately (most recent first), reused while `changes` is the same.
  std::mutex cache_mutex;
  std::vector<std::shared_ptr<const FilterEntry>> cache;
};

std::string VectorStore::spec() const {
  std::lock_guard<std::mutex> l(lock_->params);
  if (!lock_->params_valid) {
    lock_->params_text = search_params_impl();
    lock_->params_valid = true;
  }
  return lock_->params_text.empty() ? backend_ : backend_ + "?" + lock_->params_text;
}

void VectorStore::exclusive(const std::function<void()>& fn) {
  if (lock_->exclusive_held) {
    fn();
    return;
  }
  std::unique_lock<detail::WriterPreferringMutex> l(lock_->rw);
  lock_->exclusive_held = true;
  struct Reset {
    bool& b;
    ~Reset() { b = false; }
  } reset{lock_->exclusive_held};
  fn();
}

void VectorStore::upsert_impl(int64_t n, const float* vectors, const int64_t* ids,
                              const std::vector<int64_t>& stored) {
  const size_t d = size_t(dim_);
  std::vector<float> old(stored.size() * d);
  for (size_t i = 0; i < stored.size(); ++i) reconstruct_impl(stored[i], old.data() + i * d);
  exclusive([&] {
    if (!stored.empty()) remove_impl(static_cast<int64_t>(stored.size()), stored.data());
    try {
      detail::fault_point("store.upsert.add");
      add_impl(n, vectors, ids);
    } catch (...) {
      // add_impl changed nothing: put the replaced vectors back. If that fails too (out of
      // memory again), the replaced ids are gone: said at error level, the first error thrown.
      try {
        if (!stored.empty()) add_impl(static_cast<int64_t>(stored.size()), old.data(), stored.data());
      } catch (const std::exception& e) {
        log(LogLevel::error, backend_ + ": a failed upsert could not put back the " + std::to_string(stored.size()) +
                                 " vectors it replaced (" + e.what() + "): they are no longer stored; upsert them again");
      }
      throw;
    }
  });
}

void VectorStore::gather_impl(const std::vector<int64_t>& ids, std::vector<int64_t>& found, std::vector<float>& out) const {
  const size_t d = size_t(dim_);
  for (const int64_t id : ids) {
    if (!contains_impl(id)) continue;
    found.push_back(id);
    out.resize(out.size() + d);
    reconstruct_impl(id, out.data() + out.size() - d);
  }
}

void VectorStore::stored_ids_impl(int64_t n, const int64_t* ids, std::vector<int64_t>& out) const {
  for (int64_t i = 0; i < n; ++i)
    if (contains_impl(ids[i])) out.push_back(ids[i]);
}

const char* to_string(Metric m) { return m == Metric::inner_product ? "inner_product" : "l2"; }

float padding_score(Metric m) {
  return m == Metric::inner_product ? -std::numeric_limits<float>::infinity()
                                    : std::numeric_limits<float>::infinity();
}

VectorStore::VectorStore(std::string backend, int dim, Metric metric)
    : backend_(std::move(backend)), dim_(dim), metric_(metric), lock_(std::make_unique<Lock>()),
      attrs_(std::make_unique<store::AttributeTable>()) {
  MINDREC_EXPECTS(dim >= 1, "VectorStore: dim must be >= 1");
}
VectorStore::~VectorStore() = default;

void VectorStore::check_batch(const char* op, int64_t n, const float* vectors, const int64_t* ids,
                              bool refuse_stored) const {
  const std::string who = std::string("VectorStore::") + op + ": ";
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0) throw InvalidArgument(who + "id " + std::to_string(ids[i]) + " is negative");
  // Repeats by sorting a copy (8 bytes per id; a hash set would take ~40).
  std::vector<int64_t> sorted(ids, ids + n);
  std::sort(sorted.begin(), sorted.end());
  const auto twice = std::adjacent_find(sorted.begin(), sorted.end());
  if (twice != sorted.end())
    throw InvalidArgument(who + "id " + std::to_string(*twice) + " appears twice in the batch");
  if (refuse_stored) {
    std::vector<int64_t> stored;
    stored_ids_impl(n, ids, stored);
    if (!stored.empty())
      throw InvalidArgument(who + "id " + std::to_string(stored[0]) + " is already stored");
  }
  if (const int64_t bad = detail::first_non_finite_row(vectors, n, dim_); bad < n)
    throw InvalidArgument(who + "vector " + std::to_string(bad) + " holds NaN or Inf");
}

void VectorStore::add(int64_t n, const float* vectors, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::add: n must be >= 0");
  if (n == 0) return;
  MINDREC_EXPECTS(vectors && ids, "VectorStore::add: null vectors or ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  check_batch("add", n, vectors, ids, true);
  auto bits = grown_stored_bits(n, ids);
  add_impl(n, vectors, ids);
  mark_stored(n, ids, true, &bits);
  ++lock_->changes;
  after_write_impl();
}

void VectorStore::add(int64_t n, AlignedVector<float>&& vectors, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::add: n must be >= 0");
  MINDREC_EXPECTS(vectors.size() == size_t(n) * size_t(dim_),
                  "VectorStore::add: the buffer handed over holds " + std::to_string(vectors.size()) +
                      " floats, not n x dim = " + std::to_string(n) + " x " + std::to_string(dim_));
  if (n == 0) return;
  MINDREC_EXPECTS(ids, "VectorStore::add: null ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  check_batch("add", n, vectors.data(), ids, true);
  auto bits = grown_stored_bits(n, ids);
  add_owned_impl(n, vectors, ids);
  AlignedVector<float>().swap(vectors);  // kept by the store, or copied: freed either way
  mark_stored(n, ids, true, &bits);
  ++lock_->changes;
  after_write_impl();
}

int64_t VectorStore::upsert(int64_t n, const float* vectors, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::upsert: n must be >= 0");
  if (n == 0) return 0;
  MINDREC_EXPECTS(vectors && ids, "VectorStore::upsert: null vectors or ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  check_batch("upsert", n, vectors, ids, false);
  // A remote backend's rows are written whole: an item's attributes go along with its vector.
  if (remote_filter_impl() && !attrs_->empty()) return remote_upsert(n, vectors, ids, AttributeBatch{});
  std::vector<int64_t> stored;
  stored_ids_impl(n, ids, stored);
  auto bits = grown_stored_bits(n, ids);
  upsert_impl(n, vectors, ids, stored);
  mark_stored(n, ids, true, &bits);
  ++lock_->changes;
  after_write_impl();
  return static_cast<int64_t>(stored.size());
}

int64_t VectorStore::remove(int64_t n, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::remove: n must be >= 0");
  if (n == 0) return 0;
  MINDREC_EXPECTS(ids, "VectorStore::remove: null ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  const int64_t removed = remove_impl(n, ids);
  if (removed > 0) mark_stored(n, ids, false, nullptr);
  if (removed > 0) ++lock_->changes;
  after_write_impl();
  return removed;
}

namespace {
// NaN or Inf in a query would reach the k-selection's comparisons (undefined behaviour).
void check_queries(const char* who, int64_t nq, int dim, const float* q) {
  for (int64_t i = 0; i < nq * dim; ++i)
    if (!std::isfinite(q[i]))
      throw InvalidArgument(std::string(who) + ": query " + std::to_string(i / dim) + " holds NaN or Inf");
}
}  // namespace

void VectorStore::search(int64_t nq, const float* queries, int k, int64_t* ids, float* scores) const {
  search(nq, queries, k, ids, scores, SearchOptions{});
}

const std::vector<int64_t>& SearchContext::excluded(int64_t q) const {
  static const std::vector<int64_t> none;
  return exclude_ ? (*exclude_)[size_t(q / group_)] : none;
}

void VectorStore::search(int64_t nq, const float* queries, int k, int64_t* ids, float* scores,
                         const SearchOptions& options) const {
  MINDREC_EXPECTS(nq >= 0, "VectorStore::search: nq must be >= 0");
  MINDREC_EXPECTS(k >= 1, "VectorStore::search: k must be >= 1");
  if (nq == 0) return;
  MINDREC_EXPECTS(queries && ids && scores, "VectorStore::search: null pointer");
  check_queries("VectorStore::search", nq, dim_, queries);
  SearchContext ctx;
  // "exact_below" (every backend that filters): the planner's threshold for this call, the
  // fraction of the store below which a filter's allowed items are scored exactly.
  double exact_below = -1;
  std::vector<std::pair<std::string, double>> params;
  for (const auto& [name, value] : options.params) {
    if (name != "exact_below") {
      params.emplace_back(name, value);
      continue;
    }
    if (!(value >= 0 && value <= 1))
      throw InvalidArgument("vector store '" + backend_ + "': exact_below must be a fraction in [0, 1]");
    exact_below = value;
  }
  if ((!options.filter.empty() || options.exclude) && !supports_filter_impl())
    throw Unsupported("vector store '" + backend_ + "': filters and exclusions are not supported on this backend (use flat, hnsw: or faiss:)");
  if (!params.empty()) {
    const std::vector<std::string> names = search_param_names_impl();
    for (const auto& [name, value] : params) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        std::string have;
        for (const auto& n : names) have += n + ", ";
        throw InvalidArgument("vector store '" + backend_ + "': '" + name + "' is not a per-call search parameter here (" +
                              "it takes " + have + "exact_below; modes are set on the store's spec)");
      }
      if (!std::isfinite(value)) throw InvalidArgument("vector store '" + backend_ + "': " + name + " is not finite");
    }
    ctx.params_ = params;
  }
  std::vector<std::vector<int64_t>> exclude;
  if (options.exclude) {
    MINDREC_EXPECTS(options.queries_per_exclude >= 1, "VectorStore::search: queries_per_exclude must be >= 1");
    const int64_t groups = (nq + options.queries_per_exclude - 1) / options.queries_per_exclude;
    if (int64_t(options.exclude->size()) < groups)
      throw InvalidArgument("VectorStore::search: " + std::to_string(options.exclude->size()) + " exclusion lists for " +
                            std::to_string(groups) + " query groups");
    exclude.assign(options.exclude->begin(), options.exclude->begin() + groups);
    bool any = false;
    for (auto& e : exclude) {
      std::sort(e.begin(), e.end());
      e.erase(std::unique(e.begin(), e.end()), e.end());
      any = any || !e.empty();
    }
    if (any) {
      ctx.exclude_ = &exclude;
      ctx.group_ = options.queries_per_exclude;
    }
  }
  std::shared_lock lock(lock_->rw);
  const float pad = padding_score(metric_);
  std::shared_ptr<const FilterEntry> plan;
  if (!options.filter.empty() && remote_filter_impl()) {
    ctx.columns_ = attrs_->specs();
    store::FilterPlan::parse(options.filter, ctx.columns_);  // malformed: InvalidArgument before any request
    ctx.filter_ = options.filter;  // the server evaluates it
  } else if (!options.filter.empty()) {
    plan = filter_entry(options.filter, exact_below >= 0 ? exact_below : exact_filter_fraction_impl(ctx));
    ctx.filter_ = options.filter;
    ctx.bits_ = plan->allowed.bits.empty() ? &plan->zero : plan->allowed.bits.data();
    ctx.nbits_ = plan->allowed.nbits;
    ctx.beyond_ = plan->allowed.beyond;
    ctx.count_ = plan->count;
    ctx.none_ = plan->count == 0 && (plan->counted || !plan->allowed.beyond);
  }
  if (ctx.none_) {
    for (int64_t i = 0; i < nq * k; ++i) ids[i] = -1, scores[i] = pad;
    return;
  }
  if (plan && plan->exact) search_allowed_exactly(nq, queries, k, ids, scores, ctx, *plan);
  else search_impl(nq, queries, k, ids, scores, ctx);
  for (int64_t i = 0; i < nq * k; ++i)
    if (ids[i] < 0) ids[i] = -1, scores[i] = pad;
}

std::shared_ptr<const VectorStore::FilterEntry> VectorStore::filter_entry(const std::string& text, double fraction) const {
  // Under the shared lock: the contents cannot change while this runs. An entry is reused while
  // the store has not changed (the write counter, and the stored-id bitmap's state after a load).
  const uint64_t version = lock_->changes.load();
  {
    std::lock_guard<std::mutex> l(lock_->cache_mutex);
    for (size_t i = 0; i < lock_->cache.size(); ++i) {
      const auto& e = lock_->cache[i];
      if (e->text == text && e->version == version && e->ids_complete == ids_complete_ && e->fraction == fraction) {
        auto hit = e;
        std::rotate(lock_->cache.begin(), lock_->cache.begin() + ptrdiff_t(i), lock_->cache.begin() + ptrdiff_t(i) + 1);
        return hit;
      }
    }
  }
  auto e = std::make_shared<FilterEntry>();
  e->text = text;
  e->version = version;
  e->ids_complete = ids_complete_;
  e->fraction = fraction;
  e->allowed = store::FilterPlan::parse(text, attrs_->specs()).evaluate(*attrs_);
  e->count = e->allowed.count;
  // The planner. With the stored-id bitmap complete, the allowed stored items are counted
  // exactly (a word-wise AND): a set small against the store is scored exactly, id by id,
  // which costs what it holds (its vectors gathered once per entry, up to 16 MiB); a larger
  // one goes to the backend's own filtered search, told the count (IVF probes more lists for a
  // selective filter).
  std::vector<uint64_t> allowed_stored;
  if (ids_complete_) {
    allowed_stored.resize(stored_bits_.size());
    int64_t count = 0;
    const auto& bits = e->allowed.bits;
    for (size_t w = 0; w < stored_bits_.size(); ++w) {
      const uint64_t a = w < bits.size() ? bits[w] : (e->allowed.beyond ? ~uint64_t(0) : 0);
      allowed_stored[w] = a & stored_bits_[w];
      count += __builtin_popcountll(allowed_stored[w]);
    }
    e->count = count;
    e->counted = true;
  }
  // The exact path costs a gather of the allowed vectors, paid once while the entry is cached:
  // a set whose vectors would not fit the cache (64 MiB: 260k vectors at dim 64, e.g. 12% of
  // a 2M-item store) would be gathered again by every call, so it goes to the backend's
  // filtered search however small its fraction.
  const size_t per_item =
      size_t(dim_) * (sizeof(float) + 1) + sizeof(int64_t) + (metric_ == Metric::l2 ? sizeof(float) : 0);
  const size_t bitmap_bytes = e->allowed.bits.size() * 8;
  const bool fits = bitmap_bytes < kPlanCacheBytes && size_t(e->count) <= (kPlanCacheBytes - bitmap_bytes) / per_item;
  e->exact = e->counted && e->count > 0 && fraction > 0 && double(e->count) <= fraction * double(size_impl()) && fits;
  if (e->exact) {
    std::vector<int64_t> want;
    want.reserve(size_t(e->count));
    for (size_t w = 0; w < allowed_stored.size(); ++w)
      for (uint64_t b = allowed_stored[w]; b; b &= b - 1) want.push_back(int64_t(w * 64 + size_t(__builtin_ctzll(b))));
    const size_t d = size_t(dim_);
    {
      std::vector<float> gathered;
      gathered.reserve(want.size() * d);
      gather_impl(want, e->cand, gathered);
      e->vecs.assign(gathered.begin(), gathered.end());
    }
    if (metric_ == Metric::l2) {
      e->bias.resize(e->cand.size());
      for (size_t i = 0; i < e->cand.size(); ++i) e->bias[i] = float(-0.5 * detail::squared_norm(e->vecs.data() + i * d, int(d)));
    }
  }
  // (The codes, d bytes per gathered row, are counted before they exist.)
  const size_t bytes =
      e->allowed.bits.size() * 8 + e->vecs.size() * 4 + e->cand.size() * (8 + size_t(dim_));
  if (bytes <= kPlanCacheBytes) {
    std::lock_guard<std::mutex> l(lock_->cache_mutex);
    lock_->cache.insert(lock_->cache.begin(), e);
    if (lock_->cache.size() > 8) lock_->cache.pop_back();
  }
  return e;
}

void VectorStore::encode_exact_set(const FilterEntry& e, size_t d) {
  // SQ8 codes of the gathered rows [n, d] over their own per-dimension range, rounded to the
  // nearest step: each coordinate is lo + step * code within step / 2.
  const size_t n = e.cand.size(), blocks = (n + 15) / 16;
  const float* x = e.vecs.data();
  e.lo.assign(d, std::numeric_limits<float>::infinity());
  std::vector<float> hi(d, -std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) {
      e.lo[j] = std::min(e.lo[j], x[i * d + j]);
      hi[j] = std::max(hi[j], x[i * d + j]);
    }
  e.step.resize(d);
  for (size_t j = 0; j < d; ++j) e.step[j] = (hi[j] - e.lo[j]) / 255.0f;
  e.bias_max = 0;
  for (const float b : e.bias) e.bias_max = std::max(e.bias_max, std::fabs(double(b)));
  std::vector<float> inv(d);
  for (size_t j = 0; j < d; ++j) inv[j] = e.step[j] > 0 ? 1.0f / e.step[j] : 0.0f;
  e.codes.assign(blocks * 16 * d, 0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) {
      // Rounded to the nearest code; x * (1 / step) may round differently from x / step, but
      // the code is then still within step / 2 + a float rounding, which coded_topk's bound
      // covers (its 2^-23 terms).
      const float c = std::nearbyint((x[i * d + j] - e.lo[j]) * inv[j]);
      e.codes[((i / 16) * d + j) * 16 + i % 16] = uint8_t(std::clamp(c, 0.0f, 255.0f));
    }
}

void VectorStore::search_allowed_exactly(int64_t nq, const float* queries, int k, int64_t* ids, float* scores,
                                         const SearchContext& ctx, const FilterEntry& e) const {
  // One exact top-k per query over the allowed stored items' vectors (as the backend stores
  // them: decoded codes for quantised stores), gathered when the entry was made.
  const bool l2 = metric_ == Metric::l2;
  const auto& cand = e.cand;
  // Exclusions: fetch k plus the query's excluded count (exact), then drop them.
  int extra = 0;
  for (int64_t q = 0; q < nq; ++q) extra = std::max(extra, int(ctx.excluded(q).size()));
  const int kk = int(std::min<int64_t>(int64_t(k) + extra, std::max<int64_t>(1, int64_t(cand.size()))));
  std::vector<int64_t> rid(size_t(nq) * kk);
  std::vector<float> rsc(size_t(nq) * kk);
  if (cand.size() >= kCodedExactRows && nq <= kCodedExactQueries && e.uses.fetch_add(1) >= 1) {
    std::call_once(e.coded, [&] { encode_exact_set(e, size_t(dim_)); });
    coded_topk(nq, queries, kk, rid.data(), rsc.data(), e);
  } else
    exact_topk(e.vecs.data(), int64_t(cand.size()), dim_, queries, nq, kk, rid.data(), rsc.data(), 1,
               l2 ? e.bias.data() : nullptr);
  for (int64_t q = 0; q < nq; ++q) {
    const double qn = l2 ? detail::squared_norm(queries + q * dim_, dim_) : 0.0;
    int j = 0;
    for (int t = 0; t < kk && j < k; ++t) {
      const int64_t r = rid[size_t(q * kk + t)];
      if (r < 0) break;
      const int64_t id = cand[size_t(r)];
      if (!ctx.allows(q, id)) continue;
      ids[q * k + j] = id;
      const float s = rsc[size_t(q * kk + t)];
      scores[q * k + j] = l2 ? float(std::max(0.0, qn - 2.0 * s)) : s;
      ++j;
    }
    for (; j < k; ++j) ids[q * k + j] = -1;
  }
}

void VectorStore::coded_topk(int64_t nq, const float* queries, int kk, int64_t* rid, float* rsc,
                             const FilterEntry& e) const {
  // Row r's exact score q.x (+ bias) is within err of its approximate one q.(lo + step * code)
  // (+ bias), err = sum_j |q_j| step_j / 2 plus both sums' float rounding (bounded
  // generously). The kk best approximate scores put the kk-th best exact score at or above
  // T - err (T the kk-th best approximate score), so every row of the exact top-kk has an
  // approximate score >= T - 2 err: those rows, scored exactly, give the exact scan's top-kk
  // (the same tie rule). The queries are finite: search() checked them (check_queries).
  const size_t d = size_t(dim_), n = e.cand.size(), blocks = (n + 15) / 16, stride = blocks * 16;
  const bool l2 = metric_ == Metric::l2;
  const auto& k = detail::simd();
  constexpr int64_t kGroup = 8;  // queries per pass over the codes
  thread_local std::vector<float> approx, qs;
  store::TopK best(kk), exact(kk);
  const float pad = -std::numeric_limits<float>::infinity();
  for (int64_t q0 = 0; q0 < nq; q0 += kGroup) {
    const int64_t m = std::min(kGroup, nq - q0);
    qs.resize(size_t(m) * d);
    approx.resize(size_t(m) * stride);
    double base[kGroup], err[kGroup];
    for (int64_t i = 0; i < m; ++i) {
      const float* q = queries + (q0 + i) * dim_;
      double c = 0, er = 0, mag = 0;
      for (size_t j = 0; j < d; ++j) {
        qs[size_t(i) * d + j] = q[j] * e.step[j];
        c += double(q[j]) * e.lo[j];
        er += std::fabs(double(q[j])) * e.step[j];
        mag += std::fabs(double(q[j])) * (std::fabs(double(e.lo[j])) + 255.0 * e.step[j]);
      }
      base[i] = c;
      // Rounding: each d-term float sum within d 2^-23 mag (generous); adding the constant and
      // the bias rounds once more, within 2^-23 of their size.
      err[i] = 0.5 * er + 1.2e-7 * (2.0 * double(d) * mag + 2.0 * (std::fabs(c) + e.bias_max)) + 1e-30;
    }
    k.block16_dot_u8(e.codes.data(), blocks, d, qs.data(), size_t(m), approx.data());
    for (int64_t i = 0; i < m; ++i) {
      float* a = approx.data() + size_t(i) * stride;
      const float c = float(base[i]);
      for (size_t r = 0; r < n; ++r) a[r] += l2 ? c + e.bias[r] : c;
      best.reset(kk);
      for (size_t r = 0; r < n; ++r)
        if (!best.full() || a[r] >= best.worst()) best.push(a[r], int64_t(r));
      const double bar = best.full() ? double(best.worst()) - 2.0 * err[i] : -1e300;
      exact.reset(kk);
      const float* q = queries + (q0 + i) * dim_;
      for (size_t r = 0; r < n; ++r) {
        if (double(a[r]) < bar) continue;
        float s = k.dot(q, e.vecs.data() + r * d, d);
        if (l2) s += e.bias[r];
        exact.push(s, int64_t(r));
      }
      exact.write(rid + (q0 + i) * kk, rsc + (q0 + i) * kk, pad);
    }
  }
}

std::vector<uint64_t> VectorStore::grown_stored_bits(int64_t n, const int64_t* ids) const {
  constexpr int64_t kCap = int64_t(1) << 32;
  int64_t top = 0;
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < kCap) top = std::max(top, ids[i] + 1);
  const size_t words = size_t((top + 63) / 64);
  std::vector<uint64_t> out;
  if (words > stored_bits_.size()) {  // a copy with room, made while searches go on
    out.reserve(std::max(words, stored_bits_.size() + stored_bits_.size() / 2));
    out.assign(stored_bits_.begin(), stored_bits_.end());
    out.resize(words, 0);
  }
  return out;
}

void VectorStore::mark_stored(int64_t n, const int64_t* ids, bool on, std::vector<uint64_t>* grown) {
  exclusive([&] {  // cannot throw: the room was made by grown_stored_bits
    if (grown && !grown->empty()) stored_bits_.swap(*grown);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = ids[i];
      if (id < 0) continue;
      if (size_t(id >> 6) >= stored_bits_.size()) {
        if (on) ids_complete_ = false;  // at or above 2^32: the planner stops counting
        continue;
      }
      const uint64_t bit = uint64_t(1) << (id & 63);
      if (on) stored_bits_[size_t(id >> 6)] |= bit;
      else stored_bits_[size_t(id >> 6)] &= ~bit;
    }
  });
}

void VectorStore::write_attributes_impl(int64_t, const float*, const int64_t*, const std::vector<int64_t>&,
                                        const AttributeBatch&, const std::vector<AttributeSpec>&) {
  throw Unsupported("vector store '" + backend_ + "': this backend keeps no attributes of its own");
}

void VectorStore::remote_filter_allows_impl(const std::string&, const std::vector<AttributeSpec>&, int64_t,
                                            const int64_t*, uint8_t*) const {
  throw Unsupported("vector store '" + backend_ + "': this backend evaluates no filters of its own");
}

void VectorStore::declare_attributes(const std::vector<AttributeSpec>& columns) {
  std::lock_guard<std::mutex> writing(lock_->writers);
  auto staged = attrs_->prepare_declare(columns);
  if (remote_filter_impl()) {
    // Only the declaration is kept here (the values live where the backend's data does),
    // once the backend has said it can hold every column.
    std::vector<AttributeSpec> all = attrs_->specs();
    for (const auto& c : columns)
      if (std::find(all.begin(), all.end(), c) == all.end()) all.push_back(c);
    check_attributes_impl(all);
  }
  exclusive([&] { attrs_->commit(*staged); });
  ++lock_->changes;
}

std::vector<AttributeSpec> VectorStore::attributes() const {
  std::shared_lock lock(lock_->rw);
  return attrs_->specs();
}

void VectorStore::set_attributes(int64_t n, const int64_t* ids, const AttributeBatch& values) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::set_attributes: n must be >= 0");
  if (n == 0) return;
  MINDREC_EXPECTS(ids, "VectorStore::set_attributes: null ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  if (remote_filter_impl()) {
    const std::vector<AttributeSpec> columns = attrs_->specs();  // the writers' lock: no declare meanwhile
    store::check_attribute_batch(n, ids, values, columns);
    write_attributes_impl(n, nullptr, ids, {}, values, columns);
    ++lock_->changes;
    return;
  }
  auto staged = attrs_->prepare_set(n, ids, values);  // validated and allocated aside
  exclusive([&] { attrs_->commit(*staged); });
  ++lock_->changes;
}

int64_t VectorStore::upsert(int64_t n, const float* vectors, const int64_t* ids, const AttributeBatch& values) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::upsert: n must be >= 0");
  if (n == 0) return 0;
  MINDREC_EXPECTS(vectors && ids, "VectorStore::upsert: null vectors or ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  check_batch("upsert", n, vectors, ids, false);
  if (remote_filter_impl()) return remote_upsert(n, vectors, ids, values);
  auto staged = attrs_->prepare_set(n, ids, values);  // refused before any vector changes
  std::vector<int64_t> stored;
  stored_ids_impl(n, ids, stored);
  auto bits = grown_stored_bits(n, ids);
  // One exclusive section: the vectors' change and the attributes' (which cannot throw).
  exclusive([&] {
    upsert_impl(n, vectors, ids, stored);
    attrs_->commit(*staged);
    mark_stored(n, ids, true, &bits);
  });
  ++lock_->changes;
  after_write_impl();
  return static_cast<int64_t>(stored.size());
}

int64_t VectorStore::remote_upsert(int64_t n, const float* vectors, const int64_t* ids, const AttributeBatch& values) {
  // Under the writers' lock, the batch checked.
  const std::vector<AttributeSpec> columns = attrs_->specs();
  store::check_attribute_batch(n, ids, values, columns);
  std::vector<int64_t> stored;
  stored_ids_impl(n, ids, stored);
  auto bits = grown_stored_bits(n, ids);
  write_attributes_impl(n, vectors, ids, stored, values, columns);
  mark_stored(n, ids, true, &bits);
  ++lock_->changes;
  after_write_impl();
  return static_cast<int64_t>(stored.size());
}

std::vector<uint8_t> VectorStore::filter_allows(const std::string& filter, int64_t n, const int64_t* ids) const {
  std::vector<uint8_t> out(size_t(std::max<int64_t>(n, 0)), 1);
  if (filter.empty() || n <= 0) return out;
  std::shared_lock lock(lock_->rw);
  if (remote_filter_impl()) {
    const std::vector<AttributeSpec> columns = attrs_->specs();
    store::FilterPlan::parse(filter, columns);  // malformed: InvalidArgument before any request
    remote_filter_allows_impl(filter, columns, n, ids, out.data());
    return out;
  }
  const store::FilterPlan plan = store::FilterPlan::parse(filter, attrs_->specs());
  const store::Allowed a = plan.evaluate(*attrs_);
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = a.test(ids[i]) ? 1 : 0;
  return out;
}

size_t VectorStore::attribute_bytes() const {
  std::shared_lock lock(lock_->rw);
  return attrs_->bytes();
}

bool VectorStore::search_merged(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                                int topn, int64_t* ids, float* scores) const {
  MINDREC_EXPECTS(users >= 0 && K >= 1 && fetch >= 1 && topn >= 1, "VectorStore::search_merged: bad sizes");
  if (users == 0) return true;
  MINDREC_EXPECTS(counts && queries && ids && scores, "VectorStore::search_merged: null pointer");
  check_queries("VectorStore::search_merged", users * K, dim_, queries);
  std::shared_lock lock(lock_->rw);
  return search_merged_impl(users, K, counts, queries, fetch, topn, ids, scores);
}

uint64_t VectorStore::source_fingerprint() const {
  std::shared_lock lock(lock_->rw);
  return fingerprint_;
}

void VectorStore::set_source_fingerprint(uint64_t fingerprint) {
  std::lock_guard<std::mutex> writing(lock_->writers);
  exclusive([&] { fingerprint_ = fingerprint; });
  ++lock_->changes;
}

uint64_t VectorStore::changes() const { return lock_->changes.load(); }

int64_t VectorStore::size() const {
  std::shared_lock lock(lock_->rw);
  return size_impl();
}

void VectorStore::clear() {
  std::lock_guard<std::mutex> writing(lock_->writers);
  exclusive([&] {
    clear_impl();
    fingerprint_ = 0;
    stored_bits_.clear();
    ids_complete_ = true;
  });
  ++lock_->changes;
  after_write_impl();
}

void VectorStore::set_search_param(const std::string& name, double value) {
  std::lock_guard<std::mutex> writing(lock_->writers);
  exclusive([&] {
    std::lock_guard<std::mutex> l(lock_->params);
    set_param_impl(name, value);
    lock_->params_valid = false;
  });
}

void VectorStore::save(const std::string& path) const {
  // Holds out writes, not searches: nothing changes while it streams, searches go on.
  std::lock_guard<std::mutex> writing(lock_->writers);
  const auto writer = payload_writer_impl();
  const store::StoreHeader h{backend_, dim_, metric_, size_impl(), fingerprint_};
  // Streamed from the store's own memory: no second copy of it.
  const store::AttributeTable& attrs = *attrs_;
  std::function<void(StoreWriter&)> attr_writer;
  if (!attrs.empty()) attr_writer = [&attrs](StoreWriter& out) { attrs.write(out); };
  write_file_atomic(path, [&](std::ostream& out) { store::write_store(out, h, writer, attr_writer); });
}

void VectorStore::load(const std::string& path) {
  const auto identity = store::stat_identity(path);  // the file `in` opens, for the parallel reads
  std::ifstream in = store::open_store_file(path);
  const store::StoreHeader h = store::read_store_header(in, path);
  if (store::contents_of(h.backend) != store::contents_of(backend_) || h.dim != dim_ || h.metric != metric_)
    throw FormatError(path + ": holds a '" + h.backend + "' store of dim " + std::to_string(h.dim) +
                      " (" + to_string(h.metric) + "), this store is '" + backend_ + "' of dim " +
                      std::to_string(dim_) + " (" + to_string(metric_) + ")");
  // The header's payload length must be the file's: every size read from the payload is then
  // bounded by bytes that exist (no allocation the file cannot back).
  const auto at = in.tellg();
  in.seekg(0, std::ios::end);
  const auto end = in.tellg();
  in.seekg(at);
  if (h.attributes_size > ~uint64_t(0) - h.payload_size || at < 0 || end < at ||
      uint64_t(end - at) != h.payload_size + h.attributes_size)
    throw FormatError(path + ": not a valid mindrec vector store: payload is " + std::to_string(int64_t(end - at)) +
                      " bytes, the header says " + std::to_string(h.payload_size + h.attributes_size) + " (truncated?)");
  // Read, checked and built aside (searches go on meanwhile); swapped in under the lock.
  const std::string what = path + ": " + backend_ + " store payload";
  std::function<void()> commit;
  if (verify_payload_first_impl()) {
    // A payload that goes to a parser which must only see intact bytes (Faiss's read_index
    // allocates whatever a payload states): checksummed in a first pass over the file, then
    // parsed in a second, streamed both times (no copy of the payload in memory).
    store::verify_payload(in, h.payload_size, h.version, h.checksum, what);
    in.clear();
    in.seekg(at);
    store::FileSource src(in, h.payload_size, 0, what);  // verified: not hashed again
    commit = read_payload_impl(src, h.count);
    src.finish(0);  // every byte read (no checksum: verified above)
  } else {
    store::FileSource src(in, h.payload_size, h.version, what);
    src.read_in_parallel_from(path, resolve_threads(0), identity);  // a large array is read on all cores
    commit = read_payload_impl(src, h.count);
    src.finish(h.checksum);
  }
  // The attribute section (version >= 5; an older file or none: no attributes).
  auto attrs = std::make_shared<store::AttributeTable>();
  if (h.attributes_size > 0) {
    in.clear();
    in.seekg(at + std::streamoff(h.payload_size));
    store::FileSource asrc(in, h.attributes_size, h.version, path + ": attributes");
    *attrs = store::AttributeTable::read(asrc);
    asrc.finish(h.attributes_checksum);
  }
  std::lock_guard<std::mutex> writing(lock_->writers);
  exclusive([&] {
    std::lock_guard<std::mutex> l(lock_->params);  // a payload may carry search parameters
    commit();
    ids_complete_ = false;  // the planner waits for the new contents' stored-id bitmap (below)
    *attrs_ = std::move(*attrs);
    fingerprint_ = h.fingerprint;
    lock_->params_valid = false;
  });
  ++lock_->changes;
  // The new contents listed (searches go on, every filter left to the backend meanwhile), their
  // bitmap swapped in. A failure here costs the planner, not the load.
  try {
    std::vector<int64_t> listed;
    if (list_ids_impl(listed)) {
      int64_t top = 0;
      for (int64_t id : listed)
        if (id < (int64_t(1) << 32)) top = std::max(top, id + 1);
      std::vector<uint64_t> bits(size_t((top + 63) / 64), 0);
      bool complete = true;
      for (int64_t id : listed) {
        if (size_t(id >> 6) >= bits.size()) complete = false;
        else bits[size_t(id >> 6)] |= uint64_t(1) << (id & 63);
      }
      exclusive([&] {
        stored_bits_.swap(bits);
        ids_complete_ = complete;
      });
    }
  } catch (const std::exception& e) {
    log(LogLevel::warn, backend_ + ": the loaded store's ids could not be listed (" + e.what() +
                            "): filters go to the backend's own search");
  }
  after_write_impl();
}

}  // namespace mindrec
