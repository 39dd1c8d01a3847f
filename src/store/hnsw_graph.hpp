// Private: the hnsw: backend's graph. hnswlib's HierarchicalNSW (Debian's header-only
// libhnswlib-dev, compiled with mindrec's flags) whose distances are mindrec's run-time
// dispatched kernels (detail/simd.hpp), plus an 8-bit code of every element's vector that the
// search walks on (hnsw_walk.hpp). The store's write scheme is in hnsw_store.cpp, the file
// layout in hnsw_file.cpp.
//
// hnswlib 0.6.2 prefetches one link past the end of a list (searchBaseLayer reads
// datal[size]), up to 4 bytes past an upper level's malloc'd block: an over-read that only
// feeds a prefetch and stays inside malloc's slack, but one AddressSanitizer reports.
// Sanitizer builds therefore compile hnswlib without its manual vectorisation (which is only
// those prefetches here: the distances are mindrec's own).
//
// Included by one translation unit only, hnsw_store.cpp (with hnsw_walk.hpp and
// hnsw_file.hpp): hnswlib 0.6.2's headers define non-inline functions and globals.
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MINDREC_ASAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(MINDREC_ASAN_BUILD)
#define NO_MANUAL_VECTORIZATION
#endif
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "detail/fault.hpp"
#include "mindrec/aligned.hpp"
#include "mindrec/detail/huge_pages.hpp"
#include "detail/parallel.hpp"
#include "detail/simd.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"
#include "store/visited_set.hpp"

namespace mindrec::store::hnsw {

using hnswlib::linklistsizeint;
using hnswlib::tableint;

/// The graph's float vectors, element i's at row(i), outside hnswlib's level-0 block: a block
/// the table allocated (malloc: grown by realloc, which remaps the pages of a large block
/// instead of copying them) or a caller's buffer handed over (adopt(): kept as it is, no copy,
/// until the table must grow). So a store built from a buffer its caller gives up holds the
/// vectors once (issue 28: the 20M-item build's memory).
class FloatTable {
 public:
  explicit FloatTable(size_t dim) : dim_(dim) {}
  ~FloatTable() { std::free(block_); }
  FloatTable(const FloatTable&) = delete;
  FloatTable& operator=(const FloatTable&) = delete;

  float* row(size_t i) { return data_ + i * dim_; }
  const float* row(size_t i) const { return data_ + i * dim_; }
  size_t rows() const { return rows_; }
  /// Whether grow() remaps (a block of its own) rather than copies (an adopted buffer).
  bool remaps() const { return block_ != nullptr || data_ == nullptr; }

  /// Room for `rows` rows, the first `keep` kept. Throws std::bad_alloc, the table unchanged.
  void grow(size_t rows, size_t keep) {
    if (rows <= rows_) return;
    const size_t bytes = rows * dim_ * sizeof(float);
    // Advised before the new pages are first written (faulted in huge).
    if (remaps()) {
      void* p = std::realloc(block_, bytes);
      if (!p) throw std::bad_alloc();
      block_ = static_cast<float*>(p);
      detail::advise_huge_pages(block_, bytes);
    } else {
      auto* p = static_cast<float*>(std::malloc(bytes));
      if (!p) throw std::bad_alloc();
      detail::advise_huge_pages(p, bytes);
      std::copy(data_, data_ + keep * dim_, p);
      block_ = p;
      AlignedVector<float>().swap(adopted_);
    }
    data_ = block_;
    rows_ = rows;
  }
  /// Takes `v` (a whole number of rows) as the table; what the table held is dropped.
  void adopt(AlignedVector<float>&& v) {
    std::free(block_);
    block_ = nullptr;
    adopted_ = std::move(v);
    data_ = adopted_.empty() ? nullptr : adopted_.data();
    rows_ = dim_ ? adopted_.size() / dim_ : 0;
  }
  /// The adopted buffer back (empty if the table has none).
  AlignedVector<float> give_back() {
    AlignedVector<float> v;
    if (!block_ && data_) {
      v.swap(adopted_);
      data_ = nullptr;
      rows_ = 0;
    }
    return v;
  }
  void swap(FloatTable& o) noexcept {
    std::swap(dim_, o.dim_);
    std::swap(rows_, o.rows_);
    std::swap(block_, o.block_);
    std::swap(data_, o.data_);
    adopted_.swap(o.adopted_);
  }

