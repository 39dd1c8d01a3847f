// Private: the built-in exact store ("flat"): vectors in row order in host memory, searched
// by exact_topk. cuda:flat (cuda/cuda_flat_store.cpp) derives from it for its host copy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mindrec/aligned.hpp"
#include "mindrec/vector_store.hpp"
#include "store/id_map.hpp"

namespace mindrec::store {

class FlatStore : public VectorStore {
 public:
  FlatStore(int dim, Metric metric) : FlatStore("flat", dim, metric) {}

 protected:
  FlatStore(std::string backend, int dim, Metric metric) : VectorStore(std::move(backend), dim, metric) {}
  void add_impl(int64_t n, const float* x, const int64_t* ids) override;
  void add_owned_impl(int64_t n, AlignedVector<float>& x, const int64_t* ids) override;
  int64_t remove_impl(int64_t n, const int64_t* ids) override;
  /// New ids appended, stored ones overwritten in place, in one exclusive section.
  void upsert_impl(int64_t n, const float* x, const int64_t* ids,
                   const std::vector<int64_t>& stored) override;
  void reconstruct_impl(int64_t id, float* out) const override;
  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores,
                   const SearchContext& ctx) const override;
  std::vector<std::string> search_param_names_impl() const override { return {"threads"}; }
  /// Its own scan is exact with a filter; the id-by-id path wins only for small sets.
  double exact_filter_fraction_impl(const SearchContext&) const override { return 0.05; }
  int64_t size_impl() const override { return map_.rows(); }
  bool list_ids_impl(std::vector<int64_t>& out) const override {
    out.insert(out.end(), map_.ids().begin(), map_.ids().end());
    return true;
  }
  bool contains_impl(int64_t id) const override { return map_.contains(id); }
  void clear_impl() override;
  void set_param_impl(const std::string& name, double value) override;
  std::function<void(StoreWriter&)> payload_writer_impl() const override;
  std::function<void()> read_payload_impl(StoreReader& in, int64_t count) override;

  /// Larger copies of data_ and half_norm_ when `more` rows would not fit, made while
  /// searches go on (the caller holds the writers' lock); empty when they fit.
  struct Grown {
    AlignedVector<float> data;
    std::vector<float> half;
  };
  Grown grow_aside(int64_t more) const;
  /// Appends rows which[0..n) of x/ids, or the first n if `which` is null (under the
  /// exclusive lock, after grow_aside): applies whole or not at all.
  void append_rows(int64_t n, const float* x, const int64_t* ids, Grown& grown, const int64_t* which);
  /// Called inside the exclusive section of every write that changed the rows (add, upsert,
  /// remove, clear, load), after the change: a derived copy (cuda:flat's device copy) is
  /// marked stale in the same section. Must not throw.
  virtual void rows_changed() noexcept {}

  AlignedVector<float> data_;     // [n, dim], row r holds map_.id_at(r)
  IdMap map_;                     // no tombstones: removal moves the last row into the hole
  std::vector<float> half_norm_;  // -|x|^2 / 2 per row, kept for L2 stores only
  int threads_ = 0;
};

}  // namespace mindrec::store
