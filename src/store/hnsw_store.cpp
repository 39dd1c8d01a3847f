// The hnsw: backend of VectorStore: an HNSW graph (hnsw_graph.hpp) searched on its 8-bit codes
// (hnsw_walk.hpp), saved in mindrec's own layout (hnsw_file.hpp).
//
//   hnsw[:M=32,ef_construction=200][?ef=128]
//
// Inner product is searched on the raw inner product (distance = -q.x), not through the
// MIPS -> L2 reduction Faiss uses: on diffuse data the raw graph keeps more recall. Scores are
// exact (the kernel's q.x, or squared L2). Remove marks deleted (the element stays in the graph
// and routes searches); an id added again, or upserted, becomes a new element; once removed
// elements outnumber live ones the graph is rebuilt aside from the live vectors.
//
// Writes never hold searches for the insertion of a batch:
//  - the first batch of an empty store, and an upsert that replaces over half of the live items
//    (a model reloaded into a serving store), build a new graph aside, on all cores, while
//    searches go on on the current one; it is swapped in under the exclusive lock;
//  - every other batch is inserted into the graph in place, a few dozen items at a time, each
//    chunk under its own short exclusive section (a few milliseconds: searches run between
//    chunks), its elements hidden (Graph::hidden: they route searches and the insertion, but
//    are never returned) until the whole batch is in; then one exclusive section shows them
//    and removes the elements they replace. The graph's room (hnswlib's arrays, the codes) grows by half when needed,
//    the copies made aside; only the level-0 block's realloc (a remap, no copy, for large
//    blocks) happens under the lock.
// No element is left unreachable: HNSW's re-prunings drop links, and an element whose last
// in-link goes is never returned again (hnswlib's and faiss's builds leave 0.003-1.5% so,
// RESULTS "Elements no search reaches"). A graph built aside is walked from its entry point
// and every unreached element linked from its nearest reached one (Graph::plan_relinks); a
// batch in place links the elements it left with no in-link (level-0 in-link counts, kept from
// the graph's first batch in place on), and the graph is walked whole once such batches have
// added a sixteenth of it (relink=0: none of this, the benchmark's baseline).
// A batch that fails puts back every link list its insertions changed (Graph::UndoLog: each
// list saved once before its first change, with the entry point) and turns what it inserted
// into removed elements no link leads to (the compaction reclaims them): size, contents and
// results are as before. The log holds at most one copy of the lists the batch touched.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>

#include "detail/fault.hpp"
#include "detail/parallel.hpp"
#include "detail/params.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "store/backends.hpp"
#include "store/hnsw_file.hpp"
#include "store/hnsw_walk.hpp"
#include "store/store_io.hpp"

namespace mindrec::store {
namespace {

using hnsw::Graph;
using hnsw::tableint;
using hnsw::Walk;

// The label a batch's element carries while it is hidden, when its id is still stored (an
// upsert's replacement): its id with the top bit set (ids are < 2^63), so the stored element
// keeps the id's entry in hnswlib's label map until the batch commits.
constexpr hnswlib::labeltype kHiddenBit = hnswlib::labeltype(1) << 63;

constexpr const char* kWalked = "that no search reached (a walk of the graph)";

// Links the elements no search reaches (Graph::plan_relinks, or plan_orphan_links for a batch
// in place: `plan` makes a round's plan from the elements whose link the previous round
// overwrote) in rounds until none is left (at most 4: a round links all but those whose
// nearest lists were all full); `apply` makes each round's links. Returns how many it made.
size_t relink(Graph& g, const std::string& backend, const char* what, const std::function<std::vector<Graph::Relink>(const std::vector<tableint>&)>& plan,
              const std::function<void(std::vector<Graph::Relink>&)>& apply) {
  size_t made = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<tableint> overwritten;
  for (int round = 0; round < 4; ++round) {
    auto links = plan(overwritten);
    if (links.empty()) break;
    apply(links);
    made += links.size();
    overwritten.clear();
    for (const auto& r : links)
      if (r.slot >= 0) overwritten.push_back(r.replaced);
  }
  if (made > 0 && log_level() <= LogLevel::debug)
    log(LogLevel::debug, backend + ": linked " + std::to_string(made) + " of " + std::to_string(g.cur_element_count) +
                             " elements " + what + " (" +
                             std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) + " s)");
  return made;
}

class HnswStore final : public VectorStore {
 public:
  HnswStore(const std::string& base, int dim, Metric metric)
      : VectorStore(base, dim, metric), p_(hnsw::parse_params(base)), space_(size_t(dim), metric),
        codes_walk_(p_.codes_walk) {}
  // The graph is made by the first add (or a load): an empty store allocates nothing.

