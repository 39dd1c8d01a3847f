// The hnsw: backend: an HNSW graph (hnswlib, Debian's header-only libhnswlib-dev, compiled
// with mindrec's flags) whose distances are mindrec's run-time dispatched kernels
// (detail/simd.hpp), so a generic build still runs AVX-512 where the CPU has it.
//
//   hnsw[:M=32,ef_construction=200][?ef=128]
//
// Inner product is searched on the raw inner product (distance = -q.x), not through the
// MIPS -> L2 reduction Faiss uses: on diffuse data the raw graph keeps more recall. Scores are
// exact (the kernel's q.x, or squared L2). add builds on all cores (hnswlib's concurrent
// insertion); a large batch (add or upsert) goes into a graph prepared aside and swapped in,
// a small one in place under the exclusive lock (see add_impl); remove marks deleted (the
// element stays in the graph and routes searches); an id added again, or upserted, becomes
// a new element; once removed elements outnumber live ones the graph is rebuilt aside from
// the live vectors. The graph and vectors go into the store file in mindrec's own layout
// (checksummed, every link, level and vector checked on load).
// hnswlib 0.6.2 prefetches one link past the end of a list (searchBaseLayer reads
// datal[size]), up to 4 bytes past an upper level's malloc'd block: an over-read that only
// feeds a prefetch and stays inside malloc's slack, but one AddressSanitizer reports.
// Sanitizer builds therefore compile hnswlib without its manual vectorisation (which is only
// those prefetches here: the distances are mindrec's own).
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MINDREC_ASAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(MINDREC_ASAN_BUILD)
#define NO_MANUAL_VECTORIZATION
#endif
#include <hnswlib/hnswlib.h>
#include <omp.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>

#include "detail/fault.hpp"
#include "detail/simd.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "store/backends.hpp"
#include "store/store_io.hpp"

namespace mindrec::store {
namespace {

// The graph's level-0 block (links and vectors, 516 bytes per element at M=32, dim 64: 190 MB
// for the Books catalogue) and its codes (26 MB) are read at random by every search; on 4 KiB
// pages nearly every element read is also a TLB miss. Both ask for transparent huge pages
// (honoured where THP is "always" or "madvise"; harmless elsewhere; MINDREC_HUGE_PAGES=0 in
// the environment turns it off), before they are first written, so their pages are faulted
// in huge.
void advise_huge_pages(const void* at, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  static const bool off = [] {
    const char* v = std::getenv("MINDREC_HUGE_PAGES");
    return v && std::string(v) == "0";
  }();
  if (off) return;
  constexpr uintptr_t huge = uintptr_t(2) << 20;
  const auto begin = reinterpret_cast<uintptr_t>(at);
  const uintptr_t a = (begin + huge - 1) & ~(huge - 1), b = (begin + bytes) & ~(huge - 1);
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
#else
  (void)at, (void)bytes;
#endif
}

// Storage of 2 MiB and more aligned to 2 MiB and advised for huge pages (see above); smaller
// storage 64-byte aligned.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHuge = size_t(2) << 20;
  HugePageAllocator() noexcept = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T), align = bytes >= kHuge ? kHuge : 64;
    void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!p) throw std::bad_alloc();
    if (align == kHuge) advise_huge_pages(p, bytes);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const noexcept { return false; }
};

// hnswlib's graph plus an 8-bit copy of every element's vector, which the search walks on
// (see Walk): element i's code is x ~ lo + step * c (c in 0..255, lo and step its own min and
// (max - min) / 255), 72 bytes (two cache lines) at dim 64 where the float vector inside
// hnswlib's element spans five. Derived data: made by encode() after every insertion and on
// load, never stored in the file.
struct Graph : hnswlib::HierarchicalNSW<float> {
  using hnswlib::HierarchicalNSW<float>::HierarchicalNSW;
  static constexpr size_t kCodeHead = 2 * sizeof(float);  // lo, step
  size_t code_stride = 0;          // bytes per code: lo, step, dim bytes, rounded up to 8
  std::vector<uint8_t, HugePageAllocator<uint8_t>> codes;  // element i's code at i * code_stride
  std::vector<float> code_norms;   // element i: |x^|^2, the decoded vector's squared norm (L2's walk)

  const float* vector(hnswlib::tableint id) const {
    return reinterpret_cast<const float*>(data_level0_memory_ + size_t(id) * size_data_per_element_ + offsetData_);
  }
  const uint8_t* code(hnswlib::tableint id) const { return codes.data() + size_t(id) * code_stride; }
};

void advise_huge_pages(const Graph& g) { advise_huge_pages(g.data_level0_memory_, g.max_elements_ * g.size_data_per_element_); }

