#include "store/flat_store.hpp"

#include <algorithm>
#include <cmath>

#include "detail/vector_math.hpp"
#include "mindrec/error.hpp"
#include "mindrec/topk.hpp"
#include "store/backends.hpp"
#include "store/store_io.hpp"

namespace mindrec::store {

void FlatStore::add_impl(int64_t n, const float* x, const int64_t* ids) {
  const int d = dim();
  const bool l2 = metric() == Metric::l2;
  data_.insert(data_.end(), x, x + n * d);
  for (int64_t i = 0; i < n; ++i) {
    map_.append(ids[i]);
    if (l2) half_norm_.push_back(float(-0.5 * detail::squared_norm(x + i * d, d)));
  }
}

int64_t FlatStore::remove_impl(int64_t n, const int64_t* ids) {
  const int d = dim();
  const bool l2 = metric() == Metric::l2;
  int64_t removed = 0;
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
  return removed;
}

void FlatStore::search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores) const {
  const bool l2 = metric() == Metric::l2;
  // L2 ranks by q.x - |x|^2/2 (= -(|q-x|^2 - |q|^2)/2), then converts to distances.
  exact_topk(data_.data(), map_.rows(), dim(), q, nq, k, ids, scores, threads_,
             l2 ? half_norm_.data() : nullptr);
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

void FlatStore::clear_impl() {
  data_.clear();
  half_norm_.clear();
  map_.clear();
}

void FlatStore::set_param_impl(const std::string& name, double value) {
  if (name != "threads" || value < 0)
    throw InvalidArgument("flat store: unknown search parameter '" + name + "' (it has 'threads')");
  threads_ = static_cast<int>(value);
}

std::function<void(PayloadSink&)> FlatStore::payload_writer_impl() const {
  return [this](PayloadSink& out) {
    put(out, map_.ids().data(), map_.ids().size());
    put(out, data_.data(), data_.size());
  };
}

std::function<void()> FlatStore::read_payload_impl(PayloadSource& in, int64_t count) {
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
  st->data.resize(static_cast<size_t>(count) * d);  // read straight into the store's array
  in.get(st->data.data(), st->data.size());
  if (metric() == Metric::l2)
    for (int64_t i = 0; i < count; ++i)
      st->half.push_back(float(-0.5 * detail::squared_norm(&st->data[size_t(i) * d], d)));
  st->map.assign(std::move(ids), nullptr, "flat store payload");
  return [this, st] {
    map_ = std::move(st->map);
    data_ = std::move(st->data);
    half_norm_ = std::move(st->half);
  };
}

std::unique_ptr<VectorStore> make_flat_store(int dim, Metric metric) {
  return std::make_unique<FlatStore>(dim, metric);
}

}  // namespace mindrec::store
