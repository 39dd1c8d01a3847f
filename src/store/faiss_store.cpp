// Faiss CPU backends of VectorStore ("faiss:<index_factory string>[?param=value&...]").
//
// Faiss 1.7.3 (Debian) facts designed around: IndexIDMap2 over IndexIVFFlat returns wrong ids
// after remove_ids, so IVF indexes keep the caller's ids themselves (hashtable direct map);
// IndexHNSWFlat has no remove_ids, so non-IVF indexes store positions 0..n-1, keep the
// position -> id map here, hide removed positions with a bitmap selector at search time and
// rebuild when a quarter is removed; faiss::idx_t does not exist in 1.7.3 (int64_t is used).
// Faiss exceptions are rethrown as mindrec errors with context.
//
// Writes never hold searches for their work (VectorStore's contract):
//  - IVF (Flat, SQ, PQ, PQ fast-scan; alone or behind a pre-transform such as OPQ): the batch
//    is assigned to lists (mindrec's coarse assignment) and encoded aside, the new contents of
//    the lists it touches are built aside (ivf_lists.hpp: also removal, which Faiss 1.7.3 has
//    not for fast-scan lists), and the exclusive section only swaps those lists in. The first
//    batch trains a new index aside.
//  - Every other index (Flat, HNSW, PQ, SQ, ...): an add or upsert makes a new index aside, a
//    copy of the current one (copy_index) with the batch added and the replaced
//    positions hidden, or, when the MIPS bound must grow or tombstones would pass a quarter, a
//    new index of the live vectors and the batch; the exclusive section swaps it in. Memory
//    holds both meanwhile, and each write costs a copy of the index: frequent small writes are
//    cheaper on `flat` or `hnsw:`. A removal hides positions in place (a bitmap, no
//    allocation) and compacts aside past a quarter.
// A failure anywhere before the swap drops what was prepared: nothing changed.
#include <faiss/IVFlib.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/clone_index.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/invlists/DirectMap.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <sstream>
#include <cmath>
#include <memory>
#include <new>
#include <typeinfo>
#include <unordered_set>
#include <vector>

#include "detail/fault.hpp"
#include "detail/parallel.hpp"
#include "detail/params.hpp"
#include "detail/vector_math.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"
#include "store/backends.hpp"
#include "store/faiss_guard.hpp"
#include "store/id_map.hpp"
#include "store/ivf_build.hpp"
#include "store/ivf_lists.hpp"
#include "store/ivf_search.hpp"
#include "store/store_io.hpp"
#include "store/topk_select.hpp"

namespace mindrec::store {
namespace {

// A deep copy of a non-IVF index. faiss::clone_index (1.7.3) copies an IndexHNSWFlat, SQ or PQ
// as a plain IndexHNSW, which write_index then refuses and whose type the MIPS reduction and
// the compaction test: those are copied field by field here, as their own type.
std::unique_ptr<faiss::Index> copy_index(const faiss::Index& src) {
  const auto* h = dynamic_cast<const faiss::IndexHNSW*>(&src);
  if (!h) return std::unique_ptr<faiss::Index>(faiss::clone_index(&src));
  std::unique_ptr<faiss::IndexHNSW> c;
  if (typeid(src) == typeid(faiss::IndexHNSWFlat)) c = std::make_unique<faiss::IndexHNSWFlat>();
  else if (typeid(src) == typeid(faiss::IndexHNSWSQ)) c = std::make_unique<faiss::IndexHNSWSQ>();
  else if (typeid(src) == typeid(faiss::IndexHNSWPQ)) c = std::make_unique<faiss::IndexHNSWPQ>();
  if (!c || h->reconstruct_from_neighbors) FAISS_THROW_MSG("copy of this HNSW index type not supported");
  c->d = h->d;
  c->ntotal = h->ntotal;
  c->verbose = h->verbose;
  c->is_trained = h->is_trained;
  c->metric_type = h->metric_type;
  c->metric_arg = h->metric_arg;
  c->hnsw = h->hnsw;
  c->storage = faiss::clone_index(h->storage);
  c->own_fields = true;
  return c;
}

// Faiss's reader and writer over the store file's stream: write_index writes into the payload
// sink as it serialises, and read_index parses the payload as it is read, reading no further
// than the frame that holds the index.
class SinkWriter final : public faiss::IOWriter {
 public:
  explicit SinkWriter(StoreWriter* out) : out_(out) {}
  size_t operator()(const void* ptr, size_t size, size_t nitems) override {
    if (out_) out_->write(ptr, size * nitems);
    bytes += uint64_t(size) * nitems;
    return nitems;
  }
  uint64_t bytes = 0;  // written so far (a null sink only counts)

 private:
  StoreWriter* out_;
};

class FrameReader final : public faiss::IOReader {
 public:
  FrameReader(StoreReader& in, uint64_t bytes) : in_(in), left_(bytes) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0 || nitems == 0) return 0;
    const uint64_t items = std::min<uint64_t>(nitems, left_ / size);
    in_.read(ptr, size_t(items * size));
    left_ -= items * size;
    return size_t(items);  // fewer than asked: Faiss reports a truncated index
  }
  uint64_t left() const { return left_; }

 private:
  StoreReader& in_;
  uint64_t left_;
};

// A search's filter and exclusions as a Faiss selector (IDSelector), on top of the removed
// vectors' selector; `positions` maps a non-IVF index's positions to ids.
struct AllowSelector final : faiss::IDSelector {
  AllowSelector(const SearchContext& c, int64_t qi, const faiss::IDSelector* l, const IdMap* p)
      : ctx(c), q(qi), live(l), positions(p) {}
  bool is_member(faiss::Index::idx_t i) const override {
    if (live && !live->is_member(i)) return false;
    return ctx.allows(q, positions ? positions->id_at(i) : int64_t(i));
  }
  const SearchContext& ctx;
  int64_t q;
  const faiss::IDSelector* live;
  const IdMap* positions;
};

