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
#include "mindrec/cpu/interest_count.hpp"
#include "mindrec/detail/eigen.hpp"

// Vectorisation hints for the small products below; active where OpenMP is on (mindrec's own
// build), plain loops for a consumer compiled without it (no unknown-pragma warnings).
#if defined(_OPENMP)
#define MINDREC_SIMD _Pragma("omp simd")
#define MINDREC_SIMD_SUM _Pragma("omp simd reduction(+ : sum)")
#else
#define MINDREC_SIMD
#define MINDREC_SIMD_SUM
#endif

namespace mindrec::cpu {

/// Read-only view of the model parameters (row-major, shapes as in the weights file).
template <class S>
struct ModelView {
  const S* item_emb = nullptr;        ///< [N, D]; row 0 is never read (padding = zeros)
  const S* bilinear = nullptr;        ///< [D, H], or [D, K H] with per_interest
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
  bool per_interest = false;  ///< ComiRec-DR: û_{k,l} = e_l S_k (capsule.per_interest_transform)
  /// ComiRec-SA (extractor: self_attention): the parameters below replace bilinear and
  /// routing_logits (both null then). Layout of MindWeights::attention.
  bool self_attention = false;
  const S* sa_w1 = nullptr;   ///< [D, A]
  const S* sa_b1 = nullptr;   ///< [A]
  const S* sa_w2 = nullptr;   ///< [A, K]
  const S* sa_pos = nullptr;  ///< [L, D]
  int attn_hidden = 0;        ///< A
  /// Columns of û (and of bilinear): H, or K H with per_interest.
  int u_cols() const { return per_interest ? max_k * hidden : hidden; }
  /// Columns of the workspace's U rows: û for routing; tanh(X W1 + b1) [A] then X = E + P [D]
  /// for self-attention.
  int u_width() const { return self_attention ? attn_hidden + dim : u_cols(); }
  /// Scalars of the self-attention parameters (w1, b1, w2, position back to back).
  size_t attention_size() const {
    return self_attention ? size_t(dim) * attn_hidden + attn_hidden + size_t(attn_hidden) * max_k +
                                size_t(maxlen) * dim
                          : 0;
  }
};

/// Scalars of workspace extract_user() needs.
template <class S>
size_t workspace_size(const ModelView<S>& m) {
  const size_t L = m.maxlen, D = m.dim, H = m.hidden, K = m.max_k, UH = m.u_width();
  return L * D + L * UH + 3 * K * L + 3 * K * H + 2 * L;
}

/// The named parts of extract_user()'s workspace. After a call they hold the forward pass's
/// intermediates, which the backward pass (cpu/backward.hpp) reads: E [n, D] gathered
/// embeddings, U = û [n, H] ([n, K H] with per_interest), W [kk, n] the final routing weights, Z [kk, H] the last
/// read-out before squash, V [kk, H] after squash, P [kk, H] before the ReLU. Self-attention:
/// U = tanh(X W1 + b1) [n, A] with rows of A scalars, X = E + P at U + L A, W [kk, n] the
/// attention weights, V [kk, H] the interests before the ReLU layer.
template <class S>
struct UserBuffers {
  S *E, *U, *B, *W, *Delta, *Z, *V, *P, *col;  // col: 2 L scalars of scratch
  UserBuffers(const ModelView<S>& m, S* work) {
    const size_t L = m.maxlen, D = m.dim, H = m.hidden, K = m.max_k, UH = m.u_width();
    E = work;
    U = E + L * D;
    B = U + L * UH;
    W = B + K * L;
    Delta = W + K * L;
    Z = Delta + K * L;
    V = Z + K * H;
    P = V + K * H;
    col = P + K * H;
  }
};

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

/// Softmax of each column in place, vectorised along the rows (row-major storage);
/// `scratch` holds 2·cols scalars.
template <class Derived>
void softmax_cols(Eigen::MatrixBase<Derived>& x, typename Derived::Scalar* scratch) {
  using S = typename Derived::Scalar;
  if (x.cols() == 0) return;
  detail::MapRow<S> mx(scratch, x.cols()), sum(scratch + x.cols(), x.cols());
  mx = x.row(0);
  for (Eigen::Index r = 1; r < x.rows(); ++r) mx = mx.cwiseMax(x.row(r));
  sum.setZero();
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    x.row(r) = (x.row(r) - mx).array().exp().matrix();
    sum += x.row(r);
  }
  for (Eigen::Index r = 0; r < x.rows(); ++r) x.row(r).array() /= sum.array();
}

