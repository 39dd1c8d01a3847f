// The low-precision best-of-k kernels (src/detail/best_rows.hpp: AMX-BF16 tiles, AVX-512 VNNI
// int8) against a brute force in double, on the shapes the IVF build gives them and on the
// cases their approximations cannot decide alone (near ties, crowded rows, a zero row, a row
// whose int8 rounding loses most coordinates). Every case runs on each kernel this CPU has.
// Its own executable: with neither (the CPU or the kernel lacks them) it exits 77, skipped,
// saying why.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/random_data.hpp"
#include "detail/best_rows.hpp"
#include "mindrec/version.hpp"
#if MINDREC_HAS_FAISS
#include "store/ivf_build.hpp"
#endif

using namespace mindrec;

namespace {

using BestRows = bool (*)(int64_t, const float*, int, int64_t, const float*, const float*, int, int64_t*, float*);
struct Kernel {
  const char* name;
  BestRows run;
};
// The kernels this process may run (both on a CPU with AMX, VNNI alone on AMD Zen 4).
std::vector<Kernel> kernels() {
  std::vector<Kernel> k;
  if (detail::amx_bf16_usable()) k.push_back({"amx", detail::amx_best_rows});
  if (detail::vnni_int8_usable()) k.push_back({"vnni", detail::vnni_best_rows});
  return k;
}

// <x, c_j> - h_j in double for every j, the best (ties: the smaller j) and its score.
struct Brute {
  int64_t best = 0;
  double top = -1e300;
  std::vector<double> s;
};
Brute brute(const float* x, const std::vector<float>& c, const std::vector<float>& h, int d) {
  Brute b;
  const int64_t k = int64_t(c.size()) / d;
  b.s.resize(size_t(k));
  for (int64_t j = 0; j < k; ++j) {
    double s = h.empty() ? 0.0 : -double(h[size_t(j)]);
    for (int t = 0; t < d; ++t) s += double(x[t]) * c[size_t(j * d + t)];
    b.s[size_t(j)] = s;
    if (s > b.top) b.top = s, b.best = j;
  }
  return b;
}

double norm(const float* v, int d) {
  double s = 0;
  for (int t = 0; t < d; ++t) s += double(v[t]) * v[t];
  return std::sqrt(s);
}

// Runs the kernel and checks every row: the brute force's best, or (float rounding of a near
// tie) a j whose exact score is within 1e-5 |x| max|c| of it; the returned score within that
// of the exact one. Returns how many rows differ from the brute force's j.
int check_rows(const Kernel& kern, int64_t n, const std::vector<float>& x, int d, const std::vector<float>& c,
               const std::vector<float>& h, double rel = 1e-5, int* near_ties = nullptr) {
  const int64_t k = int64_t(c.size()) / d;
  std::vector<int64_t> best(size_t(n), -1);
  std::vector<float> score(static_cast<size_t>(n));
  REQUIRE(kern.run(n, x.data(), d, k, c.data(), h.empty() ? nullptr : h.data(), 2, best.data(), score.data()));
  double cmax = 0;
  for (int64_t j = 0; j < k; ++j) cmax = std::max(cmax, norm(&c[size_t(j * d)], d));
  int differ = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = &x[size_t(i * d)];
    const Brute b = brute(xi, c, h, d);
    const double tol = rel * (norm(xi, d) * cmax + 1e-30);
    CAPTURE(i);
    REQUIRE(best[size_t(i)] >= 0);
    REQUIRE(best[size_t(i)] < k);
    CHECK(b.s[size_t(best[size_t(i)])] >= b.top - tol);
    CHECK(std::abs(double(score[size_t(i)]) - b.s[size_t(best[size_t(i)])]) <= tol);
    differ += best[size_t(i)] != b.best;
    if (near_ties) {
      int within = 0;
      for (const double s : b.s) within += s >= b.top - tol;
      *near_ties += within > 1;
    }
  }
  return differ;
}

}  // namespace

