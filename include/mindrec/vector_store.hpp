// VectorStore: the in-process vector index that candidate generation searches (item vectors
// with int64 ids), behind one interface with several backends chosen by a string,
// "backend[:build parameters][?options]": flat, cuda:flat, faiss:<index_factory>,
// faiss-gpu:<factory>, hnsw[:M=..,ef_construction=..], milvus://HOST:PORT/COLLECTION. Each
// backend's parameters, options and requirements: docs/stores.md; which to pick: README
// "Choosing a store". This header is the contract every backend keeps.
// Search parameters, one name per knob on every store: flat threads (scan threads, 0 = the
// thread policy's, e.g. "flat?threads=2"), ef for hnsw and Faiss HNSW (Faiss 1.7.3's must equal
// the index's), Faiss IVF nprobe, milvus fetch, and on every store that filters exact_below (the
// planner's threshold, below); per call in SearchOptions::params. Modes are build parameters,
// fixed when the store is made (hnsw:M=32,walk=0; faiss:IVF4096,Flat,faiss_scan=1), never
// search parameters. set_search_param changes the store's defaults for every caller.
// Filters (attributes.hpp; README "Filters"): a store holds attribute columns per item id and a
// search takes a filter expression, applied inside the search: flat exactly; hnsw's walk routes
// through disallowed nodes and returns allowed ones (a filter allowing 20% or more: the allowed
// items of an unfiltered beam of max(ef, k + 3 sqrt(k)) / share, the filtered walk if too few); mindrec's IVF scans skip disallowed
// vectors and probe nprobe / sqrt(selectivity) lists, then more while fewer than k pass; other
// Faiss indexes through an IDSelector; milvus:// keeps the attributes in its rows (dynamic
// fields) and translates the expression into Milvus' (README "Filters"); cuda:flat and
// faiss-gpu: refuse (Unsupported). The allowed stored items are counted
// exactly (a bitmap of stored ids ANDed with the filter's): below a per-backend fraction of the
// store (hnsw 12%, Faiss HNSW 10%, flat 5%, IVF s^1.5 <= 3 nprobe / nlist, at least 2%), and
// while their vectors fit the plan cache (64 MiB), they are scored exactly instead. Integer
// parameters (threads, nprobe, ef, efSearch, fetch, ...) must be whole numbers in range
// (InvalidArgument naming the store and the parameter otherwise).
// Threads: every backend's own parallel work (Faiss's OpenMP regions included) uses
// mindrec's thread policy, default_threads() (config.hpp: OMP_NUM_THREADS, else the CPUs this
// process may use, within the cgroup CPU quota).
//
// Contract (faiss's, batch-first): vectors are row-major [n, dim] float32; search returns for
// each query its k best ids and scores, best first, ids padded with -1 (scores with -inf
// for inner product, +inf for L2) when fewer than k vectors are stored. Scores are inner
// products (higher is better) or squared L2 distances (lower is better).
//
// Thread safety: any number of concurrent searches with one writer. Writes (add, upsert,
// remove, clear, load) are serialised among themselves and apply their change under an
// exclusive lock that searches respect: an item added or removed is visible to the next
// search, and no search sees a half-applied batch. What takes long is done outside that lock,
// while searches go on, in every in-process CPU backend: a load reads and builds the new
// contents aside; `flat` grows its buffer aside; Faiss IVF writes assign, encode and build the
// new lists aside (the lock swaps lists); other Faiss indexes get a copy of the index with the
// write applied, or a rebuild, made aside (memory holds both meanwhile); `hnsw:` builds a
// first fill, an upsert of most items and a compaction as a new graph aside, and inserts other
// batches in place a few milliseconds' worth at a time, each chunk under the lock, hidden
// from searches until the batch is whole; save holds out writers only, never searches. A
// waiting write goes before searches that arrive after it, and the searches that waited for a
// write go before the next one, so neither side can starve the other. Exceptions: `faiss-gpu:`
// adds to and rebuilds its device index under the lock (its searches share the device
// stream); milvus:// writes are the server's.
// Errors: InvalidArgument for bad arguments (duplicate ids, wrong sizes), Unsupported for an
// operation a backend lacks or a backend this build does not have (the message names the
// CMake option), IoError/FormatError for files. A failed call changes nothing: add, upsert,
// remove and load either apply whole or leave size, contents and search results as they were
// (tested with failures injected mid-operation, out-of-memory included).
// milvus:// differs where a server must: other clients may write the same collection (size
// and results then include their writes); a write is visible to this store's next search once
// the poll (wait=) saw it, to other clients within the server's bounded staleness; a search
// may see a write of this store half-applied while it runs (the server has no transactions);
// a failed write is undone by compensating requests (the rows a failed add inserted are
// deleted, an upsert's replaced vectors written back), which a server gone away mid-write
// cannot receive: the write may then stand in part, which an error-level log line says
// (upserting the same batch again repairs it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mindrec/aligned.hpp"
#include "mindrec/attributes.hpp"
#include "mindrec/export.hpp"
#include "mindrec/store_stream.hpp"

