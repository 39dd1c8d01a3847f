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
#include <unordered_set>
#include <utility>
#include <vector>

#include "detail/fault.hpp"
#include "mindrec/detail/huge_pages.hpp"
#include "detail/parallel.hpp"
#include "detail/simd.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::store::hnsw {

using hnswlib::linklistsizeint;
using hnswlib::tableint;

/// hnswlib's graph plus an 8-bit copy of every element's vector, which the search walks on:
/// element i's code is x ~ lo + step * c (c in 0..255, lo and step its own min and
/// (max - min) / 255), 72 bytes (two cache lines) at dim 64 where the float vector inside
/// hnswlib's element spans five. Derived data: made by encode() after every insertion and on
/// load, never stored in the file. The level-0 block (links and vectors, 516 bytes per element
/// at M=32, dim 64: 190 MB for the Books catalogue) and the codes (26 MB) are on huge pages.
struct Graph : hnswlib::HierarchicalNSW<float> {
  using hnswlib::HierarchicalNSW<float>::HierarchicalNSW;
  static constexpr size_t kCodeHead = 2 * sizeof(float);  // lo, step
  size_t code_stride = 0;          // bytes per code: lo, step, dim bytes, rounded up to 8
  std::vector<uint8_t, detail::HugePageAllocator<uint8_t>> codes;  // element i's code at i * code_stride
  std::vector<float> code_norms;   // element i: |x^|^2, the decoded vector's squared norm (L2's walk)

  const float* vector(tableint id) const {
    return reinterpret_cast<const float*>(data_level0_memory_ + size_t(id) * size_data_per_element_ + offsetData_);
  }
  const uint8_t* code(tableint id) const { return codes.data() + size_t(id) * code_stride; }

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
  };

  /// Puts back what `log` saved (cannot throw).
  void restore(const UndoLog& log) {
    for (const auto& l : log.lists) {
      linklistsizeint* ll = get_linklist_at_level(l.id, l.level);
      std::copy(l.links.begin(), l.links.end(), reinterpret_cast<tableint*>(ll + 1));
      setListCount(ll, static_cast<unsigned short>(l.links.size()));  // the count only: the removed flag stays
    }
    enterpoint_node_ = log.entry;
    maxlevel_ = log.max_level;
  }

  /// A level for a new element, drawn as hnswlib's insertion draws it, from the graph's own
  /// generator: the caller draws them one thread at a time, before inserting in parallel.
  int draw_level() { return getRandomLevel(mult_); }

  /// hnswlib 0.6.2's addPoint for a new label at a given level (the same search, heuristic,
  /// locks and links), with each neighbour's list saved in `log` (when there is one) before
  /// it is changed. Never updates an element in place. Throws std::bad_alloc (the label map,
  /// an upper level's links, the log): the element is then in the graph, its count taken,
  /// possibly linked by some neighbours (logged), and the caller removes it.
  void insert(const float* x, hnswlib::labeltype label, int level, UndoLog* log) {
    tableint cur = 0;
    {
      std::lock_guard<std::mutex> lock(cur_element_count_guard_);
      if (cur_element_count >= max_elements_) throw std::length_error("hnsw: no room for another element");
      cur = tableint(cur_element_count);
      label_lookup_[label] = cur;
      ++cur_element_count;
    }
    std::unique_lock<std::mutex> own(link_list_locks_[cur]);
    element_levels_[cur] = level;
    std::unique_lock<std::mutex> top(global);
    const int max_level = maxlevel_;
    if (level <= max_level) top.unlock();
    tableint at = enterpoint_node_;
    const tableint entry = enterpoint_node_;
    std::memset(data_level0_memory_ + size_t(cur) * size_data_per_element_ + offsetLevel0_, 0, size_data_per_element_);
    std::memcpy(getExternalLabeLp(cur), &label, sizeof label);
    std::memcpy(getDataByInternalId(cur), x, data_size_);
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
    auto dist = [&](tableint id) { return fstdistfunc_(x, getDataByInternalId(id), dist_func_param_); };
    if (level < max_level) {  // greedy descent to the element's top level
      float d = dist(at);
      for (int l = max_level; l > level; --l) {
        for (bool moved = true; moved;) {
          moved = false;
          std::lock_guard<std::mutex> lock(link_list_locks_[at]);
          const linklistsizeint* ll = get_linklist(at, l);
          const auto* links = reinterpret_cast<const tableint*>(ll + 1);
          for (size_t i = 0, n = getListCount(const_cast<linklistsizeint*>(ll)); i < n; ++i) {
            const float di = dist(links[i]);
            if (di < d) d = di, at = links[i], moved = true;
          }
        }
      }
    }
    const bool entry_removed = isMarkedDeleted(entry);
    for (int l = std::min(level, max_level); l >= 0; --l) {
      Queue found = searchBaseLayer(at, x, l);
      if (entry_removed) {
        found.emplace(dist(entry), entry);
        if (found.size() > ef_construction_) found.pop();
      }
      at = connect(cur, found, l, log);
    }
    if (level > max_level) {
      enterpoint_node_ = cur;
      maxlevel_ = level;
    }
  }

 private:
  // hnswlib's mutuallyConnectNewElement (new elements only): links `cur` at `level` to the
  // heuristic's pick of `found` and each of those back to `cur` (appended, or the full list
  // re-pruned), saving each list in `log` first. Returns the nearest pick.
  tableint connect(tableint cur, Queue& found, int level, UndoLog* log) {
    const size_t cap = level ? maxM_ : maxM0_;
    getNeighborsByHeuristic2(found, M_);
    std::vector<tableint> picked;
    picked.reserve(found.size());
    for (; !found.empty(); found.pop()) picked.push_back(found.top().second);  // farthest first
    linklistsizeint* mine = get_linklist_at_level(cur, level);
    setListCount(mine, static_cast<unsigned short>(picked.size()));
    std::copy(picked.begin(), picked.end(), reinterpret_cast<tableint*>(mine + 1));
    const float* cur_x = reinterpret_cast<const float*>(getDataByInternalId(cur));
    for (const tableint n : picked) {
      std::lock_guard<std::mutex> lock(link_list_locks_[n]);
      linklistsizeint* ll = get_linklist_at_level(n, level);
      const size_t count = getListCount(ll);
      if (log) log->save(n, level, ll, count);
      auto* links = reinterpret_cast<tableint*>(ll + 1);
      if (count < cap) {
        links[count] = cur;
        setListCount(ll, static_cast<unsigned short>(count + 1));
        continue;
      }
      const char* n_x = getDataByInternalId(n);
      Queue keep;
      keep.emplace(fstdistfunc_(cur_x, n_x, dist_func_param_), cur);
      for (size_t j = 0; j < count; ++j) keep.emplace(fstdistfunc_(getDataByInternalId(links[j]), n_x, dist_func_param_), links[j]);
      getNeighborsByHeuristic2(keep, cap);
      size_t k = 0;
      for (; !keep.empty(); keep.pop()) links[k++] = keep.top().second;
      setListCount(ll, static_cast<unsigned short>(k));
    }
    return picked.back();
  }
};