// Codes for the elements from `from` on (all of g's elements have codes when it returns).
void encode(Graph& g, size_t dim, size_t from) {
  const size_t n = g.cur_element_count;
  g.code_stride = (Graph::kCodeHead + dim + 7) / 8 * 8;
  g.codes.resize(n * g.code_stride);
  g.code_norms.resize(n);
#pragma omp parallel for schedule(static) if (n - from >= 16384)
  for (int64_t i = int64_t(from); i < int64_t(n); ++i) {
    const float* x = g.vector(hnswlib::tableint(i));
    uint8_t* out = g.codes.data() + size_t(i) * g.code_stride;
    uint8_t* c = out + Graph::kCodeHead;
    const auto [lo_it, hi_it] = std::minmax_element(x, x + dim);
    const float lo = *lo_it, step = (*hi_it - lo) / 255.0f;
    float norm = 0;
    for (size_t j = 0; j < dim; ++j) {
      const float q = step > 0 ? std::nearbyint((x[j] - lo) / step) : 0.0f;
      c[j] = uint8_t(std::min(255.0f, std::max(0.0f, q)));
      const float back = lo + step * float(c[j]);
      norm += back * back;
    }
    std::fill(c + dim, out + g.code_stride, uint8_t(0));
    std::memcpy(out, &lo, sizeof lo);
    std::memcpy(out + sizeof lo, &step, sizeof step);
    g.code_norms[size_t(i)] = norm;
  }
}

float ip_distance(const void* a, const void* b, const void* dim) {
  return -detail::simd().dot(static_cast<const float*>(a), static_cast<const float*>(b), *static_cast<const size_t*>(dim));
}
float l2_distance(const void* a, const void* b, const void* dim) {
  return detail::simd().l2sq(static_cast<const float*>(a), static_cast<const float*>(b), *static_cast<const size_t*>(dim));
}

class Space final : public hnswlib::SpaceInterface<float> {
 public:
  Space(size_t dim, Metric m) : dim_(dim), f_(m == Metric::inner_product ? ip_distance : l2_distance) {}
  size_t get_data_size() override { return dim_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return f_; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  size_t dim_;
  hnswlib::DISTFUNC<float> f_;
};

struct HnswParams {
  size_t M = 32;
  size_t ef_construction = 200;
};

HnswParams parse_params(const std::string& base) {
  HnswParams p;
  if (base == "hnsw") return p;
  const std::string body = base.substr(5);  // after "hnsw:"
  std::stringstream ss(body);
  std::string kv;
  while (std::getline(ss, kv, ',')) {
    const size_t eq = kv.find('=');
    char* end = nullptr;
    const std::string v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    const double x = std::strtod(v.c_str(), &end);
    const std::string k = kv.substr(0, eq);
    if (v.empty() || *end != '\0' || x != std::floor(x))
      throw InvalidArgument("vector store '" + base + "': expected hnsw:M=<int>,ef_construction=<int>, got '" + kv + "'");
    if (k == "M" && x >= 2 && x <= 512) p.M = size_t(x);
    else if (k == "ef_construction" && x >= 1 && x <= 100000) p.ef_construction = size_t(x);
    else
      throw InvalidArgument("vector store '" + base + "': unknown or out-of-range '" + kv +
                            "' (M in [2, 512], ef_construction in [1, 100000])");
  }
  return p;
}

// One query's search of a graph: hnswlib's searchKnn (greedy descent through the upper levels,
// then a beam of max(ef, k) on level 0; removed elements route but are not returned) written
// here so that
//  - the walk computes its distances on the elements' 8-bit codes (Graph::codes: 72 bytes at
//    dim 64, the Books catalogue's 26 MB) instead of their float vectors (256 bytes spread
//    over five cache lines of hnswlib's 516-byte elements, 190 MB); the beam's ef elements
//    are then scored exactly on their float vectors and the best k kept;
//  - neighbours' codes are prefetched kAhead ahead (hnswlib: the first line of the next
//    neighbour's vector), and the links of the next element to expand when it is queued;
//  - each expansion is two steps, gather() (pop the element, collect its unvisited
//    neighbours, prefetch their first codes) and score() (their distances, the beam updated).
//    Running the gathers of a user's 4 interests before their scores, so that one query's
//    memory waits overlap another's work, was measured no faster and is not done;
//  - the visited set is a bit per element (46 KB for the Books catalogue, cleared per query)
//    instead of hnswlib's 16-bit tags (736 KB, most of the 1 MB L2).
// Measured in RESULTS.md (sixth session).
class Walk {
 public:
  using tableint = hnswlib::tableint;
  static constexpr size_t kAhead = 8;  // 8 to 12 measured best