class FaissStore final : public VectorStore {
 public:
  FaissStore(const std::string& backend, std::string factory, bool faiss_scan, bool faiss_build, int dim, Metric metric)
      : VectorStore(backend, dim, metric), factory_(std::move(factory)), faiss_scan_(faiss_scan), faiss_build_(faiss_build) {
    index_ = make_index();
    if (faiss_scan_ && !ivf())
      throw InvalidArgument("faiss:" + factory_ + ": faiss_scan=1 (Faiss's own list scan) applies to IVF indexes only");
    if (faiss::IndexIVF* v = ivf()) {
      // mindrec writes the lists itself (ivf_lists.hpp); only a pre-transform may wrap them
      // (its count is kept with the lists'). A refinement (",RFlat") or an id map would hold
      // vectors or ids those writes do not see: RecallOptions::rerank re-scores exactly instead.
      const auto* pt = dynamic_cast<const faiss::IndexPreTransform*>(index_.get());
      if (index_.get() != v && !(pt && pt->index == v))
        throw InvalidArgument("faiss:" + factory_ + ": an IVF index wrapped in anything but a pre-transform "
                              "(e.g. OPQ16_64,IVF1024,PQ16) is not supported; for exact scores of a compressed "
                              "index use RecallOptions::rerank (mindrec recall --rerank)");
      if (const std::string why = ivf::why_not_editable(*v); !why.empty())
        throw InvalidArgument("faiss:" + factory_ + ": " + why + " is not supported" +
                              (dynamic_cast<const faiss::IndexIVFFastScan*>(v) ? "; use blocks of 32 (e.g. IVF4096,PQ32x4fs)" : ""));
    } else {
      // Writes go to a copy of the index: it must be one Faiss can copy.
      try {
        copy_index(*index_);
      } catch (const faiss::FaissException&) {
        throw InvalidArgument("faiss:" + factory_ + ": Faiss cannot copy this index type, which its writes "
                              "(made on a copy while searches go on) need");
      }
    }
    if (metric == Metric::inner_product && dynamic_cast<faiss::IndexHNSWFlat*>(index_.get())) {
      mips_ = true;
      index_ = make_index();
    }
  }

 private:
  std::unique_ptr<faiss::Index> make_index() const {
    try {
      std::unique_ptr<faiss::Index> idx(faiss::index_factory(
          dim() + (mips_ ? 1 : 0), factory_.c_str(),
          metric() == Metric::inner_product && !mips_ ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2));
      if (auto* ivf = faiss::ivflib::try_extract_index_ivf(idx.get()))
        ivf->set_direct_map_type(faiss::DirectMap::Hashtable);
      // Faiss 1.7.3's HNSW::search reads efSearch from the index, not from the search
      // parameters (measured: recall did not move with SearchParametersHNSW::efSearch), so it
      // is set on the index itself, under the store's write lock.
      if (auto* h = dynamic_cast<faiss::IndexHNSW*>(idx.get()); h && ef_search_ > 0) h->hnsw.efSearch = ef_search_;
      if (auto* v = faiss::ivflib::try_extract_index_ivf(idx.get()); v && nprobe_ > 0) v->nprobe = size_t(nprobe_);
      return idx;
    } catch (const faiss::FaissException& e) {
      throw InvalidArgument("faiss index_factory('" + factory_ + "') failed: " + e.what());
    }
  }

  faiss::IndexIVF* ivf() const { return faiss::ivflib::try_extract_index_ivf(index_.get()); }
  faiss::IndexHNSW* hnsw() const { return dynamic_cast<faiss::IndexHNSW*>(index_.get()); }

  // Every call into Faiss: its exceptions become mindrec errors, and its parallel regions
  // follow the thread policy (review F5).
  template <class Fn>
  auto guarded(const char* what, Fn&& fn) const {
    detail::PolicyThreads threads;
    return faiss_guarded("faiss (" + factory_ + ")", what, std::forward<Fn>(fn));
  }