/// C[m, n] = A[m, k] B[k, n] (row-major, no aliasing) for the small products of routing
/// ([K, n] x [n, H], [K, H] x [H, H]): each row of C accumulates scaled rows of B in a
/// local buffer the compiler keeps in vector registers. Measured here: Eigen's GEMM spent
/// over a third of interest extraction packing these tiny operands, and Eigen's dynamic-size
/// row expressions were no faster.
template <class S>
void small_gemm(const S* __restrict a, int m, int k, const S* __restrict b, int n,
                S* __restrict c) {
  constexpr int kTile = 64;
  for (int i = 0; i < m; ++i) {
    for (int j0 = 0; j0 < n; j0 += kTile) {
      const int w = std::min(kTile, n - j0);
      S acc[kTile];
      for (int j = 0; j < w; ++j) acc[j] = S(0);
      for (int p = 0; p < k; ++p) {
        const S aip = a[size_t(i) * k + p];
        const S* __restrict bp = b + size_t(p) * n + j0;
        MINDREC_SIMD
        for (int j = 0; j < w; ++j) acc[j] += aip * bp[j];
      }
      for (int j = 0; j < w; ++j) c[size_t(i) * n + j0 + j] = acc[j];
    }
  }
}

/// C[m, r] = A[m, k] B[r, k]ᵀ as dot products of rows (Δb[k, l] = <v_k, û_l>).
template <class S>
void small_gemm_nt(const S* __restrict a, int m, int k, const S* __restrict b, int r,
                   S* __restrict c) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < r; ++j) {
      S sum = 0;
      const S* ai = a + size_t(i) * k;
      const S* bj = b + size_t(j) * k;
      MINDREC_SIMD_SUM
      for (int p = 0; p < k; ++p) sum += ai[p] * bj[p];
      c[size_t(i) * r + j] = sum;
    }
}

