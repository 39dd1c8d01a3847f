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
#include "detail/file_util.hpp"
#include "detail/rw_lock.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "store/store_io.hpp"

namespace mindrec {

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
    : backend_(std::move(backend)), dim_(dim), metric_(metric), lock_(std::make_unique<Lock>()) {
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
  for (int64_t i = 0; i < n * dim_; ++i)
    if (!std::isfinite(vectors[i]))
      throw InvalidArgument(who + "vector " + std::to_string(i / dim_) + " holds NaN or Inf");
}

void VectorStore::add(int64_t n, const float* vectors, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::add: n must be >= 0");
  if (n == 0) return;
  MINDREC_EXPECTS(vectors && ids, "VectorStore::add: null vectors or ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  check_batch("add", n, vectors, ids, true);
  add_impl(n, vectors, ids);
  ++lock_->changes;
  after_write_impl();
}

int64_t VectorStore::upsert(int64_t n, const float* vectors, const int64_t* ids) {
  MINDREC_EXPECTS(n >= 0, "VectorStore::upsert: n must be >= 0");
  if (n == 0) return 0;
  MINDREC_EXPECTS(vectors && ids, "VectorStore::upsert: null vectors or ids");
  std::lock_guard<std::mutex> writing(lock_->writers);
  check_batch("upsert", n, vectors, ids, false);
  std::vector<int64_t> stored;
  stored_ids_impl(n, ids, stored);
  upsert_impl(n, vectors, ids, stored);
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
  MINDREC_EXPECTS(nq >= 0, "VectorStore::search: nq must be >= 0");
  MINDREC_EXPECTS(k >= 1, "VectorStore::search: k must be >= 1");
  if (nq == 0) return;
  MINDREC_EXPECTS(queries && ids && scores, "VectorStore::search: null pointer");
  check_queries("VectorStore::search", nq, dim_, queries);
  std::shared_lock lock(lock_->rw);
  search_impl(nq, queries, k, ids, scores);
  const float pad = padding_score(metric_);
  for (int64_t i = 0; i < nq * k; ++i)
    if (ids[i] < 0) ids[i] = -1, scores[i] = pad;
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
  write_file_atomic(path, [&](std::ostream& out) { store::write_store(out, h, writer); });
}

void VectorStore::load(const std::string& path) {
  std::ifstream in = store::open_store_file(path);
  const store::StoreHeader h = store::read_store_header(in, path);
  if (h.backend != backend_ || h.dim != dim_ || h.metric != metric_)
    throw FormatError(path + ": holds a '" + h.backend + "' store of dim " + std::to_string(h.dim) +
                      " (" + to_string(h.metric) + "), this store is '" + backend_ + "' of dim " +
                      std::to_string(dim_) + " (" + to_string(metric_) + ")");
  // The header's payload length must be the file's: every size read from the payload is then
  // bounded by bytes that exist (no allocation the file cannot back).
  const auto at = in.tellg();
  in.seekg(0, std::ios::end);
  const auto end = in.tellg();
  in.seekg(at);
  if (at < 0 || end < at || uint64_t(end - at) != h.payload_size)
    throw FormatError(path + ": not a valid mindrec vector store: payload is " + std::to_string(int64_t(end - at)) +
                      " bytes, the header says " + std::to_string(h.payload_size) + " (truncated?)");
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
    store::PayloadSource src(in, h.payload_size, 0, what);  // verified: not hashed again
    commit = read_payload_impl(src, h.count);
    src.finish(0);  // every byte read (no checksum: verified above)
  } else {
    store::PayloadSource src(in, h.payload_size, h.version, what);
    commit = read_payload_impl(src, h.count);
    src.finish(h.checksum);
  }
  std::lock_guard<std::mutex> writing(lock_->writers);
  exclusive([&] {
    std::lock_guard<std::mutex> l(lock_->params);  // a payload may carry search parameters
    commit();
    fingerprint_ = h.fingerprint;
    lock_->params_valid = false;
  });
  ++lock_->changes;
  after_write_impl();
}

}  // namespace mindrec