  // A thread's buffers, reused from query to query (no allocation per search once grown).
  struct Scratch {
    std::vector<std::pair<float, tableint>> top, cand;
    std::vector<tableint> fresh;
    std::vector<uint64_t> visited;  // a bit per element
  };

  Walk(const Graph& g, bool ip, size_t dim, Scratch& s)
      : g_(g), kern_(detail::simd()), ip_(ip), d_(dim), top_(s.top), cand_(s.cand), fresh_(s.fresh), visited_(s.visited) {
    top_.clear();
    cand_.clear();
    fresh_.resize(g.maxM0_);
    visited_.assign((g.cur_element_count + 63) / 64, 0);
  }

  // The descent through the upper levels and the beam's first element.
  void start(const float* q, size_t ef) {
    q_ = q;
    ef_ = ef;
    sum_q_ = norm_q_ = 0;
    for (size_t j = 0; j < d_; ++j) sum_q_ += q[j], norm_q_ += q[j] * q[j];
    tableint cur = g_.enterpoint_node_;
    float cur_d = walk(cur);
    for (int level = g_.maxlevel_; level > 0; --level) {
      for (bool changed = true; changed;) {
        changed = false;
        const hnswlib::linklistsizeint* ll = g_.get_linklist(cur, level);
        const size_t n = g_.getListCount(const_cast<hnswlib::linklistsizeint*>(ll));
        const auto* nb = reinterpret_cast<const tableint*>(ll + 1);
        for (size_t j = 0; j < n; ++j) {
          if (j + 1 < n) prefetch_code(nb[j + 1]);
          const float dj = walk(nb[j]);
          if (dj < cur_d) cur_d = dj, cur = nb[j], changed = true;
        }
      }
    }
    deletions_ = g_.num_deleted_ > 0;
    if (!deletions_ || !g_.isMarkedDeleted(cur)) push_top(cur_d, cur);
    push_cand(cur_d, cur);
    mark(cur);
  }

  // Pops the next element to expand and gathers its unvisited neighbours, prefetching the first
  // kAhead codes; false once the beam is final.
  bool gather() {
    m_ = 0;
    if (cand_.empty()) return false;
    const auto c = cand_.front();
    if (-c.first > bound() && (top_.size() == ef_ || !deletions_)) return false;
    std::pop_heap(cand_.begin(), cand_.end(), by_first);
    cand_.pop_back();
    if (!cand_.empty()) prefetch_links(cand_.front().second);
    const hnswlib::linklistsizeint* ll = g_.get_linklist0(c.second);
    const size_t n = std::min<size_t>(g_.getListCount(const_cast<hnswlib::linklistsizeint*>(ll)), fresh_.size());
    const auto* nb = reinterpret_cast<const tableint*>(ll + 1);
    for (size_t j = 0; j < n; ++j)
      if (!seen(nb[j])) {
        mark(nb[j]);
        if (m_ < kAhead) prefetch_code(nb[j]);
        fresh_[m_++] = nb[j];
      }
    return true;
  }

  // Scores what gather() collected and updates the beam.
  void score() {
    for (size_t j = 0; j < m_; ++j) {
      if (j + kAhead < m_) prefetch_code(fresh_[j + kAhead]);
      const tableint id = fresh_[j];
      const float dj = walk(id);
      if (top_.size() < ef_ || dj < bound()) {
        push_cand(dj, id);
        prefetch_links(cand_.front().second);
        if (!deletions_ || !g_.isMarkedDeleted(id)) {
          push_top(dj, id);
          if (top_.size() > ef_) std::pop_heap(top_.begin(), top_.end(), by_first), top_.pop_back();
        }
      }
    }
    m_ = 0;
  }

  // The beam scored exactly (its float vectors prefetched first): the best k (distance, id),
  // best first, the smaller id on ties.
  void finish(size_t k, std::vector<std::pair<float, int64_t>>& got) {
    for (const auto& t : top_)
      for (size_t b = 0; b < d_ * sizeof(float); b += 64) __builtin_prefetch(reinterpret_cast<const char*>(g_.vector(t.second)) + b, 0, 3);
    got.clear();
    for (const auto& t : top_) got.emplace_back(exact(t.second), int64_t(g_.getExternalLabel(t.second)));
    const size_t keep = std::min(k, got.size());
    const auto before = [](const auto& x, const auto& y) { return x.first != y.first ? x.first < y.first : x.second < y.second; };
    std::partial_sort(got.begin(), got.begin() + ptrdiff_t(keep), got.end(), before);
    got.resize(keep);
  }