/// Bytes of one element's code at this dimension.
inline size_t code_stride(size_t dim) { return (Graph::kCodeHead + dim + 7) / 8 * 8; }


/// The distance functions hnswlib's insertion uses: mindrec's kernels (-q.x, or squared L2).
class Space final : public hnswlib::SpaceInterface<float> {
 public:
  Space(size_t dim, Metric m);  // below
  size_t get_data_size() override { return dim_ * sizeof(float); }
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
};


/// Codes for the elements from `from` on (all of g's elements have codes when it returns).
/// Allocates unless `codes` and `code_norms` already have the capacity (then it cannot throw).
inline void encode(Graph& g, size_t dim, size_t from) {
  const size_t n = g.cur_element_count;
  g.code_stride = code_stride(dim);
  if (g.codes.capacity() < n * g.code_stride || g.code_norms.capacity() < n) detail::fault_point("hnsw.encode");
  g.codes.resize(n * g.code_stride);
  g.code_norms.resize(n);
  auto one = [&](int64_t i) {
    const float* x = g.vector(tableint(i));
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
  };
  const int64_t count = int64_t(n) - int64_t(from);
  if (count < 16384) {
    for (int64_t i = int64_t(from); i < int64_t(n); ++i) one(i);
    return;
  }
  detail::parallel_for(count, 0, 1024, [&](int64_t i) { one(int64_t(from) + i); });  // cannot throw
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
      throw InvalidArgument("vector store '" + base + "': expected hnsw:M=<int>,ef_construction=<int>,walk=0|1, got '" + kv + "'");
    if (k == "M" && x >= 2 && x <= 512) p.M = size_t(x);
    else if (k == "ef_construction" && x >= 1 && x <= 100000) p.ef_construction = size_t(x);
    else if (k == "walk" && (x == 0 || x == 1)) p.codes_walk = x == 1;
    else
      throw InvalidArgument("vector store '" + base + "': unknown or out-of-range '" + kv +
                            "' (M in [2, 512], ef_construction in [1, 100000], walk 0 or 1)");
  }
  return p;
}

}  // namespace mindrec::store::hnsw