namespace mindrec {

namespace store {
class AttributeTable;
}  // namespace store

enum class Metric { inner_product, l2 };

MINDREC_API const char* to_string(Metric m);

/// The score that pads a search result past the stored vectors: -inf for inner product
/// (higher is better), +inf for squared L2 distance (lower is better).
MINDREC_API float padding_score(Metric m);

/// What one search call asks of a backend beyond its queries: which ids it may return (a
/// filter's allowed set and per-query exclusions, applied inside the search) and the call's
/// search parameters. Made by VectorStore::search; a backend reads it.
class MINDREC_API SearchContext {
 public:
  /// True if some ids may not be returned (a filter or exclusions).
  bool filtered() const { return bits_ != nullptr || exclude_ != nullptr || none_ || !filter_.empty(); }
  /// True if the filter allows `id` (exclusions aside).
  bool filter_allows(int64_t id) const {
    if (none_) return false;
    if (!bits_) return id >= 0;
    return id >= 0 && (id < nbits_ ? ((bits_[size_t(id) >> 6] >> (id & 63)) & 1) != 0 : beyond_);
  }
  /// True if query `q` may return `id`.
  bool allows(int64_t q, int64_t id) const {
    if (!filter_allows(id)) return false;
    if (!exclude_) return true;
    const std::vector<int64_t>& e = (*exclude_)[size_t(q / group_)];
    return !std::binary_search(e.begin(), e.end(), id);
  }
  /// True if some query has exclusions (they differ per query group).
  bool has_exclusions() const { return exclude_ != nullptr; }
  /// True if query `q` has exclusions.
  bool excludes(int64_t q) const { return exclude_ && !(*exclude_)[size_t(q / group_)].empty(); }
  /// The filter expression as given ("" if none): what a remote backend forwards.
  const std::string& filter() const { return filter_; }
  /// The exclusions of query q (sorted), empty if none.
  const std::vector<int64_t>& excluded(int64_t q) const;
  /// The call's parameter `name`, or `fallback` if it was not given.
  double param(const std::string& name, double fallback) const {
    for (const auto& [n, v] : params_)
      if (n == name) return v;
    return fallback;
  }
  const std::vector<std::pair<std::string, double>>& params() const { return params_; }
  /// Allowed ids the filter counted among ids with attribute rows (-1: no filter).
  int64_t allowed_count() const { return bits_ ? count_ : -1; }
  /// The store's declared attribute columns, given to a backend that evaluates filters where
  /// its data lives (remote_filter_impl): the filter was checked against them.
  const std::vector<AttributeSpec>& attribute_columns() const { return columns_; }

 private:
  friend class VectorStore;
  const uint64_t* bits_ = nullptr;
  int64_t nbits_ = 0, count_ = 0;
  bool beyond_ = false, none_ = false;
  const std::vector<std::vector<int64_t>>* exclude_ = nullptr;
  int64_t group_ = 1;
  std::string filter_;
  std::vector<std::pair<std::string, double>> params_;
  std::vector<AttributeSpec> columns_;
};

class MINDREC_API VectorStore {
 public:
  virtual ~VectorStore();
  VectorStore(const VectorStore&) = delete;
  VectorStore& operator=(const VectorStore&) = delete;

