// faiss-gpu stores against the CPU `flat` store: faiss-gpu:Flat exactly, and
// faiss-gpu:IVF16,Flat with every list probed (also exact); removals, re-adding, save -> load.
// Skips (exit 77) without a GPU-enabled Faiss in the build or without a device.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "mindrec/device.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"
#include "mindrec/version.hpp"
#include "cuda_check.hpp"
#include "common/random_data.hpp"

namespace {
using mindrec::test::expect;
}  // namespace

int main() {
  using namespace mindrec;
#if !MINDREC_HAS_FAISS_GPU
  std::printf("SKIP: built without a GPU-enabled Faiss (scripts/build-faiss-gpu.sh)\n");
  return 77;
#else
  if (cuda_device_count() == 0) {
    std::printf("SKIP: no CUDA device on this host (the faiss-gpu tests need a GPU)\n");
    return 77;
  }
  try {
    const int d = 32, nq = 20, k = 10;
    const int64_t n = 3000;
    detail::Rng r(5);
    std::vector<float> x(size_t(n) * d), q(size_t(nq) * d);
    for (auto& v : x) v = float(r.normal());
    for (auto& v : q) v = float(r.normal());
    std::vector<int64_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = 100 + i;
    for (const char* spec : {"faiss-gpu:Flat", "faiss-gpu:IVF16,Flat?nprobe=16"}) {
      for (const Metric metric : {Metric::inner_product, Metric::l2}) {
        const std::string name = std::string(spec) + " " + to_string(metric);
        auto flat = make_vector_store("flat", d, metric), gpu = make_vector_store(spec, d, metric);
        flat->add(n, x.data(), ids.data());
        gpu->add(n, x.data(), ids.data());
        auto same = [&](const VectorStore& a, const char* what) {
          std::vector<int64_t> ia(nq * k), ib(nq * k);
          std::vector<float> sa(nq * k), sb(nq * k);
          a.search(nq, q.data(), k, ia.data(), sa.data());
          flat->search(nq, q.data(), k, ib.data(), sb.data());
          bool ok = ia == ib;
          for (int i = 0; i < nq * k && ok; ++i) ok = std::abs(sa[i] - sb[i]) <= 1e-3f * (1.f + std::abs(sb[i]));
          expect(ok, name + ": " + what);
        };
        same(*gpu, "equals flat");
        std::vector<int64_t> gone;
        for (int64_t i = 0; i < n; i += 5) gone.push_back(ids[i]);
        flat->remove(int64_t(gone.size()), gone.data());
        expect(gpu->remove(int64_t(gone.size()), gone.data()) == int64_t(gone.size()), name + ": remove count");
        same(*gpu, "after removals");
        const std::string path = (std::filesystem::temp_directory_path() / "mindrec-faiss-gpu.idx").string();
        gpu->save(path);
        auto loaded = load_vector_store(path);
        expect(loaded->size() == flat->size(), name + ": loaded size");
        same(*loaded, "after save/load");
        std::filesystem::remove(path);
      }
    }
  } catch (const Error& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d failure(s)\n", mindrec::test::failures() ? "FAILED" : "passed", mindrec::test::failures());
  return mindrec::test::failures() ? 1 : 0;
#endif
}
