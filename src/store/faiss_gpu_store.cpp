// faiss-gpu:<Flat|IVF{n},Flat>[?nprobe=..]: Faiss's GPU indexes behind the VectorStore
// interface. Built only with a GPU-enabled Faiss (scripts/build-faiss-gpu.sh; detected by a
// compile probe, MINDREC_HAS_FAISS_GPU).
//
// Faiss's GPU indexes keep no user ids (GpuIndexFlat) and cannot remove_ids, so the store
// keeps a host copy of the vectors in position order with a position -> id map; removing
// compacts the host copy and re-adds it (an IVF index keeps its trained quantizer). Saving
// copies the index to a CPU index (index_gpu_to_cpu) and writes it with the id map; loading
// copies it back to the device. faiss::gpu functions abort on CUDA errors, so the device
// count is checked with mindrec's own (non-aborting) query first.
#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/gpu/GpuCloner.h>
#include <faiss/gpu/GpuIndexIVF.h>
#include <faiss/gpu/StandardGpuResources.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "mindrec/aligned.hpp"
#include "mindrec/device.hpp"
#include "detail/fault.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"
#include "store/backends.hpp"
#include "store/faiss_guard.hpp"
#include "store/id_map.hpp"
#include "store/store_io.hpp"

namespace mindrec::store {
namespace {

class FaissGpuStore final : public VectorStore {
 public:
  FaissGpuStore(const std::string& backend, std::string factory, int dim, Metric metric)
      : VectorStore(backend, dim, metric), factory_(std::move(factory)) {
    if (factory_ != "Flat" && (factory_.rfind("IVF", 0) != 0 || factory_.size() < 9 ||
                               factory_.compare(factory_.size() - 5, 5, ",Flat") != 0))
      throw InvalidArgument("faiss-gpu: '" + factory_ + "' is not supported (use Flat or IVF<n>,Flat)");
    if (cuda_device_count() == 0) throw CudaError("faiss-gpu: no CUDA device on this host");
    res_ = std::make_unique<faiss::gpu::StandardGpuResources>();
    index_ = make_gpu_index(nullptr);
  }

 private:
  template <class Fn>
  auto guarded(const char* what, Fn&& fn) const {
    return faiss_guarded("faiss-gpu (" + factory_ + ")", what, std::forward<Fn>(fn));
  }

  // A GPU index from `cpu` (a trained or loaded CPU index), or a fresh one from the factory.
  std::unique_ptr<faiss::Index> make_gpu_index(const faiss::Index* cpu) const { return make_gpu_index(cpu, nprobe_); }
  std::unique_ptr<faiss::Index> make_gpu_index(const faiss::Index* cpu, int32_t nprobe) const {
    return guarded("index_cpu_to_gpu", [&] {
      std::unique_ptr<faiss::Index> fresh;
      if (!cpu) {
        fresh.reset(faiss::index_factory(dim(), factory_.c_str(),
                                         metric() == Metric::inner_product ? faiss::METRIC_INNER_PRODUCT
                                                                           : faiss::METRIC_L2));
        cpu = fresh.get();
      }
      std::unique_ptr<faiss::Index> g(faiss::gpu::index_cpu_to_gpu(res_.get(), 0, cpu));
      if (auto* ivf = dynamic_cast<faiss::gpu::GpuIndexIVF*>(g.get()); ivf && nprobe > 0) ivf->setNumProbes(nprobe);
      return g;
    });
  }

  // Puts the device index back to host_'s vectors (after a failure mid-way).
  void restore_device() {
    guarded("restore", [&] {
      index_->reset();
      if (map_.rows() > 0) index_->add(map_.rows(), host_.data());
      return 0;
    });
  }

  void add_impl(int64_t n, const float* x, const int64_t* ids) override {
    exclusive([&] {
      host_.reserve(host_.size() + size_t(n) * dim());  // the appends below cannot reallocate
      map_.reserve(n);
      const int64_t old_rows = map_.rows();
      guarded("add", [&] {
        if (!index_->is_trained) index_->train(n, x);
        index_->add(n, x);
        return 0;
      });
      int64_t done = 0;
      try {
        host_.insert(host_.end(), x, x + n * dim());
        for (; done < n; ++done) {
          detail::fault_point("faiss_gpu.add.map");
          map_.append(ids[done]);
        }
      } catch (...) {
        while (done > 0) map_.move_last_into(map_.forget(ids[--done]));
        host_.resize(size_t(old_rows) * dim());
        restore_device();
        throw;
      }
    });
  }

  void reconstruct_impl(int64_t id, float* out) const override {
    const int64_t p = map_.find(id);
    std::copy(host_.begin() + p * dim(), host_.begin() + (p + 1) * dim(), out);
  }

  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    // What stays is gathered aside (searches go on); the device index is rebuilt under the
    // lock (its searches share one stream with it anyway).
    int64_t removed = 0;
    std::vector<uint8_t> gone(size_t(map_.rows()), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t p = map_.find(ids[i]);
      if (p < 0 || gone[size_t(p)]) continue;
      gone[size_t(p)] = 1;
      ++removed;
    }
    if (removed == 0) return 0;
    const int d = dim();
    AlignedVector<float> keep;
    std::vector<int64_t> keep_ids;
    for (size_t p = 0; p < size_t(map_.rows()); ++p) {
      if (gone[p]) continue;
      keep.insert(keep.end(), host_.begin() + long(p) * d, host_.begin() + long(p + 1) * d);
      keep_ids.push_back(map_.id_at(int64_t(p)));
    }
    IdMap map;
    map.assign(std::move(keep_ids), nullptr, "faiss-gpu store");
    exclusive([&] {
      try {
        guarded("rebuild", [&] {
          index_->reset();  // an IVF index keeps its trained quantizer
          if (map.rows() > 0) index_->add(map.rows(), keep.data());
          return 0;
        });
      } catch (...) {
        restore_device();
        throw;
      }
      host_ = std::move(keep);
      map_ = std::move(map);
    });
    return removed;
  }