  /// Adds n vectors with their ids; refuses ids < 0, ids already stored or repeated in the
  /// batch. Trained backends (IVF, PQ) train on the first batch added to an empty store.
  void add(int64_t n, const float* vectors, const int64_t* ids);
  /// add() of a buffer handed over (n x dim floats, row i the vector of ids[i]): a backend that
  /// keeps its vectors in one table (hnsw: and flat, into an empty store) keeps this buffer as that
  /// table instead of copying it, so a store built from vectors the caller no longer needs
  /// holds them once (build_item_store of weights given up: 5 GB less at the peak at 20M
  /// items). Other backends copy it, as add() does. `vectors` is empty after a call that
  /// returned; after one that threw the store is unchanged and `vectors` holds what it held.
  void add(int64_t n, AlignedVector<float>&& vectors, const int64_t* ids);
  /// Adds or replaces: ids already stored get the new vector, the others are added, all under
  /// one write lock (no search sees a mix of old and new). Validation (negative or repeated
  /// ids, NaN/Inf) happens before anything changes. Returns how many ids were replaced.
  int64_t upsert(int64_t n, const float* vectors, const int64_t* ids);
  /// Removes the given ids (unknown ids are ignored); returns how many were removed.
  int64_t remove(int64_t n, const int64_t* ids);
  /// ids [nq, k] and scores [nq, k] for nq queries [nq, dim].
  void search(int64_t nq, const float* queries, int k, int64_t* ids, float* scores) const;
  /// The same with per-call options: a filter over the attributes and exclusions, applied
  /// inside the search (fewer allowed items than k: the rest padded), and search parameters
  /// for this call. A filter on a store that cannot apply one (cuda:flat, faiss-gpu:) is
  /// Unsupported; a malformed one InvalidArgument naming the position and token.
  void search(int64_t nq, const float* queries, int k, int64_t* ids, float* scores,
              const SearchOptions& options) const;

  /// Declares attribute columns (attributes.hpp); a name already declared with the same type
  /// is kept. Persisted by save, read back by load.
  void declare_attributes(const std::vector<AttributeSpec>& columns);
  /// The declared columns, in declaration order.
  std::vector<AttributeSpec> attributes() const;
  /// Sets attribute values of ids (stored or not: a row per id below 2^32) without touching
  /// vectors: validated whole first (unknown column, wrong type or size, repeated id), then
  /// applied under one write lock; visible to the next search. A failed call changes nothing.
  /// milvus:// keeps them in the items' rows: ids without a row are skipped (a warning), and
  /// a failed call is compensated like its other writes.
  void set_attributes(int64_t n, const int64_t* ids, const AttributeBatch& values);
  /// Adds or replaces vectors and sets their attributes in one write (no search sees one
  /// without the other). Returns how many ids were replaced.
  int64_t upsert(int64_t n, const float* vectors, const int64_t* ids, const AttributeBatch& values);
  /// For each of the n ids, 1 if `filter` allows it (ids need not be stored).
  std::vector<uint8_t> filter_allows(const std::string& filter, int64_t n, const int64_t* ids) const;
  /// True if searches apply filters and exclusions (every backend but cuda:flat and
  /// faiss-gpu:, which refuse them with Unsupported).
  bool supports_filter() const { return supports_filter_impl(); }
  /// Bytes the attribute columns hold.
  size_t attribute_bytes() const;
  /// Fused multi-interest recall, where the backend has one (`cuda:flat`): queries
  /// [users, K, dim] with counts[u] live interests each; every interest's `fetch` best, merged
  /// per user as the spec says (pool, sort by score, smaller id first on ties, drop ids <= 0 and
  /// duplicates) into ids/scores [users, topn], padded with -1. Returns false, writing nothing,
  /// if the backend has no fused path (recall_items then searches and merges on the host).
  bool search_merged(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                     int topn, int64_t* ids, float* scores) const;
  int64_t size() const;
  void clear();
  /// How many writes have changed this store since it was made: every add and upsert, a
  /// remove that removed something, clear, load and set_source_fingerprint count one (save
  /// does not). A host that saves compares it with the value at its last save or load.
  uint64_t changes() const;
  /// Writes header (magic, version, backend, dim, metric, count, checksum) and payload to a
  /// temporary file renamed into place.
  void save(const std::string& path) const;
  /// Replaces the contents with a saved store. Refuses (FormatError) a truncated or corrupt
  /// file and one saved by another backend, dimension or metric; the store is then unchanged.
  void load(const std::string& path);
  /// Sets a search-time parameter ("nprobe", "ef"); InvalidArgument if unknown here, or a
  /// mode (walk, faiss_scan: build parameters of the spec).
  void set_search_param(const std::string& name, double value);

