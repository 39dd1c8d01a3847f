#include "store/flat_store.hpp"

#include <algorithm>
#include <cmath>

#include "detail/fault.hpp"
#include "detail/huge_vector.hpp"
#include "detail/parallel.hpp"
#include "detail/params.hpp"
#include "detail/vector_math.hpp"
#include "mindrec/error.hpp"
#include "mindrec/topk.hpp"
#include "store/backends.hpp"
#include "store/store_io.hpp"
#include "store/topk_select.hpp"

namespace mindrec::store {

FlatStore::Grown FlatStore::grow_aside(int64_t more) const {
  Grown g;
  const size_t need = (size_t(map_.rows()) + size_t(more)) * size_t(dim());
  if (data_.capacity() < need) {  // the copy of the table happens here, not under the lock
    g.data.reserve(std::max(need, data_.capacity() + data_.capacity() / 2));
    g.data.assign(data_.begin(), data_.end());
  }
  if (metric() == Metric::l2 && half_norm_.capacity() < half_norm_.size() + size_t(more)) {
    g.half.reserve(std::max(half_norm_.size() + size_t(more), half_norm_.capacity() * 3 / 2));
    g.half.assign(half_norm_.begin(), half_norm_.end());
  }
  detail::fault_point("flat.add.grow");
  return g;
}

void FlatStore::append_rows(int64_t n, const float* x, const int64_t* ids, Grown& grown, const int64_t* which) {
  // Rows which[0..n) of x/ids (all n rows in order if `which` is null), without copying x.
  const int d = dim();
  const bool l2 = metric() == Metric::l2;
  const int64_t old_rows = map_.rows();
  auto row = [&](int64_t i) { return which ? which[i] : i; };
  if (grown.data.capacity()) data_.swap(grown.data);  // same contents, room for n more
  if (grown.half.capacity()) half_norm_.swap(grown.half);
  if (!which) {
    data_.insert(data_.end(), x, x + n * d);  // within capacity: cannot throw
  } else {
    for (int64_t i = 0; i < n; ++i) data_.insert(data_.end(), x + row(i) * d, x + (row(i) + 1) * d);
  }
  if (l2)
    for (int64_t i = 0; i < n; ++i) half_norm_.push_back(float(-0.5 * detail::squared_norm(x + row(i) * d, d)));
  int64_t done = 0;
  try {
    for (; done < n; ++done) {
      detail::fault_point("flat.add.map");
      map_.append(ids[row(done)]);  // may allocate (hashed ids)
    }
  } catch (...) {
    while (done > 0) {
      --done;
      map_.move_last_into(map_.forget(ids[row(done)]));
    }
    data_.resize(size_t(old_rows) * d);
    if (l2) half_norm_.resize(size_t(old_rows));
    throw;
  }
}

void FlatStore::add_impl(int64_t n, const float* x, const int64_t* ids) {
  Grown grown = grow_aside(n);
  exclusive([&] {
    append_rows(n, x, ids, grown, nullptr);
    rows_changed();
  });
}

void FlatStore::add_owned_impl(int64_t n, AlignedVector<float>& x, const int64_t* ids) {
  if (map_.rows() > 0) return add_impl(n, x.data(), ids);
  // An empty store: the buffer becomes the table (no copy); the id map and the norms are made
  // aside, and swapped in with it.
  IdMap map;
  map.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    detail::fault_point("flat.add.map");
    map.append(ids[i]);
  }
  std::vector<float> half;
  if (metric() == Metric::l2) {
    half.resize(size_t(n));
    const int d = dim();
    for (int64_t i = 0; i < n; ++i) half[size_t(i)] = float(-0.5 * detail::squared_norm(x.data() + i * d, d));
  }
  exclusive([&] {
    data_.swap(x);  // (x takes the empty table's storage: the caller frees it)
    map_ = std::move(map);
    half_norm_.swap(half);
    rows_changed();
  });
}

void FlatStore::upsert_impl(int64_t n, const float* x, const int64_t* ids,
                            const std::vector<int64_t>& stored) {
  if (stored.empty()) return add_impl(n, x, ids);  // all new: no index list, no copy
  const int d = dim();
  std::vector<int64_t> fresh;                             // indices of the new ids
  std::vector<std::pair<int64_t, const float*>> replace;  // row, new vector
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = map_.find(ids[i]);
    if (row >= 0) replace.emplace_back(row, x + i * d);
    else fresh.push_back(i);
  }
  Grown grown = grow_aside(static_cast<int64_t>(fresh.size()));
  exclusive([&] {
    append_rows(static_cast<int64_t>(fresh.size()), x, ids, grown, fresh.data());
    for (const auto& [row, v] : replace) {  // cannot throw
      std::copy(v, v + d, data_.begin() + row * d);
      if (metric() == Metric::l2) half_norm_[size_t(row)] = float(-0.5 * detail::squared_norm(v, d));
    }
    rows_changed();
  });
}

void FlatStore::reconstruct_impl(int64_t id, float* out) const {
  const int64_t row = map_.find(id);
  std::copy(data_.begin() + row * dim(), data_.begin() + (row + 1) * dim(), out);
}

