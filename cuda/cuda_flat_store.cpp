// cuda:flat: the flat store's host copy (add, remove, save, load as `flat`) mirrored on the
// GPU, where searches run (flat_index_cuda.cu); multi-interest recall is merged on the device.
// After each write the device copy is uploaded aside and swapped in; meanwhile searches scan
// the host copy.
#include <mutex>

#include "detail/fault.hpp"
#include "flat_index_cuda.hpp"  // plain pointers only
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "store/backends.hpp"
#include "store/flat_store.hpp"

namespace mindrec::store {
namespace {

class CudaFlatStore final : public FlatStore {
 public:
  CudaFlatStore(int dim, Metric metric)
      : FlatStore("cuda:flat", dim, metric),
        gpu_(std::make_shared<cuda::FlatIndexCuda>(dim, metric == Metric::l2, 0)) {}

 private:
  // A write marks the device copy stale in the same exclusive section as its host change
  // (FlatStore calls rows_changed there; its larger buffer is made aside, before that
  // section: review F8); after it, the new device copy is uploaded aside into a second device
  // index while searches go on (on the host copy, exact like the device: same scores to float
  // rounding, same tie rule), then swapped in. Device memory holds two copies during the upload.
  void rows_changed() noexcept override { mark_stale(); }
  void set_param_impl(const std::string& name, double) override {
    throw InvalidArgument("cuda:flat: unknown search parameter '" + name + "' (it has none)");
  }

  void mark_stale() noexcept {
    std::lock_guard<std::mutex> lock(gpu_mutex_);  // (std::mutex::lock throws only on misuse)
    stale_ = true;
  }
  // The writers' lock is held: the host copy cannot change while it is read here.
  void after_write_impl() override {
    {
      std::lock_guard<std::mutex> lock(gpu_mutex_);
      if (!stale_) return;
    }
    try {
      auto fresh = std::make_shared<cuda::FlatIndexCuda>(dim(), metric() == Metric::l2, 0);
      fresh->set(data_.data(), map_.ids().data(), map_.rows());
      detail::fault_point("cuda_flat.upload");
      std::lock_guard<std::mutex> lock(gpu_mutex_);
      gpu_ = std::move(fresh);
      stale_ = false;
    } catch (const std::exception& e) {
      // The write stands; searches stay on the host copy until an upload succeeds.
      log(LogLevel::warn, std::string("cuda:flat: device copy not refreshed, searching the host copy: ") + e.what());
    }
  }
  // The device index to search, or null while the device copy is stale.
  std::shared_ptr<cuda::FlatIndexCuda> device() const {
    std::lock_guard<std::mutex> lock(gpu_mutex_);
    return stale_ ? nullptr : gpu_;
  }
  // Filters and exclusions: not on the device (no GPU here to verify a device filter on).
  bool supports_filter_impl() const override { return false; }
  double exact_filter_fraction_impl(const SearchContext&) const override { return 0; }
  std::vector<std::string> search_param_names_impl() const override { return {}; }
  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores,
                   const SearchContext& ctx) const override {
    const auto g = device();
    if (!g || k > cuda::FlatIndexCuda::kMaxK) return FlatStore::search_impl(nq, q, k, ids, scores, ctx);
    g->search(nq, q, k, ids, scores);
  }
  bool search_merged_impl(int64_t users, int K, const int32_t* counts, const float* queries, int fetch,
                          int topn, int64_t* ids, float* scores) const override {
    if (K * fetch > cuda::FlatIndexCuda::kMaxPool || fetch > cuda::FlatIndexCuda::kMaxK) return false;
    const auto g = device();
    if (!g) return false;  // recall_items searches the host copy and merges on the host
    g->search_merged(users, K, counts, queries, fetch, topn, ids, scores);
    return true;
  }

  std::shared_ptr<cuda::FlatIndexCuda> gpu_;  // searched while !stale_
  mutable std::mutex gpu_mutex_;              // guards gpu_ and stale_
  bool stale_ = false;                        // an empty store's device copy is current
};

}  // namespace

std::unique_ptr<VectorStore> make_cuda_flat_store(int dim, Metric metric) {
  return std::make_unique<CudaFlatStore>(dim, metric);
}

}  // namespace mindrec::store
