// Seeded random test data shared by the unit, serve and CUDA tests.
#pragma once

#include <cstdint>
#include <vector>

#include "detail/random.hpp"

namespace mindrec::test {

/// n x d standard normal floats, row-major, the same for a seed on every platform.
inline std::vector<float> random_vectors(int64_t n, int d, uint64_t seed) {
  detail::Rng rng(seed);
  std::vector<float> v(size_t(n) * size_t(d));
  for (auto& x : v) x = float(rng.normal());
  return v;
}

}  // namespace mindrec::test