 private:
  using Pair = std::pair<float, tableint>;
  // On the code x^ = lo + step * c: q.x^ = lo * sum(q) + step * q.c; |q - x^|^2 = |q|^2 - 2 q.x^ + |x^|^2.
  float walk(tableint id) const {
    const uint8_t* code = g_.code(id);
    float lo_step[2];
    std::memcpy(lo_step, code, sizeof lo_step);
    const float qx = lo_step[0] * sum_q_ + lo_step[1] * kern_.dot_u8(q_, code + Graph::kCodeHead, d_);
    return ip_ ? -qx : norm_q_ - 2 * qx + g_.code_norms[id];
  }
  float exact(tableint id) const { return ip_ ? -kern_.dot(q_, g_.vector(id), d_) : kern_.l2sq(q_, g_.vector(id), d_); }
  void prefetch_code(tableint id) const {  // every line the code touches (two at dim 64)
    const char* p = reinterpret_cast<const char*>(g_.code(id));
    for (size_t b = 0; b < g_.code_stride; b += 64) __builtin_prefetch(p + b, 0, 3);
    __builtin_prefetch(p + g_.code_stride - 1, 0, 3);
  }
  void prefetch_links(tableint id) const {
    const char* p = reinterpret_cast<const char*>(g_.get_linklist0(id));
    for (size_t b = 0; b < g_.size_links_level0_; b += 64) __builtin_prefetch(p + b, 0, 3);
  }
  bool seen(tableint id) const { return (visited_[id >> 6] >> (id & 63)) & 1; }
  void mark(tableint id) { visited_[id >> 6] |= uint64_t(1) << (id & 63); }
  float bound() const { return top_.empty() ? std::numeric_limits<float>::max() : top_.front().first; }
  void push_top(float d, tableint id) {  // max-heap by distance: the worst of the beam in front
    top_.emplace_back(d, id);
    std::push_heap(top_.begin(), top_.end(), by_first);
  }
  void push_cand(float d, tableint id) {  // max-heap of -distance: the nearest in front
    cand_.emplace_back(-d, id);
    std::push_heap(cand_.begin(), cand_.end(), by_first);
  }
  static bool by_first(const Pair& a, const Pair& b) { return a.first < b.first; }

  const Graph& g_;
  const detail::SimdKernels& kern_;
  const bool ip_;
  const size_t d_;
  const float* q_ = nullptr;
  size_t ef_ = 0, m_ = 0;
  float sum_q_ = 0, norm_q_ = 0;
  bool deletions_ = false;
  std::vector<Pair>& top_;
  std::vector<Pair>& cand_;
  std::vector<tableint>& fresh_;
  std::vector<uint64_t>& visited_;
};

class HnswStore final : public VectorStore {
 public:
  HnswStore(const std::string& base, int dim, Metric metric)
      : VectorStore(base, dim, metric), p_(parse_params(base)), space_(size_t(dim), metric) {}
  // The graph is made by the first add (or a load): an empty store allocates nothing.

 private:
  std::unique_ptr<Graph> fresh(size_t capacity) {
    auto g = std::make_unique<Graph>(&space_, std::max<size_t>(capacity, 1), p_.M, p_.ef_construction, 100);
    advise_huge_pages(*g);
    g->setEf(ef_);
    return g;
  }

  bool live(int64_t id) const {
    if (!graph_) return false;
    const auto it = graph_->label_lookup_.find(hnswlib::labeltype(id));
    return it != graph_->label_lookup_.end() && !graph_->isMarkedDeleted(it->second);
  }

  // A copy of `src` with room for `capacity` elements (hnswlib has no copy constructor): the
  // level-0 block copied whole, each upper-level block allocated and copied, the bookkeeping
  // (ids, levels, entry point, deletions, level generators) carried over.
  std::unique_ptr<Graph> clone(const Graph& src, size_t capacity) {
    auto g = std::make_unique<Graph>(&space_, std::max(capacity, src.cur_element_count), p_.M, p_.ef_construction, 100);
    advise_huge_pages(*g);
    std::memcpy(g->data_level0_memory_, src.data_level0_memory_, src.cur_element_count * src.size_data_per_element_);
    for (size_t i = 0; i < src.cur_element_count; ++i) {
      const int levels = src.element_levels_[i];
      g->element_levels_[i] = levels;
      g->linkLists_[i] = nullptr;
      if (levels > 0) {
        const size_t bytes = g->size_links_per_element_ * size_t(levels);
        g->linkLists_[i] = static_cast<char*>(std::malloc(bytes + sizeof(hnswlib::tableint)));  // as load: hnswlib's read past the end
        if (!g->linkLists_[i]) throw std::bad_alloc();
        std::memcpy(g->linkLists_[i], src.linkLists_[i], bytes);
      }
      g->cur_element_count = i + 1;  // the destructor frees what was allocated so far
    }
    g->num_deleted_ = src.num_deleted_;
    g->label_lookup_ = src.label_lookup_;
    g->maxlevel_ = src.maxlevel_;
    g->enterpoint_node_ = src.enterpoint_node_;
    g->code_stride = src.code_stride;
    g->codes = src.codes;
    g->code_norms = src.code_norms;
    g->level_generator_ = src.level_generator_;
    g->update_probability_generator_ = src.update_probability_generator_;
    g->setEf(ef_);
    return g;
  }

