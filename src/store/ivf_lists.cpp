// mindrec's own writes to Faiss IVF lists, prepared aside (see ivf_lists.hpp).
#include "store/ivf_lists.hpp"

#include <faiss/IndexIVFFastScan.h>
#include <faiss/impl/pq4_fast_scan.h>
#include <faiss/invlists/BlockInvertedLists.h>
#include <faiss/invlists/DirectMap.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/utils/AlignedTable.h>

#include <algorithm>
#include <map>
#include <unordered_set>
#include <utility>

#include "detail/fault.hpp"
#include "mindrec/error.hpp"

namespace mindrec::store::ivf {

using idx_t = faiss::Index::idx_t;

namespace {

const faiss::IndexIVFFastScan* fast_scan(const faiss::IndexIVF& ivf) {
  return dynamic_cast<const faiss::IndexIVFFastScan*>(&ivf);
}

// Vector `offset`'s 4-bit codes in a fast-scan list's blocks, as the flat code encode_vectors
// writes (sub-quantizer m in byte m / 2, low nibble for even m).
void unpack_pq4(const uint8_t* blocks, size_t M, size_t M2, size_t offset, uint8_t* flat) {
  std::fill(flat, flat + (M + 1) / 2, uint8_t(0));
  for (size_t m = 0; m < M; ++m) {
    const uint8_t c = faiss::pq4_get_packed_element(blocks, 32, M2, offset, m);
    flat[m / 2] = uint8_t(flat[m / 2] | (c << ((m & 1) * 4)));
  }
}

}  // namespace

std::string why_not_editable(const faiss::IndexIVF& ivf) {
  if (ivf.direct_map.type != faiss::DirectMap::Hashtable) return "the index has no id hashtable";
  if (const auto* fs = fast_scan(ivf)) {
    const auto* bl = dynamic_cast<const faiss::BlockInvertedLists*>(ivf.invlists);
    if (!bl || fs->bbs != 32 || bl->n_per_block != 32 || fs->nbits != 4 || bl->block_size != 16 * fs->M2)
      return "fast-scan lists in blocks of " + std::to_string(fs->bbs) + " (mindrec edits blocks of 32 with 4-bit codes)";
    return "";
  }
  if (!dynamic_cast<const faiss::ArrayInvertedLists*>(ivf.invlists)) return "its inverted lists are not in memory arrays";
  return "";
}

struct ListEdit::List {
  size_t list = 0;
  std::vector<idx_t> ids;
  std::vector<uint8_t> codes;           // ArrayInvertedLists
  faiss::AlignedTable<uint8_t> blocks;  // BlockInvertedLists (fast-scan)
};

ListEdit::ListEdit(ListEdit&&) noexcept = default;
ListEdit::~ListEdit() = default;

ListEdit::ListEdit(const faiss::IndexIVF& ivf, int64_t n_gone, const int64_t* gone, int64_t n,
                   const int64_t* list_nos, const uint8_t* codes, const int64_t* ids) {
  const auto& where = ivf.direct_map.hashtable;
  const size_t cs = ivf.code_size;
  struct Work {
    std::vector<size_t> drop;  // offsets in the old list
    std::vector<int64_t> add;  // indices into the batch
  };
  std::map<size_t, Work> work;
  std::unordered_set<int64_t> appended(ids, ids + n);
  std::unordered_set<int64_t> seen;
  for (int64_t i = 0; i < n_gone; ++i) {
    const auto it = where.find(gone[i]);
    if (it == where.end() || !seen.insert(gone[i]).second) continue;
    work[faiss::lo_listno(uint64_t(it->second))].drop.push_back(faiss::lo_offset(uint64_t(it->second)));
    --delta_;
    if (!appended.count(gone[i])) removed_.push_back(gone[i]);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (list_nos[i] < 0 || size_t(list_nos[i]) >= ivf.nlist) throw Error("ivf::ListEdit: list " + std::to_string(list_nos[i]) + " out of range");
    work[size_t(list_nos[i])].add.push_back(i);
    ++delta_;
    if (!where.count(ids[i])) fresh_.push_back(ids[i]);
  }
  const auto* fs = fast_scan(ivf);
  const auto* arrays = dynamic_cast<const faiss::ArrayInvertedLists*>(ivf.invlists);
  const auto* blocks = dynamic_cast<const faiss::BlockInvertedLists*>(ivf.invlists);
  lists_.reserve(work.size());
  std::vector<uint8_t> flat;
  for (auto& [l, w] : work) {
    std::sort(w.drop.begin(), w.drop.end());
    const size_t old_n = ivf.invlists->list_size(l);
    const idx_t* old_ids = ivf.invlists->get_ids(l);
    lists_.emplace_back();
    List& out = lists_.back();
    out.list = l;
    const size_t keep = old_n - w.drop.size(), total = keep + w.add.size();
    out.ids.reserve(total);
    if (fs) flat.assign(total * cs, 0);
    else out.codes.reserve(total * cs);
    const uint8_t* old_codes = fs ? blocks->codes[l].get() : arrays->codes[l].data();
    for (size_t o = 0, next = 0; o < old_n; ++o) {
      if (next < w.drop.size() && w.drop[next] == o) {
        ++next;
        continue;
      }
      if (fs) unpack_pq4(old_codes, fs->M, fs->M2, o, flat.data() + out.ids.size() * cs);
      else out.codes.insert(out.codes.end(), old_codes + o * cs, old_codes + (o + 1) * cs);
      out.ids.push_back(old_ids[o]);
    }
    for (const int64_t i : w.add) {
      if (fs) std::copy(codes + size_t(i) * cs, codes + size_t(i + 1) * cs, flat.data() + out.ids.size() * cs);
      else out.codes.insert(out.codes.end(), codes + size_t(i) * cs, codes + size_t(i + 1) * cs);
      out.ids.push_back(ids[i]);
    }
    if (fs) {  // packed by Faiss's own packer, the tail of the last block zero
      const size_t padded = (total + 31) / 32 * 32;
      out.blocks.resize(padded / 32 * blocks->block_size);
      std::fill(out.blocks.get(), out.blocks.get() + out.blocks.size(), uint8_t(0));
      if (total) faiss::pq4_pack_codes(flat.data(), total, fs->M, padded, 32, fs->M2, out.blocks.get());
    }
  }
  detail::fault_point("faiss.ivf.lists");
}

void ListEdit::enter_new_ids(faiss::IndexIVF& ivf) {
  auto& where = ivf.direct_map.hashtable;
  size_t done = 0;
  try {
    for (; done < fresh_.size(); ++done) {
      detail::fault_point("faiss.ivf.map");
      where.emplace(fresh_[done], idx_t(faiss::lo_build(0, 0)));  // the place is set by finish()
    }
  } catch (...) {
    while (done > 0) where.erase(fresh_[--done]);
    throw;
  }
}

void ListEdit::forget_new_ids(faiss::IndexIVF& ivf) noexcept {
  for (const int64_t id : fresh_) ivf.direct_map.hashtable.erase(id);
}

void ListEdit::apply(faiss::IndexIVF& ivf) noexcept {
  if (auto* arrays = dynamic_cast<faiss::ArrayInvertedLists*>(ivf.invlists)) {
    for (List& l : lists_) {
      std::swap(arrays->ids[l.list], l.ids);
      std::swap(arrays->codes[l.list], l.codes);
    }
  } else {
    auto* blocks = static_cast<faiss::BlockInvertedLists*>(ivf.invlists);
    for (List& l : lists_) {
      auto& codes = blocks->codes[l.list];  // AlignedTable has no move: swap its fields
      std::swap(codes.tab.ptr, l.blocks.tab.ptr);
      std::swap(codes.tab.numel, l.blocks.tab.numel);
      std::swap(codes.numel, l.blocks.numel);
      std::swap(blocks->ids[l.list], l.ids);
    }
  }
  ivf.ntotal += delta_;
}

void ListEdit::finish(faiss::IndexIVF& ivf) noexcept {
  auto& where = ivf.direct_map.hashtable;
  for (const int64_t id : removed_) where.erase(id);
  for (const List& l : lists_) {
    const size_t n = ivf.invlists->list_size(l.list);
    const idx_t* ids = ivf.invlists->get_ids(l.list);
    for (size_t w = 0; w < n; ++w) {
      const auto it = where.find(ids[w]);
      if (it != where.end()) it->second = idx_t(faiss::lo_build(l.list, w));
    }
  }
}

}  // namespace mindrec::store::ivf