TEST_CASE("kernels: each row's best centroid is the brute force's - any d and k - inner product and L2") {
  struct Shape {
    int64_t n;
    int d;
    int64_t k;
  };
  // d and k off the tiles' multiples of 32; n across several tasks of 256 rows.
  for (const Shape sh : {Shape{1000, 24, 37}, Shape{700, 64, 1000}, Shape{300, 70, 130}, Shape{513, 128, 2100}, Shape{5, 3, 2}}) {
    CAPTURE(sh.n);
    CAPTURE(sh.d);
    CAPTURE(sh.k);
    const auto x = test::random_vectors(sh.n, sh.d, 21);
    const auto c = test::random_vectors(sh.k, sh.d, 22);
    std::vector<float> half(size_t(sh.k));  // L2: the best maximises x.c - |c|^2 / 2
    for (int64_t j = 0; j < sh.k; ++j) half[size_t(j)] = float(std::pow(norm(&c[size_t(j * sh.d)], sh.d), 2) / 2);
    // Random data has no ties within float rounding: every row is the brute force's own j.
    for (const Kernel& kern : kernels()) {
      CAPTURE(std::string(kern.name));
      CHECK(check_rows(kern, sh.n, x, sh.d, c, {}) == 0);
      CHECK(check_rows(kern, sh.n, x, sh.d, c, half) == 0);
    }
  }
}

TEST_CASE("kernels: centroids closer than bf16 or int8 can tell apart are decided by the exact rescoring") {
  // 40 centroids u + e_j w with |e_j| <= 1e-3 (fewer than the candidates the kernel keeps a
  // row), after 300 random ones far from the rows: the 40's bf16 roundings (8 significant bits,
  // about 4e-3 relative) and int8 roundings (steps of a 254th of the largest coordinate) coincide or misorder, so the approximation alone picks among them at
  // random; the best is the j with the largest e_j (x.w > 0), found only by scoring exactly.
  const int d = 64;
  const int64_t far = 300, k = far + 40;
  const auto u = test::random_vectors(1, d, 31);
  const auto w = test::random_vectors(1, d, 32);
  auto e = test::random_vectors(1, int(k), 33);
  std::fill(e.begin(), e.begin() + far, 0.0f);
  auto c = test::random_vectors(k, d, 35);
  for (int64_t j = 0; j < k; ++j)
    for (int t = 0; t < d; ++t)
      c[size_t(j * d + t)] = j < far ? 0.1f * c[size_t(j * d + t)] : u[size_t(t)] + 1e-3f * e[size_t(j)] * w[size_t(t)];
  // Rows near u, each tilted along w (sign alternating): the best is argmax or argmin of e.
  const int64_t n = 300;
  auto x = test::random_vectors(n, d, 34);
  for (int64_t i = 0; i < n; ++i)
    for (int t = 0; t < d; ++t) x[size_t(i * d + t)] = u[size_t(t)] + 0.01f * x[size_t(i * d + t)] + (i % 2 ? -1.f : 1.f) * w[size_t(t)];
  int64_t hi = far, lo = far;
  for (int64_t j = far; j < k; ++j) {
    if (e[size_t(j)] > e[size_t(hi)]) hi = j;
    if (e[size_t(j)] < e[size_t(lo)]) lo = j;
  }
  for (const Kernel& kern : kernels()) {
    CAPTURE(std::string(kern.name));
    CHECK(check_rows(kern, n, x, d, c, {}) == 0);
    std::vector<int64_t> best(static_cast<size_t>(n));
    REQUIRE(kern.run(n, x.data(), d, k, c.data(), nullptr, 1, best.data(), nullptr));
    int at_hi = 0, at_lo = 0;
    for (int64_t i = 0; i < n; ++i) (i % 2 ? at_lo : at_hi) += best[size_t(i)] == (i % 2 ? lo : hi);
    CHECK(at_hi == n / 2);
    CHECK(at_lo == n / 2);
  }
}

