// Private: "run the iterations on a team, keep the first exception, rethrow it once all are
// done", the one way mindrec's parallel loops that can throw are written (an exception must
// not leave an OpenMP region). The team follows the thread policy (mindrec::default_threads:
// OMP_NUM_THREADS, the calling thread's omp_set_num_threads, the affinity mask, the cgroup
// quota) unless the caller names a count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

#include <omp.h>

#include "detail/vector_math.hpp"
#include "mindrec/config.hpp"

namespace mindrec::detail {

/// For the lifetime of the object, this thread's OpenMP default team is the thread policy's
/// (default_threads(): the cgroup quota included), so a dependency's own parallel regions
/// (Faiss's, which ask omp_get_max_threads()) follow it too; the previous value is restored.
class PolicyThreads {
 public:
  PolicyThreads() : previous_(omp_get_max_threads()) { omp_set_num_threads(default_threads()); }
  ~PolicyThreads() { omp_set_num_threads(previous_); }
  PolicyThreads(const PolicyThreads&) = delete;
  PolicyThreads& operator=(const PolicyThreads&) = delete;

 private:
  int previous_;
};

/// Calls fn(i) for i in [0, n) on min(threads, n) threads (threads <= 0: default_threads()),
/// dynamically scheduled `chunk` iterations at a time; after every iteration has run or been
/// skipped (none starts once one has thrown), rethrows the first exception.
template <class Fn>
void parallel_for(int64_t n, int threads, int64_t chunk, Fn&& fn) {
  if (n <= 0) return;
  const int team = int(std::min<int64_t>(n, resolve_threads(threads)));
  if (team <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::exception_ptr failed;
  std::mutex m;
  std::atomic<bool> stop{false};
#pragma omp parallel for schedule(dynamic, chunk) num_threads(team)
  for (int64_t i = 0; i < n; ++i) {
    if (stop.load(std::memory_order_relaxed)) continue;
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> l(m);
      if (!failed) failed = std::current_exception();
      stop.store(true, std::memory_order_relaxed);
    }
  }
  if (failed) std::rethrow_exception(failed);
}

/// The smallest i in [0, n) for which bad(i) is true, or n: bad is called on all cores
/// (`chunk` iterations at a time) for every i, so the first failing element of a large array is
/// named whichever thread finds it. bad(i) may also do per-element work (it runs once per i).
template <class Pred>
int64_t first_index_where(int64_t n, int64_t chunk, Pred&& bad) {
  std::atomic<int64_t> first{n};
  parallel_for(n, n >= 4 * chunk ? 0 : 1, chunk, [&](int64_t i) {
    if (!bad(i)) return;
    for (int64_t seen = first.load(); i < seen && !first.compare_exchange_weak(seen, i);) {
    }
  });
  return first.load();
}

/// The first of `rows` d-vectors at `v` holding a NaN or an Inf (checked on all cores), or rows.
inline int64_t first_non_finite_row(const float* v, int64_t rows, int64_t d) {
  return first_index_where(rows, 16384, [&](int64_t r) { return !all_finite(v + r * d, d); });
}

}  // namespace mindrec::detail
