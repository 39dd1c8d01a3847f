// Private: small vector helpers shared by the stores (host code, also in cuda/).
#pragma once

#include <cmath>
#include <cstdint>

namespace mindrec::detail {

/// Scales each of the `rows` d-vectors at `v` to unit length (norms in double; a zero row
/// stays zero): the item rows and interests of a cosine model (ModelConfig::cosine_temperature).
/// A row already unit within float rounding (|norm² - 1| <= 1e-6) is left as it is, so that
/// normalising twice gives the bits of normalising once.
template <class S>
void normalize_rows(S* v, int64_t rows, int d) {
#pragma omp parallel for schedule(static) if (rows > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    S* x = v + r * d;
    double s = 0;
    for (int j = 0; j < d; ++j) s += double(x[j]) * x[j];
    if (s > 0 && std::abs(s - 1.0) > 1e-6) {
      const S inv = S(1.0 / std::sqrt(s));
      for (int j = 0; j < d; ++j) x[j] *= inv;
    }
  }
}

/// |v|^2 of a d-vector, accumulated in double.
inline double squared_norm(const float* v, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += double(v[j]) * v[j];
  return s;
}

}  // namespace mindrec::detail