TEST_CASE("kernels: rows and centroids whose int8 rounding loses most coordinates stay exact") {
  // One coordinate 100 times the others: int8 scaled to it rounds every other coordinate to a
  // step or two, so the approximations of rows and centroids carry little of them and the error
  // bound (best_rows.hpp) grows to match; the answer must still be the brute force's (the
  // centroids differ only in the small coordinates, which decide), to within 1e-6 |x| max|c|
  // (1e-4 here, against score gaps of about 1e-3 and float rounding of about 3e-5), the best j
  // itself wherever no other is that close.
  const int d = 48;
  const int64_t k = 300, n = 400;
  auto c = test::random_vectors(k, d, 71);
  auto x = test::random_vectors(n, d, 72);
  for (int64_t j = 0; j < k; ++j) {
    c[size_t(j * d)] = 1.0f;  // the same large coordinate
    for (int t = 1; t < d; ++t) c[size_t(j * d + t)] *= 0.01f;
  }
  for (int64_t i = 0; i < n; ++i) x[size_t(i * d)] = 100.0f;
  std::vector<float> half(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) half[size_t(j)] = float(std::pow(norm(&c[size_t(j * d)], d), 2) / 2);
  for (const Kernel& kern : kernels()) {
    CAPTURE(std::string(kern.name));
    int ties = 0;
    const int differ_ip = check_rows(kern, n, x, d, c, {}, 1e-6, &ties);
    const int differ_l2 = check_rows(kern, n, x, d, c, half, 1e-6, &ties);
    MESSAGE(std::string(kern.name) << ": rows off the brute force's j " << differ_ip + differ_l2 << ", rows with a near tie " << ties);
    CHECK(differ_ip + differ_l2 <= ties);
  }
}

TEST_CASE("kernels: ties go to the smaller index - crowded rows and a zero row are scored in full") {
  const int d = 32;
  const int64_t k = 400;
  auto c = test::random_vectors(k, d, 41);
  // Centroids 50..249 are one vector: a row along it has 200 equal best candidates (more than
  // the kernel keeps), the first of them is the answer.
  for (int64_t j = 51; j < 250; ++j)
    for (int t = 0; t < d; ++t) c[size_t(j * d + t)] = c[size_t(50 * d + t)];
  std::vector<float> x(size_t(3 * d), 0.0f);
  for (int t = 0; t < d; ++t) x[size_t(t)] = 3 * c[size_t(50 * d + t)];
  for (int t = 0; t < d; ++t) x[size_t(d + t)] = c[size_t(7 * d + t)];  // row 1: centroid 7 itself
  // row 2 is zero: every inner product is 0, the answer is centroid 0; under L2 the centroid
  // of the smallest norm.
  const Brute b0 = brute(&x[0], c, {}, d);
  CHECK(b0.best == 50);
  std::vector<float> half(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) half[size_t(j)] = float(std::pow(norm(&c[size_t(j * d)], d), 2) / 2);
  for (const Kernel& kern : kernels()) {
    CAPTURE(std::string(kern.name));
    std::vector<int64_t> best(3);
    std::vector<float> score(3);
    REQUIRE(kern.run(3, x.data(), d, k, c.data(), nullptr, 2, best.data(), score.data()));
    CHECK(best[0] == 50);
    CHECK(best[1] == brute(&x[size_t(d)], c, {}, d).best);
    CHECK(best[2] == 0);
    CHECK(score[2] == 0.0f);
    REQUIRE(kern.run(3, x.data(), d, k, c.data(), half.data(), 2, best.data(), score.data()));
    CHECK(best[0] == brute(&x[0], c, half, d).best);
    CHECK(best[2] == brute(&x[size_t(2 * d)], c, half, d).best);
    CHECK(score[2] == doctest::Approx(-half[size_t(best[2])]));
  }
}

