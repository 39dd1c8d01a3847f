// Private: one query's search of an hnsw: graph (Graph, hnsw_graph.hpp) on its 8-bit codes.
#pragma once

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "mindrec/vector_store.hpp"
#include "store/hnsw_graph.hpp"
#include "store/visited_set.hpp"

namespace mindrec::store::hnsw {

// One query's search of a graph: hnswlib's searchKnn (greedy descent through the upper levels,
// then a beam of max(ef, k) on level 0; removed elements route but are not returned) written
// here so that
//  - the walk computes its distances on the elements' 8-bit codes (Graph::codes: 72 bytes at
//    dim 64, the Books catalogue's 26 MB) instead of their float vectors (256 bytes, four
//    cache lines, in the graph's table: 94 MB); the beam's ef elements
//    are then scored exactly on their float vectors and the best k kept;
//  - neighbours' codes are prefetched kAhead ahead (hnswlib: the first line of the next
//    neighbour's vector), and the links of the next element to expand when it is queued;
//  - each expansion is two steps, gather() (pop the element, collect its unvisited
//    neighbours, prefetch their first codes) and score() (their distances, the beam updated).
//    Running the gathers of a user's 4 interests before their scores, so that one query's
//    memory waits overlap another's work, was measured no faster and is not done;
//  - the visited set is a bit per element (VisitedSet: 46 KB for the Books catalogue) instead
//    of hnswlib's 16-bit tags (736 KB, most of the 1 MB L2), and only the words a query set
//    are cleared after it: a query costs what it visits, not the graph's size (2.5 MB of
//    bits at 20M elements).
// Measured in RESULTS.md (sixth session).
class Walk {
 public:
  using tableint = hnswlib::tableint;
  static constexpr size_t kAhead = 8;  // 8 to 12 measured best

  // A thread's buffers, reused from query to query (no allocation per search once grown).
  struct Scratch {
    std::vector<std::pair<float, tableint>> top, cand;
    std::vector<tableint> fresh;
    VisitedSet visited;
  };

  Walk(const Graph& g, bool ip, size_t dim, Scratch& s)
      : g_(g), kern_(detail::simd()), ip_(ip), d_(dim), top_(s.top), cand_(s.cand), fresh_(s.fresh), visited_(s.visited) {
    top_.clear();
    cand_.clear();
    fresh_.resize(g.maxM0_);
    visited_.reset(g.cur_element_count);
  }

  // Only elements `ctx` allows query `qi` are admitted to the beam (the others still route
  // the walk, as removed ones do): call before start().
  void set_filter(const SearchContext* ctx, int64_t qi) {
    filter_ = ctx;
    qi_ = qi;
  }

  // The descent through the upper levels and the beam's first element.
  void start(const float* q, size_t ef) {
    q_ = q;
    ef_ = ef;
    cq_ = Graph::CodeQuery(q, d_, ip_);
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
    deletions_ = g_.num_deleted_ > 0 || g_.hidden_count > 0 || filter_ != nullptr;
    if (admit(cur)) push_top(cur_d, cur);
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
        if (admit(id)) {
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
  float walk(tableint id) const { return g_.code_distance(kern_, cq_, id); }
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
  // Returned if found: not removed or hidden, and allowed by the filter.
  bool admit(tableint id) const {
    if (!deletions_) return true;
    if (g_.excluded(id)) return false;
    return !filter_ || filter_->allows(qi_, int64_t(g_.getExternalLabel(id)));
  }
  bool seen(tableint id) const { return visited_.test(id); }
  void mark(tableint id) { visited_.set(id); }
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
  Graph::CodeQuery cq_;
  bool deletions_ = false;  // some elements are not admitted (removed, hidden, filtered)
  const SearchContext* filter_ = nullptr;
  int64_t qi_ = 0;
  std::vector<Pair>& top_;
  std::vector<Pair>& cand_;
  std::vector<tableint>& fresh_;
  VisitedSet& visited_;
};

}  // namespace mindrec::store::hnsw
