// Private: the caller's int64 ids <-> the rows a backend stores them in, for every backend
// that keeps vectors by position (flat, cuda:flat, faiss non-IVF, faiss-gpu). A row can be
// forgotten (its id leaves the map, the row stays as a tombstone) or removed by moving the
// last row into it.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mindrec/error.hpp"

namespace mindrec::store {

class IdMap {
 public:
  /// Rows, tombstones included.
  int64_t rows() const { return static_cast<int64_t>(ids_.size()); }
  /// Ids in the map (live rows).
  int64_t live() const { return static_cast<int64_t>(row_of_.size()); }
  bool contains(int64_t id) const { return row_of_.count(id) != 0; }
  /// The row of `id`, or -1.
  int64_t find(int64_t id) const {
    const auto it = row_of_.find(id);
    return it == row_of_.end() ? -1 : it->second;
  }
  int64_t id_at(int64_t row) const { return ids_[static_cast<size_t>(row)]; }
  const std::vector<int64_t>& ids() const { return ids_; }

  /// Appends a row for `id` (not in the map).
  void append(int64_t id) {
    row_of_[id] = rows();
    ids_.push_back(id);
  }
  /// Takes `id` out of the map; its row stays as a tombstone. Returns the row, or -1.
  int64_t forget(int64_t id) {
    const auto it = row_of_.find(id);
    if (it == row_of_.end()) return -1;
    const int64_t row = it->second;
    row_of_.erase(it);
    return row;
  }
  /// Drops `row` (already forgotten) by moving the last row's id into it; returns the old
  /// index of the row that moved (== row if it was the last).
  int64_t move_last_into(int64_t row) {
    const int64_t last = rows() - 1;
    if (row != last) {
      ids_[size_t(row)] = ids_[size_t(last)];
      row_of_[ids_[size_t(row)]] = row;
    }
    ids_.pop_back();
    return last;
  }
  void clear() {
    ids_.clear();
    row_of_.clear();
  }
  /// Replaces the contents with `ids` by row; rows whose bit is set in `dead` (a bitmap of
  /// rows, may be null) are tombstones. FormatError (naming `what`) on a negative or
  /// repeated live id; nothing changes then.
  void assign(std::vector<int64_t> ids, const std::vector<uint8_t>* dead, const char* what) {
    std::unordered_map<int64_t, int64_t> row_of;
    row_of.reserve(ids.size());
    for (size_t r = 0; r < ids.size(); ++r) {
      if (dead && ((*dead)[r >> 3] >> (r & 7) & 1u)) continue;
      if (ids[r] < 0 || !row_of.emplace(ids[r], int64_t(r)).second)
        throw FormatError(std::string(what) + ": bad or repeated id " + std::to_string(ids[r]));
    }
    ids_ = std::move(ids);
    row_of_ = std::move(row_of);
  }

 private:
  std::vector<int64_t> ids_;                     // row -> id
  std::unordered_map<int64_t, int64_t> row_of_;  // live id -> row
};

}  // namespace mindrec::store