 private:
  std::unique_ptr<Graph> fresh(size_t capacity) {
    auto g = std::make_unique<Graph>(&space_, size_t(dim()), std::max<size_t>(capacity, 1), p_.M, p_.ef_construction, 100);
    g->advise_huge_pages();
    g->setEf(ef_);
    return g;
  }

  bool live(int64_t id) const {
    if (!graph_) return false;
    const tableint e = graph_->labels.find(hnswlib::labeltype(id));
    return e != hnsw::LabelMap::kNone && !graph_->isMarkedDeleted(e);
  }

  // ---- a new graph, aside ----
  // Inserts the batch into g, a graph no search reads yet (on all cores), with its codes:
  // element before + i is the batch's row i (copied into the table unless `vectors` is that
  // row already: an adopted buffer, or rows gathered in place). Throws the first failure (the
  // caller drops g).
  void insert_aside(Graph& g, int64_t n, const float* vectors, const int64_t* ids) const {
    const size_t before = g.cur_element_count, need = before + size_t(n);
    if (need > g.max_elements_) {
      g.resize(need);
      g.advise_huge_pages();
    }
    const size_t d = size_t(dim());
    if (vectors != g.table.row(before)) {  // (rows it has not: the table grows for them)
      detail::fault_point("hnsw.table.copy");
      g.table.grow(need, before);
      float* rows = g.table.row(before);
      detail::parallel_for(n, n >= 16384 ? 0 : 1, 4096,
                           [&](int64_t i) { std::copy_n(vectors + size_t(i) * d, d, rows + size_t(i) * d); });
    }
    g.size_codes(need);
    std::vector<int> levels(static_cast<size_t>(n));
    for (int& l : levels) l = g.draw_level();
    const bool ip = metric() == Metric::inner_product;
    g.labels.reserve(hnswlib::labeltype(*std::max_element(ids, ids + n)) + 1, size_t(n));
    g.cur_element_count = need;  // the batch's numbers taken; each element is made by its insert_row
    detail::parallel_for(n, n >= 256 ? 0 : 1, 64, [&](int64_t i) {
      detail::fault_point("hnsw.add.point");
      g.insert_row(tableint(before + size_t(i)), hnswlib::labeltype(ids[i]), levels[size_t(i)], ip);
    });
    if (p_.relink)
      relink(g, backend(), kWalked, [&](const std::vector<tableint>&) { return g.plan_relinks(ip); },
             [&](std::vector<Graph::Relink>& plan) { g.apply_relinks(plan); });
  }

  // A new graph of the live elements whose ids are not in `replaced` (sorted) and of the
  // batch: the compaction's graph (no batch), an upsert's that replaces most of the items, the
  // first fill.
  std::unique_ptr<Graph> rebuilt(const std::vector<int64_t>& replaced, int64_t n, const float* vectors,
                                 const int64_t* ids) {
    detail::fault_point("hnsw.rebuild");
    std::vector<int64_t> kept_ids;
    std::vector<tableint> kept;
    if (graph_) {
      const Graph& g = *graph_;
      for (size_t i = 0; i < g.cur_element_count; ++i) {
        const auto e = tableint(i);
        const int64_t label = int64_t(g.getExternalLabel(e));
        if (g.isMarkedDeleted(e) || std::binary_search(replaced.begin(), replaced.end(), label)) continue;
        kept_ids.push_back(label);
        kept.push_back(e);
      }
    }
    auto made = fresh(kept_ids.size() + size_t(n));
    if (!kept_ids.empty()) {
      // The kept vectors gathered straight into the new graph's table (no copy in between).
      made->table.grow(kept.size() + size_t(n), 0);
      const size_t d = size_t(dim());
      detail::parallel_for(int64_t(kept.size()), kept.size() >= 16384 ? 0 : 1, 4096, [&](int64_t i) {
        std::copy_n(graph_->vector(kept[size_t(i)]), d, made->table.row(size_t(i)));
      });
      insert_aside(*made, int64_t(kept_ids.size()), made->table.row(0), kept_ids.data());
    }
    if (n > 0) insert_aside(*made, n, vectors, ids);
    detail::fault_point("hnsw.rebuilt");  // the new graph is complete, searches still read the old one
    return made;
  }