  // Inserts the batch into g (on all cores for 256 or more); rethrows the first failure after
  // all threads are done, leaving g with what was inserted (the caller undoes or drops it).
  void insert(Graph& g, int64_t n, const float* vectors, const int64_t* ids) const {
    const size_t need = g.cur_element_count + size_t(n);
    if (need > g.max_elements_) {
      g.resizeIndex(std::max(need, g.max_elements_ + g.max_elements_ / 2));
      advise_huge_pages(g);  // realloc may have moved the block
    }
    // An id removed earlier is inserted as a new element (its old one stays deleted in the
    // graph): hnswlib 0.6.2's in-place revival (updatePoint) loses neighbours, measured:
    // 17 of 40 re-added vectors found after two remove/add rounds.
    for (int64_t i = 0; i < n; ++i) {
      const auto it = g.label_lookup_.find(hnswlib::labeltype(ids[i]));
      if (it != g.label_lookup_.end() && g.isMarkedDeleted(it->second)) g.label_lookup_.erase(it);
    }
    const size_t before = g.cur_element_count;
    std::exception_ptr failed;
    std::mutex m;
    const int threads = n >= 256 ? omp_get_max_threads() : 1;  // hnswlib inserts concurrently
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) {
      try {
        detail::fault_point("hnsw.add.point");
        g.addPoint(vectors + size_t(i) * dim(), hnswlib::labeltype(ids[i]));
      } catch (...) {
        std::lock_guard<std::mutex> l(m);
        if (!failed) failed = std::current_exception();
      }
    }
    // What was inserted gets its code even when the batch failed: a failed in-place batch
    // stays in the graph as removed elements, which searches walk through.
    encode(g, size_t(dim()), before);
    if (failed) std::rethrow_exception(failed);
  }

  // Whether a batch of n goes into a graph prepared aside (see add_impl): 256 items or more
  // and at least 1/1024 of the graph, where the copy costs less than the searches' wait.
  bool goes_aside(int64_t n) const { return n >= 256 && uint64_t(n) * 1024 >= graph_->cur_element_count; }

  // A new graph of the live elements whose ids are not in `replaced` (sorted), with room for
  // `extra` more: the compaction's graph, and an upsert's that replaces most of the items.
  std::unique_ptr<Graph> rebuilt(const std::vector<int64_t>& replaced, size_t extra) {
    std::vector<int64_t> kept_ids;
    std::vector<float> kept;
    if (graph_) {
      const Graph& g = *graph_;
      for (size_t i = 0; i < g.cur_element_count; ++i) {
        const auto e = hnswlib::tableint(i);
        const int64_t label = int64_t(g.getExternalLabel(e));
        if (g.isMarkedDeleted(e) || std::binary_search(replaced.begin(), replaced.end(), label)) continue;
        const float* v = g.vector(e);
        kept_ids.push_back(label);
        kept.insert(kept.end(), v, v + dim());
      }
    }
    auto made = fresh(kept_ids.size() + extra);
    if (!kept_ids.empty()) insert(*made, int64_t(kept_ids.size()), kept.data(), kept_ids.data());
    return made;
  }

  // ---- writes ----
  // A large batch (256 items and at least 1/1024 of the graph; also the first fill) is
  // inserted into a copy of the graph made aside while searches go on on the current one, and
  // the copy is swapped in under the exclusive lock: searches never wait for the insertion
  // (the store's memory doubles meanwhile). A failure drops the copy: nothing changed. A small
  // batch costs less than the copy and goes in place under the exclusive lock; if it fails,
  // what it inserted is marked deleted again.
  void add_impl(int64_t n, const float* vectors, const int64_t* ids) override {
    if (!graph_ || goes_aside(n)) {
      detail::fault_point("hnsw.add.aside");
      auto copy = graph_ ? clone(*graph_, graph_->cur_element_count + size_t(n)) : fresh(size_t(n));
      insert(*copy, n, vectors, ids);
      detail::fault_point("hnsw.add.inserted");  // the batch is in the copy, searches still read the old graph
      exclusive([&] { graph_.swap(copy); });
      return;
    }
    exclusive([&] {
      Graph& g = *graph_;
      try {
        insert(g, n, vectors, ids);
      } catch (...) {
        // Size, contents and results as before (the slots stay, as a removal's do).
        for (int64_t i = 0; i < n; ++i)
          if (live(ids[i])) g.markDelete(hnswlib::labeltype(ids[i]));
        throw;
      }
    });
  }