  // The first batch into a new IVF index with a flat coarse quantizer (ivf_build.hpp): the
  // coarse centroids trained on a sample and every vector assigned by mindrec; the encoder (SQ ranges, PQ codebooks on residuals) trained by Faiss on a
  // sample of kEncoderSample vectors (the quantizer complete, IndexIVF::train skips its
  // k-means); the codes made in parallel; the lists written as every later batch's are.
  static constexpr int64_t kEncoderSample = 65536;
  static void fill_first(faiss::IndexIVF& v, int64_t n, const float* x, const int64_t* ids) {
    const bool ip = v.metric_type == faiss::METRIC_INNER_PRODUCT;
    const std::vector<float> centroids = ivf::train_coarse(n, x, int(v.d), int64_t(v.nlist), ip, 1234);
    v.quantizer->add(faiss::Index::idx_t(v.nlist), centroids.data());
    const int64_t ns = std::min(n, kEncoderSample);
    const std::vector<float> sample = ivf::sample_rows(n, x, int(v.d), ns, 4321);
    v.train(ns, sample.data());
    const size_t cs = v.code_size;
    if (auto* arrays = dynamic_cast<faiss::ArrayInvertedLists*>(v.invlists)) {
      // Chunk by chunk (no copy of the whole batch's codes beside the lists): assigned and
      // encoded in parallel, grouped by list, each list's entries appended by one thread.
      constexpr int64_t kChunk = 262144;
      std::vector<int64_t> lists, order, first(v.nlist + 1);
      std::vector<uint8_t> codes;
      std::vector<faiss::Index::idx_t> sorted_ids;
      std::vector<uint8_t> sorted_codes;
      for (int64_t from = 0; from < n; from += kChunk) {
        const int64_t m = std::min(kChunk, n - from);
        lists.resize(size_t(m));
        ivf::nearest(m, x + from * v.d, int(v.d), int64_t(v.nlist), centroids.data(), ip, 0, lists.data());
        codes.resize(size_t(m) * cs);
        encode_parallel(v, m, x + from * v.d, lists.data(), codes.data());
        std::fill(first.begin(), first.end(), 0);
        for (const int64_t l : lists) ++first[size_t(l) + 1];
        for (size_t l = 0; l < v.nlist; ++l) first[l + 1] += first[l];
        order.assign(first.begin(), first.end() - 1);
        sorted_ids.resize(size_t(m));
        sorted_codes.resize(size_t(m) * cs);
        for (int64_t i = 0; i < m; ++i) {
          const int64_t at = order[size_t(lists[size_t(i)])]++;
          sorted_ids[size_t(at)] = ids[from + i];
          std::memcpy(&sorted_codes[size_t(at) * cs], &codes[size_t(i) * cs], cs);
        }
        detail::parallel_for(int64_t(v.nlist), 0, 16, [&](int64_t l) {
          const int64_t b0 = first[size_t(l)], cnt = first[size_t(l) + 1] - b0;
          if (cnt > 0) arrays->add_entries(size_t(l), size_t(cnt), &sorted_ids[size_t(b0)], &sorted_codes[size_t(b0) * cs]);
        });
      }
      v.ntotal = n;
      auto& where = v.direct_map.hashtable;
      where.reserve(size_t(n));
      for (size_t l = 0; l < v.nlist; ++l) {
        const size_t len = arrays->ids[l].size();
        for (size_t w = 0; w < len; ++w) where[arrays->ids[l][w]] = faiss::Index::idx_t(faiss::lo_build(l, w));
      }
      return;
    }
    // Fast-scan lists (codes packed in blocks of 32, 16 bytes an item at PQ32x4): the whole
    // batch's codes, written by the list edit every later batch goes through.
    std::vector<int64_t> lists(static_cast<size_t>(n));
    ivf::nearest(n, x, int(v.d), int64_t(v.nlist), centroids.data(), ip, 0, lists.data());
    std::vector<uint8_t> codes(size_t(n) * cs);
    encode_parallel(v, n, x, lists.data(), codes.data());
    ivf::ListEdit edit(v, 0, nullptr, n, lists.data(), codes.data(), ids);
    edit.enter_new_ids(v);
    edit.apply(v);
    edit.finish(v);
  }
  // IndexIVF::encode_vectors in chunks on all cores (Faiss's own parallel regions do not nest).
  static void encode_parallel(const faiss::IndexIVF& v, int64_t n, const float* x, const int64_t* lists, uint8_t* codes) {
    constexpr int64_t kChunk = 16384;
    detail::parallel_for((n + kChunk - 1) / kChunk, 0, 1, [&](int64_t c) {
      const int64_t from = c * kChunk, m = std::min(kChunk, n - from);
      v.encode_vectors(m, x + from * v.d, lists + from, codes + size_t(from) * v.code_size);
    });
  }

  // ---- IVF writes (see the top of this file) ----
  // Removes the stored ids among gone[0..n_gone) and adds (x, ids) in one exclusive section.
  // Returns how many stored ids were removed.
  int64_t write_ivf(int64_t n_gone, const int64_t* gone, int64_t n, const float* x, const int64_t* ids) {
    return guarded("write", [&]() -> int64_t {
      if (!index_->is_trained) {  // empty: the first batch trains a new index, aside
        if (n == 0) return 0;
        faiss::IndexIVF* v = ivf();
        if (n < int64_t(v->nlist))
          throw InvalidArgument("faiss:" + factory_ + " must be trained on the first batch added, "
                                "which needs at least nlist=" + std::to_string(v->nlist) + " vectors; got " +
                                std::to_string(n));
        auto made = make_index();
        auto* mv = dynamic_cast<faiss::IndexIVF*>(made.get());
        if (!faiss_build_ && mv && dynamic_cast<const faiss::IndexFlat*>(mv->quantizer) && ivf::why_not_editable(*mv).empty()) {
          fill_first(*mv, n, x, ids);
        } else {  // faiss_build=1 (the baseline), behind a pre-transform, another coarse quantizer: Faiss's own
          made->train(n, x);
          made->add_with_ids(n, x, ids);
        }
        detail::fault_point("faiss.add.index");
        std::vector<float> blocks = ivf::block_centroids(*made);
        exclusive([&] {
          index_.swap(made);
          coarse_t_.swap(blocks);
          coarse_t_of_ = coarse_t_.empty() ? nullptr : ivf()->quantizer;
        });
        return 0;
      }
      faiss::IndexIVF& v = *ivf();
      // The vectors as the IVF sees them (through the pre-transform), assigned and encoded.
      const float* xt = x;
      std::unique_ptr<const float[]> transformed;
      if (auto* pt = dynamic_cast<const faiss::IndexPreTransform*>(index_.get()); pt && n > 0) {
        xt = pt->apply_chain(n, x);
        if (xt != x) transformed.reset(xt);
      }
      std::vector<int64_t> lists(size_t(n), 0);
      std::vector<uint8_t> codes(size_t(n) * v.code_size);
      if (n > 0) {
        std::vector<float> unused(static_cast<size_t>(n));
        if (!ivf::coarse_assign(v, coarse_blocks(), n, xt, 1, lists.data(), unused.data())) v.quantizer->assign(n, xt, lists.data());
        v.encode_vectors(n, xt, lists.data(), codes.data());
        detail::fault_point("faiss.add.index");
      }
      ivf::ListEdit edit(v, n_gone, gone, n, lists.data(), codes.data(), ids);
      edit.enter_new_ids(v);
      exclusive([&] {  // nothing here allocates or throws
        edit.apply(v);
        index_->ntotal = v.ntotal;  // a pre-transform's count follows its IVF's
      });
      edit.finish(v);
      return edit.removed();
    });
  }

