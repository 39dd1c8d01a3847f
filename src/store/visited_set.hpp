// Private: the visited set of a graph search (hnsw_walk.hpp), apart so that tests reach it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mindrec::store::hnsw {

/// A set of element ids (a bit each) that forgets, at reset(), only the words the last use set:
/// reset costs what the previous query visited, not the number of elements, and the bits
/// grow (never shrink) with the largest graph seen.
class VisitedSet {
 public:
  /// Empty, with room for ids below `n`.
  void reset(size_t n) {
    for (const uint32_t w : touched_) bits_[w] = 0;
    touched_.clear();
    const size_t words = (n + 63) / 64;
    if (bits_.size() < words) bits_.resize(words, 0);
  }
  bool test(uint32_t id) const { return (bits_[id >> 6] >> (id & 63)) & 1; }
  void set(uint32_t id) {
    uint64_t& w = bits_[id >> 6];
    if (w == 0) touched_.push_back(uint32_t(id >> 6));
    w |= uint64_t(1) << (id & 63);
  }
  /// Words holding a set bit (for tests: what the next reset clears).
  size_t touched_words() const { return touched_.size(); }
  /// Words allocated.
  size_t words() const { return bits_.size(); }

 private:
  std::vector<uint64_t> bits_;
  std::vector<uint32_t> touched_;  // the words set since the last reset
};

}  // namespace mindrec::store::hnsw
