// cuda:flat: the flat store's host copy (add, remove, save, load as `flat`) mirrored on the
// GPU, where searches run (flat_index_cuda.cu). The device copy is refreshed by the first
// search after a change; multi-interest recall is merged on the device.
#include <mutex>

#include "flat_index_cuda.hpp"  // plain pointers only
#include "mindrec/error.hpp"
#include "store/backends.hpp"
#include "store/flat_store.hpp"

namespace mindrec::store {
namespace {

class CudaFlatStore final : public FlatStore {
 public:
  CudaFlatStore(int dim, Metric metric)
      : FlatStore("cuda:flat", dim, metric),
        gpu_(std::make_unique<cuda::FlatIndexCuda>(dim, metric == Metric::l2, 0)) {}

 private:
  // The device copy is marked stale in the same exclusive section as the host change (the
  // preparation of the host copy then runs under that lock too).
  void add_impl(int64_t n, const float* x, const int64_t* ids) override {
    exclusive([&] {
      FlatStore::add_impl(n, x, ids);
      dirty_ = true;
    });
  }
  void upsert_impl(int64_t n, const float* x, const int64_t* ids, const std::vector<int64_t>& stored) override {
    exclusive([&] {
      FlatStore::upsert_impl(n, x, ids, stored);
      dirty_ = true;
    });
  }
  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    int64_t r = 0;
    exclusive([&] {
      r = FlatStore::remove_impl(n, ids);
      dirty_ = true;
    });
    return r;
  }
  void clear_impl() override {
    FlatStore::clear_impl();
    dirty_ = true;
  }
  std::function<void()> read_payload_impl(PayloadSource& in, int64_t count) override {
    auto commit = FlatStore::read_payload_impl(in, count);
    return [this, commit] {
      commit();
      dirty_ = true;
    };
  }
  void set_param_impl(const std::string& name, double) override {
    throw InvalidArgument("cuda:flat: unknown search parameter '" + name + "' (it has none)");
  }
  // Writers hold the store's exclusive lock, searches a shared one: several searches may
  // race to refresh the device copy, hence the mutex.
  void sync() const {
    std::lock_guard<std::mutex> lock(sync_mutex_);
    if (!dirty_) return;
    gpu_->set(data_.data(), map_.ids().data(), map_.rows());
    dirty_ = false;
  }
  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores) const override {
    sync();
    gpu_->search(nq, q, k, ids, scores);
  }
  bool search_merged_impl(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                          int topn, int64_t* ids, float* scores) const override {
    if (K * fetch > cuda::FlatIndexCuda::kMaxPool || fetch > cuda::FlatIndexCuda::kMaxK) return false;
    sync();
    gpu_->search_merged(users, K, counts, queries, fetch, topn, ids, scores);
    return true;
  }

  std::unique_ptr<cuda::FlatIndexCuda> gpu_;
  mutable std::mutex sync_mutex_;
  mutable bool dirty_ = true;
};

}  // namespace

std::unique_ptr<VectorStore> make_cuda_flat_store(int dim, Metric metric) {
  return std::make_unique<CudaFlatStore>(dim, metric);
}

}  // namespace mindrec::store