/// Interests of one user. `hist` holds its `n` behaviours (0 <= n <= L, ids in [0, N); id 0
/// reads as a zero embedding); whatever follows position n is never read, which is exactly
/// the spec's masking: a masked position has û = 0 and, under the behaviours softmax, weight
/// exp(-(2^32)+1 - max) = 0, so it contributes nothing. Writes `out` [K, H] (rows past the
/// computed interests are zero) and returns the number of interests computed.
/// Routing (steps 2-4) for a user whose û [n, H] ([n, K H] with per_interest) is at `u`: leaves the final routing weights
/// in W, the last read-out in Z and its squash in V (see UserBuffers); returns kk.
template <class S>
int route_user(const ModelView<S>& m, const S* u, int n, const UserBuffers<S>& buf) {
  using namespace mindrec::detail;
  const int H = m.hidden, L = m.maxlen;
  const int kk = interest_count(n, m.max_k, m.dynamic_k);
  // 2. b = routing_logits[:kk, :n]
  MapMat<S> B(buf.B, kk, n), W(buf.W, kk, n), Delta(buf.Delta, kk, n);
  for (int k = 0; k < kk; ++k) B.row(k) = MapConstRow<S>(m.routing_logits + size_t(k) * L, n);
  MapMat<S> Z(buf.Z, kk, H), V(buf.V, kk, H);
  // 3.-4. iters-1 updates (no gradient flows through them), then the read-out.
  for (int it = 0; it < m.iters; ++it) {
    const bool last = it == m.iters - 1;
    const bool over_k = m.axis == SoftmaxAxis::interests || (m.axis == SoftmaxAxis::hybrid && last);
    W = B;
    if (over_k) softmax_cols(W, buf.col);
    else softmax_rows(W);
    if (m.per_interest) {  // interest k reads its own block of û: û[l, kH:(k+1)H]
      const int UH = m.u_cols();
      for (int k = 0; k < kk; ++k) {
        const S* uk = u + size_t(k) * H;
        S* z = buf.Z + size_t(k) * H;
        for (int h = 0; h < H; ++h) z[h] = S(0);
        for (int l = 0; l < n; ++l) {
          const S w = buf.W[size_t(k) * n + l];
          const S* ul = uk + size_t(l) * UH;
          MINDREC_SIMD
          for (int h = 0; h < H; ++h) z[h] += w * ul[h];
        }
      }
    } else {
      small_gemm(buf.W, kk, n, u, H, buf.Z);  // z_k = Σ_l w[k,l] û[l]
    }
    V = Z;
    squash_rows(V);
    if (last) break;
    if (m.per_interest) {  // Δb[k, l] = <û_k[l], v_k>
      const int UH = m.u_cols();
      for (int k = 0; k < kk; ++k)
        for (int l = 0; l < n; ++l) {
          const S* ul = u + size_t(l) * UH + size_t(k) * H;
          const S* vk = buf.V + size_t(k) * H;
          S sum = 0;
          MINDREC_SIMD_SUM
          for (int h = 0; h < H; ++h) sum += vk[h] * ul[h];
          buf.Delta[size_t(k) * n + l] = sum;
        }
    } else {
      small_gemm_nt(buf.V, kk, H, u, n, buf.Delta);  // Δb[k, l] = <û[l], v_k>
    }
    if (m.axis == SoftmaxAxis::behaviors)
      for (int k = 0; k < kk; ++k) Delta.row(k) /= std::max(S(1), Delta.row(k).norm());
    B += Delta;
  }
  return kk;
}

/// Gathers E[l] = item_emb[h[l]] (id 0 reads as zeros) for l < n into `e` [n, D].
template <class S>
void gather_rows(const ModelView<S>& m, const int64_t* hist, int n, S* e) {
  using namespace mindrec::detail;
  const int D = m.dim;
  MapMat<S> E(e, n, D);
  for (int l = 0; l < n; ++l) {
    const int64_t id = hist[l];
    if (id == 0) E.row(l).setZero();
    else E.row(l) = MapConstRow<S>(m.item_emb + id * D, D);
  }
}

/// ComiRec-SA's interests (SelfAttentionConfig) of a user whose embeddings E [n, D] are in
/// buf.E: X = E + P[:n], T = tanh(X W1 + b1) [n, A], a_k = softmax over l of (T W2)[:, k]
/// (W [kk, n]), v_k = Σ_l a_{k,l} e_l in V [kk, D]. Returns kk.
template <class S>
int attend_user(const ModelView<S>& m, int n, const UserBuffers<S>& buf) {
  using namespace mindrec::detail;
  const int D = m.dim, A = m.attn_hidden, K = m.max_k, L = m.maxlen;
  const int kk = interest_count(n, m.max_k, m.dynamic_k);
  MapMat<S> T(buf.U, n, A), X(buf.U + size_t(L) * A, n, D), W(buf.W, kk, n);
  X = MapConstMat<S>(buf.E, n, D) + MapConstMat<S>(m.sa_pos, n, D);
  T.noalias() = X * MapConstMat<S>(m.sa_w1, D, A);
  T.rowwise() += MapConstRow<S>(m.sa_b1, A);
  T = T.array().tanh().matrix();
  // scores [kk, n] = (T W2[:, :kk])ᵀ, then the softmax over the behaviours
  W.noalias() = (T * MapConstMat<S>(m.sa_w2, A, K).leftCols(kk)).transpose();
  softmax_rows(W);
  small_gemm(buf.W, kk, n, buf.E, D, buf.V);
  return kk;
}

