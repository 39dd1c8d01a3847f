// Private: the one k-selection and the one tie rule of every CPU search path (exact top-k,
// the IVF list scan, the MIPS re-ranking, the multi-interest merge): larger score first,
// then the smaller id.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace mindrec::store {

/// exact_topk (mindrec/topk.hpp) where row r may enter query q's result only if
/// accept(q, r): asked only of rows whose score could enter, so a filter costs what passes
/// the bar (padding past the accepted rows: -1 / -inf).
void exact_topk_filtered(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k,
                         int64_t* ids, float* scores, int threads, const float* bias,
                         const std::function<bool(int64_t, int64_t)>& accept);

/// exact_topk's result through Eigen's products (a GEMM per block of 64 queries): faster than
/// exact_topk's batch-invariant row kernel for many queries, but a score's last bit depends
/// on how many queries share its block. For the evaluation's exact retrieval, where the
/// batches are the evaluation's own; the flat store and exact_topk stay batch invariant.
void exact_topk_gemm(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k, int64_t* ids,
                     float* scores, int threads);

/// True if (sa, ia) ranks before (sb, ib).
inline bool ranks_before(float sa, int64_t ia, float sb, int64_t ib) {
  return sa > sb || (sa == sb && ia < ib);
}

/// Keeps the k best (score, id) pairs pushed into it: a heap of size <= k, worst on top.
class TopK {
 public:
  explicit TopK(int k = 1) { reset(k); }
  void reset(int k) {
    k_ = k;
    heap_.clear();
    heap_.reserve(static_cast<size_t>(k) + 1);
  }
  void push(float s, int64_t id) {
    if (static_cast<int>(heap_.size()) < k_) {
      heap_.emplace_back(s, id);
      std::push_heap(heap_.begin(), heap_.end(), WorseFirst{});
    } else if (ranks_before(s, id, heap_.front().first, heap_.front().second)) {
      replace_worst(s, id);
    }
  }
  int size() const { return static_cast<int>(heap_.size()); }
  bool full() const { return static_cast<int>(heap_.size()) >= k_; }
  /// The worst kept score (the bar a new pair must reach once full()); needs size() > 0.
  float worst() const { return heap_.front().first; }
  /// Calls fn(score, id) for each kept pair, in no particular order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [s, id] : heap_) fn(s, id);
  }
  /// Writes the kept pairs best first into ids/scores [k] (score negated with `negate`, for
  /// distances ranked as -distance); the tail past size() gets id -1 and score `pad`.
  /// Empties the selection.
  void write(int64_t* ids, float* scores, float pad, bool negate = false) {
    std::sort_heap(heap_.begin(), heap_.end(), WorseFirst{});  // best first
    for (int j = 0; j < k_; ++j) {
      const bool have = j < static_cast<int>(heap_.size());
      ids[j] = have ? heap_[size_t(j)].second : -1;
      scores[j] = have ? (negate ? -heap_[size_t(j)].first : heap_[size_t(j)].first) : pad;
    }
    heap_.clear();
  }

 private:
  struct WorseFirst {  // heap order: the worst kept pair on top (a functor, so it inlines)
    bool operator()(const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) const {
      return ranks_before(a.first, a.second, b.first, b.second);
    }
  };
  // The worst kept pair gives way to (s, id), which sinks to its place: one pass down the
  // heap where pop_heap + push_heap made two.
  void replace_worst(float s, int64_t id) {
    const size_t n = heap_.size();
    size_t i = 0;
    for (;;) {
      size_t c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && ranks_before(heap_[c].first, heap_[c].second, heap_[c + 1].first, heap_[c + 1].second)) ++c;
      if (!ranks_before(s, id, heap_[c].first, heap_[c].second)) break;  // the worse child stays below
      heap_[i] = heap_[c];
      i = c;
    }
    heap_[i] = {s, id};
  }
  int k_ = 1;
  std::vector<std::pair<float, int64_t>> heap_;
};

}  // namespace mindrec::store
