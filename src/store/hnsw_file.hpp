// Private: the hnsw: store's payload in the store file (store_io.hpp), in mindrec's own
// layout, streamed from and into the graph's own memory:
//   u64 M, ef_construction, ef, elements, layout (1); i64 max level, entry point;
//   the level-0 block (per element its links and label, as the graph holds them); the
//   vectors (the graph's table); per element a u32 byte count and its upper-level links.
// Files before store format 6 have no layout value (a head of 4) and the vectors inside the
// level-0 block (links, vector, label per element: hnswlib's element with its data), read
// through a chunk buffer and split.
// The reader checks every size against the bytes there are before allocating, and every
// link, level, id and vector before the graph is used: a damaged or crafted file is refused
// (FormatError), never followed.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "detail/parallel.hpp"
#include "detail/vector_math.hpp"
#include "store/hnsw_graph.hpp"
#include "mindrec/error.hpp"
#include "store/store_io.hpp"

namespace mindrec::store::hnsw {

/// The fifth value of the head: the level-0 records (links, label) and the vectors apart.
inline constexpr uint64_t kVectorsApart = 1;

struct GraphFile {
  std::unique_ptr<Graph> graph;  ///< null for an empty store
  size_t ef = 0;
};


/// Writes `graph` (null: an empty store of these parameters) and the search's ef.
inline void write_graph(StoreWriter& out, const Graph* graph, const Params& p, size_t ef) {
  if (!graph) {  // empty: no graph was ever made
    const uint64_t head[5] = {p.M, p.ef_construction, ef, 0, kVectorsApart};
    const int64_t where[2] = {-1, -1};
    put(out, head, 5);
    put(out, where, 2);
    return;
  }
  const Graph& g = *graph;
  const uint64_t head[5] = {g.M_, g.ef_construction_, ef, g.cur_element_count, kVectorsApart};
  const int64_t where[2] = {g.maxlevel_, g.enterpoint_node_ == tableint(-1) ? -1 : int64_t(g.enterpoint_node_)};
  put(out, head, 5);
  put(out, where, 2);
  if (g.cur_element_count > 0) {  // (a compaction of a store whose items were all removed leaves none)
    out.write(g.data_level0_memory_, g.cur_element_count * g.size_data_per_element_);
    out.write(g.vector(0), g.cur_element_count * g.dim() * sizeof(float));
  }
  for (size_t i = 0; i < g.cur_element_count; ++i) {
    const uint32_t bytes = g.element_levels_[i] > 0 ? uint32_t(g.size_links_per_element_ * size_t(g.element_levels_[i])) : 0;
    out.write(&bytes, 4);
    if (bytes) out.write(g.linkLists_[i], bytes);
  }
}

/// Reads and checks a graph of `count` live elements written by write_graph, with its codes
/// made (FormatError naming in.what() otherwise).
inline GraphFile read_graph(StoreReader& in, int64_t count, const Params& p, Space& space, int dim,
                            const std::string& backend) {
  const std::string& what = in.what();
  // The head: 4 values (files before store format 6: the vectors inside the level-0
  // records), or 5, the fifth the layout.
  uint64_t head[5] = {0, 0, 0, 0, 0};
  int64_t where[2];
  uint64_t head_len = 0;
  in.read(&head_len, 8);
  if (head_len != 4 && head_len != 5)
    throw FormatError(what + ": holds " + std::to_string(head_len) + " values where 4 or 5 were expected");
  in.read(head, head_len * 8);
  in.get(where, 2);
  const uint64_t M = head[0], efc = head[1], ef = head[2], total = head[3];
  const bool apart = head_len == 5;
  if (apart && head[4] != kVectorsApart) throw FormatError(what + ": unknown level-0 layout " + std::to_string(head[4]));
  if (M != p.M || efc != p.ef_construction)
    throw FormatError(what + ": a graph of M=" + std::to_string(M) + ", ef_construction=" + std::to_string(efc) +
                      ", this store is " + backend);
  if (ef < 1 || ef > 100000 || total > in.remaining()) throw FormatError(what + ": bad header");
  if (total == 0) {
    if (where[0] != -1 || where[1] != -1 || count != 0) throw FormatError(what + ": bad entry point");
    return {nullptr, size_t(ef)};
  }
  // An element's bytes in the level-0 block and the vectors: links (2M + 1 u32), the vector,
  // the label; checked against the bytes there are before anything is allocated.
  const uint64_t per = (2 * p.M + 1) * sizeof(tableint) + uint64_t(dim) * sizeof(float) + sizeof(hnswlib::labeltype);
  if (total > in.remaining() / per) throw FormatError(what + ": truncated level-0 block");
  auto g = std::make_unique<Graph>(&space, size_t(dim), total, p.M, p.ef_construction, 100);
  const size_t links = g->size_links_level0_, vec = size_t(dim) * sizeof(float);
  if (g->size_data_per_element_ + vec != per || g->label_offset_ != links) throw FormatError(what + ": bad level-0 record");
  g->advise_huge_pages();
  g->table.grow(total, 0);
  if (apart) {  // each array straight into place (a large one read on all cores)
    in.read(g->data_level0_memory_, total * g->size_data_per_element_);
    in.read(g->table.row(0), total * vec);
  } else {
    // hnswlib's element with its vector inside: read in chunks of at least
    // FileSource::kParallelBytes, each split into the graph's elements and its table.
    const size_t chunk = std::max<size_t>(1, (FileSource::kParallelBytes + (size_t(1) << 20)) / per);
    std::vector<char> buf(std::min<size_t>(chunk, total) * per);
    for (size_t at = 0; at < total; at += chunk) {
      const size_t m = std::min<size_t>(chunk, total - at);
      in.read(buf.data(), m * per);
      detail::parallel_for(int64_t(m), m >= 4096 ? 0 : 1, 1024, [&](int64_t i) {
        const char* r = buf.data() + size_t(i) * per;
        char* e = g->data_level0_memory_ + (at + size_t(i)) * g->size_data_per_element_;
        std::memcpy(e, r, links);
        std::memcpy(g->table.row(at + size_t(i)), r + links, vec);
        std::memcpy(e + links, r + links + vec, sizeof(hnswlib::labeltype));
      });
    }
  }
  // Every element's label distinct and >= 0; every link inside the graph; list lengths
  // within M (the search follows them without checks); the first element that fails is
  // named, its checks in this order: id, vector, level-0 links, upper levels.
  auto links_ok = [&](const hnswlib::linklistsizeint* ll, size_t cap) {
    const size_t c = g->getListCount(const_cast<hnswlib::linklistsizeint*>(ll));
    if (c > cap) return false;
    const auto* nb = reinterpret_cast<const tableint*>(ll + 1);
    for (size_t j = 0; j < c; ++j)
      if (nb[j] >= total) return false;
    return true;
  };
  auto vector_ok = [&](size_t i) { return detail::all_finite(g->vector(tableint(i)), dim); };
  // The vectors and the level-0 links on all cores: the first element failing either.
  const size_t first_bad = size_t(detail::first_index_where(int64_t(total), 4096, [&](int64_t k) {
    const size_t i = size_t(k);
    // The header's fourth byte is the element's insertion lock (Graph::ListLock), 0 in every
    // file mindrec writes: whatever a file holds there, the lock starts free (a set byte would
    // make the next insertion linking to the element wait forever).
    reinterpret_cast<uint8_t*>(g->get_linklist0(tableint(i)))[3] = 0;
    return !vector_ok(i) || !links_ok(g->get_linklist0(tableint(i)), g->maxM0_);
  }));
  // The upper levels (per element a u32 byte count and its lists): the rest of the payload,
  // read whole (at 20M items about 160 MB) and parsed with the ids, in order.
  std::string rest(size_t(in.remaining()), '\0');
  in.read(rest.data(), rest.size());
  size_t at = 0;
  g->labels.reserve(hnswlib::labeltype(total) + 1, total);  // ids 1..N: one allocation
  for (size_t i = 0; i < total; ++i) {
    const auto label = g->getExternalLabel(tableint(i));
    if (int64_t(label) < 0) throw FormatError(what + ": element " + std::to_string(i) + " has a negative id");
    // Deleted elements may share an id with the live one that replaced them.
    if (!g->isMarkedDeleted(tableint(i))) {
      if (g->labels.find(label) != LabelMap::kNone)
        throw FormatError(what + ": element " + std::to_string(i) + " repeats a stored id");
      g->labels.set(label, tableint(i));
    }
    if (i == first_bad) {
      if (!vector_ok(i)) throw FormatError(what + ": element " + std::to_string(i) + " holds NaN or Inf");
      throw FormatError(what + ": element " + std::to_string(i) + " links outside the graph");
    }
    uint32_t bytes = 0;
    if (rest.size() - at < 4) throw FormatError(what + ": element " + std::to_string(i) + " has a bad upper-level block");
    std::memcpy(&bytes, rest.data() + at, 4);
    at += 4;
    if (bytes % g->size_links_per_element_ != 0 || bytes / g->size_links_per_element_ > 64 || bytes > rest.size() - at)
      throw FormatError(what + ": element " + std::to_string(i) + " has a bad upper-level block");
    g->element_levels_[i] = int(bytes / g->size_links_per_element_);
    if (bytes) {
      g->linkLists_[i] = static_cast<char*>(std::malloc(bytes + sizeof(tableint)));  // + hnswlib's read past the end
      if (!g->linkLists_[i]) throw std::bad_alloc();
      g->cur_element_count = i + 1;  // the destructor frees what was allocated so far
      std::memcpy(g->linkLists_[i], rest.data() + at, bytes);
      at += bytes;
      for (int l = 1; l <= g->element_levels_[i]; ++l)
        if (!links_ok(g->get_linklist(tableint(i), l), g->maxM_))
          throw FormatError(what + ": element " + std::to_string(i) + " links outside the graph");
    } else {
      g->linkLists_[i] = nullptr;
    }
    g->cur_element_count = i + 1;
    if (g->isMarkedDeleted(tableint(i))) ++g->num_deleted_;
  }
  if (at != rest.size())
    throw FormatError(what + ": " + std::to_string(rest.size() - at) + " bytes after the last element's upper levels");
  const int64_t entry = where[1], top = where[0];
  if (entry < 0 || uint64_t(entry) >= total || top != g->element_levels_[size_t(entry)])
    throw FormatError(what + ": bad entry point");
  for (size_t i = 0; i < total; ++i) {
    if (g->element_levels_[i] > top) throw FormatError(what + ": an element above the top level");
    // A link at level l must lead to an element that has level l (the search reads its list).
    for (int l = 1; l <= g->element_levels_[i]; ++l) {
      const auto* ll = g->get_linklist(tableint(i), l);
      const auto* nb = reinterpret_cast<const tableint*>(ll + 1);
      for (size_t j = 0; j < g->getListCount(const_cast<hnswlib::linklistsizeint*>(ll)); ++j)
        if (g->element_levels_[nb[j]] < l)
          throw FormatError(what + ": element " + std::to_string(i) + " links at level " + std::to_string(l) +
                            " to an element without that level");
    }
  }
  if (int64_t(total - g->num_deleted_) != count)
    throw FormatError(what + ": holds " + std::to_string(total - g->num_deleted_) + " live vectors, the header says " +
                      std::to_string(count));
  g->maxlevel_ = int(top);
  g->enterpoint_node_ = tableint(entry);
  g->setEf(size_t(ef));
  encode(*g, 0);
  return {std::move(g), size_t(ef)};
}

}  // namespace mindrec::store::hnsw
