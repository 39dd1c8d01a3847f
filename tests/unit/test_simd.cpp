// The run-time dispatched kernels (src/detail/simd.hpp): every level this CPU runs agrees with
// a double-precision loop written here, on every length from 0 to 70 (all the tails).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/random_data.hpp"
#include "detail/simd.hpp"

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
