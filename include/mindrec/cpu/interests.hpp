// Header-only CPU kernels of MIND's forward pass for one user (mind-spec.md, "Interest
// extraction" and "Label-aware attention"). Templated on the scalar type so that tests can
// run the same code in double precision. No allocation: callers pass a workspace of
// workspace_size() scalars. Thread-safe for distinct workspaces and outputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "mindrec/config.hpp"
#include "mindrec/detail/eigen.hpp"

namespace mindrec::cpu {

/// Read-only view of the model parameters (row-major, shapes as in the weights file).
template <class S>
struct ModelView {
  const S* item_emb = nullptr;        ///< [N, D]; row 0 is never read (padding = zeros)
  const S* bilinear = nullptr;        ///< [D, H]
  const S* routing_logits = nullptr;  ///< [K, L]
  const S* relu_weight = nullptr;     ///< [H, H], out = v W + b; null without relu_layer
  const S* relu_bias = nullptr;       ///< [H]
  int64_t item_count = 0;             ///< N
  int dim = 0;                        ///< D
  int hidden = 0;                     ///< H
  int max_k = 0;                      ///< K
  int maxlen = 0;                     ///< L
  int iters = 3;
  SoftmaxAxis axis = SoftmaxAxis::interests;
  bool relu_layer = true;
  bool dynamic_k = false;
};

/// Interests computed for a user with n behaviours: K, or with dynamic_k the paper's
/// K'_u = max(1, min(K, floor(log2 n))) (n = 0 counts as 1).
inline int interest_count(int n, int max_k, bool dynamic_k) {
  if (!dynamic_k) return max_k;
  int log2n = 0;
  while (n > 1) {
    n >>= 1;
    ++log2n;
  }
  return std::max(1, std::min(max_k, log2n));
}

/// Scalars of workspace extract_user() needs.
template <class S>
size_t workspace_size(const ModelView<S>& m) {
  const size_t L = m.maxlen, D = m.dim, H = m.hidden, K = m.max_k;
  return L * D + L * H + 3 * K * L + K * H;
}

/// squash(z) = z · (‖z‖² / (1 + ‖z‖²)) / sqrt(‖z‖² + 1e-8), applied to each row in place.
template <class Derived>
void squash_rows(Eigen::MatrixBase<Derived>& z) {
  using S = typename Derived::Scalar;
  for (Eigen::Index k = 0; k < z.rows(); ++k) {
    const S n2 = z.row(k).squaredNorm();
    z.row(k) *= (n2 / (S(1) + n2)) / std::sqrt(n2 + S(1e-8));
  }
}

/// Softmax of each row in place (numerically stable).
template <class Derived>
void softmax_rows(Eigen::MatrixBase<Derived>& x) {
  using S = typename Derived::Scalar;
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    if (x.cols() == 0) continue;
    const S mx = x.row(r).maxCoeff();
    x.row(r) = (x.row(r).array() - mx).exp();
    x.row(r) /= x.row(r).sum();
  }
}

/// Softmax of each column in place.
template <class Derived>
void softmax_cols(Eigen::MatrixBase<Derived>& x) {
  using S = typename Derived::Scalar;
  for (Eigen::Index c = 0; c < x.cols(); ++c) {
    const S mx = x.col(c).maxCoeff();
    x.col(c) = (x.col(c).array() - mx).exp();
    x.col(c) /= x.col(c).sum();
  }
}

