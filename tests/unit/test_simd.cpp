// The run-time dispatched kernels (src/detail/simd.hpp): every level this CPU runs agrees with
// a double-precision loop written here, on every length from 0 to 70 (all the tails).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/random_data.hpp"
#include "detail/simd.hpp"
#include "mindrec/version.hpp"
#if MINDREC_HAS_FAISS
#include <faiss/impl/pq4_fast_scan.h>
#endif

using namespace mindrec;

TEST_CASE("SIMD kernels - every level this CPU has - agree with a double loop on every length") {
  const auto a = test::random_vectors(1, 70, 1), b = test::random_vectors(1, 70, 2);
  std::vector<uint8_t> code(70);
  for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t((i * 37 + 11) % 256);
  int levels = 0;
  for (const char* level : {"avx512", "avx2", "sse2", "scalar"}) {
    const detail::SimdKernels* k = detail::simd_level(level);
    if (!k) {
      MESSAGE("level " << level << " not available on this CPU/build");
      continue;
    }
    ++levels;
    CAPTURE(std::string(level));
    CHECK(std::string(k->level) == level);
    for (size_t n = 0; n <= 70; ++n) {
      CAPTURE(n);
      double dot = 0, l2 = 0, du8 = 0;
      for (size_t i = 0; i < n; ++i) {
        dot += double(a[i]) * b[i];
        l2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        du8 += double(a[i]) * code[i];
      }
      CHECK(k->dot(a.data(), b.data(), n) == doctest::Approx(dot).epsilon(1e-5).scale(1));
      CHECK(k->l2sq(a.data(), b.data(), n) == doctest::Approx(l2).epsilon(1e-5).scale(1));
      CHECK(k->dot_u8(a.data(), code.data(), n) == doctest::Approx(du8).epsilon(1e-5).scale(100));
    }
  }
  CHECK(levels >= 2);  // scalar everywhere; on x86-64 at least SSE2 too
  // The level chosen is the best one this CPU has.
  const std::string chosen = detail::simd().level;
  if (detail::simd_level("avx512")) CHECK(chosen == "avx512");
  else if (detail::simd_level("avx2")) CHECK(chosen == "avx2");
  MESSAGE("dispatched level: " << chosen);
}

TEST_CASE("SIMD 4-bit PQ block scan - every level - sums the tables over codes packed by Faiss's own packer") {
  // 32 vectors' codes, M sub-quantizers of 16 centroids, written plainly (code[v][m]); the
  // block is packed by faiss::pq4_pack_codes (the layout IVF-PQ fast-scan lists hold) where
  // Faiss is built in, else by the position rule of simd.hpp; each level's sums must equal
  // the plain double loop sum_m lut[m][code[v][m]], and its mask the sums >= threshold.
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u, state >> 8; };
  int levels = 0;
  for (const size_t M : {2, 4, 6, 32, 64, 128}) {
    CAPTURE(M);
    std::vector<uint8_t> code(32 * M), lut(16 * M);
    for (auto& c : code) c = uint8_t(next() & 15);
    for (auto& l : lut) l = M == 128 ? uint8_t(255 - (next() & 3)) : uint8_t(next() & 255);  // M 128: near the uint16 bound
    std::vector<uint8_t> block(16 * M, 0);
#if MINDREC_HAS_FAISS
    std::vector<uint8_t> plain(32 * M / 2);  // Faiss's 4-bit PQ codes: sub-quantizer 2i low nibble, 2i+1 high
    for (size_t v = 0; v < 32; ++v)
      for (size_t m = 0; m < M; m += 2)
        plain[v * M / 2 + m / 2] = uint8_t(code[v * M + m] | (code[v * M + m + 1] << 4));
    faiss::pq4_pack_codes(plain.data(), 32, M, 32, 32, M, block.data());
#else
    for (size_t v = 0; v < 32; ++v)
      for (size_t m = 0; m < M; ++m) {
        size_t byte;
        unsigned shift;
        detail::pq4_code_position(v, m, &byte, &shift);
        block[byte] = uint8_t(block[byte] | (code[v * M + m] << shift));
      }
#endif
    std::vector<unsigned> want(32, 0);
    for (size_t v = 0; v < 32; ++v)
      for (size_t m = 0; m < M; ++m) want[v] += lut[m * 16 + code[v * M + m]];
    for (const char* level : {"avx512", "avx2", "sse2", "scalar"}) {
      const detail::SimdKernels* k = detail::simd_level(level);
      if (!k) continue;
      ++levels;
      CAPTURE(std::string(level));
      for (const unsigned threshold : {0u, 1u, want[0], want[7] + 1, want[31], 32767u}) {
        CAPTURE(threshold);
        std::vector<uint16_t> sums(32, 0);
        const uint32_t mask = k->pq4_block(block.data(), lut.data(), M / 2, uint16_t(threshold), sums.data());
        for (size_t v = 0; v < 32; ++v) {
          CAPTURE(v);
          CHECK(sums[v] == want[v]);
          CHECK(bool(mask >> v & 1u) == (want[v] >= threshold));
        }
      }
    }
  }
  CHECK(levels >= 12);
}

