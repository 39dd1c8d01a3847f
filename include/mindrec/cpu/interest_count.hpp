// How many interests MIND computes for a user (mind-spec.md, dynamic interest number): shared
// by the CPU kernels and the CUDA kernels (host and device code alike).
#pragma once

#if defined(__CUDACC__)
#define MINDREC_HOST_DEVICE __host__ __device__
#else
#define MINDREC_HOST_DEVICE
#endif

namespace mindrec::cpu {

/// Interests computed for a user with n behaviours: K, or with dynamic_k the paper's
/// K'_u = max(1, min(K, floor(log2 n))) (n = 0 counts as 1).
MINDREC_HOST_DEVICE inline int interest_count(int n, int max_k, bool dynamic_k) {
  if (!dynamic_k) return max_k;
  int log2n = 0;
  while (n > 1) {
    n >>= 1;
    ++log2n;
  }
  const int k = log2n < max_k ? log2n : max_k;
  return k > 1 ? k : 1;
}

}  // namespace mindrec::cpu