/// Interests of one user (see above). If `projected` is not null it holds û for every item,
/// item_emb · S [N, H] ([N, K H] with per_interest) (inference with fixed weights: the bilinear
/// map is then a gather instead of a per-user GEMM); otherwise û = E S is computed here and E
/// is kept for the backward pass. Self-attention never reads `projected` (the position
/// embeddings make every row user-specific).
template <class S>
int extract_user(const ModelView<S>& m, const int64_t* hist, int n, S* out, S* work,
                 const S* projected = nullptr) {
  using namespace mindrec::detail;
  const int D = m.dim, H = m.hidden, K = m.max_k, UH = m.u_cols();
  const UserBuffers<S> buf(m, work);
  int kk = 0;
  if (m.self_attention) {
    gather_rows(m, hist, n, buf.E);
    kk = attend_user(m, n, buf);
  } else {
    // 1. û = E S   [n, H]  ([n, K H] with per_interest)
    MapMat<S> U(buf.U, n, UH);
    if (projected) {
      for (int l = 0; l < n; ++l) {
        if (hist[l] == 0) U.row(l).setZero();
        else U.row(l) = MapConstRow<S>(projected + hist[l] * UH, UH);
      }
    } else {
      gather_rows(m, hist, n, buf.E);
      U.noalias() = MapConstMat<S>(buf.E, n, D) * MapConstMat<S>(m.bilinear, D, UH);
    }
    kk = route_user(m, buf.U, n, buf);
  }
  // 5. u_k = ReLU(v_k W + b)
  MapConstMat<S> V(buf.V, kk, H);
  MapMat<S> O(out, K, H);
  if (m.relu_layer) {
    MapMat<S> P(buf.P, kk, H);
    small_gemm(buf.V, kk, H, m.relu_weight, H, buf.P);
    P.rowwise() += MapConstRow<S>(m.relu_bias, H);
    O.topRows(kk) = P.cwiseMax(S(0));
  } else {
    O.topRows(kk) = V;
  }
  O.bottomRows(K - kk).setZero();
  return kk;
}

/// Label-aware attention (training read-out; mind-spec.md): q = item_emb[target];
/// a_k = <u_k, q>^p over the first `kk` interests (`interests` is [kk, H]); soft: user =
/// Σ softmax(a)_k u_k; hard: user = u_argmax(a) (first on ties). `pow_p` is an integer >= 1.
/// Keeps what the backward pass needs: `c` [kk] = <u_k, q> and `alpha` [kk], the attention
/// weights (soft) or the one-hot argmax (hard).
template <class S>
void attention_forward(const S* interests, int kk, int hidden, const S* q, int pow_p,
                       Readout readout, S* user, S* c, S* alpha) {
  using namespace mindrec::detail;
  MapConstMat<S> Uk(interests, kk, hidden);
  MapConstRow<S> Q(q, hidden);
  int best = 0;
  S best_a = 0, mx = 0;
  for (int k = 0; k < kk; ++k) {
    c[k] = Uk.row(k).dot(Q);
    S a = c[k];
    for (int i = 1; i < pow_p; ++i) a *= c[k];
    alpha[k] = a;
    if (k == 0 || a > best_a) best_a = a, best = k;
  }
  mx = best_a;
  if (readout == Readout::hard) {
    for (int k = 0; k < kk; ++k) alpha[k] = k == best ? S(1) : S(0);
  } else {
    S sum = 0;
    for (int k = 0; k < kk; ++k) sum += (alpha[k] = std::exp(alpha[k] - mx));
    for (int k = 0; k < kk; ++k) alpha[k] /= sum;
  }
  MapRow<S> out(user, hidden);
  out.setZero();
  for (int k = 0; k < kk; ++k)
    if (alpha[k] != S(0)) out += alpha[k] * Uk.row(k);
}

}  // namespace mindrec::cpu