  // ---- writes to other indexes: positions, hidden when removed ----
  // Everything a non-IVF index's contents are made of (swapped whole).
  struct State {
    std::unique_ptr<faiss::Index> index;
    IdMap map;
    std::vector<uint8_t> removed;
    int64_t removed_count = 0;
    float bound = 0.f;
  };
  void swap_state(State& s) noexcept {
    std::swap(index_, s.index);
    std::swap(map_, s.map);
    std::swap(removed_, s.removed);
    std::swap(removed_count_, s.removed_count);
    std::swap(aug_norm_sq_, s.bound);
  }
  void swap_in(std::unique_ptr<State> st) {
    exclusive([&] { swap_state(*st); });
    st.reset();  // the old index, freed outside the lock
  }

  // Flat and HNSWFlat store their vectors exactly (reconstruct() returns them), so a new
  // index of the live vectors can be built from the current one; lossy codecs cannot.
  bool rebuildable() const {
    return dynamic_cast<faiss::IndexFlat*>(index_.get()) || dynamic_cast<faiss::IndexHNSWFlat*>(index_.get());
  }

  // The contents after hiding the stored ids among `drop` (sorted) and adding (x, ids),
  // prepared aside and swapped in.
  void write_positions(const std::vector<int64_t>& drop, int64_t n, const float* x, const int64_t* ids) {
    // MIPS: a vector longer than the reduction's bound re-augments everything, with a bound
    // 25% above the longest (amortises rebuilds over later additions).
    float bound = aug_norm_sq_;
    bool reaugment = false;
    if (mips_) {
      float top = 0.f;
      for (int64_t i = 0; i < n; ++i) top = std::max(top, norm_sq(x + i * dim()));
      if (top > bound) {
        const bool empty = map_.rows() == 0;
        bound = empty ? top : std::max(top, bound) * 1.25f;
        reaugment = !empty;
      }
    }
    const int64_t dead = removed_count_ + int64_t(drop.size());
    const bool compact = dead > 0 && dead * 4 > map_.rows() + n;
    swap_in((reaugment || compact) && rebuildable() ? build_compacted(bound, drop, n, x, ids)
                                                    : copy_with(bound, drop, n, x, ids));
  }

  // A copy of the current index (copy_index) with `drop` hidden and the batch added.
  std::unique_ptr<State> copy_with(float bound, const std::vector<int64_t>& drop, int64_t n, const float* x,
                                   const int64_t* ids) const {
    return guarded("add", [&] {
      auto st = std::make_unique<State>();
      st->index = copy_index(*index_);
      st->map = map_;
      st->removed = removed_;
      st->removed_count = removed_count_;
      st->bound = bound;
      for (const int64_t id : drop) {
        const int64_t p = st->map.forget(id);
        if (p < 0) continue;
        st->removed[size_t(p) >> 3] |= uint8_t(1u << (p & 7));
        ++st->removed_count;
      }
      if (n > 0) {
        std::vector<float> augmented;
        const float* xa = x;
        if (mips_) {
          augmented = augment(n, x, bound);
          xa = augmented.data();
        }
        if (!st->index->is_trained) st->index->train(n, xa);
        st->index->add(n, xa);
        detail::fault_point("faiss.add.index");
        st->map.reserve(n);
        for (int64_t i = 0; i < n; ++i) {
          detail::fault_point("faiss.add.map");
          st->map.append(ids[i]);
        }
        st->removed.resize(size_t(st->map.rows() + 7) / 8, 0);
      }
      return st;
    });
  }

  void add_impl(int64_t n, const float* x, const int64_t* ids) override {
    if (ivf()) write_ivf(0, nullptr, n, x, ids);
    else write_positions({}, n, x, ids);
  }

  void upsert_impl(int64_t n, const float* x, const int64_t* ids, const std::vector<int64_t>& stored) override {
    if (ivf()) {
      write_ivf(int64_t(stored.size()), stored.data(), n, x, ids);
      return;
    }
    std::vector<int64_t> drop(stored);
    std::sort(drop.begin(), drop.end());
    write_positions(drop, n, x, ids);
  }

