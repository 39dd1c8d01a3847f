// The IVF first fill's coarse training and assignment (src/store/ivf_build.hpp), against brute
// force and hand-computed means.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "common/random_data.hpp"
#include "mindrec/version.hpp"
#if MINDREC_HAS_FAISS
#include "common/store_contract.hpp"
#include "mindrec/vector_store.hpp"
#include "store/ivf_build.hpp"

#include <faiss/IVFlib.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/invlists/DirectMap.h>

#include <memory>
#include <string>

using namespace mindrec;

namespace {

// The best of k centroids for x by a plain loop in double (inner product, or nearest in L2).
int64_t brute_best(const float* x, const std::vector<float>& c, int d, bool ip) {
  int64_t at = 0;
  double top = -1e300;
  for (int64_t j = 0; j < int64_t(c.size()) / d; ++j) {
    double s = 0;
    for (int t = 0; t < d; ++t) s += ip ? double(x[t]) * c[size_t(j * d + t)] : -std::pow(double(x[t]) - c[size_t(j * d + t)], 2);
    if (s > top) top = s, at = j;
  }
  return at;
}

// `per` points around each of the well separated `centres` (spread 0.01, centres about 10 apart).
std::vector<float> clustered(int64_t per, const std::vector<float>& centres, int d, uint64_t seed) {
  const int64_t k = int64_t(centres.size()) / d;
  const auto noise = test::random_vectors(per * k, d, seed);
  std::vector<float> x(size_t(per * k * d));
  for (int64_t i = 0; i < per * k; ++i)
    for (int t = 0; t < d; ++t) x[size_t(i * d + t)] = centres[size_t((i % k) * d + t)] + 0.01f * noise[size_t(i * d + t)];
  return x;
}

}  // namespace

TEST_CASE("ivf build: nearest() is the brute-force best centroid under both metrics") {
  const int d = 24;
  const auto x = test::random_vectors(1000, d, 1);  // more than one block of 256
  const auto c = test::random_vectors(37, d, 2);
  // Every path: AMX tiles or VNNI where the CPU has them (src/detail/best_rows.hpp; "vnni"
  // keeps VNNI alone), and Eigen's float GEMM with the vectorised row maximum (MINDREC_SIMD=
  // avx512 turns both kernels off).
  for (const char* simd : {"", "vnni", "avx512"}) {
    if (*simd) ::setenv("MINDREC_SIMD", simd, 1);
    for (const bool ip : {true, false}) {
      CAPTURE(simd);
      CAPTURE(ip);
      std::vector<int64_t> got(1000);
      std::vector<float> score(1000);
      store::ivf::nearest(1000, x.data(), d, 37, c.data(), ip, 2, got.data(), score.data());
      int same = 0;
      for (int64_t i = 0; i < 1000; ++i) {
        const int64_t want = brute_best(&x[size_t(i * d)], c, d, ip);
        same += got[size_t(i)] == want;
        double s = 0, cn = 0;  // the score: <x, c> (ip) or 2 <x, c> - |c|^2
        for (int t = 0; t < d; ++t) s += double(x[size_t(i * d + t)]) * c[size_t(want * d + t)], cn += double(c[size_t(want * d + t)]) * c[size_t(want * d + t)];
        CHECK(score[size_t(i)] == doctest::Approx(ip ? s : 2 * s - cn).epsilon(1e-5));
      }
      CHECK(same == 1000);
    }
    ::unsetenv("MINDREC_SIMD");
  }
}

