// Private to mindrec-serve: at most n requests compute at once (a counting semaphore), each
// on the thread that calls it alone: that thread's OpenMP default becomes 1, so the stores' and
// the model's parallel regions run on it only. With n = default_threads() the server never runs
// more compute threads than the process has cores, however many HTTP workers it has.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include <omp.h>

namespace mindrec::serve {

class ComputeSlots {
 public:
  explicit ComputeSlots(int n) : free_(n) {}
  /// Runs fn() in a slot, on this thread alone.
  template <class Fn>
  auto run(Fn&& fn) {
    struct Hold {
      ComputeSlots& s;
      explicit Hold(ComputeSlots& x) : s(x) { s.acquire(); }
      ~Hold() { s.release(); }
    } hold(*this);
    omp_set_num_threads(1);
    return fn();
  }
  /// The most requests that have computed at the same time so far.
  int peak() const {
    std::lock_guard<std::mutex> lock(m_);
    return peak_;
  }

 private:
  void acquire() {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
    peak_ = std::max(peak_, ++busy_);
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m_);
      ++free_;
      --busy_;
    }
    cv_.notify_one();
  }
  mutable std::mutex m_;
  std::condition_variable cv_;
  int free_, busy_ = 0, peak_ = 0;
};

}  // namespace mindrec::serve