  /// The item fingerprint (MindModel::item_fingerprint) of the weights whose item vectors
  /// this store holds: set by upsert_item_vectors, saved in the store file and read back by
  /// load; 0 when unknown (a store filled by hand, or a file older than format version 4).
  uint64_t source_fingerprint() const;
  void set_source_fingerprint(uint64_t fingerprint);

  int dim() const { return dim_; }
  Metric metric() const { return metric_; }
  /// The backend string it was made from (without search parameters).
  const std::string& backend() const { return backend_; }
  /// The backend with the search parameters in effect, defaults included
  /// ("hnsw:M=32?ef=128", "faiss:IVF4096,Flat?nprobe=16"): what logs, /healthz and /metrics
  /// show. Never waits for a write.
  std::string spec() const;

 protected:
  /// A backend of one's own subclasses VectorStore and implements the `_impl` virtuals below
  /// with the public headers only (this one and store_stream.hpp; an example checked against
  /// brute force: tests/package/custom_store.cpp). `backend` names it in errors and store files.
  VectorStore(std::string backend, int dim, Metric metric);
  /// For backends: runs `fn` under the exclusive lock (searches wait). The write virtuals
  /// below run holding only the writers' lock (no other write, searches going on): they
  /// prepare what takes long aside and change what searches read inside exclusive(). Nested
  /// calls run `fn` directly.
  void exclusive(const std::function<void()>& fn);
  /// Adds or replaces (`stored` of the ids are in the store). The default removes the stored
  /// ids and adds the batch inside one exclusive section, and if the add fails puts the old
  /// vectors back (read with reconstruct_impl first); a backend may prepare the change aside
  /// and call it for the cases it does not.
  virtual void upsert_impl(int64_t n, const float* vectors, const int64_t* ids,
                           const std::vector<int64_t>& stored);

