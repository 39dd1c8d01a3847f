// Private: small vector helpers shared by the stores (host code, also in cuda/).
#pragma once

namespace mindrec::detail {

/// |v|^2 of a d-vector, accumulated in double.
inline double squared_norm(const float* v, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += double(v[j]) * v[j];
  return s;
}

}  // namespace mindrec::detail
