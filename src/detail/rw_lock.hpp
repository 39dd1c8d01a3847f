// Internal: a shared mutex that neither side can starve. glibc's rwlock (behind
// std::shared_mutex) prefers readers, so a store under a steady stream of searches could make
// an add or remove wait indefinitely (seen in the concurrency test: a writer starved for
// minutes). Here a waiting writer stops new readers from entering; searches already running
// finish first. And when a writer leaves, the readers that waited for it go in before the next
// writer: a write applied in many short exclusive sections (an hnsw batch, chunk by chunk) lets
// the searches that queued behind each section run between them, instead of re-taking the
// lock at once and holding them off for the whole batch.
#pragma once

#include <condition_variable>
#include <mutex>

namespace mindrec::detail {

class WriterPreferringMutex {
 public:
  void lock() {
    std::unique_lock<std::mutex> l(m_);
    ++writers_waiting_;
    cv_.wait(l, [&] { return !writer_active_ && readers_ == 0 && !readers_turn_; });
    --writers_waiting_;
    writer_active_ = true;
  }
  void unlock() {
    {
      std::lock_guard<std::mutex> l(m_);
      writer_active_ = false;
      readers_turn_ = readers_waiting_ > 0;  // they go first; the next writer waits for them
    }
    cv_.notify_all();
  }
  void lock_shared() {
    std::unique_lock<std::mutex> l(m_);
    ++readers_waiting_;
    cv_.wait(l, [&] { return !writer_active_ && (writers_waiting_ == 0 || readers_turn_); });
    ++readers_;
    // Every reader that waited is in: the next writer waits for them (readers_ > 0), not
    // for the turn; the last of them to leave wakes it.
    if (--readers_waiting_ == 0) readers_turn_ = false;
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
  int readers_ = 0, readers_waiting_ = 0, writers_waiting_ = 0;
  bool writer_active_ = false;
  bool readers_turn_ = false;  // the readers that waited for the last writer go next
};

}  // namespace mindrec::detail