 private:
  /// The stored-id bitmap with room for ids (made aside: may throw), for mark_stored.
  std::vector<uint64_t> grown_stored_bits(int64_t n, const int64_t* ids) const;
  /// Marks ids stored (set) or not, in `bits` (grown_stored_bits's, swapped in) or in place.
  void mark_stored(int64_t n, const int64_t* ids, bool on, std::vector<uint64_t>* grown);
  /// A filter evaluated against the current contents: its allowed set, the count of allowed
  /// stored items and, when the planner scores them exactly, their ids and vectors. Kept in a
  /// small cache (8 entries, each up to 64 MiB) while the store does not change.
  struct FilterEntry;
  std::shared_ptr<const FilterEntry> filter_entry(const std::string& text, double fraction) const;
  void search_allowed_exactly(int64_t nq, const float* queries, int k, int64_t* ids, float* scores,
                              const SearchContext& ctx, const FilterEntry& e) const;
  void coded_topk(int64_t nq, const float* queries, int kk, int64_t* rid, float* rsc, const FilterEntry& e) const;
  static void encode_exact_set(const FilterEntry& e, size_t d);
  void check_batch(const char* op, int64_t n, const float* vectors, const int64_t* ids,
                   bool refuse_stored) const;
  /// An upsert on a backend with remote attributes (holding the writers' lock, batch checked).
  int64_t remote_upsert(int64_t n, const float* vectors, const int64_t* ids, const AttributeBatch& values);
  // Write virtuals (see exclusive()); each either applies whole or changes nothing.
  virtual void add_impl(int64_t n, const float* vectors, const int64_t* ids) = 0;
  /// add_impl of a buffer the store may keep (add() of an AlignedVector&&); on failure
  /// `vectors` must hold what it held. The default copies (add_impl).
  virtual void add_owned_impl(int64_t n, AlignedVector<float>& vectors, const int64_t* ids) {
    add_impl(n, vectors.data(), ids);
  }
  virtual int64_t remove_impl(int64_t n, const int64_t* ids) = 0;
  /// Called after every write (add, upsert, remove, clear, load) that returned, holding the
  /// writers' lock only: a backend may refresh a derived copy here, aside (cuda:flat uploads
  /// its device copy). Must not throw for a reason that undoes the write.
  virtual void after_write_impl() {}
  /// Writes the stored vector of `id` (which is stored) to `out` [dim].
  virtual void reconstruct_impl(int64_t id, float* out) const = 0;
  /// Searches; `ctx` says which ids each query may return (inside the search: a backend
  /// that cannot apply a filter throws Unsupported when ctx.filtered()) and the call's
  /// parameters (a backend reads those it takes; search_param_names_impl lists them).
  virtual void search_impl(int64_t nq, const float* queries, int k, int64_t* ids,
                           float* scores, const SearchContext& ctx) const = 0;
  /// False for a backend that cannot apply filters or exclusions: a search given one is then
  /// Unsupported (VectorStore::search says so before the backend is called).
  virtual bool supports_filter_impl() const { return true; }
  /// True for a backend whose attributes live and whose filters are evaluated where its data
  /// lives (milvus://: the collection's fields): the base keeps only the declared columns,
  /// checks filters against them and passes the filter text (no allowed set, ctx's
  /// attribute_columns()); attribute values go through the three virtuals below.
  virtual bool remote_filter_impl() const { return false; }
  /// Remote attributes: refuses (Unsupported naming it) a column the backend cannot hold;
  /// `columns` is every column declared so far, the new ones included.
  virtual void check_attributes_impl(const std::vector<AttributeSpec>& /*columns*/) const {}
  /// Remote attributes: writes `values` (checked against `columns`) for the ids, with new
  /// vectors (an upsert; `stored` of the ids are in the store; an empty `values` keeps each
  /// stored item's attributes) or without (vectors null: set_attributes, vectors kept). As
  /// the backend's other writes: whole, or compensated. The default is Unsupported.
  virtual void write_attributes_impl(int64_t n, const float* vectors, const int64_t* ids,
                                     const std::vector<int64_t>& stored, const AttributeBatch& values,
                                     const std::vector<AttributeSpec>& columns);
  /// Remote attributes: out[i] = 1 if `filter` (checked against `columns`) allows ids[i].
  /// The default is Unsupported.
  virtual void remote_filter_allows_impl(const std::string& filter, const std::vector<AttributeSpec>& columns,
                                         int64_t n, const int64_t* ids, uint8_t* out) const;
  /// Appends every stored id to `out` and returns true (read after a load, to rebuild the
  /// stored-id bitmap the filter planner counts with); false if the backend cannot list them
  /// (the planner then leaves every filter to the backend).
  virtual bool list_ids_impl(std::vector<int64_t>& /*out*/) const { return false; }
  /// Appends to `found` those of `ids` that are stored and visible to searches, and their
  /// vectors (as reconstruct_impl gives them) to `out` [found, dim]: the planner's exact path.
  /// The default asks contains_impl and reconstruct_impl for each.
  virtual void gather_impl(const std::vector<int64_t>& ids, std::vector<int64_t>& found, std::vector<float>& out) const;
  /// The parameter names a search call may give this backend.
  virtual std::vector<std::string> search_param_names_impl() const { return {}; }
  /// The fraction of the store below which a filter's allowed set is searched exactly
  /// (gather_impl over the allowed ids, scored exactly) instead of by the backend's own
  /// filtered search, for a call with `ctx`'s parameters; 0 never (remote and device backends).
  virtual double exact_filter_fraction_impl(const SearchContext& /*ctx*/) const { return 0.02; }
  virtual bool search_merged_impl(int64_t /*users*/, int /*K*/, const int32_t* /*counts*/,
                                  const float* /*queries*/, int /*fetch*/, int /*topn*/,
                                  int64_t* /*ids*/, float* /*scores*/) const {
    return false;
  }
  virtual int64_t size_impl() const = 0;
  virtual bool contains_impl(int64_t id) const = 0;
  /// Appends to `out` those of the n ids that are stored. The default asks contains_impl for
  /// each; a remote backend answers a whole batch in a few requests.
  virtual void stored_ids_impl(int64_t n, const int64_t* ids, std::vector<int64_t>& out) const;
  virtual void clear_impl() = 0;
  /// What writes the payload (called twice by save: to size and checksum it, then to write
  /// it; both calls must write the same bytes). Runs under the shared lock.
  virtual std::function<void(StoreWriter&)> payload_writer_impl() const = 0;
  /// Reads and validates a payload of `count` vectors into new memory, without touching the
  /// store; returns what swaps it in (must not throw). Runs without the lock.
  virtual std::function<void()> read_payload_impl(StoreReader& in, int64_t count) = 0;
  /// True if the payload must be read whole and its checksum verified before
  /// read_payload_impl parses it (a dependency's parser that must never see damaged bytes).
  virtual bool verify_payload_first_impl() const { return false; }
  virtual void set_param_impl(const std::string& name, double value) = 0;
  /// The search parameters in effect, "name=value&..." ("" if the backend has none). Called
  /// with no concurrent set_param_impl or load.
  virtual std::string search_params_impl() const { return {}; }

