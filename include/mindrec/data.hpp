// Click logs and evaluation users in PaddleRec's Amazon Books formats (mind-spec.md,
// "Data formats"), stored compactly (CSR: one offsets array, one items array).
//
// Conventions: item ids are int64, 0 is the padding id and never a real item.
// Readers throw FormatError naming file, line and the offending token; IoError if a file
// cannot be read. Objects are immutable after reading and safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mindrec/export.hpp"

namespace mindrec {

/// Per-user item sequences sorted by the `order` column; users in ascending id order.
struct MINDREC_API ClickLog {
  std::vector<int64_t> user_ids;  ///< [U]
  std::vector<int64_t> offsets;   ///< [U+1]; user u's items are items[offsets[u], offsets[u+1])
  std::vector<int64_t> items;     ///< [total clicks]

  int64_t num_users() const { return static_cast<int64_t>(user_ids.size()); }
  int64_t num_clicks() const { return static_cast<int64_t>(items.size()); }
  int64_t length(int64_t u) const { return offsets[u + 1] - offsets[u]; }
  const int64_t* begin(int64_t u) const { return items.data() + offsets[u]; }
  /// Number of distinct item ids.
  int64_t num_distinct_items() const;
};

/// Validation/test users: history (first 80% of the sequence) and ground truth.
struct MINDREC_API EvalSet {
  std::vector<int64_t> user_ids;      ///< [U], in file order
  std::vector<int64_t> target_items;  ///< [U] (the `target_item` slot; 0 in PaddleRec's files)
  std::vector<int64_t> hist_offsets;  ///< [U+1]
  std::vector<int64_t> hist_items;
  std::vector<int64_t> eval_offsets;  ///< [U+1]
  std::vector<int64_t> eval_items;

  int64_t num_users() const { return static_cast<int64_t>(user_ids.size()); }
  int64_t hist_length(int64_t u) const { return hist_offsets[u + 1] - hist_offsets[u]; }
  int64_t eval_length(int64_t u) const { return eval_offsets[u + 1] - eval_offsets[u]; }
  const int64_t* hist(int64_t u) const { return hist_items.data() + hist_offsets[u]; }
  const int64_t* eval(int64_t u) const { return eval_items.data() + eval_offsets[u]; }
};

/// Reads `user_id,item_id,order` lines. `path` is a file or a folder whose regular files are
/// read in name order (PaddleRec's train_data_dir). `item_count` > 0 also refuses item ids
/// >= item_count. Refused: non-integers, missing/extra fields, negative ids, item id 0,
/// duplicate `order` for one user. Blank lines and a missing final newline are fine.
MINDREC_API ClickLog read_train_data(const std::string& path, int64_t item_count = 0);

/// Writes `user_id,item_id,order` lines (order = position) atomically (temp file + rename).
MINDREC_API void write_train_data(const std::string& file, const ClickLog& log);

/// Reads `user_id:U target_item:T hist_item:i ... eval_item:j ...` lines (file or folder).
/// Refused: unknown slots, a missing or repeated user_id, malformed values, negative ids,
/// item id 0 in hist/eval, ids >= item_count (when item_count > 0).
MINDREC_API EvalSet read_eval_data(const std::string& path, int64_t item_count = 0);

/// Writes an EvalSet in the same format, atomically.
MINDREC_API void write_eval_data(const std::string& file, const EvalSet& set);

/// Packs the last `maxlen` items of `count` sequences into a right-padded [count, maxlen]
/// row-major id matrix and their lengths min(len, maxlen) (the model's input layout).
/// Sequence i is items[offsets[first + i], offsets[first + i + 1]).
MINDREC_API void pack_histories(const std::vector<int64_t>& offsets, const std::vector<int64_t>& items,
                    int64_t first, int64_t count, int maxlen, int64_t* out_ids,
                    int32_t* out_lengths);

/// The same for histories given as lists of item ids, oldest first: [histories.size(), maxlen].
MINDREC_API void pack_histories(const std::vector<std::vector<int64_t>>& histories, int maxlen, int64_t* out_ids,
                                int32_t* out_lengths);

}  // namespace mindrec