 private:
  size_t dim_ = 0, rows_ = 0;
  float* block_ = nullptr;  // malloc'd (or null)
  float* data_ = nullptr;   // block_ or adopted_.data()
  AlignedVector<float> adopted_;
};

/// The store's ids (hnswlib's labels) -> elements, in place of hnswlib's label_lookup_ (an
/// unordered_map: about 44 bytes a label, 0.17 tables at dim 64): labels inside the dense
/// range are found by index (4 bytes a slot; item ids are usually 1..N), the others (sparse
/// ids, an upsert's hidden labels) in a hash map. The dense range grows while it stays within
/// twice the labels held (as IdMap's). Not thread-safe: the graph's insertions set labels
/// under its count's mutex.
class LabelMap {
 public:
  static constexpr tableint kNone = tableint(-1);
  /// The element of `label`, or kNone.
  tableint find(hnswlib::labeltype label) const {
    if (label < dense_.size()) return dense_[size_t(label)];
    const auto it = sparse_.find(label);
    return it == sparse_.end() ? kNone : it->second;
  }
  /// Sets the element of `label`; one already held is set in place (nothing allocated).
  /// Throws std::bad_alloc, the map unchanged.
  void set(hnswlib::labeltype label, tableint e) {
    if (label >= dense_.size()) {
      if (const auto it = sparse_.find(label); it != sparse_.end()) {
        it->second = e;
        return;
      }
      if (label > 2 * (count_ + 1) + 1024) {
        sparse_.emplace(label, e);
        ++count_;
        return;
      }
      grow(size_t(label) + 1);
    }
    count_ += dense_[size_t(label)] == kNone;
    dense_[size_t(label)] = e;
  }
  /// Takes `label` out; whether it was there.
  bool erase(hnswlib::labeltype label) {
    if (label < dense_.size()) {
      const bool was = dense_[size_t(label)] != kNone;
      dense_[size_t(label)] = kNone;
      count_ -= was;
      return was;
    }
    const bool was = sparse_.erase(label) > 0;
    count_ -= was;
    return was;
  }
  /// Room for labels below `end` in the dense range, when `n` more labels would keep it within
  /// the rule (a batch of ids 1..N, set on all cores without growing it one step at a time).
  void reserve(hnswlib::labeltype end, size_t n) {
    if (end > dense_.size() && end <= 2 * (count_ + n) + 1024) grow(size_t(end));
  }
  /// f(label, element) for every label held.
  template <class F>
  void for_each(F&& f) const {
    for (size_t l = 0; l < dense_.size(); ++l)
      if (dense_[l] != kNone) f(hnswlib::labeltype(l), dense_[l]);
    for (const auto& [label, e] : sparse_) f(label, e);
  }

