// cuda:flat against the CPU `flat` store (the oracle): per-query top-k for both metrics and
// k from 1 to 1,024, padding when k > size, removals, save -> load, and multi-interest recall
// through the fused device merge against recall through `flat` (with and without dynamic_k,
// and with exclude_history, which takes the host merge), and searches during the device copy's
// upload after a write (host copy, new contents). Skips (exit 77) without a device.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <chrono>
#include <future>

#include "detail/fault.hpp"
#include "mindrec/device.hpp"
#include "mindrec/error.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/vector_store.hpp"
#include "cuda_check.hpp"
#include "common/random_data.hpp"

namespace {
using mindrec::test::expect;
std::vector<float> randn(size_t n, uint64_t seed) { return mindrec::test::random_vectors(int64_t(n), 1, seed); }
// Same ids in the same order, scores within 1e-4 of the oracle's scale.
bool same_results(const std::vector<int64_t>& a, const std::vector<float>& as, const std::vector<int64_t>& b,
                  const std::vector<float>& bs, std::string* why) {
  double scale = 1e-3;
  for (size_t i = 0; i < b.size(); ++i)
    if (b[i] >= 0) scale = std::max(scale, double(std::abs(bs[i])));
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      *why = "id differs at " + std::to_string(i) + ": " + std::to_string(a[i]) + " vs " + std::to_string(b[i]);
      return false;
    }
    if (b[i] >= 0 && std::abs(as[i] - bs[i]) > 1e-4 * scale) {
      *why = "score differs at " + std::to_string(i);
      return false;
    }
  }
  return true;
}
}  // namespace

int main() {
  using namespace mindrec;
  if (cuda_device_count() == 0) {
    std::printf("SKIP: no CUDA device on this host (the cuda:flat tests need a GPU)\n");
    return 77;
  }
  try {
    const int d = 64;
    const int64_t n = 20000;
    const auto x = randn(size_t(n) * d, 1);
    std::vector<int64_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = 5 + 3 * i;
    for (const Metric metric : {Metric::inner_product, Metric::l2}) {
      auto cpu = make_vector_store("flat", d, metric), gpu = make_vector_store("cuda:flat", d, metric);
      cpu->add(n, x.data(), ids.data());
      gpu->add(n, x.data(), ids.data());
      const int nq = 37;
      const auto q = randn(size_t(nq) * d, 2);
      for (const int k : {1, 10, 100, 1024}) {
        std::vector<int64_t> a(size_t(nq) * k), b(a.size());
        std::vector<float> as(a.size()), bs(a.size());
        gpu->search(nq, q.data(), k, a.data(), as.data());
        cpu->search(nq, q.data(), k, b.data(), bs.data());
        std::string why;
        expect(same_results(a, as, b, bs, &why),
               std::string(to_string(metric)) + " k=" + std::to_string(k) + " equals flat " + why);
      }
      // Removals are never returned; results still equal flat.
      std::vector<int64_t> gone;
      for (int64_t i = 0; i < n; i += 7) gone.push_back(ids[i]);
      cpu->remove(int64_t(gone.size()), gone.data());
      gpu->remove(int64_t(gone.size()), gone.data());
      {
        std::vector<int64_t> a(size_t(nq) * 50), b(a.size());
        std::vector<float> as(a.size()), bs(a.size());
        gpu->search(nq, q.data(), 50, a.data(), as.data());
        cpu->search(nq, q.data(), 50, b.data(), bs.data());
        std::string why;
        expect(same_results(a, as, b, bs, &why), std::string(to_string(metric)) + " after removals " + why);
        // save -> load (as cuda:flat) answers the same.
        const std::string path = (std::filesystem::temp_directory_path() / "mindrec-cuda-flat.idx").string();
        gpu->save(path);
        auto loaded = load_vector_store(path);
        std::vector<int64_t> c(a.size());
        std::vector<float> cs(a.size());
        loaded->search(nq, q.data(), 50, c.data(), cs.data());
        expect(loaded->backend() == "cuda:flat" && c == a && cs == as, std::string(to_string(metric)) + " save/load");
        std::filesystem::remove(path);
      }
      // While the device copy is uploaded aside after a write, searches answer (from the
      // host copy) with the new contents; afterwards from the device, the same.
      {
        const auto more = randn(size_t(100) * d, 3);
        std::vector<int64_t> more_ids(100);
        for (int64_t i = 0; i < 100; ++i) more_ids[size_t(i)] = 1000000 + i;
        cpu->add(100, more.data(), more_ids.data());
        std::vector<int64_t> want(size_t(nq) * 50), during(want.size()), after(want.size());
        std::vector<float> wants(want.size()), durings(want.size()), afters(want.size());
        cpu->search(nq, q.data(), 50, want.data(), wants.data());
        bool answered = false;
        detail::arm_hook("cuda_flat.upload", [&] {
          auto f = std::async(std::launch::async, [&] { gpu->search(nq, q.data(), 50, during.data(), durings.data()); });
          answered = f.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
          f.wait();
        });
        gpu->add(100, more.data(), more_ids.data());
        detail::disarm_fault();
        gpu->search(nq, q.data(), 50, after.data(), afters.data());
        std::string why;
        expect(answered, std::string(to_string(metric)) + " a search answers during the upload");
        expect(same_results(during, durings, want, wants, &why), std::string(to_string(metric)) + " during upload " + why);
        expect(same_results(after, afters, want, wants, &why), std::string(to_string(metric)) + " after upload " + why);
      }
      // k > size pads with -1.
      auto small = make_vector_store("cuda:flat", d, metric);
      small->add(3, x.data(), ids.data());
      std::vector<int64_t> p(5);
      std::vector<float> ps(5);
      small->search(1, q.data(), 5, p.data(), ps.data());
      expect(p[3] == -1 && p[4] == -1 && p[0] >= 0, std::string(to_string(metric)) + " k > size pads with -1");
    }
    // Multi-interest recall: fused device merge against flat + host merge.
    for (const bool dynk : {false, true}) {
      ModelConfig c;
      c.item_count = 30000;
      c.neg_samples = 10;
      c.capsule.dynamic_k = dynk;
      MindModel model(init_weights(c, 7));
      auto flat = build_item_store(model, "flat"), gpu = build_item_store(model, "cuda:flat");
      const int64_t B = 300;
      const int L = c.maxlen;
      detail::Rng r(9);
      std::vector<int64_t> hist(size_t(B) * L, 0);
      std::vector<int32_t> len(B);
      for (int64_t b = 0; b < B; ++b) {
        len[b] = 1 + int32_t(r.below(L));
        for (int l = 0; l < len[b]; ++l) hist[b * L + l] = 1 + int64_t(r.below(c.item_count - 1));
      }
      for (const bool excl : {false, true}) {
        RecallOptions o;
        o.topn = 50;
        o.exclude_history = excl;
        std::vector<int64_t> a(size_t(B) * 50), b2(a.size());
        std::vector<float> as(a.size()), bs(a.size());
        recall_items(model, *gpu, hist.data(), len.data(), B, o, a.data(), as.data());
        recall_items(model, *flat, hist.data(), len.data(), B, o, b2.data(), bs.data());
        std::string why;
        expect(same_results(a, as, b2, bs, &why), std::string("recall_items dynamic_k=") + (dynk ? "1" : "0") +
                                                      " exclude_history=" + (excl ? "1" : "0") + " equals flat " + why);
      }
    }
  } catch (const Error& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d failure(s)\n", mindrec::test::failures() ? "FAILED" : "passed", mindrec::test::failures());
  return mindrec::test::failures() ? 1 : 0;
}