  void swap_in(std::unique_ptr<Graph>& made) {
    exclusive([&] { graph_.swap(made); });
    made.reset();  // the old graph, freed outside the lock
  }

  // ---- a batch into the graph, in place, in chunks ----
  // Room for n more elements: hnswlib's per-element arrays and the codes, grown by half when
  // they are short. What can be built aside is (the copies of the levels, the codes and their
  // norms, the new visited-list pool); the exclusive section swaps them in and
  // remaps the level-0 block and the upper-level pointers (realloc: a remap of the pages for
  // blocks this large, no copy).
  void make_room(size_t n) {
    Graph& g = *graph_;
    const size_t need = g.cur_element_count + n;
    if (need > g.max_elements_ || need > g.table.rows()) {
      const size_t cap = std::max(need, g.max_elements_ + g.max_elements_ / 2);
      detail::fault_point("hnsw.grow");
      std::vector<int> levels(cap, 0);
      std::copy(g.element_levels_.begin(), g.element_levels_.begin() + ptrdiff_t(g.cur_element_count), levels.begin());
      auto pool = std::make_unique<hnswlib::VisitedListPool>(1, int(cap));
      // The table: an adopted buffer is copied into a block of its own aside (searches go on);
      // a block of its own is remapped under the lock, as the level-0 block is.
      hnsw::FloatTable table{size_t(dim())};
      if (!g.table.remaps()) {
        table.grow(cap, 0);
        std::copy(g.table.row(0), g.table.row(g.cur_element_count), table.row(0));
      }
      exclusive([&] {
        if (table.rows() > 0) g.table.swap(table);  // (the adopted buffer, now in `table`, is freed after the lock)
        else g.table.grow(cap, g.cur_element_count);
        char* level0 = static_cast<char*>(std::realloc(g.data_level0_memory_, cap * g.size_data_per_element_));
        if (!level0) throw std::bad_alloc();  // the table stays larger: harmless
        g.data_level0_memory_ = level0;
        char** upper = static_cast<char**>(std::realloc(g.linkLists_, sizeof(void*) * cap));
        if (!upper) throw std::bad_alloc();  // the level-0 block stays larger: harmless
        g.linkLists_ = upper;
        g.element_levels_.swap(levels);
        hnswlib::VisitedListPool* old = g.visited_list_pool_;
        g.visited_list_pool_ = pool.release();
        pool.reset(old);  // freed below, outside the lock
        g.max_elements_ = cap;
        g.advise_huge_pages();
      });
    }
    if (g.hidden.size() * 64 < need) {
      std::vector<uint64_t> bits((std::max(need, g.max_elements_) + 63) / 64, 0);
      std::copy(g.hidden.begin(), g.hidden.end(), bits.begin());
      exclusive([&] { g.hidden.swap(bits); });
    }
    const size_t stride = hnsw::code_stride(size_t(dim()));
    if (g.codes.capacity() < need * stride || g.code_norms.capacity() < need) {
      detail::fault_point("hnsw.codes.grow");
      decltype(g.codes) codes;
      codes.reserve(std::max(need * stride, g.codes.capacity() + g.codes.capacity() / 2));
      codes.assign(g.codes.begin(), g.codes.end());
      std::vector<float> norms;
      norms.reserve(std::max(need, g.code_norms.capacity() + g.code_norms.capacity() / 2));
      norms.assign(g.code_norms.begin(), g.code_norms.end());
      exclusive([&] {
        g.codes.swap(codes);
        g.code_norms.swap(norms);
      });
    }
  }