namespace {
// Vectors v [48, d] (float or uint8) stored 16 to a block, dimension-major, scored by
// `kernel(level)` for every query count from 1 to 11 (the kernels take 4 or 8 at a time)
// against a double loop at every level this CPU has.
template <class T, class Kernel>
void check_block16(const std::vector<T>& v, size_t d, double scale, const Kernel& kernel) {
  const size_t nblocks = 3, nv = nblocks * 16;
  std::vector<T> ct(nv * d);
  for (size_t r = 0; r < nv; ++r)
    for (size_t j = 0; j < d; ++j) ct[((r / 16) * d + j) * 16 + r % 16] = v[r * d + j];
  for (size_t nq = 1; nq <= 11; ++nq) {
    const auto q = test::random_vectors(int64_t(nq), int(d), 6);
    for (const char* level : {"avx512", "avx2", "sse2", "scalar"}) {
      const detail::SimdKernels* k = detail::simd_level(level);
      if (!k) continue;
      CAPTURE(std::string(level));
      CAPTURE(d);
      CAPTURE(nq);
      std::vector<float> out(nq * nv, -1.f);
      kernel(*k)(ct.data(), nblocks, d, q.data(), nq, out.data());
      for (size_t i = 0; i < nq; ++i)
        for (size_t r = 0; r < nv; ++r) {
          double want = 0;
          for (size_t j = 0; j < d; ++j) want += double(q[i * d + j]) * double(v[r * d + j]);
          CHECK(out[i * nv + r] == doctest::Approx(want).epsilon(1e-5).scale(scale));
        }
    }
  }
}
}  // namespace

TEST_CASE("SIMD block-of-16 inner products (the IVF coarse assignment) - every level - agree with a double loop") {
  for (const size_t d : {size_t(1), size_t(7), size_t(64)})
    check_block16(test::random_vectors(48, int(d), 5), d, 1.0,
                  [](const detail::SimdKernels& k) { return k.block16_dot; });
}

TEST_CASE("SIMD block-of-16 inner products over uint8 codes (the planner's exact path) - every level - agree with a double loop") {
  // Codes 0 and 255 included (the widening must not sign-extend).
  for (const size_t d : {size_t(1), size_t(7), size_t(64)}) {
    std::vector<uint8_t> c(48 * d);
    std::mt19937 rng(11);
    for (size_t r = 0; r < 48; ++r)
      for (size_t j = 0; j < d; ++j) c[r * d + j] = r == 0 ? 255 : r == 1 ? 0 : uint8_t(rng() & 0xFF);
    check_block16(c, d, 255.0, [](const detail::SimdKernels& k) { return k.block16_dot_u8; });
  }
}

TEST_CASE("SIMD row scores (the flat store's scan) - every level - agree with a double loop and do not depend on the batch") {
  // rows_dot must give each (query, row) score the same bits whatever the other rows and
  // queries of the call: scored alone (one row, one query) and inside the whole call.
  for (const size_t d : {size_t(1), size_t(7), size_t(16), size_t(64), size_t(70)})
    for (const size_t n : {size_t(1), size_t(15), size_t(16), size_t(17), size_t(40)}) {
      const auto x = test::random_vectors(int64_t(n), int(d), 21);
      const size_t nq = 5;
      const auto q = test::random_vectors(int64_t(nq), int(d), 22);
      for (const char* level : {"avx512", "avx2", "sse2", "scalar"}) {
        const detail::SimdKernels* k = detail::simd_level(level);
        if (!k) continue;
        CAPTURE(std::string(level));
        CAPTURE(d);
        CAPTURE(n);
        const size_t ldo = n + 3;  // a leading dimension wider than the rows: nothing beyond is written
        std::vector<float> out(nq * ldo, -7.f);
        k->rows_dot(x.data(), n, d, q.data(), nq, out.data(), ldo);
        for (size_t i = 0; i < nq; ++i) {
          for (size_t r = 0; r < n; ++r) {
            double want = 0;
            for (size_t j = 0; j < d; ++j) want += double(q[i * d + j]) * double(x[r * d + j]);
            CHECK(out[i * ldo + r] == doctest::Approx(want).epsilon(1e-5).scale(1));
            float alone = -1.f;
            k->rows_dot(x.data() + r * d, 1, d, q.data() + i * d, 1, &alone, 1);
            CHECK(alone == out[i * ldo + r]);  // bit for bit
          }
          for (size_t r = n; r < ldo; ++r) CHECK(out[i * ldo + r] == -7.f);
        }
      }
    }
}