  // Maximum inner product search as nearest neighbours in L2 (Bachrach et al. 2014): item x
  // becomes [x, sqrt(M - |x|^2)] with M >= every |x|^2, a query q becomes [q, 0], and then
  // |q' - x'|^2 = |q|^2 + M - 2 q.x, so the L2 order is the inner-product order. HNSW's graph
  // works on a metric; on raw inner products (norms of item vectors vary) it strands the
  // search near long vectors and recall stops improving with efSearch.
  float norm_sq(const float* v) const { return float(detail::squared_norm(v, dim())); }
  std::vector<float> augment(int64_t n, const float* x, float bound) const {
    const int d = dim();
    std::vector<float> a(size_t(n) * (d + 1));
    for (int64_t i = 0; i < n; ++i) {
      std::copy(x + i * d, x + (i + 1) * d, a.begin() + i * (d + 1));
      a[size_t(i) * (d + 1) + d] = std::sqrt(std::max(0.f, bound - norm_sq(x + i * d)));
    }
    return a;
  }

  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    if (ivf()) return write_ivf(n, ids, 0, nullptr, nullptr);
    int64_t removed = 0;
    exclusive([&] {  // cannot throw: positions stay, hidden by the bitmap
      for (int64_t i = 0; i < n; ++i) {
        const int64_t p = map_.forget(ids[i]);
        if (p < 0) continue;
        removed_[size_t(p) >> 3] |= uint8_t(1u << (p & 7));
        ++removed_count_;
        ++removed;
      }
    });
    if (removed_count_ * 4 > map_.rows() && rebuildable()) {
      // Compacted aside, swapped in. The removal has happened either way: if compaction
      // fails (out of memory) the tombstones stay and the next write tries again.
      try {
        swap_in(build_compacted(aug_norm_sq_, {}, 0, nullptr, nullptr));
      } catch (const std::bad_alloc&) {
      } catch (const Error&) {
      }
    }
    return removed;
  }

  // A new index of the live vectors whose ids are not in `drop` (sorted) and of the batch,
  // augmented for `bound` under the MIPS reduction, built from the current one without
  // changing it (Flat and HNSWFlat only: rebuildable()). Only reads the store: runs beside
  // searches.
  std::unique_ptr<State> build_compacted(float bound, const std::vector<int64_t>& drop, int64_t n, const float* x,
                                         const int64_t* ids) const {
    return guarded("rebuild", [&] {
      detail::fault_point("faiss.rebuild");
      const int d = dim(), stored_d = int(index_->d);
      std::vector<float> keep;
      std::vector<int64_t> keep_ids;
      std::vector<float> v(static_cast<size_t>(stored_d));
      for (int64_t p = 0; p < map_.rows(); ++p) {
        if (removed_[size_t(p) >> 3] & (1u << (p & 7))) continue;
        const int64_t id = map_.id_at(p);
        if (std::binary_search(drop.begin(), drop.end(), id)) continue;
        index_->reconstruct(p, v.data());
        keep.insert(keep.end(), v.begin(), v.begin() + d);  // the original vector
        keep_ids.push_back(id);
      }
      const int64_t kept = static_cast<int64_t>(keep_ids.size()), total = kept + n;
      keep_ids.insert(keep_ids.end(), ids, ids + n);
      auto st = std::make_unique<State>();
      st->index = make_index();
      // The kept vectors, then the batch (two insertions, as a rebuild followed by an add).
      for (const auto& [count, v] : {std::pair<int64_t, const float*>{kept, keep.data()}, {n, x}}) {
        if (count == 0) continue;
        if (mips_) {
          const std::vector<float> a = augment(count, v, bound);
          st->index->add(count, a.data());
        } else {
          st->index->add(count, v);
        }
      }
      detail::fault_point("faiss.add.index");
      st->map.assign(std::move(keep_ids), nullptr, "faiss store rebuild");
      st->removed.assign(size_t(total + 7) / 8, 0);
      st->bound = mips_ ? bound : 0.f;
      return st;
    });
  }

  void reconstruct_impl(int64_t id, float* out) const override {
    guarded("reconstruct", [&] {
      if (ivf()) {
        index_->reconstruct(id, out);  // through the hashtable direct map
        return 0;
      }
      std::vector<float> v(static_cast<size_t>(index_->d));
      index_->reconstruct(map_.find(id), v.data());
      std::copy(v.begin(), v.begin() + dim(), out);
      return 0;
    });
  }

  // IVF with a flat coarse quantizer: mindrec assigns the queries to lists itself
  // (ivf::coarse_assign) and scans the lists (ivf::scan: IVF-Flat, IVF-SQ8, 4-bit PQ fast-scan
  // under inner product, ivf_search.cpp) or hands them to Faiss's search_preassigned. Behind a pre-transform (OPQ, a
  // rotation) the queries are transformed first, as Faiss's own search does. Returns false
  // where it does not apply.
  bool search_ivf_fast(int64_t nq, const float* q, int k, float* scores, int64_t* ids,
                       const faiss::SearchParametersIVF& pi, const SearchContext& ctx, int64_t q0 = 0) const {
    const faiss::IndexIVF* v = ivf();
    if (!v || !v->is_trained) return false;
    const faiss::IndexIVFPQFastScan* pq4 = ivf::own_pq4_scan(v);
    if (!pq4 && dynamic_cast<const faiss::IndexIVFFastScan*>(v)) return false;  // no preassigned search
    std::unique_ptr<const float[]> transformed;
    if (auto* pt = dynamic_cast<const faiss::IndexPreTransform*>(index_.get())) {
      const float* qt = pt->apply_chain(nq, q);
      if (qt != q) transformed.reset(qt);
      q = qt;
    }
    const int d = v->d;
    const int64_t nprobe = std::min<int64_t>(int64_t(pi.nprobe), int64_t(v->nlist));
    std::vector<int64_t> assign(size_t(nq) * nprobe);
    std::vector<float> coarse(size_t(nq) * nprobe);
    if (!ivf::coarse_assign(*v, coarse_blocks(), nq, q, nprobe, assign.data(), coarse.data())) return false;
    if (ivf::scan(*v, nq, q, k, nprobe, assign.data(), coarse.data(), scores, ids, ctx, q0)) return true;
    faiss::SearchParametersIVF p = pi;
    p.nprobe = size_t(nprobe);
    if (!ctx.has_exclusions()) {
      // One selector for the batch (a filter without exclusions; or none).
      AllowSelector allow(ctx, q0, pi.sel, nullptr);
      if (ctx.filtered()) p.sel = &allow;
      v->search_preassigned(nq, q, k, assign.data(), coarse.data(), scores, ids, false, &p);
      return true;
    }
    for (int64_t i = 0; i < nq; ++i) {  // exclusions differ per query: a selector each
      AllowSelector allow(ctx, q0 + i, pi.sel, nullptr);
      p.sel = &allow;
      v->search_preassigned(1, q + i * d, k, assign.data() + i * nprobe, coarse.data() + i * nprobe, scores + i * k,
                            ids + i * k, false, &p);
    }
    return true;
  }

  // IVF with a filter: a query whose probed lists held fewer than k allowed vectors probes
  // again with four times the lists (up to all of them), until k are found or none is left.
  void probe_further(int64_t nq, const float* q, int k, float* scores, int64_t* ids,
                     const faiss::SearchParametersIVF& pi, const SearchContext& ctx) const {
    const faiss::IndexIVF* v = ivf();
    const int64_t nlist = int64_t(v->nlist);
    for (int64_t i = 0; i < nq; ++i) {
      faiss::SearchParametersIVF p = pi;
      while (ids[i * k + k - 1] < 0 && int64_t(p.nprobe) < nlist) {
        p.nprobe = size_t(std::min<int64_t>(nlist, int64_t(p.nprobe) * 4));
        search_ivf_fast(1, q + i * dim(), k, scores + i * k, ids + i * k, p, ctx, i);
      }
    }
  }

  // Fast-scan lists under Faiss's own search (L2, faiss_scan=1) take no selector in 1.7.3.
  bool supports_filter_impl() const override {
    const faiss::IndexIVF* v = ivf();
    return !(v && dynamic_cast<const faiss::IndexIVFFastScan*>(v) && (faiss_scan_ || !ivf::own_pq4_scan(v)));
  }
  // Faiss's HNSW with a selector keeps only efSearch candidates, allowed or not: below a
  // tenth of the store the exact path is both faster and exact. IVF: a filter allowing a
  // fraction s of N items has the exact path score s N gathered vectors, and the filtered scan
  // the vectors of nprobe / sqrt(s) lists, about N nprobe / (nlist sqrt(s)); the exact path
  // reads its vectors contiguously and skips the coarse assignment, and measured (RESULTS,
  // "Filters") it costs about what the scan does at three times the vectors, so it is taken
  // while s^(3/2) <= 3 nprobe / nlist (at nlist 4096: s <= 5.2% at nprobe 16, 13% at 64, 20.6%
  // at 128), and never above 2% less; exact, where the scan loses recall.
  double exact_filter_fraction_impl(const SearchContext& ctx) const override {
    if (hnsw()) return 0.1;
    const faiss::IndexIVF* v = ivf();
    if (!v || v->nlist == 0) return 0.02;
    const double nprobe = ctx.param("nprobe", double(nprobe_ > 0 ? size_t(nprobe_) : v->nprobe));
    return std::max(0.02, std::min(1.0, std::pow(3.0 * nprobe / double(v->nlist), 2.0 / 3.0)));
  }

  std::vector<std::string> search_param_names_impl() const override {
    if (ivf()) return {"nprobe"};
    if (hnsw()) return {"ef"};
    return {};
  }

  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores,
                   const SearchContext& ctx) const override {
    guarded("search", [&] {
      std::unique_ptr<faiss::IDSelectorBitmap> bitmap;
      std::unique_ptr<faiss::IDSelectorNot> live;
      if (removed_count_ > 0) {
        bitmap = std::make_unique<faiss::IDSelectorBitmap>(removed_.size(), removed_.data());
        live = std::make_unique<faiss::IDSelectorNot>(bitmap.get());
      }
      faiss::SearchParametersHNSW ph;
      faiss::SearchParametersIVF pi;
      faiss::SearchParameters pf;
      faiss::SearchParameters* params = &pf;
      if (auto* v = ivf()) {
        pi.nprobe = size_t(detail::integer_param("faiss:" + factory_, "nprobe",
                                                 ctx.param("nprobe", double(nprobe_ > 0 ? size_t(nprobe_) : v->nprobe)), 1, 1 << 24));
        params = &pi;
      } else if (hnsw()) {
        ph.efSearch = int(detail::integer_param("faiss:" + factory_, "ef",
                                                ctx.param("ef", double(ef_search_ > 0 ? ef_search_ : hnsw()->hnsw.efSearch)),
                                                1, 1 << 20));
        if (ph.efSearch != hnsw()->hnsw.efSearch)
          throw Unsupported("faiss:" + factory_ + ": a per-call ef (Faiss 1.7.3's HNSW reads efSearch from the index, "
                            "not from the call); set it on the spec (?ef=" + std::to_string(ph.efSearch) + ")");
        params = &ph;
      }
      params->sel = live.get();
      if (ivf() && ctx.allowed_count() >= 0 && size_impl() > 0) {
        // A filter passing a fraction s of the items: the k best allowed lie further out, in
        // more lists; nprobe / sqrt(s) lists are probed (then more while too few pass).
        const double s = std::max(1e-4, std::min(1.0, double(ctx.allowed_count()) / double(size_impl())));
        pi.nprobe = size_t(std::min<double>(double(ivf()->nlist), std::ceil(double(pi.nprobe) / std::sqrt(s))));
      }
      if (!faiss_scan_ && search_ivf_fast(nq, q, k, scores, ids, pi, ctx)) {
        if (ctx.filtered()) probe_further(nq, q, k, scores, ids, pi, ctx);
        return 0;
      }
      if (dynamic_cast<const faiss::IndexIVFFastScan*>(ivf())) {
        // Fast-scan lists mindrec does not scan itself (L2, other code sizes) or the faiss_scan
        // baseline: they have no list scanner in Faiss 1.7.3 (its preassigned search through
        // the base class crashed on them) and their search throws on per-call parameters, so
        // Faiss's own search, nprobe set on the index by set_param and on load; IVF removals
        // are physical, so no selector is needed.
        if (ctx.filtered())
          throw Unsupported("faiss:" + factory_ + ": Faiss 1.7.3's fast-scan search takes no filter (mindrec's own "
                            "scan does: inner product, 4-bit codes, faiss_scan=0)");
        if (pi.nprobe != ivf()->nprobe)
          throw Unsupported("faiss:" + factory_ + ": Faiss 1.7.3's fast-scan search takes no per-call nprobe");
        index_->search(nq, q, k, scores, ids);
        return 0;
      }
      // Faiss's own search with a selector (IDSelector): the filter and exclusions inside it.
      // Non-IVF indexes number their vectors by position (map_ gives the id); IVF by id.
      const IdMap* positions = ivf() ? nullptr : &map_;
      const int qd = dim() + (mips_ ? 1 : 0);
      std::vector<float> qa;
      const float* qq = q;
      if (mips_) {  // MIPS reduction: queries get a 0 coordinate
        const int d = dim();
        qa.assign(size_t(nq) * (d + 1), 0.f);
        for (int64_t i = 0; i < nq; ++i) std::copy(q + i * d, q + (i + 1) * d, qa.begin() + i * (d + 1));
        qq = qa.data();
      }
      if (!ctx.filtered()) {
        index_->search(nq, qq, k, scores, ids, params);
      } else if (!ctx.has_exclusions()) {
        AllowSelector allow(ctx, 0, live.get(), positions);
        params->sel = &allow;
        index_->search(nq, qq, k, scores, ids, params);
      } else {
        for (int64_t i = 0; i < nq; ++i) {
          AllowSelector allow(ctx, i, live.get(), positions);
          params->sel = &allow;
          index_->search(1, qq + i * qd, k, scores + i * k, ids + i * k, params);
        }
      }
      if (!mips_) {
        if (!ivf())
          for (int64_t i = 0; i < nq * k; ++i)
            if (ids[i] >= 0) ids[i] = map_.id_at(ids[i]);
        return 0;
      }
      // The returned L2 distances are turned back into exact inner products with the stored
      // vectors, and each row re-sorted by them.
      const int d = dim();
      std::vector<float> v(size_t(d) + 1);
      TopK best(k);
      for (int64_t i = 0; i < nq; ++i) {
        for (int j = 0; j < k; ++j) {
          const int64_t p = ids[i * k + j];
          if (p < 0) continue;
          index_->reconstruct(p, v.data());
          float ip = 0.f;
          for (int c = 0; c < d; ++c) ip += q[i * d + c] * v[size_t(c)];
          best.push(ip, map_.id_at(p));
        }
        best.write(ids + i * k, scores + i * k, 0.f);
      }
      return 0;
    });
  }

  int64_t size_impl() const override {
    return ivf() ? static_cast<int64_t>(index_->ntotal) : map_.live();
  }
  bool list_ids_impl(std::vector<int64_t>& out) const override {
    if (auto* v = ivf()) {
      for (const auto& [id, at] : v->direct_map.hashtable) out.push_back(int64_t(id));
    } else {
      for (int64_t id : map_.ids())
        if (id >= 0 && map_.contains(id)) out.push_back(id);
    }
    return true;
  }
  bool contains_impl(int64_t id) const override {
    if (auto* v = ivf()) return v->direct_map.hashtable.count(id) != 0;  // set in make_index()
    return map_.contains(id);
  }
  void clear_impl() override {
    auto fresh = make_index();
    index_ = std::move(fresh);
    coarse_t_.clear();
    coarse_t_of_ = nullptr;
    aug_norm_sq_ = 0.f;
    map_.clear();
    removed_.clear();
    removed_count_ = 0;
  }

  std::string search_params_impl() const override {
    if (const auto* v = ivf()) return "nprobe=" + std::to_string(v->nprobe);
    if (const auto* h = hnsw()) return "ef=" + std::to_string(ef_search_ > 0 ? ef_search_ : h->hnsw.efSearch);
    return {};
  }

  void set_param_impl(const std::string& name, double value) override {
    const std::string who = "faiss:" + factory_;
    if (name == "nprobe" && ivf()) {
      nprobe_ = int(detail::integer_param(who, name, value, 1, 1 << 24));
      ivf()->nprobe = size_t(nprobe_);  // fast-scan reads the index's
    } else if (name == "ef" && hnsw()) {  // the name every store uses for a graph's search breadth
      hnsw()->hnsw.efSearch = ef_search_ = int(detail::integer_param(who, name, value, 1, 100000));
    } else if (name == "efSearch" || name == "faiss_scan" || name == "faiss_build") {
      throw InvalidArgument(who + ": '" + name + "' is " +
                            (name == "efSearch" ? std::string("named ef on every store (faiss:HNSW32?ef=128)")
                                                : std::string("a mode, fixed when the store is made: give it among the "
                                                              "build parameters (faiss:IVF4096,PQ32x4fs,faiss_scan=1)")));
    } else {
      throw InvalidArgument(who + ": unknown search parameter '" + name + "' (IVF indexes take nprobe, HNSW indexes ef)");
    }
  }

  // The payload: the Faiss index in a put() frame of bytes (write_index streamed into the
  // file: its size is counted by one serialisation first), the id map, the removed bitmap,
  // the search parameters and the MIPS bound.
  std::function<void(StoreWriter&)> payload_writer_impl() const override {
    const uint64_t index_bytes = guarded("write_index", [&] {
      SinkWriter count(nullptr);
      faiss::write_index(index_.get(), &count);
      return count.bytes;
    });
    return [this, index_bytes](StoreWriter& out) {
      out.write(&index_bytes, 8);
      SinkWriter w(&out);
      guarded("write_index", [&] {
        faiss::write_index(index_.get(), &w);
        return 0;
      });
      if (w.bytes != index_bytes) throw Error("faiss store: the index changed size while it was written");
      put(out, map_.ids().data(), map_.ids().size());
      put(out, removed_.data(), removed_.size());
      const int32_t params[2] = {nprobe_, ef_search_};  // search parameters travel with the file
      put(out, params, 2);
      put(out, &aug_norm_sq_, 1);  // the MIPS reduction's bound (0 without it)
    };
  }

  // read_index trusts its input: the payload's checksum is verified before it is parsed
  // (VectorStore::load). A crafted file with a valid checksum can still make Faiss allocate what
  // it states: faiss: store files are trusted input (README).
  bool verify_payload_first_impl() const override { return true; }

  std::function<void()> read_payload_impl(StoreReader& in, int64_t count) override {
    FrameReader r(in, in.begin_frame(1));
    // Held through a shared pointer only because std::function needs a copyable closure.
    auto staged = std::make_shared<std::unique_ptr<faiss::Index>>();
    try {
      detail::PolicyThreads threads;
      staged->reset(faiss::read_index(&r));
    } catch (const faiss::FaissException& e) {
      throw FormatError(std::string("faiss store payload: read_index failed: ") + e.what());
    }
    if (r.left() != 0) throw FormatError(in.what() + ": the Faiss index ends before its frame does");
    faiss::Index* idx = staged->get();
    if (idx->d != dim() + (mips_ ? 1 : 0)) throw FormatError("faiss store payload: index dimension differs");
    if (auto* v = faiss::ivflib::try_extract_index_ivf(idx)) {
      const std::string why = ivf::why_not_editable(*v);
      if (!why.empty()) throw FormatError(in.what() + ": an IVF index mindrec cannot write (" + why + ")");
    }
    std::vector<int64_t> id_of = in.get_vector<int64_t>();
    auto removed = std::make_shared<std::vector<uint8_t>>(in.get_vector<uint8_t>());
    int32_t params[2];
    in.get(params, 2);
    float bound = 0.f;
    in.get(&bound, 1);
    if (!std::isfinite(bound) || bound < 0.f) throw FormatError("faiss store payload: bad MIPS bound");
    auto map = std::make_shared<IdMap>();
    int64_t removed_count = 0;
    const bool is_ivf = faiss::ivflib::try_extract_index_ivf(idx) != nullptr;
    if (!is_ivf) {
      if (int64_t(id_of.size()) != idx->ntotal || removed->size() != (id_of.size() + 7) / 8)
        throw FormatError("faiss store payload: id map does not match the index");
      map->assign(std::move(id_of), removed.get(), "faiss store payload");
      removed_count = map->rows() - map->live();
      if (map->live() != count) throw FormatError("faiss store payload: count differs from the header");
    } else if (idx->ntotal != count) {
      throw FormatError("faiss store payload: count differs from the header");
    }
    auto blocks = std::make_shared<std::vector<float>>(ivf::block_centroids(*idx));
    return [this, staged, map, removed, removed_count, params0 = params[0], params1 = params[1], bound, blocks] {
      index_ = std::move(*staged);
      coarse_t_ = std::move(*blocks);
      coarse_t_of_ = coarse_t_.empty() ? nullptr : ivf()->quantizer;
      map_ = std::move(*map);
      removed_ = std::move(*removed);
      removed_count_ = removed_count;
      nprobe_ = params0;
      ef_search_ = params1;
      aug_norm_sq_ = bound;
      if (auto* h = hnsw(); h && ef_search_ > 0) h->hnsw.efSearch = ef_search_;
      if (auto* v = ivf(); v && nprobe_ > 0) v->nprobe = size_t(nprobe_);  // fast-scan reads the index's own
    };
  }

  std::string factory_;
  std::unique_ptr<faiss::Index> index_;
  IdMap map_;                      // non-IVF: position <-> id (removed positions: tombstones)
  std::vector<uint8_t> removed_;  // non-IVF: bitmap of removed positions
  int64_t removed_count_ = 0;
  int32_t nprobe_ = 0, ef_search_ = 0;
  ivf::CentroidBlocks coarse_blocks() const { return {&coarse_t_, coarse_t_of_}; }
  std::vector<float> coarse_t_;                 // block_centroids() of index_ ...
  const faiss::Index* coarse_t_of_ = nullptr;   // ... for this quantizer (null: none)
  bool faiss_scan_ = false;  // IVF: Faiss's own list scan (a baseline) instead of mindrec's (build option)
  bool faiss_build_ = false;  // IVF: Faiss's own train and add for the first batch (a baseline; build option)
  bool mips_ = false;        // HNSW (flat storage) under inner product: reduced to L2
  float aug_norm_sq_ = 0.f;  // the reduction's bound M on |x|^2
};

}  // namespace