  // Inserts the batch into the graph, hidden, chunk by chunk (see the top of this file), and
  // shows it; ids in `stored` (sorted) are replaced: their elements are hidden in the same
  // section. On failure what was inserted stays hidden; the error is rethrown.
  void insert_in_place(int64_t n, const float* vectors, const int64_t* ids, const std::vector<int64_t>& stored) {
    Graph& g = *graph_;
    // Deleted elements' entries in the label map: an id removed earlier is inserted as a new
    // element (hnswlib 0.6.2's in-place revival, updatePoint, loses neighbours: measured, 17
    // of 40 re-added vectors found after two remove/add rounds). (walk=0's search reads the map.)
    exclusive([&] {
      for (int64_t i = 0; i < n; ++i) {
        const tableint e = g.labels.find(hnswlib::labeltype(ids[i]));
        if (e != hnsw::LabelMap::kNone && g.isMarkedDeleted(e)) g.labels.erase(hnswlib::labeltype(ids[i]));
      }
    });
    make_room(size_t(n));
    // Level-0 in-links counted (the graph's first batch in place: one pass over its lists,
    // while searches go on) so that the batch's insertions find the elements they orphan.
    if (p_.relink && g.in_links.empty()) g.count_in_links(g.max_elements_);
    else if (p_.relink && g.in_links.size() < g.max_elements_) g.in_links.resize(g.max_elements_, 0);
    std::vector<tableint> hidden;
    hidden.reserve(size_t(n));
    auto label_of = [&](int64_t i) {
      const bool replaces = std::binary_search(stored.begin(), stored.end(), ids[i]);
      return hnswlib::labeltype(ids[i]) | (replaces ? kHiddenBit : 0);
    };
    const int threads = resolve_threads(0);
    const bool ip = metric() == Metric::inner_product;
    int64_t chunk = std::max(4, threads * 4);
    std::exception_ptr failed;
    std::vector<int> levels;
    Graph::UndoLog undo(g);
    for (int64_t done = 0; done < n && !failed;) {
      const int64_t m = std::min(chunk, n - done);
      const auto t0 = std::chrono::steady_clock::now();
      levels.resize(size_t(m));
      for (int& l : levels) l = g.draw_level();
      exclusive([&] {
        const size_t before = g.cur_element_count;
        try {
          g.size_codes(before + size_t(m));  // the room was made above: nothing allocates
          detail::parallel_for(m, threads, 1, [&](int64_t i) {
            detail::fault_point("hnsw.add.point");
            g.insert(vectors + size_t(done + i) * dim(), label_of(done + i), levels[size_t(i)], &undo, ip);
          });
        } catch (...) {
          failed = std::current_exception();
        }
        // Every element this chunk made (each has its code: insert() makes it first) is
        // hidden, whole or not; the codes' size follows the elements.
        for (size_t e = before; e < g.cur_element_count; ++e) {
          g.set_hidden(tableint(e), true);
          hidden.push_back(tableint(e));
        }
        g.size_codes(g.cur_element_count);
      });
      done += m;
      // Chunks of about 4 ms: searches wait at most that long for the batch.
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      chunk = std::clamp<int64_t>(int64_t(double(m) * 4.0 / std::max(ms, 0.05)), threads, 4096);
      if (!failed) {
        try {
          detail::fault_point("hnsw.add.chunk");
        } catch (...) {
          failed = std::current_exception();
        }
      }
    }
    if (!failed && p_.relink) {
      // Elements the batch's re-prunings left unreachable linked again: planned here, while
      // searches go on, each list saved in the log, and linked in a short exclusive section.
      try {
        const auto plan = [&](const std::vector<tableint>& overwritten) {
          std::vector<tableint> candidates(overwritten);
          if (candidates.empty()) {  // the first round
            candidates = undo.orphans;
            candidates.insert(candidates.end(), hidden.begin(), hidden.end());
          }
          return g.plan_orphan_links(std::move(candidates), ip);
        };
        const auto apply = [&](std::vector<Graph::Relink>& links) {
          for (const auto& r : links) {
            hnswlib::linklistsizeint* ll = g.get_linklist0(r.from);
            undo.save(r.from, 0, ll, g.getListCount(ll));
          }
          exclusive([&] { g.apply_relinks(links); });
        };
        relink(g, backend(), "the batch left with no in-link", plan, apply);
        // An in-link is not a path from the entry point (two elements can hold only each
        // other): once batches in place have added a sixteenth of the graph since it was last
        // walked whole, it is walked (a few percent of those insertions' time).
        if ((g.placed_since_walk + size_t(n)) * 16 >= g.cur_element_count) {
          relink(g, backend(), kWalked, [&](const std::vector<tableint>&) { return g.plan_relinks(ip); }, apply);
          g.placed_since_walk = 0;
        } else {
          g.placed_since_walk += size_t(n);
        }
      } catch (...) {
        failed = std::current_exception();
      }
    }
    if (failed) {
      // The lists the batch changed are put back (no old element loses a link), what it
      // inserted becomes removed elements, unreachable, and their temporary labels go.
      exclusive([&] {
        g.restore(undo);
        for (const tableint e : hidden) {
          g.set_hidden(e, false);
          g.markDeletedInternal(e);
          const auto label = g.getExternalLabel(e);
          if (label & kHiddenBit) g.labels.erase(label);
        }
      });
      std::rethrow_exception(failed);
    }
    exclusive([&] {  // nothing here allocates or throws
      for (const tableint e : hidden) {
        const auto label = g.getExternalLabel(e);
        if (label & kHiddenBit) {
          const auto id = label ^ kHiddenBit;
          g.markDeletedInternal(g.labels.find(id));
          g.labels.set(id, e);  // (a slot the id has: nothing allocates)
          g.setExternalLabel(e, id);
          g.labels.erase(label);
        }
        g.set_hidden(e, false);
      }
    });
  }