/// Interests of one user. `hist` holds its `n` behaviours (0 <= n <= L, ids in [0, N); id 0
/// reads as a zero embedding); whatever follows position n is never read, which is exactly
/// the spec's masking: a masked position has û = 0 and, under the behaviours softmax, weight
/// exp(-(2^32)+1 - max) = 0, so it contributes nothing. Writes `out` [K, H] (rows past the
/// computed interests are zero) and returns the number of interests computed.
template <class S>
int extract_user(const ModelView<S>& m, const int64_t* hist, int n, S* out, S* work) {
  using namespace mindrec::detail;
  const int D = m.dim, H = m.hidden, K = m.max_k, L = m.maxlen;
  const int kk = interest_count(n, K, m.dynamic_k);
  S* e_buf = work;
  S* u_buf = e_buf + size_t(L) * D;
  S* b_buf = u_buf + size_t(L) * H;
  S* w_buf = b_buf + size_t(K) * L;
  S* d_buf = w_buf + size_t(K) * L;
  S* z_buf = d_buf + size_t(K) * L;

  // 1. E[l] = item_emb[h[l]]; û = E S   [n, H]
  MapMat<S> E(e_buf, n, D);
  for (int l = 0; l < n; ++l) {
    const int64_t id = hist[l];
    if (id == 0) E.row(l).setZero();
    else E.row(l) = MapConstRow<S>(m.item_emb + id * D, D);
  }
  MapMat<S> U(u_buf, n, H);
  U.noalias() = E * MapConstMat<S>(m.bilinear, D, H);

  // 2. b = routing_logits[:kk, :n]
  MapMat<S> B(b_buf, kk, n), W(w_buf, kk, n), Delta(d_buf, kk, n);
  for (int k = 0; k < kk; ++k) B.row(k) = MapConstRow<S>(m.routing_logits + size_t(k) * L, n);
  MapMat<S> Z(z_buf, kk, H);

  // 3.-4. iters-1 updates, then the read-out.
  for (int it = 0; it < m.iters; ++it) {
    const bool last = it == m.iters - 1;
    const bool over_k = m.axis == SoftmaxAxis::interests || (m.axis == SoftmaxAxis::hybrid && last);
    W = B;
    if (over_k) softmax_cols(W);
    else softmax_rows(W);
    Z.noalias() = W * U;
    squash_rows(Z);  // Z now holds v
    if (last) break;
    Delta.noalias() = Z * U.transpose();  // Δb[k, l] = <û[l], v_k>
    if (m.axis == SoftmaxAxis::behaviors)
      for (int k = 0; k < kk; ++k) Delta.row(k) /= std::max(S(1), Delta.row(k).norm());
    B += Delta;
  }

  // 5. u_k = ReLU(v_k W + b)
  MapMat<S> O(out, K, H);
  if (m.relu_layer) {
    O.topRows(kk).noalias() = Z * MapConstMat<S>(m.relu_weight, H, H);
    O.topRows(kk).rowwise() += MapConstRow<S>(m.relu_bias, H);
    O.topRows(kk) = O.topRows(kk).cwiseMax(S(0));
  } else {
    O.topRows(kk) = Z;
  }
  O.bottomRows(K - kk).setZero();
  return kk;
}

/// Label-aware attention (training read-out): q = item_emb[target]; a_k = <u_k, q>^p over the
/// first `kk` interests; soft: user = Σ softmax(a)_k u_k; hard: user = u_argmax(a) (first on
/// ties). `interests` is [K, H] (only kk rows read), `out` is [H]. `pow_p` is an integer >= 1.
template <class S>
void label_aware_attention(const S* interests, int kk, int hidden, const S* target_emb,
                           int pow_p, Readout readout, S* out, S* scratch /*[kk]*/) {
  using namespace mindrec::detail;
  MapConstMat<S> Uk(interests, kk, hidden);
  MapConstRow<S> q(target_emb, hidden);
  Eigen::Map<Eigen::Matrix<S, Eigen::Dynamic, 1>> a(scratch, kk);
  a.noalias() = Uk * q.transpose();
  for (int k = 0; k < kk; ++k) {
    S v = a[k], r = v;
    for (int i = 1; i < pow_p; ++i) r *= v;
    a[k] = r;
  }
  MapRow<S> o(out, hidden);
  if (readout == Readout::hard) {
    Eigen::Index best = 0;
    a.maxCoeff(&best);
    o = Uk.row(best);
    return;
  }
  const S mx = a.maxCoeff();
  a = (a.array() - mx).exp();
  a /= a.sum();
  o.noalias() = a.transpose() * Uk;
}

}  // namespace mindrec::cpu
