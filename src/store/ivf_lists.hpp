// Private: mindrec's own writes to a Faiss IVF index's inverted lists, prepared aside so that
// searches never wait for them (the faiss: backend, faiss_store.cpp). Faiss's add_with_ids and
// remove_ids change the lists in place (searches would have to wait for the coarse
// assignment, the encoding and the list surgery of a whole batch), and Faiss 1.7.3 cannot
// remove from fast-scan lists at all ("not implemented"). Here a write is
//   1. prepared: the new contents of every list it touches, built from the old ones (kept
//      entries in their order, then the new codes), while searches read the old lists;
//   2. entered in the id -> (list, offset) direct map for ids not stored before (only writes
//      read that map; a failure here takes the entries out again: nothing changed);
//   3. applied: the new lists swapped in under the exclusive lock (vectors and aligned tables
//      exchanged: nothing allocates or throws), the index's entry count updated;
//   4. finished: the direct map pointed at the new places, removed ids dropped (no allocation).
// Lists: ArrayInvertedLists (IVF-Flat, -SQ, -PQ) and the BlockInvertedLists of fast-scan PQ in
// blocks of 32 (codes packed by Faiss's own pq4_pack_codes, the layout the 4-bit scan reads).
#pragma once

#include <faiss/IndexIVF.h>

#include <cstdint>
#include <string>
#include <vector>


namespace mindrec::store::ivf {

/// "" if mindrec can edit this index's lists, else why not (for an error message).
std::string why_not_editable(const faiss::IndexIVF& ivf);

class ListEdit {
 public:
  /// Prepares the lists after removing the stored ids among `gone` (others ignored) and
  /// appending n entries: code i (ivf.code_size bytes, as IndexIVF::encode_vectors writes it,
  /// unpacked for fast-scan) to list list_nos[i] under id ids[i]. An id may be both removed
  /// and appended (a replacement). Reads the index; changes nothing.
  ListEdit(const faiss::IndexIVF& ivf, int64_t n_gone, const int64_t* gone, int64_t n, const int64_t* list_nos,
           const uint8_t* codes, const int64_t* ids);
  ListEdit(ListEdit&&) noexcept;
  ~ListEdit();

  /// Stored ids among `gone` (what apply removes).
  int64_t removed() const { return int64_t(removed_.size()); }
  /// Step 2: enters the appended ids that are not stored in the direct map (allocates; on a
  /// failure every entry made is taken out again and the error rethrown).
  void enter_new_ids(faiss::IndexIVF& ivf);
  /// Undoes enter_new_ids, for an edit abandoned before apply.
  void forget_new_ids(faiss::IndexIVF& ivf) noexcept;
  /// Step 3, under the exclusive lock: the new lists in, the index's ntotal updated (the
  /// caller updates any wrapper's). The old lists are kept here until destruction.
  void apply(faiss::IndexIVF& ivf) noexcept;
  /// Step 4, after apply: the direct map follows the new lists.
  void finish(faiss::IndexIVF& ivf) noexcept;

 private:
  struct List;
  std::vector<List> lists_;
  std::vector<int64_t> removed_;  // stored ids removed and not appended again
  std::vector<int64_t> fresh_;    // appended ids not stored before
  int64_t delta_ = 0;             // entries after - before
};

}  // namespace mindrec::store::ivf