  // ---- writes ----
  // An empty store's first batch handed over: the buffer becomes the new graph's table (the
  // vectors held once); given back if the build fails.
  void add_owned_impl(int64_t n, AlignedVector<float>& vectors, const int64_t* ids) override {
    if (graph_) {
      add_impl(n, vectors.data(), ids);
      return;
    }
    auto made = fresh(size_t(n));
    made->table.adopt(std::move(vectors));
    try {
      insert_aside(*made, n, made->table.row(0), ids);
      detail::fault_point("hnsw.rebuilt");
    } catch (...) {
      vectors = made->table.give_back();
      throw;
    }
    swap_in(made);
  }

  void add_impl(int64_t n, const float* vectors, const int64_t* ids) override {
    if (!graph_) {
      auto made = rebuilt({}, n, vectors, ids);
      swap_in(made);
      return;
    }
    insert_in_place(n, vectors, ids, {});
  }

  void upsert_impl(int64_t n, const float* vectors, const int64_t* ids, const std::vector<int64_t>& stored) override {
    std::vector<int64_t> replaced(stored);
    std::sort(replaced.begin(), replaced.end());
    if (!graph_ || replaced.size() * 2 > size_t(size_impl())) {
      auto made = rebuilt(replaced, n, vectors, ids);
      swap_in(made);
      return;
    }
    insert_in_place(n, vectors, ids, replaced);
  }

  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    int64_t removed = 0;
    exclusive([&] {
      for (int64_t i = 0; i < n; ++i)
        if (ids[i] >= 0 && live(ids[i])) graph_->markDeletedInternal(graph_->labels.find(hnswlib::labeltype(ids[i]))), ++removed;
    });
    return removed;
  }

  void clear_impl() override { graph_.reset(); }

  // Removed elements stay in the graph (searches route through them); once they outnumber the
  // live ones (and 1,024), the live vectors are inserted into a new graph aside, while
  // searches go on, and swapped in. A compaction that fails leaves the old graph: the
  // removals stand either way.
  void after_write_impl() override {
    if (!graph_) return;
    const Graph& g = *graph_;
    const size_t dead = g.num_deleted_, total = g.cur_element_count;
    if (dead <= 1024 || dead <= total - dead) return;
    try {
      detail::fault_point("hnsw.compact");
      auto made = rebuilt({}, 0, nullptr, nullptr);
      swap_in(made);
    } catch (const std::exception& e) {
      log(LogLevel::warn, backend() + ": compacting the graph failed (" + e.what() + "); the removed elements stay");
    }
  }

