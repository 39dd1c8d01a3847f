// usearch's filtered search for benchmarks/filter_peers.py: usearch's predicate exists only in
// its C++ API (index_dense_gt::filtered_search), not in its Python package, so the harness
// calls this small C wrapper through ctypes. Built by benchmarks/lib.sh (usearch_filter_lib)
// against the headers of the usearch sdist of the version installed in the peers' venv, the way
// that package's setup.py builds its module (NumKong's kernels, resolved at run time from the
// numkong package, so `import usearch` must come first; -O3 -ffast-math). The predicate reads
// a bitmap over the keys (bit i of byte i / 8), which is what a C++ user of usearch writes.
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <usearch/index_dense.hpp>

using namespace unum::usearch;

namespace {
struct Handle {
  index_dense_t index;
};
}  // namespace

extern "C" {

// A new inner-product index of float32 vectors [dim] (M = connectivity); nullptr on failure.
void* ufx_new(int dim, int connectivity, int expansion_add, int expansion_search) {
  metric_punned_t metric{std::size_t(dim), metric_kind_t::ip_k, scalar_kind_t::f32_k};
  index_dense_config_t config{std::size_t(connectivity), std::size_t(expansion_add), std::size_t(expansion_search)};
  auto made = index_dense_t::make(metric, config);
  if (!made) return nullptr;
  auto* h = new Handle{std::move(made.index)};
  return h;
}

void ufx_free(void* h) { delete static_cast<Handle*>(h); }

// Adds x [n, dim] under keys, on `threads` threads; 0 on success.
int ufx_add(void* hp, int64_t n, const float* x, const uint64_t* keys, int threads) {
  auto& index = static_cast<Handle*>(hp)->index;
  const std::size_t t = std::size_t(threads < 1 ? 1 : threads);
  if (!index.try_reserve(index_limits_t(std::size_t(n), t))) return 1;
  const std::size_t dim = index.dimensions();
  std::vector<std::thread> pool;
  std::vector<int> failed(t, 0);
  for (std::size_t w = 0; w < t; ++w)
    pool.emplace_back([&, w] {
      for (int64_t i = int64_t(w); i < n; i += int64_t(t))
        if (!index.add(keys[i], x + std::size_t(i) * dim, w)) failed[w] = 1;
    });
  for (auto& th : pool) th.join();
  for (int f : failed)
    if (f) return 2;
  return 0;
}

void ufx_set_ef(void* hp, int ef) { static_cast<Handle*>(hp)->index.change_expansion_search(std::size_t(ef)); }

// Top-k of each query q [nq, dim] (one thread); `bitmap` (nbits bits, nullable) allows key i
// when bit i is set. Writes keys (-1 past what was found) and inner products.
void ufx_search(void* hp, const float* q, int64_t nq, int k, const uint8_t* bitmap, int64_t nbits, int64_t* out_keys,
                float* out_scores) {
  auto& index = static_cast<Handle*>(hp)->index;
  const std::size_t dim = index.dimensions();
  std::vector<uint64_t> keys(static_cast<std::size_t>(k));
  std::vector<float> dist(static_cast<std::size_t>(k));
  for (int64_t i = 0; i < nq; ++i) {
    std::size_t found;
    if (bitmap) {
      auto allowed = [bitmap, nbits](uint64_t key) {
        return int64_t(key) < nbits && (bitmap[key >> 3] >> (key & 7) & 1);
      };
      found = index.filtered_search(q + std::size_t(i) * dim, std::size_t(k), allowed, 0).dump_to(keys.data(), dist.data());
    } else {
      found = index.search(q + std::size_t(i) * dim, std::size_t(k), 0).dump_to(keys.data(), dist.data());
    }
    for (int j = 0; j < k; ++j) {
      const bool have = std::size_t(j) < found;
      out_keys[i * k + j] = have ? int64_t(keys[std::size_t(j)]) : -1;
      out_scores[i * k + j] = have ? 1.0f - dist[std::size_t(j)] : 0.0f;  // usearch's ip distance is 1 - q.x
    }
  }
}
}