std::unique_ptr<VectorStore> make_faiss_store(const std::string& base, int dim, Metric metric) {
  // `base` = "faiss:<factory>" (search parameters were split off by make_vector_store).
  // Build options follow the factory's components as name=value (Faiss's components hold no
  // '='): faiss_scan=1, Faiss's own IVF list scan instead of mindrec's; faiss_build=1, Faiss's
  // own k-means and add_with_ids for an IVF's first batch instead of mindrec's (ivf_build.hpp)
  // (benchmark baselines).
  std::string factory;
  bool faiss_scan = false, faiss_build = false;
  std::stringstream parts(base.substr(6));
  for (std::string part; std::getline(parts, part, ',');) {
    if (part.find('=') == std::string::npos) {
      factory += (factory.empty() ? "" : ",") + part;
      continue;
    }
    if (part == "faiss_scan=1" || part == "faiss_scan=0") faiss_scan = part.back() == '1';
    else if (part == "faiss_build=1" || part == "faiss_build=0") faiss_build = part.back() == '1';
    else
      throw InvalidArgument("vector store '" + base + "': unknown build option '" + part +
                            "' (after the factory's components: faiss_scan=0|1, faiss_build=0|1)");
  }
  if (factory.empty()) throw InvalidArgument("vector store '" + base + "': empty Faiss factory string");
  return std::make_unique<FaissStore>(base, factory, faiss_scan, faiss_build, dim, metric);
}

}  // namespace mindrec::store