  // ---- reads ----
  void reconstruct_impl(int64_t id, float* out) const override {
    const Graph& g = *graph_;
    const tableint e = g.labels.find(hnswlib::labeltype(id));
    if (e == hnsw::LabelMap::kNone || g.isMarkedDeleted(e))
      throw InvalidArgument("vector store '" + backend() + "': id " + std::to_string(id) + " is not stored");
    std::copy_n(g.vector(e), dim(), out);
  }
  bool contains_impl(int64_t id) const override { return live(id); }
  // The planner's exact path: one lookup per id, the vector copied from the element (no
  // per-label lock or allocation, as getDataByLabel takes); hidden elements are not visible.
  void gather_impl(const std::vector<int64_t>& ids, std::vector<int64_t>& found, std::vector<float>& out) const override {
    if (!graph_) return;
    const Graph& g = *graph_;
    const size_t d = size_t(dim());
    for (const int64_t id : ids) {
      const tableint e = g.labels.find(hnswlib::labeltype(id));
      if (e == hnsw::LabelMap::kNone || g.excluded(e)) continue;
      found.push_back(id);
      const float* v = g.vector(e);
      out.insert(out.end(), v, v + d);
    }
  }
  // At or above this share of the store a filter is applied to an unfiltered walk's beam of
  // max(ef, k + 3 sqrt(k)) / share (search_impl).
  static constexpr double kOverFetchShare = 0.2;
  // Filtered walks cost about ef / selectivity expansions: below the share where the unfiltered
  // beam takes over, the allowed items scored exactly (their SQ8 codes first) cost less
  // (measured on the diffuse 367,983-item set: at 15% p99 about 1.5 ms exact against 4-7 ms
  // for the filtered walk, RESULTS "Filters").
  double exact_filter_fraction_impl(const SearchContext&) const override { return kOverFetchShare; }
  bool list_ids_impl(std::vector<int64_t>& out) const override {
    if (graph_)
      graph_->labels.for_each([&](hnswlib::labeltype label, tableint e) {
        if (!graph_->excluded(e)) out.push_back(int64_t(label));  // (hidden: a batch not yet in)
      });
    return true;
  }
  int64_t size_impl() const override {
    return graph_ ? int64_t(graph_->cur_element_count - graph_->num_deleted_ - graph_->hidden_count) : 0;
  }

  std::vector<std::string> search_param_names_impl() const override { return {"ef"}; }

