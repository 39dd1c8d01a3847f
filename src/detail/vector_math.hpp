// Private: small vector helpers shared by the stores (host code, also in cuda/).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace mindrec::detail {

/// Whether a d-vector holds no NaN and no Inf.
inline bool all_finite(const float* v, int64_t d) {
  uint32_t bad = 0;  // branch-free (the compiler vectorises it): an exponent of all ones
  for (int64_t j = 0; j < d; ++j) {
    uint32_t u;
    std::memcpy(&u, v + j, sizeof u);
    bad |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

/// |v|^2 of a d-vector, accumulated in double.
inline double squared_norm(const float* v, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += double(v[j]) * v[j];
  return s;
}

/// The first of rows 1..rows-1 of the d-vectors at `v` whose norm is neither 0 nor within 1e-3
/// of 1 (a cosine model's item table must hold unit rows; row 0 is padding), with its norm in
/// `norm`; -1 if there is none.
inline int64_t first_non_unit_row(const float* v, int64_t rows, int d, double* norm) {
  for (int64_t r = 1; r < rows; ++r) {
    const double n2 = squared_norm(v + r * d, d);
    if (n2 != 0.0 && std::abs(n2 - 1.0) > 1e-3) {
      *norm = std::sqrt(n2);
      return r;
    }
  }
  return -1;
}

/// Whether normalize_rows scales a row of squared norm `s`: not a zero row, and not one already
/// unit within float rounding (|norm² - 1| <= 1e-6), so that normalising twice gives the bits
/// of normalising once.
inline bool scaled_by_normalize(double s) { return s > 0 && std::abs(s - 1.0) > 1e-6; }

/// True if normalize_rows would change none of the `rows` d-vectors at `v`: a table it already
/// normalised needs no copy to be saved.
inline bool rows_normalized(const float* v, int64_t rows, int d) {
  bool all = true;
#pragma omp parallel for schedule(static) reduction(&& : all) if (rows > 65536)
  for (int64_t r = 0; r < rows; ++r) all = all && !scaled_by_normalize(squared_norm(v + r * d, d));
  return all;
}

/// Scales each of the `rows` d-vectors at `v` to unit length (norms in double; a zero row
/// stays zero): the item rows and interests of a cosine model (ModelConfig::cosine_temperature).
/// A row already unit within float rounding is left as it is (scaled_by_normalize).
template <class S>
void normalize_rows(S* v, int64_t rows, int d) {
#pragma omp parallel for schedule(static) if (rows > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    S* x = v + r * d;
    double s = 0;
    for (int j = 0; j < d; ++j) s += double(x[j]) * x[j];
    if (scaled_by_normalize(s)) {
      const S inv = S(1.0 / std::sqrt(s));
      for (int j = 0; j < d; ++j) x[j] *= inv;
    }
  }
}


}  // namespace mindrec::detail