 private:
  void grow(size_t end) {
    std::vector<tableint> d(std::max(end, dense_.size() + dense_.size() / 2), kNone);
    std::copy(dense_.begin(), dense_.end(), d.begin());
    dense_.swap(d);
    for (auto it = sparse_.begin(); it != sparse_.end();) {  // what now fits moves in
      if (it->first < dense_.size()) {
        dense_[size_t(it->first)] = it->second;
        it = sparse_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<tableint> dense_;
  std::unordered_map<hnswlib::labeltype, tableint> sparse_;
  size_t count_ = 0;
};

/// hnswlib's graph with the float vectors kept apart (FloatTable: hnswlib's level-0 element
/// is links and label only, 268 bytes at M=32), plus an 8-bit copy of every element's vector,
/// which the search walks on: element i's code is x ~ lo + step * c (c in 0..255, lo and step
/// its own min and (max - min) / 255), 72 bytes (two cache lines) at dim 64 where the float
/// vector spans four. Derived data: made by encode() after every insertion and on load, never
/// stored in the file. The level-0 block, the table and the codes are on huge pages.
///
/// hnswlib's own search (searchKnn: walk=0, a benchmark baseline) finds an element's data at
/// getDataByInternalId, which with no data in the element is where its label begins: the
/// distance function hnswlib calls (element_distance) turns that address back into the
/// element's number and reads its row of the table. hnswlib's construction (addPoint),
/// getDataByLabel and markDelete (which use its data or its label map) are never called.
struct Graph : hnswlib::HierarchicalNSW<float> {
  // hnswlib's constructor (with `space` a Space: its data size is 0), without its array of a
  // std::mutex per element (40 bytes an element, 0.8 GB at 20M) and updatePoint's: the insertion (insert())
  // locks an element's lists with a byte of its own level-0 list header instead (ListLock),
  // and no hnswlib function that takes those locks (searchBaseLayer, addPoint, updatePoint)
  // is called.
  Graph(hnswlib::SpaceInterface<float>* space, size_t dim, size_t max_elements, size_t M, size_t ef_construction,
        size_t seed)
      : hnswlib::HierarchicalNSW<float>(space, max_elements, M, ef_construction, seed), table(dim), dim_(dim) {
    std::vector<std::mutex>().swap(link_list_locks_);
    std::vector<std::mutex>().swap(link_list_update_locks_);  // updatePoint's 65,536 (2.6 MB a graph): never called
    vector_distance_ = fstdistfunc_;
    vector_param_ = dist_func_param_;
    fstdistfunc_ = element_distance;
    dist_func_param_ = this;
  }
  /// hnswlib's resizeIndex, its lock array dropped again, and the table grown.
  void resize(size_t max_elements) {
    table.grow(max_elements, cur_element_count);
    resizeIndex(max_elements);
    std::vector<std::mutex>().swap(link_list_locks_);
  }
  FloatTable table;                // element i's vector: table.row(i)
  LabelMap labels;                 // id -> element (hnswlib's label_lookup_ stays empty)
  static constexpr size_t kCodeHead = 2 * sizeof(float);  // lo, step
  size_t code_stride = 0;          // bytes per code: lo, step, dim bytes, rounded up to 8
  std::vector<uint8_t, detail::HugePageAllocator<uint8_t>> codes;  // element i's code at i * code_stride
  std::vector<float> code_norms;   // element i: |x^|^2, the decoded vector's squared norm (L2's walk)

  const float* vector(tableint id) const { return table.row(id); }
  const uint8_t* code(tableint id) const { return codes.data() + size_t(id) * code_stride; }
  size_t dim() const { return dim_; }
  /// The exact distance between two vectors (-a.b for inner product, else squared L2).
  float distance(const float* a, const float* b) const { return vector_distance_(a, b, vector_param_); }

  /// A float query against the codes: on x^ = lo + step * c, q.x^ = lo * sum(q) + step * q.c
  /// and |q - x^|^2 = |q|^2 - 2 q.x^ + |x^|^2 (the decoded vector's norm, code_norms).
  struct CodeQuery {
    const float* q = nullptr;
    float sum = 0, norm = 0;
    bool ip = true;
    CodeQuery() = default;
    CodeQuery(const float* x, size_t d, bool inner_product) : q(x), ip(inner_product) {
      for (size_t j = 0; j < d; ++j) sum += x[j], norm += x[j] * x[j];
    }
  };
  /// The query's distance to element id's code (-q.x^ for inner product, else squared L2).
  float code_distance(const detail::SimdKernels& k, const CodeQuery& cq, tableint id) const {
    const uint8_t* c = code(id);
    float lo_step[2];
    std::memcpy(lo_step, c, sizeof lo_step);
    const float qx = lo_step[0] * cq.sum + lo_step[1] * k.dot_u8(cq.q, c + kCodeHead, dim());
    return cq.ip ? -qx : cq.norm - 2 * qx + code_norms[id];
  }

  /// Room for the codes of `n` elements (allocates unless the capacity is there).
  void size_codes(size_t n) {
    code_stride = (kCodeHead + dim() + 7) / 8 * 8;
    if (codes.capacity() < n * code_stride || code_norms.capacity() < n) detail::fault_point("hnsw.encode");
    codes.resize(n * code_stride);
    code_norms.resize(n);
  }
  /// Element i's code from its vector: lo and step its own min and (max - min) / 255.
  void encode_one(tableint i) {
    const size_t d = dim();
    const float* x = vector(i);
    uint8_t* out = codes.data() + size_t(i) * code_stride;
    uint8_t* c = out + kCodeHead;
    const auto [lo_it, hi_it] = std::minmax_element(x, x + d);
    const float lo = *lo_it, step = (*hi_it - lo) / 255.0f;
    // The codes in a loop the compiler vectorises; the decoded vector's squared norm in 8
    // partial sums (one running sum was a chain of d dependent adds: the load re-encodes every
    // vector, and this was a third of an hnsw load's time).
    const float inv = step > 0 ? 1.0f / step : 0.0f;
    for (size_t j = 0; j < d; ++j) c[j] = uint8_t(std::min(255.0f, std::max(0.0f, std::nearbyint((x[j] - lo) * inv))));
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= d; j += 8)
      for (size_t l = 0; l < 8; ++l) {
        const float back = lo + step * float(c[j + l]);
        part[l] += back * back;
      }
    for (; j < d; ++j) part[0] += (lo + step * float(c[j])) * (lo + step * float(c[j]));
    const float norm = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    std::fill(c + d, out + code_stride, uint8_t(0));
    std::memcpy(out, &lo, sizeof lo);
    std::memcpy(out + sizeof lo, &step, sizeof step);
    code_norms[i] = norm;
  }

  /// An element's lock for insertions: the fourth byte of its level-0 list's header (hnswlib
  /// keeps the list's count in the first two bytes, its removed flag in the third, and never
  /// writes the fourth; it is 0 in every saved file: nothing is saved while a batch inserts).
  /// A spin lock on the line the holder reads next; held for a list's copy or re-pruning.
  class ListLock {
   public:
    ListLock(const Graph& g, tableint id) : b_(reinterpret_cast<uint8_t*>(g.get_linklist0(id)) + 3) {
      for (unsigned spins = 0; __atomic_exchange_n(b_, uint8_t(1), __ATOMIC_ACQUIRE);)
        while (__atomic_load_n(b_, __ATOMIC_RELAXED)) {
          if (++spins % 64 == 0) std::this_thread::yield();
#if defined(__x86_64__) || defined(__i386__)
          else __builtin_ia32_pause();
#endif
        }
    }
    ~ListLock() { __atomic_store_n(b_, uint8_t(0), __ATOMIC_RELEASE); }
    ListLock(const ListLock&) = delete;
    ListLock& operator=(const ListLock&) = delete;

   private:
    uint8_t* b_;
  };

  // The elements of a batch being inserted in place (hnsw_store.cpp): in the graph, where they
  // route searches and the insertion's own searches (hnswlib's construction skips elements
  // marked deleted, so they cannot be hidden that way), but never returned until the batch
  // commits. A bit per element slot.
  std::vector<uint64_t> hidden;
  size_t hidden_count = 0;
  bool is_hidden(tableint id) const { return hidden_count > 0 && ((hidden[id >> 6] >> (id & 63)) & 1); }
  void set_hidden(tableint id, bool on) {
    const uint64_t bit = uint64_t(1) << (id & 63);
    if (on) hidden[id >> 6] |= bit, ++hidden_count;
    else hidden[id >> 6] &= ~bit, --hidden_count;
  }
  /// Not returned by a search: removed, or hidden.
  bool excluded(tableint id) const { return isMarkedDeleted(id) || is_hidden(id); }
  void advise_huge_pages() const { detail::advise_huge_pages(data_level0_memory_, max_elements_ * size_data_per_element_); }

  using Queue = std::priority_queue<std::pair<float, tableint>, std::vector<std::pair<float, tableint>>, CompareByFirst>;

  /// What a batch inserted in place changed in the graph it found: every link list the batch's
  /// insertions changed, saved once, before its first change (an insertion appends itself to
  /// its neighbours' lists, or re-prunes a full one, dropping old links), and the entry point.
  /// A failed batch puts them back (restore()): marking its elements removed alone would leave
  /// the re-pruned lists, and an old element whose last in-link was dropped unreachable. At
  /// most one copy of the lists the batch touched.
  struct UndoLog {
    struct List {
      tableint id;
      int level;
      std::vector<tableint> links;
    };
    std::mutex mu;
    std::unordered_set<uint64_t> saved;  // id << 8 | level
    std::deque<List> lists;  // (push_back: all or nothing, and no copy as it grows)
    tableint entry = 0;
    int max_level = -1;
    std::vector<tableint> orphans;  // elements the batch left with no level-0 in-link (in_links)
    explicit UndoLog(const Graph& g) : entry(g.enterpoint_node_), max_level(g.maxlevel_) {}
    /// Saves `ll` (the list of `id` at `level`) unless saved before; throws (bad_alloc)
    /// before the caller changes it.
    void save(tableint id, int level, const linklistsizeint* ll, size_t count) {
      std::lock_guard<std::mutex> lock(mu);
      const uint64_t key = uint64_t(id) << 8 | uint64_t(level);
      if (saved.count(key)) return;
      detail::fault_point("hnsw.add.link");
      const auto* links = reinterpret_cast<const tableint*>(ll + 1);
      lists.push_back(List{id, level, std::vector<tableint>(links, links + count)});
      try {
        saved.insert(key);
      } catch (...) {
        lists.pop_back();
        throw;
      }
    }
    void orphaned(tableint id) {
      std::lock_guard<std::mutex> lock(mu);
      orphans.push_back(id);
    }
  };

  /// Puts back what `log` saved (cannot throw).
  void restore(const UndoLog& log) {
    for (const auto& l : log.lists) {
      linklistsizeint* ll = get_linklist_at_level(l.id, l.level);
      if (l.level == 0 && !in_links.empty()) {
        const auto* now = reinterpret_cast<const tableint*>(ll + 1);
        for (size_t j = 0, c = getListCount(ll); j < c; ++j) drop_in_link(now[j]);
        for (const tableint t : l.links) add_in_link(t);
      }
      std::copy(l.links.begin(), l.links.end(), reinterpret_cast<tableint*>(ll + 1));
      setListCount(ll, static_cast<unsigned short>(l.links.size()));  // the count only: the removed flag stays
    }
    enterpoint_node_ = log.entry;
    maxlevel_ = log.max_level;
  }

  /// Level-0 in-links per element slot (how many level-0 lists hold it), kept while batches
  /// are inserted in place (hnsw_store.cpp counts them before a graph's first one); empty
  /// otherwise (a graph built aside is walked whole instead: plan_relinks()). Only writers
  /// read it.
  std::vector<uint32_t> in_links;
  size_t placed_since_walk = 0;  // elements inserted in place since the graph was last walked whole
  /// Counts every element's level-0 in-links into in_links (room for `room` elements).
  void count_in_links(size_t room) {
    std::vector<uint32_t> counts(std::max(room, size_t(cur_element_count)), 0);
    for (size_t e = 0; e < cur_element_count; ++e) {
      linklistsizeint* ll = get_linklist0(tableint(e));
      const auto* links = reinterpret_cast<const tableint*>(ll + 1);
      for (size_t j = 0, c = getListCount(ll); j < c; ++j) ++counts[links[j]];
    }
    in_links.swap(counts);
  }
  void add_in_link(tableint t) {
    if (!in_links.empty()) __atomic_fetch_add(&in_links[t], 1u, __ATOMIC_RELAXED);
  }
  /// True when t's last in-link went.
  bool drop_in_link(tableint t) { return !in_links.empty() && __atomic_sub_fetch(&in_links[t], 1u, __ATOMIC_RELAXED) == 0; }

  /// A level-0 link that makes an element no search reached reachable (plan_relinks()).
  struct Relink {
    tableint from, to;
    int slot;              // where in from's list: -1 appends (the list has room), else overwritten
    tableint replaced = 0;  // the link overwritten (slot >= 0)
  };
  /// The level-0 links that make every element not removed reachable from the entry point on
  /// level 0, where every search ends (so that its exhaustive form, ef above the count, returns
  /// them all). HNSW's insertion leaves some unreachable: a full list re-pruned by the
  /// heuristic drops links, and an element whose last in-link goes is never found again
  /// (hnswlib 0.6.2's too; RESULTS "Elements no search reaches"). Walks the whole graph from
  /// the entry point; each unreached element (in element order; the unreached elements it
  /// leads to are then reached through it) is linked by plan_link(). Reads the graph only: the
  /// caller applies the plan (apply_relinks()) and repeats until it is empty (an overwritten
  /// link's element is checked again). Throws std::bad_alloc. O(elements x M).
  std::vector<Relink> plan_relinks(bool ip) {
    detail::fault_point("hnsw.relink");
    std::vector<Relink> plan;
    const size_t n = cur_element_count;
    if (n == 0 || maxlevel_ < 0) return plan;
    std::vector<uint64_t> reached((n + 63) / 64, 0);
    const auto is_reached = [&](tableint e) { return ((reached[e >> 6] >> (e & 63)) & 1) != 0; };
    std::vector<tableint> stack;
    const auto reach_from = [&](tableint start) {
      reached[start >> 6] |= uint64_t(1) << (start & 63);
      stack.assign(1, start);
      while (!stack.empty()) {
        const tableint e = stack.back();
        stack.pop_back();
        linklistsizeint* ll = get_linklist0(e);
        const auto* links = reinterpret_cast<const tableint*>(ll + 1);
        for (size_t j = 0, c = getListCount(ll); j < c; ++j)
          if (!is_reached(links[j])) reached[links[j] >> 6] |= uint64_t(1) << (links[j] & 63), stack.push_back(links[j]);
      }
    };
    reach_from(tableint(enterpoint_node_));
    std::unordered_map<tableint, size_t> planned;
    for (size_t i = 0; i < n; ++i) {
      const auto e = tableint(i);
      if (is_reached(e) || isMarkedDeleted(e)) continue;
      if (plan_link(e, ip, is_reached, planned, plan)) reach_from(e);
    }
    return plan;
  }
  /// The same for a batch inserted in place, without the walk: the links for those of
  /// `candidates` (the elements whose last level-0 in-link the batch dropped, and its own
  /// elements) that no level-0 list holds (in_links 0) and are not removed; an element with an
  /// in-link counts as reached.
  std::vector<Relink> plan_orphan_links(std::vector<tableint> candidates, bool ip) {
    detail::fault_point("hnsw.relink");
    std::vector<Relink> plan;
    if (in_links.empty() || maxlevel_ < 0) return plan;
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    const auto entry = tableint(enterpoint_node_);
    std::unordered_set<tableint> linked;
    const auto is_reached = [&](tableint t) { return t == entry || in_links[t] > 0 || linked.count(t) > 0; };
    std::unordered_map<tableint, size_t> planned;
    for (const tableint e : candidates)
      if (!is_reached(e) && !isMarkedDeleted(e) && plan_link(e, ip, is_reached, planned, plan)) linked.insert(e);
    return plan;
  }
  /// Applies a plan (cannot throw); in_links follows.
  void apply_relinks(std::vector<Relink>& plan) {
    for (Relink& r : plan) {
      linklistsizeint* ll = get_linklist0(r.from);
      auto* links = reinterpret_cast<tableint*>(ll + 1);
      const size_t count = getListCount(ll);
      if (r.slot >= 0) {
        r.replaced = links[r.slot];
        links[r.slot] = r.to;
        drop_in_link(r.replaced);
      } else {
        links[count] = r.to;
        setListCount(ll, static_cast<unsigned short>(count + 1));
      }
      add_in_link(r.to);
    }
  }

 private:
  // One link of a plan (plan_relinks()): element e (not reached) linked from the nearest
  // reached element whose list has room: among e's own neighbours, else among a beam of
  // ef_construction from the entry point (all reached); when all of those are full, the
  // nearest one's last link is overwritten. `planned`: links planned into each list so far.
  // False when every candidate list is full and already planned into (the next round).
  template <class Reached>
  bool plan_link(tableint e, bool ip, const Reached& reached, std::unordered_map<tableint, size_t>& planned,
                 std::vector<Relink>& plan) {
    const auto room = [&](tableint t) {
      const auto it = planned.find(t);
      return getListCount(get_linklist0(t)) + (it == planned.end() ? 0 : it->second) < maxM0_;
    };
    const float* x = vector(e);
    BuildScratch& s = build_scratch();
    auto& near = s.sorted;
    near.clear();
    linklistsizeint* ll = get_linklist0(e);
    const auto* own = reinterpret_cast<const tableint*>(ll + 1);
    for (size_t j = 0, c = getListCount(ll); j < c; ++j)
      if (own[j] != e && reached(own[j])) near.emplace_back(exact(x, own[j]), own[j]);
    if (std::none_of(near.begin(), near.end(), [&](const auto& c) { return room(c.second); })) {
      const auto& kern = detail::simd();
      const CodeQuery cq(x, dim(), ip);
      const auto entry = tableint(enterpoint_node_);
      beam(kern, cq, descend(kern, cq, entry, maxlevel_, 0, s), 0, s);
      for (const auto& t : s.top)
        if (t.second != e && reached(t.second)) near.emplace_back(exact(x, t.second), t.second);
      if (near.empty() && e != entry) near.emplace_back(exact(x, entry), entry);
    }
    std::sort(near.begin(), near.end());
    const auto with_room = std::find_if(near.begin(), near.end(), [&](const auto& c) { return room(c.second); });
    if (with_room != near.end()) {
      plan.push_back(Relink{with_room->second, e, -1});
    } else {
      const auto free = std::find_if(near.begin(), near.end(), [&](const auto& c) { return planned.count(c.second) == 0; });
      if (free == near.end()) return false;
      plan.push_back(Relink{free->second, e, int(getListCount(get_linklist0(free->second))) - 1});
    }
    ++planned[plan.back().from];
    return true;
  }

 public:
  /// A level for a new element, drawn as hnswlib's insertion draws it, from the graph's own
  /// generator: the caller draws them one thread at a time, before inserting in parallel.
  int draw_level() { return getRandomLevel(mult_); }

  /// A thread's buffers for insertions (reused: no allocation per insertion once grown).
  struct BuildScratch {
    VisitedSet visited;
    std::vector<std::pair<float, tableint>> top, cand, sorted, kept, prune_sorted, prune_kept;
    std::vector<tableint> links;
    std::vector<std::vector<std::pair<float, tableint>>> picks;  // per level
  };
  /// This thread's. Not inlined: inside insert() the compiler would otherwise derive the
  /// thread-local address again and again in its loops, which in a shared library is a call
  /// to __tls_get_addr each time (7.5% of the Python package's build, measured with perf).
  [[gnu::noinline]] static BuildScratch& build_scratch() {
    thread_local BuildScratch s;
    return s;
  }

  /// Inserts a new label at a given level: hnswlib 0.6.2's addPoint (greedy descent, a beam of
  /// ef_construction per level, its neighbour heuristic, links both ways, a full list re-pruned
  /// by the heuristic), except that
  ///  - the element's code is made first and the descent and the beams walk on the codes (two
  ///    cache lines an element at dim 64 instead of five), the query being the float vector;
  ///  - the beam's elements are then scored exactly and the neighbours chosen on exact
  ///    distances (the heuristic and every re-pruning on the float vectors);
  ///  - no lock is held across another, and none for the whole insertion (hnswlib holds the
  ///    new element's, and two insertions linking each other can wait on each other): the
  ///    element's own lists are all written before any other element links to it, so no
  ///    insertion reaches it half made; then each neighbour's list under its own lock;
  /// with each neighbour's list saved in `log` (when there is one) before it is changed.
  /// Never updates an element in place. Throws std::bad_alloc (the label map, an upper level's
  /// links, the log): the element is then in the graph, its count taken, possibly linked by
  /// some neighbours (logged), and the caller removes it. The codes must have room for it
  /// (size_codes).
  void insert(const float* x, hnswlib::labeltype label, int level, UndoLog* log, bool ip) {
    tableint cur = 0;
    {
      std::lock_guard<std::mutex> lock(cur_element_count_guard_);
      if (cur_element_count >= max_elements_ || cur_element_count >= table.rows())
        throw std::length_error("hnsw: no room for another element");
      if (codes.size() < (cur_element_count + 1) * code_stride) throw std::length_error("hnsw: no room for another code");
      cur = tableint(cur_element_count);
      labels.set(label, cur);
      ++cur_element_count;
    }
    std::memcpy(table.row(cur), x, dim_ * sizeof(float));
    link(cur, label, level, log, ip);
  }

  /// Inserts element `cur` of a graph no search reads (a build aside): its row of the table
  /// already holds its vector, its number is below cur_element_count (the caller counted the
  /// batch in first: element i of a batch is row i), and the codes have room for it. As
  /// insert() otherwise.
  void insert_row(tableint cur, hnswlib::labeltype label, int level, bool ip) {
    {
      std::lock_guard<std::mutex> lock(cur_element_count_guard_);
      if (cur >= cur_element_count || codes.size() < (size_t(cur) + 1) * code_stride)
        throw std::length_error("hnsw: no room for element " + std::to_string(cur));
      labels.set(label, cur);
    }
    link(cur, label, level, nullptr, ip);
  }

 private:
  // The rest of an insertion: element `cur` (its number taken, its vector in the table) made
  // and linked.
  void link(tableint cur, hnswlib::labeltype label, int level, UndoLog* log, bool ip) {
    const float* x = table.row(cur);
    element_levels_[cur] = level;
    std::memset(data_level0_memory_ + size_t(cur) * size_data_per_element_ + offsetLevel0_, 0, size_data_per_element_);
    std::memcpy(getExternalLabeLp(cur), &label, sizeof label);
    encode_one(cur);
    std::unique_lock<std::mutex> top(global);
    const int max_level = maxlevel_;
    if (level <= max_level) top.unlock();
    tableint at = enterpoint_node_;
    const tableint entry = enterpoint_node_;
    if (level > 0) {
      linkLists_[cur] = static_cast<char*>(std::malloc(size_links_per_element_ * size_t(level) + 1));
      if (!linkLists_[cur]) {
        element_levels_[cur] = 0;
        throw std::bad_alloc();
      }
      std::memset(linkLists_[cur], 0, size_links_per_element_ * size_t(level) + 1);
    }
    if (max_level < 0) {  // the first element
      enterpoint_node_ = cur;
      maxlevel_ = level;
      return;
    }
    const auto& kern = detail::simd();
    const CodeQuery cq(x, dim(), ip);
    BuildScratch& s = build_scratch();
    if (level < max_level) at = descend(kern, cq, at, max_level, level, s);  // to the element's top level
    const bool entry_removed = isMarkedDeleted(entry);
    const int top_level = std::min(level, max_level);
    if (s.picks.size() < size_t(top_level) + 1) s.picks.resize(size_t(top_level) + 1);
    for (int l = top_level; l >= 0; --l) {
      beam(kern, cq, at, l, s);
      s.sorted.clear();
      for (const auto& t : s.top) prefetch_vector(t.second);
      for (const auto& t : s.top) s.sorted.emplace_back(exact(x, t.second), t.second);
      if (entry_removed) s.sorted.emplace_back(exact(x, entry), entry);  // hnswlib's addPoint does the same
      std::sort(s.sorted.begin(), s.sorted.end());
      auto& picked = s.picks[size_t(l)];
      select(s.sorted, M_, picked);
      const ListLock lock(*this, cur);
      linklistsizeint* mine = get_linklist_at_level(cur, l);
      auto* links = reinterpret_cast<tableint*>(mine + 1);
      for (size_t i = 0; i < picked.size(); ++i) links[i] = picked[i].second;
      setListCount(mine, static_cast<unsigned short>(picked.size()));
      if (l == 0)
        for (const auto& p : picked) add_in_link(p.second);
      if (!picked.empty()) at = picked.front().second;
    }
    // Only now is the element linked from others: no insertion reaches it (and appends to
    // one of its lists) before all of them are written.
    for (int l = top_level; l >= 0; --l) link_back(cur, s.picks[size_t(l)], l, log, s);
    if (level > max_level) {
      enterpoint_node_ = cur;
      maxlevel_ = level;
    }
  }

  // hnswlib's greedy descent on the codes from `at` on level `from` to level `to` + 1: the
  // element of level `to` + 1 nearest the query that the descent finds.
  tableint descend(const detail::SimdKernels& kern, const CodeQuery& cq, tableint at, int from, int to, BuildScratch& s) {
    float d = code_distance(kern, cq, at);
    for (int l = from; l > to; --l) {
      for (bool moved = true; moved;) {
        moved = false;
        copy_links(at, l, s.links);
        for (const tableint n : s.links) {
          const float dn = code_distance(kern, cq, n);
          if (dn < d) d = dn, at = n, moved = true;
        }
      }
    }
    return at;
  }

  // hnswlib's distance function while it searches (walk=0): `element` is what
  // getDataByInternalId gave, data_level0_memory_ + id * size_data_per_element_ + offsetData_.
  static float element_distance(const void* query, const void* element, const void* self) {
    const auto& g = *static_cast<const Graph*>(self);
    const size_t at = size_t(static_cast<const char*>(element) - g.data_level0_memory_) - g.offsetData_;
    return g.distance(static_cast<const float*>(query), g.vector(tableint(at / g.size_data_per_element_)));
  }
  float exact(const float* a, tableint b) const { return distance(a, vector(b)); }

  // The links of `id` at `level`, copied under the list's lock.
  void copy_links(tableint id, int level, std::vector<tableint>& out) {
    const ListLock lock(*this, id);
    const linklistsizeint* ll = get_linklist_at_level(id, level);
    const auto* links = reinterpret_cast<const tableint*>(ll + 1);
    out.assign(links, links + getListCount(const_cast<linklistsizeint*>(ll)));
  }

  // hnswlib's searchBaseLayer on the codes: a beam of ef_construction from `at` on `level`
  // (removed elements route but are not kept); the beam in s.top (code distance, id).
  void beam(const detail::SimdKernels& kern, const CodeQuery& cq, tableint at, int level, BuildScratch& s) {
    const auto by_first = [](const std::pair<float, tableint>& a, const std::pair<float, tableint>& b) { return a.first < b.first; };
    const size_t ef = ef_construction_;
    const bool deletions = num_deleted_ > 0;  // (changes only under the store's exclusive lock)
    auto removed = [&](tableint id) { return deletions && isMarkedDeleted(id); };
    s.visited.reset(max_elements_);
    s.top.clear();
    s.cand.clear();
    const float d0 = code_distance(kern, cq, at);
    float bound = std::numeric_limits<float>::max();
    if (!removed(at)) s.top.emplace_back(d0, at), bound = d0;
    s.cand.emplace_back(-d0, at);
    s.visited.set(at);
    while (!s.cand.empty()) {
      const auto c = s.cand.front();
      if (-c.first > bound && s.top.size() == ef) break;
      std::pop_heap(s.cand.begin(), s.cand.end(), by_first);
      s.cand.pop_back();
      if (level == 0 && !s.cand.empty()) {  // the next list to copy, while this one is scored
        const char* p = reinterpret_cast<const char*>(get_linklist0(s.cand.front().second));
        for (size_t b = 0; b < size_links_level0_; b += 64) __builtin_prefetch(p + b, 1, 3);
      }
      copy_links(c.second, level, s.links);
      size_t m = 0;
      for (const tableint n : s.links)
        if (!s.visited.test(n)) s.visited.set(n), s.links[m++] = n;
      for (size_t j = 0; j < m && j < 4; ++j) prefetch_code(s.links[j]);
      for (size_t j = 0; j < m; ++j) {
        if (j + 4 < m) prefetch_code(s.links[j + 4]);
        const tableint n = s.links[j];
        const float d = code_distance(kern, cq, n);
        if (s.top.size() < ef || d < bound) {
          s.cand.emplace_back(-d, n);
          std::push_heap(s.cand.begin(), s.cand.end(), by_first);
          if (!removed(n)) {
            s.top.emplace_back(d, n);
            std::push_heap(s.top.begin(), s.top.end(), by_first);
            if (s.top.size() > ef) std::pop_heap(s.top.begin(), s.top.end(), by_first), s.top.pop_back();
            bound = s.top.front().first;
          }
        }
      }
    }
  }
  void prefetch_vector(tableint id) const {
    const char* p = reinterpret_cast<const char*>(vector(id));
    const size_t bytes = dim_ * sizeof(float);
    for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 3);
    __builtin_prefetch(p + bytes - 1, 0, 3);
  }
  void prefetch_code(tableint id) const {
    const char* p = reinterpret_cast<const char*>(code(id));
    for (size_t b = 0; b < code_stride; b += 64) __builtin_prefetch(p + b, 0, 3);
    __builtin_prefetch(p + code_stride - 1, 0, 3);
  }

  // hnswlib's neighbour heuristic (getNeighborsByHeuristic2) on `sorted` (exact distance to
  // the element, id; nearest first): fewer than `cap` are all kept; else, nearest first, a
  // candidate is kept unless a kept one is nearer to it than the element is, until `cap` are.
  void select(const std::vector<std::pair<float, tableint>>& sorted, size_t cap, std::vector<std::pair<float, tableint>>& kept) const {
    kept.clear();
    if (sorted.size() < cap) {
      kept = sorted;
      return;
    }
    for (const auto& c : sorted) {
      if (kept.size() >= cap) break;
      const float* cx = vector(c.second);
      bool good = true;
      for (const auto& k : kept)
        if (distance(vector(k.second), cx) < c.first) {
          good = false;
          break;
        }
      if (good) kept.push_back(c);
    }
  }

  // A full level-0 list is re-pruned to 3/4 of its room, not to the room (hnswlib): the next
  // insertions that link to the element append (no distance computed) until it is full
  // again. Re-pruning (the heuristic's pairwise distances over 2M + 1 candidates) was most of
  // the float distances of the build (7,000 an insertion at efC 64); at 3/4 the build is 1.8x
  // faster at M=32, efC 64 on the diffuse set at the same recall for the same ef, and 0.005
  // below on well separated data (RESULTS "The nightly cycle"). Upper levels keep hnswlib's rule.
  size_t prune_to(size_t cap, int level) const {
    return level == 0 ? std::max(M_, cap * 3 / 4) : cap;
  }
  // The second half of hnswlib's mutuallyConnectNewElement (new elements only): each of
  // `picked` (the element's neighbours at `level`) linked back to `cur` (appended, or its full
  // list re-pruned by the heuristic), each list saved in `log` first.
  void link_back(tableint cur, const std::vector<std::pair<float, tableint>>& picked, int level, UndoLog* log, BuildScratch& s) {
    const size_t cap = level ? maxM_ : maxM0_;
    for (const auto& p : picked) {
      const tableint n = p.second;
      const ListLock lock(*this, n);
      linklistsizeint* ll = get_linklist_at_level(n, level);
      const size_t count = getListCount(ll);
      if (log) log->save(n, level, ll, count);
      auto* links = reinterpret_cast<tableint*>(ll + 1);
      if (count < cap) {
        links[count] = cur;
        setListCount(ll, static_cast<unsigned short>(count + 1));
        if (level == 0) add_in_link(cur);
        continue;
      }
      const float* n_x = vector(n);
      s.prune_sorted.clear();
      for (size_t j = 0; j < count; ++j) prefetch_vector(links[j]);
      s.prune_sorted.emplace_back(p.first, cur);  // |cur - n|: the distance `picked` holds
      for (size_t j = 0; j < count; ++j) s.prune_sorted.emplace_back(exact(n_x, links[j]), links[j]);
      std::sort(s.prune_sorted.begin(), s.prune_sorted.end());
      select(s.prune_sorted, prune_to(cap, level), s.prune_kept);
      for (size_t j = 0; j < s.prune_kept.size(); ++j) links[j] = s.prune_kept[j].second;
      setListCount(ll, static_cast<unsigned short>(s.prune_kept.size()));
      if (level == 0 && !in_links.empty()) {
        // The kept are a subsequence of the sorted candidates: the others were dropped.
        size_t k = 0;
        for (const auto& c : s.prune_sorted) {
          const bool kept = k < s.prune_kept.size() && s.prune_kept[k].second == c.second;
          k += kept;
          if (c.second == cur) {
            if (kept) add_in_link(cur);
          } else if (!kept && drop_in_link(c.second) && log) {
            log->orphaned(c.second);
          }
        }
      }
    }
  }

  size_t dim_;
  hnswlib::DISTFUNC<float> vector_distance_;  // the Space's: on two float vectors
  void* vector_param_;
};

/// Bytes of one element's code at this dimension.
inline size_t code_stride(size_t dim) { return (Graph::kCodeHead + dim + 7) / 8 * 8; }


/// The distance on two float vectors (Graph::distance): mindrec's kernels (-q.x, or squared L2).
class Space final : public hnswlib::SpaceInterface<float> {
 public:
  Space(size_t dim, Metric m);  // below
  // No data in hnswlib's element: the vectors are the graph's table (Graph).
  size_t get_data_size() override { return 0; }
  hnswlib::DISTFUNC<float> get_dist_func() override { return f_; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  size_t dim_;
  hnswlib::DISTFUNC<float> f_;
};

/// hnsw[:M=32,ef_construction=200]: the graph's build parameters.
struct Params {
  size_t M = 32;
  size_t ef_construction = 200;
  bool codes_walk = true;  // walk=0: hnswlib's own search on the floats (a benchmark baseline)
  bool relink = true;      // relink=0: elements the insertion leaves unreachable stay so (a benchmark baseline)
};


/// Codes for the elements from `from` on (all of g's elements have codes when it returns).
/// Allocates unless `codes` and `code_norms` already have the capacity (then it cannot throw).
inline void encode(Graph& g, size_t from) {
  const size_t n = g.cur_element_count;
  g.size_codes(n);
  const int64_t count = int64_t(n) - int64_t(from);
  if (count < 16384) {
    for (size_t i = from; i < n; ++i) g.encode_one(tableint(i));
    return;
  }
  detail::parallel_for(count, 0, 1024, [&](int64_t i) { g.encode_one(tableint(int64_t(from) + i)); });  // cannot throw
}

namespace detail_ {
inline float ip_distance(const void* a, const void* b, const void* dim) {
  return -detail::simd().dot(static_cast<const float*>(a), static_cast<const float*>(b), *static_cast<const size_t*>(dim));
}
inline float l2_distance(const void* a, const void* b, const void* dim) {
  return detail::simd().l2sq(static_cast<const float*>(a), static_cast<const float*>(b), *static_cast<const size_t*>(dim));
}
}  // namespace detail_

inline Space::Space(size_t dim, Metric m)
    : dim_(dim), f_(m == Metric::inner_product ? detail_::ip_distance : detail_::l2_distance) {}


/// Params of a backend string "hnsw" or "hnsw:M=..,ef_construction=.." (search parameters
/// already split off); InvalidArgument naming the backend otherwise.
inline Params parse_params(const std::string& base) {
  Params p;
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
      throw InvalidArgument("vector store '" + base + "': expected hnsw:M=<int>,ef_construction=<int>,walk=0|1,relink=0|1, got '" + kv + "'");
    if (k == "M" && x >= 2 && x <= 512) p.M = size_t(x);
    else if (k == "ef_construction" && x >= 1 && x <= 100000) p.ef_construction = size_t(x);
    else if (k == "walk" && (x == 0 || x == 1)) p.codes_walk = x == 1;
    else if (k == "relink" && (x == 0 || x == 1)) p.relink = x == 1;
    else
      throw InvalidArgument("vector store '" + base + "': unknown or out-of-range '" + kv +
                            "' (M in [2, 512], ef_construction in [1, 100000], walk 0 or 1, relink 0 or 1)");
  }
  return p;
}

}  // namespace mindrec::store::hnsw
