// Internal: a shared mutex that prefers writers. glibc's rwlock (behind std::shared_mutex)
// prefers readers, so a store under a steady stream of searches could make an add or remove
// wait indefinitely (seen in the concurrency test: a writer starved for minutes). Here a
// waiting writer stops new readers from entering; searches already running finish first.
#pragma once

#include <condition_variable>
#include <mutex>

namespace mindrec::detail {

class WriterPreferringMutex {
 public:
  void lock() {
    std::unique_lock<std::mutex> l(m_);
    ++writers_waiting_;
    cv_.wait(l, [&] { return !writer_active_ && readers_ == 0; });
    --writers_waiting_;
    writer_active_ = true;
  }
  void unlock() {
    {
      std::lock_guard<std::mutex> l(m_);
      writer_active_ = false;
    }
    cv_.notify_all();
  }
  void lock_shared() {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return !writer_active_ && writers_waiting_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    bool last = false;
    {
      std::lock_guard<std::mutex> l(m_);
      last = --readers_ == 0;
    }
    if (last) cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int readers_ = 0, writers_waiting_ = 0;
  bool writer_active_ = false;
};

}  // namespace mindrec::detail
