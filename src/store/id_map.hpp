// Private: the caller's int64 ids <-> the rows a backend stores them in, for every backend
// that keeps vectors by position (flat, cuda:flat, faiss non-IVF, faiss-gpu). A row can be
// forgotten (its id leaves the map, the row stays as a tombstone) or removed by moving the
// last row into it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/huge_vector.hpp"
#include "mindrec/error.hpp"

namespace mindrec::store {

class IdMap {
 public:
  /// Rows, tombstones included.
  int64_t rows() const { return static_cast<int64_t>(ids_.size()); }
  /// Ids in the map (live rows).
  int64_t live() const { return live_; }
  bool contains(int64_t id) const { return find(id) >= 0; }
  /// The row of `id`, or -1.
  int64_t find(int64_t id) const {
    if (id >= 0 && id < static_cast<int64_t>(dense_.size())) return dense_[size_t(id)];
    const auto it = sparse_.find(id);
    return it == sparse_.end() ? -1 : it->second;
  }
  int64_t id_at(int64_t row) const { return ids_[static_cast<size_t>(row)]; }
  const std::vector<int64_t>& ids() const { return ids_; }

  /// Appends a row for `id` (not in the map).
  void append(int64_t id) {  // strong: on an allocation failure the map is unchanged
    ids_.push_back(id);
    try {
      set(id, rows() - 1);
    } catch (...) {
      ids_.pop_back();
      throw;
    }
  }
  /// Appends a row that holds no id (a tombstone); cannot throw after reserve(1).
  void append_tombstone() { ids_.push_back(-1); }
  /// Room for `n` more rows without reallocating.
  void reserve(int64_t n) { ids_.reserve(ids_.size() + size_t(n)); }
  /// Takes `id` out of the map; its row stays as a tombstone. Returns the row, or -1.
  int64_t forget(int64_t id) {
    const int64_t row = find(id);
    if (row >= 0) set(id, -1);
    return row;
  }
  /// Drops `row` (already forgotten) by moving the last row's id into it; returns the old
  /// index of the row that moved (== row if it was the last).
  int64_t move_last_into(int64_t row) {
    const int64_t last = rows() - 1;
    if (row != last) {
      ids_[size_t(row)] = ids_[size_t(last)];
      set(ids_[size_t(row)], row);
    }
    ids_.pop_back();
    return last;
  }
  void clear() {
    ids_.clear();
    dense_.clear();
    sparse_.clear();
    live_ = 0;
  }
  /// Replaces the contents with `ids` by row; rows whose bit is set in `dead` (a bitmap of
  /// rows, may be null) are tombstones. FormatError (naming `what`) on a negative or
  /// repeated live id; nothing changes then.
  void assign(std::vector<int64_t> ids, const std::vector<uint8_t>* dead, const char* what) {
    IdMap m;
    // The dense range sized once where the growth rule would end with it (the ids' largest
    // within twice their count): growing it by halves copied and faulted in about three times
    // its size (10% of a 20M-item flat load).
    int64_t top = -1, live = 0;
    for (size_t r = 0; r < ids.size(); ++r)
      if (!(dead && ((*dead)[r >> 3] >> (r & 7) & 1u))) top = std::max(top, ids[r]), ++live;
    if (top >= 0 && top <= 2 * (live + 1) + 1024) detail::assign_on_huge_pages(m.dense_, size_t(top) + 1, int64_t(-1));
    for (size_t r = 0; r < ids.size(); ++r) {
      if (dead && ((*dead)[r >> 3] >> (r & 7) & 1u)) continue;
      if (ids[r] < 0 || m.contains(ids[r]))
        throw FormatError(std::string(what) + ": bad or repeated id " + std::to_string(ids[r]));
      m.set(ids[r], int64_t(r));
    }
    m.ids_ = std::move(ids);
    *this = std::move(m);
  }

 private:
  // Live ids below dense_.size() are found by index (8 bytes per slot; item ids are usually
  // 1..N), the others through a hash map (~40 bytes each). The dense range grows while it
  // stays within twice the number of live ids.
  void set(int64_t id, int64_t row) {
    const int64_t n = static_cast<int64_t>(dense_.size());
    if (id < n) {
      live_ += (row >= 0) - (dense_[size_t(id)] >= 0);
      dense_[size_t(id)] = row;
      return;
    }
    if (row >= 0 && id <= 2 * (live_ + 1) + 1024) {
      const int64_t grown = std::max<int64_t>(id + 1, n + n / 2);
      dense_.resize(size_t(grown), -1);
      for (auto it = sparse_.begin(); it != sparse_.end();) {  // move what now fits
        if (it->first < grown) {
          dense_[size_t(it->first)] = it->second;
          it = sparse_.erase(it);
        } else {
          ++it;
        }
      }
      dense_[size_t(id)] = row;
      ++live_;
      return;
    }
    if (row >= 0) {
      live_ += sparse_.insert_or_assign(id, row).second;
    } else {
      live_ -= static_cast<int64_t>(sparse_.erase(id));
    }
  }

  std::vector<int64_t> ids_;                    // row -> id
  std::vector<int64_t> dense_;                  // id -> row (-1: none) for small ids
  std::unordered_map<int64_t, int64_t> sparse_;  // the other live ids -> row
  int64_t live_ = 0;
};

}  // namespace mindrec::store