  // Filters and exclusions: not on the device (no GPU here to verify Faiss GPU's selectors on).
  bool supports_filter_impl() const override { return false; }
  double exact_filter_fraction_impl(const SearchContext&) const override { return 0; }
  void search_impl(int64_t nq, const float* q, int k, int64_t* ids, float* scores,
                   const SearchContext&) const override {
    std::lock_guard<std::mutex> lock(search_mutex_);  // one GPU stream per resources object
    guarded("search", [&] {
      index_->search(nq, q, k, scores, ids);
      return 0;
    });
    for (int64_t i = 0; i < nq * k; ++i)
      if (ids[i] >= 0) ids[i] = map_.id_at(ids[i]);
  }

  int64_t size_impl() const override { return map_.rows(); }
  bool contains_impl(int64_t id) const override { return map_.contains(id); }
  void clear_impl() override {
    guarded("reset", [&] {
      index_->reset();
      return 0;
    });
    host_.clear();
    map_.clear();
  }
  std::string search_params_impl() const override {
    return nprobe_ > 0 ? "nprobe=" + std::to_string(nprobe_) : "";
  }

  void set_param_impl(const std::string& name, double value) override {
    auto* ivf = dynamic_cast<faiss::gpu::GpuIndexIVF*>(index_.get());
    if (name != "nprobe" || !ivf || value < 1)
      throw InvalidArgument("faiss-gpu:" + factory_ + ": unknown or invalid search parameter '" + name +
                            "' (IVF indexes take nprobe >= 1)");
    nprobe_ = int(value);
    guarded("setNumProbes", [&] {
      ivf->setNumProbes(nprobe_);
      return 0;
    });
  }

  std::function<void(StoreWriter&)> payload_writer_impl() const override {
    // Faiss serialises into its own buffer (once; save calls the writer twice).
    auto index_bytes = std::make_shared<std::vector<uint8_t>>(guarded("write_index", [&] {
      std::unique_ptr<faiss::Index> cpu(faiss::gpu::index_gpu_to_cpu(index_.get()));
      faiss::VectorIOWriter w;
      faiss::write_index(cpu.get(), &w);
      return std::move(w.data);
    }));
    return [this, index_bytes](StoreWriter& out) {
      put(out, index_bytes->data(), index_bytes->size());
      put(out, map_.ids().data(), map_.ids().size());
      put(out, host_.data(), host_.size());
      const int32_t nprobe = nprobe_;
      put(out, &nprobe, 1);
    };
  }

  bool verify_payload_first_impl() const override { return true; }  // read_index trusts its input

  std::function<void()> read_payload_impl(StoreReader& in, int64_t count) override {
    faiss::VectorIOReader r;
    r.data = in.get_vector<uint8_t>();
    std::vector<int64_t> id_of = in.get_vector<int64_t>();
    if (int64_t(id_of.size()) != count || in.remaining() / sizeof(float) < id_of.size() * size_t(dim()))
      throw FormatError("faiss-gpu store payload: id map or vectors do not match the header");
    auto host = std::make_shared<AlignedVector<float>>(id_of.size() * size_t(dim()));
    in.get(host->data(), host->size());
    int32_t nprobe = 0;
    in.get(&nprobe, 1);
    auto map = std::make_shared<IdMap>();
    map->assign(std::move(id_of), nullptr, "faiss-gpu store payload");
    std::unique_ptr<faiss::Index> cpu;
    try {
      cpu.reset(faiss::read_index(&r));
    } catch (const faiss::FaissException& e) {
      throw FormatError(std::string("faiss-gpu store payload: read_index failed: ") + e.what());
    }
    if (cpu->d != dim() || cpu->ntotal != count) throw FormatError("faiss-gpu store payload: index does not match");
    // Everything that can throw happens before the store changes (a failed load changes
    // nothing); the GPU index is built aside. Shared pointers only because std::function
    // needs a copyable closure.
    std::shared_ptr<std::unique_ptr<faiss::Index>> gpu;
    {
      std::lock_guard<std::mutex> lock(search_mutex_);  // the GPU resources serve one caller at a time
      gpu = std::make_shared<std::unique_ptr<faiss::Index>>(make_gpu_index(cpu.get(), nprobe));
    }
    return [this, gpu, map, host, nprobe] {
      index_ = std::move(*gpu);
      map_ = std::move(*map);
      host_ = std::move(*host);
      nprobe_ = nprobe;
    };
  }

  std::string factory_;
  std::unique_ptr<faiss::gpu::StandardGpuResources> res_;
  std::unique_ptr<faiss::Index> index_;
  AlignedVector<float> host_;                    // [n, dim], position order
  IdMap map_;                                    // position <-> id
  int32_t nprobe_ = 0;
  mutable std::mutex search_mutex_;
};

}  // namespace

std::unique_ptr<VectorStore> make_faiss_gpu_store(const std::string& base, int dim, Metric metric) {
  return std::make_unique<FaissGpuStore>(base, base.substr(10), dim, metric);
}

}  // namespace mindrec::store
