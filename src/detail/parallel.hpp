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

}  // namespace mindrec::detail