TEST_CASE("kernels: MINDREC_SIMD set to a vector level turns them off - vnni keeps VNNI alone") {
  const auto x = test::random_vectors(4, 16, 51);
  std::vector<int64_t> best(4);
  const bool amx = detail::amx_bf16_usable(), vnni = detail::vnni_int8_usable();
  ::setenv("MINDREC_SIMD", "avx512", 1);
  CHECK_FALSE(detail::amx_bf16_usable());
  CHECK_FALSE(detail::vnni_int8_usable());
  CHECK_FALSE(detail::lowp_best_rows(4, x.data(), 16, 4, x.data(), nullptr, 1, best.data(), nullptr));
  ::setenv("MINDREC_SIMD", "vnni", 1);
  CHECK_FALSE(detail::amx_bf16_usable());
  CHECK(detail::vnni_int8_usable() == vnni);
  ::setenv("MINDREC_SIMD", "amx", 1);
  CHECK(detail::amx_bf16_usable() == amx);
  CHECK(detail::vnni_int8_usable() == vnni);
  ::unsetenv("MINDREC_SIMD");
  CHECK(detail::amx_bf16_usable() == amx);
  CHECK(detail::vnni_int8_usable() == vnni);
  CHECK(detail::lowp_best_rows(4, x.data(), 16, 4, x.data(), nullptr, 1, best.data(), nullptr));
}

#if MINDREC_HAS_FAISS
TEST_CASE("kernels: the IVF assignment gives the lists of the float GEMM path") {
  // store::ivf::nearest takes a kernel (MINDREC_SIMD=amx or vnni) and Eigen's float GEMM under
  // MINDREC_SIMD=avx512: on random vectors against trained centroids, the same list for every
  // vector but near ties (the two sum in different orders: a row may differ only where its two
  // lists' exact scores are within float rounding).
  const int d = 64;
  const int64_t n = 20000, k = 512;
  const auto x = test::random_vectors(n, d, 61);
  for (const Kernel& kern : kernels())
    for (const bool ip : {true, false}) {
      CAPTURE(std::string(kern.name));
      CAPTURE(ip);
      const auto c = store::ivf::train_coarse(n, x.data(), d, k, ip, 62);
      std::vector<float> half(static_cast<size_t>(k));
      for (int64_t j = 0; j < k; ++j) half[size_t(j)] = ip ? 0.0f : float(std::pow(norm(&c[size_t(j * d)], d), 2) / 2);
      std::vector<int64_t> lowp(static_cast<size_t>(n)), gemm(static_cast<size_t>(n));
      ::setenv("MINDREC_SIMD", kern.name, 1);
      store::ivf::nearest(n, x.data(), d, k, c.data(), ip, 2, lowp.data());
      ::setenv("MINDREC_SIMD", "avx512", 1);
      store::ivf::nearest(n, x.data(), d, k, c.data(), ip, 2, gemm.data());
      ::unsetenv("MINDREC_SIMD");
      int differ = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (lowp[size_t(i)] == gemm[size_t(i)]) continue;
        ++differ;
        const Brute b = brute(&x[size_t(i * d)], c, half, d);
        CAPTURE(i);
        CHECK(std::abs(b.s[size_t(lowp[size_t(i)])] - b.s[size_t(gemm[size_t(i)])]) <= 1e-5 * norm(&x[size_t(i * d)], d));
      }
      MESSAGE(std::string(kern.name) << ": rows whose list differs (near ties): " << differ << " of " << n);
      CHECK(differ <= 5);
    }
}
#endif

int main(int argc, char** argv) {
  if (const char* forced = std::getenv("MINDREC_SIMD");
      forced && *forced && std::string(forced) != "amx" && std::string(forced) != "vnni") {
    std::printf("SKIP: MINDREC_SIMD=%s turns the low-precision kernels off.\n", forced);
    return 77;
  }
  if (kernels().empty()) {
    std::printf("SKIP: neither AMX-BF16 nor AVX-512 VNNI here (the CPU lacks them, or Linux did not grant the AMX "
                "tile state): the IVF build uses Eigen's float GEMM instead, which the unit suite tests.\n");
    return 77;
  }
  for (const Kernel& k : kernels()) std::printf("kernel: %s\n", k.name);
  return doctest::Context(argc, argv).run();
}