int64_t FlatStore::remove_impl(int64_t n, const int64_t* ids) {
  const int d = dim();
  const bool l2 = metric() == Metric::l2;
  int64_t removed = 0;
  exclusive([&] {  // nothing here allocates: the map forgets, rows move down
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = map_.forget(ids[i]);
      if (row < 0) continue;
      const int64_t last = map_.move_last_into(row);  // the last row fills the hole
      if (row != last) {
        std::copy(data_.begin() + last * d, data_.begin() + (last + 1) * d, data_.begin() + row * d);
        if (l2) half_norm_[size_t(row)] = half_norm_[size_t(last)];
      }
      data_.resize(size_t(last) * d);
      if (l2) half_norm_.pop_back();
      ++removed;
    }
    if (removed) rows_changed();
  });
  return removed;
}

void FlatStore::search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores,
                            const SearchContext& ctx) const {
  const bool l2 = metric() == Metric::l2;
  const int threads = int(detail::integer_param("flat store", "threads", ctx.param("threads", threads_), 0, 4096));
  // L2 ranks by q.x - |x|^2/2 (= -(|q-x|^2 - |q|^2)/2), then converts to distances.
  if (ctx.filtered()) {
    // Inside the scan: a row enters a query's top-k only if its id is allowed (asked only of
    // rows whose score reaches the bar), so the result is the exact top-k among allowed items.
    exact_topk_filtered(data_.data(), map_.rows(), dim(), q, nq, k, ids, scores, threads,
                        l2 ? half_norm_.data() : nullptr,
                        [&](int64_t qi, int64_t row) { return ctx.allows(qi, map_.id_at(row)); });
  } else {
    exact_topk(data_.data(), map_.rows(), dim(), q, nq, k, ids, scores, threads,
               l2 ? half_norm_.data() : nullptr);
  }
  for (int64_t i = 0; i < nq; ++i) {
    const double qn = l2 ? detail::squared_norm(q + i * dim(), dim()) : 0.0;
    for (int j = 0; j < k; ++j) {
      int64_t& id = ids[i * k + j];
      if (id < 0) continue;
      id = map_.id_at(id);
      if (l2) scores[i * k + j] = float(std::max(0.0, qn - 2.0 * scores[i * k + j]));
    }
  }
}

void FlatStore::clear_impl() {  // under the exclusive lock (VectorStore::clear)
  data_.clear();
  half_norm_.clear();
  map_.clear();
  rows_changed();
}

void FlatStore::set_param_impl(const std::string& name, double value) {
  if (name != "threads") throw InvalidArgument("flat store: unknown search parameter '" + name + "' (it has 'threads')");
  threads_ = int(detail::integer_param("flat store", name, value, 0, 4096, " (0 = the thread policy's)"));
}

std::function<void(StoreWriter&)> FlatStore::payload_writer_impl() const {
  return [this](StoreWriter& out) {
    put(out, map_.ids().data(), map_.ids().size());
    put(out, data_.data(), data_.size());
  };
}

std::function<void()> FlatStore::read_payload_impl(StoreReader& in, int64_t count) {
  const int d = dim();
  // Each vector takes an id and dim floats: a count the payload cannot hold is refused before
  // anything is allocated for it.
  if (count > int64_t(in.remaining() / (sizeof(int64_t) + sizeof(float) * size_t(d))))
    throw FormatError(in.what() + ": the header's count " + std::to_string(count) +
                      " does not fit in " + std::to_string(in.remaining()) + " bytes");
  struct Staged {
    IdMap map;
    AlignedVector<float> data;
    std::vector<float> half;
  };
  auto st = std::make_shared<Staged>();
  std::vector<int64_t> ids(static_cast<size_t>(count));
  in.get(ids.data(), ids.size());
  // Read straight into the store's array, on huge pages (the zero fill faults in 2 MiB at a time).
  detail::assign_on_huge_pages(st->data, static_cast<size_t>(count) * d, 0.0f);
  in.get(st->data.data(), st->data.size());
  // A NaN or Inf row would reach the k-selection's comparisons (review F30). Checked on all
  // cores (one thread's pass over 5 GB was 18% of a 20M-item load); the first such row named.
  if (const int64_t bad = detail::first_non_finite_row(st->data.data(), count, d); bad < count)
    throw FormatError(in.what() + ": vector " + std::to_string(bad) + " holds NaN or Inf");
  if (metric() == Metric::l2)
    for (int64_t i = 0; i < count; ++i)
      st->half.push_back(float(-0.5 * detail::squared_norm(&st->data[size_t(i) * d], d)));
  st->map.assign(std::move(ids), nullptr, "flat store payload");
  return [this, st] {  // under the exclusive lock (VectorStore::load)
    map_ = std::move(st->map);
    data_ = std::move(st->data);
    half_norm_ = std::move(st->half);
    rows_changed();
  };
}

std::unique_ptr<VectorStore> make_flat_store(int dim, Metric metric) {
  return std::make_unique<FlatStore>(dim, metric);
}

}  // namespace mindrec::store