  // upsert: a large batch (as add's rule) is applied to a graph made aside and swapped in, so
  // searches never wait for it: a copy with the replaced ids marked deleted and the batch
  // inserted, or, when the batch replaces over half of the live items (a model reloaded into
  // a serving store), a new graph of the kept items and the batch, built once instead of
  // growing a graph half of which the compaction would then rebuild. A failure drops the new
  // graph: nothing changed. Small batches: remove + add in place (VectorStore's default).
  void upsert_impl(int64_t n, const float* vectors, const int64_t* ids, const std::vector<int64_t>& stored) override {
    if (graph_ && !goes_aside(n)) {
      VectorStore::upsert_impl(n, vectors, ids, stored);
      return;
    }
    detail::fault_point("hnsw.upsert.aside");
    std::unique_ptr<Graph> made;
    const size_t live = size_t(size_impl());
    if (graph_ && stored.size() * 2 <= live) {
      made = clone(*graph_, graph_->cur_element_count + size_t(n));
      for (const int64_t id : stored) made->markDelete(hnswlib::labeltype(id));
    } else {
      std::vector<int64_t> replaced(stored);
      std::sort(replaced.begin(), replaced.end());
      made = rebuilt(replaced, size_t(n));
    }
    insert(*made, n, vectors, ids);
    detail::fault_point("hnsw.upsert.inserted");  // the batch is in the new graph, searches still read the old one
    exclusive([&] { graph_.swap(made); });
  }

  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    int64_t removed = 0;
    exclusive([&] {
      for (int64_t i = 0; i < n; ++i)
        if (ids[i] >= 0 && live(ids[i])) graph_->markDelete(hnswlib::labeltype(ids[i])), ++removed;
    });
    return removed;
  }

  void clear_impl() override { graph_.reset(); }

  // Removed elements stay in the graph (searches route through them); once they outnumber the
  // live ones (and 1,024), the live vectors are inserted into a new graph aside, while
  // searches go on, and swapped in. A compaction that fails leaves the old graph: the
  // removals stand either way.
  void after_write_impl() override {
    if (!graph_) return;
    const Graph& g = *graph_;
    const size_t dead = g.num_deleted_, total = g.cur_element_count;
    if (dead <= 1024 || dead <= total - dead) return;
    try {
      detail::fault_point("hnsw.compact");
      auto fresh_graph = rebuilt({}, 0);
      exclusive([&] { graph_.swap(fresh_graph); });
    } catch (const std::exception& e) {
      log(LogLevel::warn, backend() + ": compacting the graph failed (" + e.what() + "); the removed elements stay");
    }
  }

  // ---- reads ----
  void reconstruct_impl(int64_t id, float* out) const override {
    const auto v = graph_->getDataByLabel<float>(hnswlib::labeltype(id));
    std::copy(v.begin(), v.end(), out);
  }
  bool contains_impl(int64_t id) const override { return live(id); }
  int64_t size_impl() const override {
    return graph_ ? int64_t(graph_->cur_element_count - graph_->num_deleted_) : 0;
  }

  void search_impl(int64_t nq, const float* queries, int k, int64_t* ids, float* scores) const override {
    const bool ip = metric() == Metric::inner_product;
    const float pad = padding_score(metric());
    auto one = [&](int64_t i) {
      int64_t* oi = ids + i * k;
      float* os = scores + i * k;
      int j = 0;
      if (size_impl() > 0) {
        thread_local std::vector<std::pair<float, int64_t>> got_buf;  // (a thread_local in a shared library is reached by a call: once)
        std::vector<std::pair<float, int64_t>>& got = got_buf;
        const float* q = queries + size_t(i) * dim();
        if (codes_walk_) {
          thread_local Walk::Scratch scratch;
          Walk w(*graph_, ip, size_t(dim()), scratch);
          w.start(q, std::max(graph_->ef_, size_t(k)));
          while (w.gather()) w.score();
          w.finish(size_t(k), got);
        } else {  // walk=0: hnswlib's own search on the float vectors (the baseline of benchmarks/hnsw_ab.sh)
          auto heap = graph_->searchKnn(q, size_t(k));  // worst on top
          got.clear();
          for (; !heap.empty(); heap.pop()) got.emplace_back(heap.top().first, int64_t(heap.top().second));
          std::sort(got.begin(), got.end());
        }
        // Best first (smallest distance), the smaller id on ties; scores exact: -distance is q.x.
        for (; j < int(got.size()) && j < k; ++j) oi[j] = got[size_t(j)].second, os[j] = ip ? -got[size_t(j)].first : got[size_t(j)].first;
      }
      for (; j < k; ++j) oi[j] = -1, os[j] = pad;
    };
    if (nq < 8) {
      for (int64_t i = 0; i < nq; ++i) one(i);
      return;
    }
    std::exception_ptr failed;
    std::mutex m;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < nq; ++i) {
      try {
        one(i);
      } catch (...) {
        std::lock_guard<std::mutex> l(m);
        if (!failed) failed = std::current_exception();
      }
    }
    if (failed) std::rethrow_exception(failed);
  }

  void set_param_impl(const std::string& name, double value) override {
    if (name == "walk" && (value == 0 || value == 1)) {
      codes_walk_ = value == 1;
      return;
    }
    if (name == "ef" && value >= 1 && value <= 100000 && value == std::floor(value)) {
      ef_ = size_t(value);
      if (graph_) graph_->setEf(ef_);
      return;
    }
    throw InvalidArgument("vector store '" + backend() + "': unknown or out-of-range search parameter " + name +
                          "=" + std::to_string(value) + " (ef: an integer in [1, 100000]; walk: 1 on the 8-bit codes, 0 hnswlib's own on the floats)");
  }

  // ---- the store file ----
  // u64 M, ef_construction, ef, elements (deleted included); i64 max level, entry point;
  // the level-0 block (links, vector, label per element); per element a u32 byte count and
  // its upper-level links.
  std::function<void(PayloadSink&)> payload_writer_impl() const override {
    return [this](PayloadSink& out) {
      if (!graph_) {  // empty: no graph was ever made
        const uint64_t head[4] = {p_.M, p_.ef_construction, ef_, 0};
        const int64_t where[2] = {-1, -1};
        put(out, head, 4);
        put(out, where, 2);
        return;
      }
      const Graph& g = *graph_;
      const uint64_t head[4] = {g.M_, g.ef_construction_, ef_, g.cur_element_count};
      const int64_t where[2] = {g.maxlevel_, g.enterpoint_node_ == hnswlib::tableint(-1) ? -1 : int64_t(g.enterpoint_node_)};
      put(out, head, 4);
      put(out, where, 2);
      out.write(g.data_level0_memory_, g.cur_element_count * g.size_data_per_element_);
      for (size_t i = 0; i < g.cur_element_count; ++i) {
        const uint32_t bytes = g.element_levels_[i] > 0 ? uint32_t(g.size_links_per_element_ * size_t(g.element_levels_[i])) : 0;
        out.write(&bytes, 4);
        if (bytes) out.write(g.linkLists_[i], bytes);
      }
    };
  }

  bool verify_payload_first_impl() const override { return true; }

  std::function<void()> read_payload_impl(PayloadSource& in, int64_t count) override {
    const std::string& what = in.what();
    uint64_t head[4];
    int64_t where[2];
    in.get(head, 4);
    in.get(where, 2);
    const uint64_t M = head[0], efc = head[1], ef = head[2], total = head[3];
    if (M != p_.M || efc != p_.ef_construction)
      throw FormatError(what + ": a graph of M=" + std::to_string(M) + ", ef_construction=" + std::to_string(efc) +
                        ", this store is " + backend());
    if (ef < 1 || ef > 100000 || total > in.remaining()) throw FormatError(what + ": bad header");
    if (total == 0) {
      if (where[0] != -1 || where[1] != -1 || count != 0) throw FormatError(what + ": bad entry point");
      return [this, ef] {
        graph_.reset();
        ef_ = size_t(ef);
      };
    }
    // hnswlib's level-0 record: links (2M + 1 u32), the vector, the label; checked against
    // the bytes there are before anything is allocated.
    const uint64_t per = (2 * p_.M + 1) * sizeof(hnswlib::tableint) + uint64_t(dim()) * sizeof(float) + sizeof(hnswlib::labeltype);
    if (total > in.remaining() / per) throw FormatError(what + ": truncated level-0 block");
    auto g = std::make_unique<Graph>(&space_, total, p_.M, p_.ef_construction, 100);
    if (g->size_data_per_element_ != per || total * g->size_data_per_element_ > in.remaining())
      throw FormatError(what + ": truncated level-0 block");
    advise_huge_pages(*g);
    in.read(g->data_level0_memory_, total * g->size_data_per_element_);
    // Every element's label distinct and >= 0; every link inside the graph; list lengths
    // within M (the search follows them without checks).
    auto links_ok = [&](const hnswlib::linklistsizeint* ll, size_t cap) {
      const size_t c = g->getListCount(const_cast<hnswlib::linklistsizeint*>(ll));
      if (c > cap) return false;
      const auto* nb = reinterpret_cast<const hnswlib::tableint*>(ll + 1);
      for (size_t j = 0; j < c; ++j)
        if (nb[j] >= total) return false;
      return true;
    };
    for (size_t i = 0; i < total; ++i) {
      const auto label = g->getExternalLabel(hnswlib::tableint(i));
      if (int64_t(label) < 0) throw FormatError(what + ": element " + std::to_string(i) + " has a negative id");
      // Deleted elements may share an id with the live one that replaced them.
      if (!g->isMarkedDeleted(hnswlib::tableint(i)) && !g->label_lookup_.emplace(label, hnswlib::tableint(i)).second)
        throw FormatError(what + ": element " + std::to_string(i) + " repeats a stored id");
      const float* v = g->vector(hnswlib::tableint(i));
      for (int j = 0; j < dim(); ++j)
        if (!std::isfinite(v[j])) throw FormatError(what + ": element " + std::to_string(i) + " holds NaN or Inf");
      if (!links_ok(g->get_linklist0(hnswlib::tableint(i)), g->maxM0_))
        throw FormatError(what + ": element " + std::to_string(i) + " links outside the graph");
      uint32_t bytes = 0;
      in.read(&bytes, 4);
      if (bytes % g->size_links_per_element_ != 0 || bytes / g->size_links_per_element_ > 64 || bytes > in.remaining())
        throw FormatError(what + ": element " + std::to_string(i) + " has a bad upper-level block");
      g->element_levels_[i] = int(bytes / g->size_links_per_element_);
      if (bytes) {
        g->linkLists_[i] = static_cast<char*>(std::malloc(bytes + sizeof(hnswlib::tableint)));  // + hnswlib's read past the end
        if (!g->linkLists_[i]) throw std::bad_alloc();
        g->cur_element_count = i + 1;  // the destructor frees what was allocated so far
        in.read(g->linkLists_[i], bytes);
        for (int l = 1; l <= g->element_levels_[i]; ++l)
          if (!links_ok(g->get_linklist(hnswlib::tableint(i), l), g->maxM_))
            throw FormatError(what + ": element " + std::to_string(i) + " links outside the graph");
      } else {
        g->linkLists_[i] = nullptr;
      }
      g->cur_element_count = i + 1;
      if (g->isMarkedDeleted(hnswlib::tableint(i))) ++g->num_deleted_;
    }
    const int64_t entry = where[1], top = where[0];
    if (total == 0 ? (entry != -1 || top != -1)
                   : (entry < 0 || uint64_t(entry) >= total || top != g->element_levels_[size_t(entry)]))
      throw FormatError(what + ": bad entry point");
    for (size_t i = 0; i < total; ++i) {
      if (g->element_levels_[i] > top) throw FormatError(what + ": an element above the top level");
      // A link at level l must lead to an element that has level l (the search reads its list).
      for (int l = 1; l <= g->element_levels_[i]; ++l) {
        const auto* ll = g->get_linklist(hnswlib::tableint(i), l);
        const auto* nb = reinterpret_cast<const hnswlib::tableint*>(ll + 1);
        for (size_t j = 0; j < g->getListCount(const_cast<hnswlib::linklistsizeint*>(ll)); ++j)
          if (g->element_levels_[nb[j]] < l)
            throw FormatError(what + ": element " + std::to_string(i) + " links at level " + std::to_string(l) +
                              " to an element without that level");
      }
    }
    if (int64_t(total - g->num_deleted_) != count)
      throw FormatError(what + ": holds " + std::to_string(total - g->num_deleted_) + " live vectors, the header says " +
                        std::to_string(count));
    g->maxlevel_ = int(top);
    g->enterpoint_node_ = entry < 0 ? hnswlib::tableint(-1) : hnswlib::tableint(entry);
    g->setEf(size_t(ef));
    encode(*g, size_t(dim()), 0);
    auto made = std::make_shared<std::unique_ptr<Graph>>(std::move(g));
    return [this, made, ef] {
      graph_ = std::move(*made);
      ef_ = size_t(ef);
    };
  }

  HnswParams p_;
  Space space_;
  size_t ef_ = 128;
  bool codes_walk_ = true;
  std::unique_ptr<Graph> graph_;
};

}  // namespace

std::unique_ptr<VectorStore> make_hnsw_store(const std::string& base, int dim, Metric metric) {
  return std::make_unique<HnswStore>(base, dim, metric);
}

}  // namespace mindrec::store