TEST_CASE("ivf build: k-means ends at its fixed point - the coarse training too - and is spherical under inner product") {
  const int d = 8, k = 16;
  auto centres = test::random_vectors(k, d, 3);
  for (float& v : centres) v *= 10;
  const auto x = clustered(50, centres, d, 4);
  // One level, 4 centroids over the 16 clusters (Lloyd from random points can merge true
  // clusters and split others, so the check is its fixed point, which these groups reach in
  // far fewer than 30 rounds): each vector's cluster is its brute-force best centroid, and
  // each centroid is the mean of its vectors.
  const int64_t k4 = 4;
  std::vector<int64_t> of;
  const auto c = store::ivf::kmeans(50 * k, x.data(), d, k4, false, 30, 5, 2, &of);
  std::vector<double> mean(size_t(k4 * d), 0.0);
  std::vector<int64_t> count(size_t(k4), 0);
  for (int64_t i = 0; i < 50 * k; ++i) {
    CHECK(of[size_t(i)] == brute_best(&x[size_t(i * d)], c, d, false));
    ++count[size_t(of[size_t(i)])];
    for (int t = 0; t < d; ++t) mean[size_t(of[size_t(i)] * d + t)] += x[size_t(i * d + t)];
  }
  for (int64_t j = 0; j < k4; ++j) {
    CHECK(count[size_t(j)] > 0);
    for (int t = 0; t < d; ++t) CHECK(c[size_t(j * d + t)] == doctest::Approx(mean[size_t(j * d + t)] / double(count[size_t(j)])).epsilon(1e-4));
  }
  // The coarse training: nlist = 16 over the 16 clusters, every vector in the sample (64 a
  // list x 16 > 800): each vector's list the brute-force best.
  const auto coarse = store::ivf::train_coarse(50 * k, x.data(), d, k, false, 6);
  CHECK(coarse.size() == size_t(k * d));
  std::vector<int64_t> lists(size_t(50 * k));
  store::ivf::nearest(50 * k, x.data(), d, k, coarse.data(), false, 2, lists.data());
  // (An empty cluster split off the largest in the last round leaves two centroids 1/1024
  // apart: the list is the best up to float rounding, 1e-3 where other clusters are >= 100
  // away.)
  auto l2 = [&](int64_t i, int64_t j) {
    double s2 = 0;
    for (int t = 0; t < d; ++t) s2 += std::pow(double(x[size_t(i * d + t)]) - coarse[size_t(j * d + t)], 2);
    return s2;
  };
  for (int64_t i = 0; i < 50 * k; ++i)
    CHECK(l2(i, lists[size_t(i)]) <= l2(i, brute_best(&x[size_t(i * d)], coarse, d, false)) + 1e-3);
  // Inner product: spherical, every centroid of unit norm.
  const auto sph = store::ivf::train_coarse(50 * k, x.data(), d, k, true, 7);
  for (int64_t j = 0; j < k; ++j) {
    double norm = 0;
    for (int t = 0; t < d; ++t) norm += double(sph[size_t(j * d + t)]) * sph[size_t(j * d + t)];
    CHECK(norm == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("faiss: an IVF's first fill by mindrec's build is exact at nprobe = nlist - as Faiss's own build (faiss_build=1)") {
  // Every vector is in exactly one list under its id: with every list probed, IVF-Flat is
  // exact (brute force over the store); the same for Faiss's train and add_with_ids.
  const int d = 16;
  const auto x = test::random_vectors(3000, d, 11);
  std::vector<int64_t> ids(3000);
  for (int64_t i = 0; i < 3000; ++i) ids[size_t(i)] = 10 + 3 * i;  // not the positions
  for (const Metric metric : {Metric::inner_product, Metric::l2})
    for (const char* spec : {"faiss:IVF64,Flat?nprobe=64", "faiss:IVF64,Flat,faiss_build=1?nprobe=64"}) {
      CAPTURE(spec);
      auto s = make_vector_store(spec, d, metric);
      s->add(3000, x.data(), ids.data());
      CHECK(s->size() == 3000);
      test::check_against_brute(*s, x, ids, true);
    }
  CHECK_THROWS_AS(make_vector_store("faiss:IVF4,Flat,faiss_build=2", 4), InvalidArgument);
}

TEST_CASE("faiss: lossy IVF lists of mindrec's first fill return the top-k of their decoded vectors at nprobe = nlist") {
  // The codes (made in chunks on all cores), the lists and the id map must agree. Oracle: Faiss
  // alone given mindrec's coarse centroids (train_coarse, the store's seed) and the same
  // encoder sample (all 3,000 vectors, in order), then add_with_ids (its own exact
  // assignment and encoding); its reconstruct(id) is each item's decoded vector. With every
  // list probed the store must return the top-k of those, rank by rank, scored by a double
  // loop. SQ8 and PQ go through the chunked appends, PQ 4-bit fast-scan through the list edit.
  const int d = 16, n = 3000, k = 10, nq = 15, nlist = 16;
  const auto x = test::random_vectors(n, d, 21);
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = 5 + 2 * i;
  const auto q = test::random_vectors(nq, d, 22);
  struct Case {
    const char* factory;
    Metric metric;
  };
  for (const Case& c : {Case{"IVF16,SQ8", Metric::inner_product}, Case{"IVF16,PQ8", Metric::l2},
                        Case{"IVF16,PQ8x4fs", Metric::inner_product}}) {
    CAPTURE(c.factory);
    const bool ip = c.metric == Metric::inner_product;
    auto s = make_vector_store(std::string("faiss:") + c.factory + "?nprobe=16", d, c.metric);
    s->add(n, x.data(), ids.data());
    std::unique_ptr<faiss::Index> ref(faiss::index_factory(d, c.factory, ip ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2));
    faiss::IndexIVF* rv = faiss::ivflib::extract_index_ivf(ref.get());
    rv->set_direct_map_type(faiss::DirectMap::Hashtable);
    const auto centroids = store::ivf::train_coarse(n, x.data(), d, nlist, ip, 1234);
    rv->quantizer->add(nlist, centroids.data());
    ref->train(n, x.data());
    ref->add_with_ids(n, x.data(), ids.data());
    std::vector<float> dec(size_t(n) * d);
    for (int64_t i = 0; i < n; ++i) ref->reconstruct(ids[size_t(i)], dec.data() + i * d);
    std::vector<int64_t> got(size_t(nq) * k);
    std::vector<float> sc(size_t(nq) * k);
    s->search(nq, q.data(), k, got.data(), sc.data());
    for (int u = 0; u < nq; ++u) {
      std::vector<std::pair<double, int64_t>> all;
      for (int64_t i = 0; i < n; ++i) {
        double t = 0;
        for (int j = 0; j < d; ++j) {
          const double a = q[size_t(u * d + j)], b = dec[size_t(i * d + j)];
          t += ip ? a * b : -(a - b) * (a - b);
        }
        all.emplace_back(-t, ids[size_t(i)]);
      }
      std::sort(all.begin(), all.end());
      for (int j = 0; j < k; ++j) {
        const double want = ip ? -all[size_t(j)].first : all[size_t(j)].first;
        CHECK(sc[size_t(u * k + j)] == doctest::Approx(want).epsilon(1e-3).scale(1e-2));
        if (std::abs(all[size_t(j)].first - all[size_t(j) + 1].first) > 1e-3) CHECK(got[size_t(u * k + j)] == all[size_t(j)].second);
      }
    }
  }
}
#endif