  struct Lock;  // a writer-preferring shared mutex (src/detail/rw_lock.hpp)
  std::string backend_;
  uint64_t fingerprint_ = 0;  // guarded by the writers' lock (read under the shared one)
  // A bit per stored id below 2^32 (the filter planner's count of allowed stored items);
  // `ids_complete_` false once an id at or above 2^32 is stored or a load could not list them.
  std::vector<uint64_t> stored_bits_;  // same guard as fingerprint_
  bool ids_complete_ = true;
  int dim_;
  Metric metric_;
  std::unique_ptr<Lock> lock_;
  std::unique_ptr<store::AttributeTable> attrs_;  // guarded like the vectors
};

/// Makes an empty store from a backend string (see the top of this file). Throws
/// InvalidArgument for an unknown backend or a malformed Faiss factory string.
MINDREC_API std::unique_ptr<VectorStore> make_vector_store(const std::string& spec, int dim,
                                               Metric metric = Metric::inner_product);

/// True for a spec of a store kept outside this process (milvus://...): what is written into
/// it changes what every other service reading it sees.
MINDREC_API bool is_remote_store(const std::string& spec);

/// Attaches to an existing remote store read-only (milvus://: its collection must exist;
/// nothing is created), for evaluating or querying a live catalogue: every write is refused
/// with Unsupported. An in-process spec has nothing to attach to: InvalidArgument.
MINDREC_API std::unique_ptr<VectorStore> attach_vector_store(const std::string& spec, int dim,
                                                             Metric metric = Metric::inner_product);

/// The backend a saved store file holds ("hnsw:M=32,ef_construction=200", "milvus://h:p/c"):
/// its header only. IoError / FormatError as load.
MINDREC_API std::string stored_backend(const std::string& path);

/// Reads the backend, dimension and metric from a saved store's header and loads it. With a
/// non-empty `spec` (e.g. "faiss:HNSW32?ef=256"), refuses (InvalidArgument) a file of
/// another backend and applies the spec's search parameters.
MINDREC_API std::unique_ptr<VectorStore> load_vector_store(const std::string& path, const std::string& spec = "");

}  // namespace mindrec