  void search_impl(int64_t nq, const float* queries, int k, int64_t* ids, float* scores,
                   const SearchContext& ctx) const override {
    const bool ip = metric() == Metric::inner_product;
    const size_t ef = size_t(detail::integer_param("vector store '" + backend() + "'", "ef", ctx.param("ef", double(ef_)), 1, 100000));
    if (ctx.filtered() && !codes_walk_)
      throw Unsupported("vector store '" + backend() + "': walk=0 (hnswlib's own search, a benchmark baseline) takes no filter");
    const float pad = padding_score(metric());
    const int64_t stored = size_impl();
    const bool any = stored > 0;
    // A filter that allows a large share s of the store (counted exactly by the planner): an
    // unfiltered walk with a beam of max(ef, k + 3 sqrt(k)) / s holds about ef allowed items, as
    // the filtered walk's beam does, and k of them but for a chance below 1e-3 (binomial), at
    // the cost of an unfiltered search of that breadth, where the filtered walk scores 2-3x the
    // nodes (RESULTS). Its allowed items, best first, are the answer; fewer than k: that query
    // takes the filtered walk.
    const int64_t allowed = ctx.allowed_count();
    const double share = allowed >= 0 && any ? double(allowed) / double(stored) : 0;
    const size_t fetch =
        share >= kOverFetchShare
            ? size_t(std::ceil(std::max(double(ef), k + 3 * std::sqrt(double(k))) / share))
            : 0;
    auto one = [&](int64_t i) {
      int64_t* oi = ids + i * k;
      float* os = scores + i * k;
      int j = 0;
      if (any) {
        thread_local std::vector<std::pair<float, int64_t>> got_buf;  // (a thread_local in a shared library is reached by a call: once)
        std::vector<std::pair<float, int64_t>>& got = got_buf;
        const float* q = queries + size_t(i) * dim();
        if (codes_walk_) {
          thread_local Walk::Scratch scratch;
          bool done = false;
          if (fetch > 0) {
            Walk w(*graph_, ip, size_t(dim()), scratch);
            w.start(q, fetch);
            while (w.gather()) w.score();
            w.finish(fetch, got);
            size_t kept = 0;
            for (const auto& hit : got)
              if (kept < size_t(k) && ctx.allows(i, hit.second)) got[kept++] = hit;
            got.resize(kept);
            done = kept == size_t(k);
          }
          if (!done) {
            Walk w(*graph_, ip, size_t(dim()), scratch);
            if (ctx.filtered()) w.set_filter(&ctx, i);
            w.start(q, std::max(ef, size_t(k)));
            while (w.gather()) w.score();
            w.finish(size_t(k), got);
          }
        } else {  // walk=0: hnswlib's own search on the float vectors (the baseline of benchmarks/hnsw_ab.sh)
          // It skips removed elements, not hidden ones (a batch being inserted): those are
          // asked for on top and dropped.
          const Graph& g = *graph_;
          auto heap = g.searchKnn(q, size_t(k) + g.hidden_count);  // worst on top
          got.clear();
          for (; !heap.empty(); heap.pop())
            if (!(heap.top().second & kHiddenBit) && !g.is_hidden(g.labels.find(heap.top().second)))
              got.emplace_back(heap.top().first, int64_t(heap.top().second));
          std::sort(got.begin(), got.end());
        }
        // Best first (smallest distance), the smaller id on ties; scores exact: -distance is q.x.
        for (; j < int(got.size()) && j < k; ++j) oi[j] = got[size_t(j)].second, os[j] = ip ? -got[size_t(j)].first : got[size_t(j)].first;
      }
      for (; j < k; ++j) oi[j] = -1, os[j] = pad;
    };
    detail::parallel_for(nq, nq < 8 ? 1 : 0, 4, one);
  }

  std::string search_params_impl() const override {
    return "ef=" + std::to_string(ef_);
  }

  void set_param_impl(const std::string& name, double value) override {
    if (name == "walk")
      throw InvalidArgument("vector store '" + backend() + "': walk is a mode, fixed when the store is made: "
                            "give it with the build parameters (hnsw:M=32,walk=0), not as a search parameter");
    if (name == "ef" && value >= 1 && value <= 100000 && value == std::floor(value)) {
      ef_ = size_t(value);
      if (graph_) graph_->setEf(ef_);
      return;
    }
    throw InvalidArgument("vector store '" + backend() + "': unknown or out-of-range search parameter " + name +
                          "=" + std::to_string(value) + " (ef: an integer in [1, 100000])");
  }

  // ---- the store file (hnsw_file.hpp) ----
  std::function<void(StoreWriter&)> payload_writer_impl() const override {
    return [this](StoreWriter& out) { hnsw::write_graph(out, graph_.get(), p_, ef_); };
  }

  // Streamed: the reader checks every size, link, level, id and vector before the graph is
  // used, so the payload is parsed as it is read (and its checksum verified at the end)
  // instead of being read whole first: a load holds the new graph, not a copy of the file.
  std::function<void()> read_payload_impl(StoreReader& in, int64_t count) override {
    auto made = std::make_shared<hnsw::GraphFile>(hnsw::read_graph(in, count, p_, space_, dim(), backend()));
    return [this, made] {
      graph_.swap(made->graph);
      ef_ = made->ef;
    };
  }

  hnsw::Params p_;
  hnsw::Space space_;
  size_t ef_ = 128;
  const bool codes_walk_;  // the walk on 8-bit codes; walk=0: hnswlib's own search on the floats
  std::unique_ptr<Graph> graph_;
};

}  // namespace

std::unique_ptr<VectorStore> make_hnsw_store(const std::string& base, int dim, Metric metric) {
  return std::make_unique<HnswStore>(base, dim, metric);
}

}  // namespace mindrec::store
