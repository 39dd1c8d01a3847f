// Header-only backward pass of MIND for one user (mind-spec.md, "Training"): gradients of the
// loss with respect to item embedding rows, the bilinear map and the ReLU layer, through the
// final routing read-out (the routing weights w and the update loop carry no gradient), and
// through label-aware attention. Templated on the scalar type so that tests check it against
// finite differences in double precision.
#pragma once

#include <cmath>

#include "mindrec/cpu/interests.hpp"

namespace mindrec::cpu {

/// Gradient of squash for one row: v = z f(‖z‖²), f(s) = s / ((1 + s) sqrt(s + ε)).
/// dv/dz = f I + 2 f'(s) z zᵀ, so dz = f dv + 2 f'(s) <z, dv> z, with
/// f'(s) = (r - s(1 + s) / (2r)) / ((1 + s)² r²), r = sqrt(s + ε) (finite at z = 0).
template <class S>
void squash_backward(const S* z, const S* dv, S* dz, int h) {
  using namespace mindrec::detail;
  MapConstRow<S> Z(z, h), DV(dv, h);
  MapRow<S> DZ(dz, h);
  const S s = Z.squaredNorm();
  const S r = std::sqrt(s + S(1e-8));
  const S f = s / ((S(1) + s) * r);
  const S fp = (r - s * (S(1) + s) / (S(2) * r)) / ((S(1) + s) * (S(1) + s) * r * r);
  DZ = f * DV + (S(2) * fp * Z.dot(DV)) * Z;
}

/// Backward of attention_forward: given d(user), writes d(interests) [kk, H] and adds the
/// gradient with respect to q into `dq` [H]. Hard read-out: only the chosen interest gets
/// d(user); the argmax passes no gradient to q.
template <class S>
void attention_backward(const S* interests, int kk, int hidden, const S* q, int pow_p,
                        Readout readout, const S* c, const S* alpha, const S* duser,
                        S* dinterests, S* dq) {
  using namespace mindrec::detail;
  MapConstMat<S> Uk(interests, kk, hidden);
  MapConstRow<S> Q(q, hidden), DU(duser, hidden);
  MapMat<S> DI(dinterests, kk, hidden);
  MapRow<S> DQ(dq, hidden);
  for (int k = 0; k < kk; ++k) DI.row(k) = alpha[k] * DU;
  if (readout == Readout::hard) return;
  // user = Σ α_k u_k, α = softmax(a), a_k = c_k^p, c_k = <u_k, q>.
  S dalpha_mean = 0;
  S dalpha[64];
  for (int k = 0; k < kk; ++k) {
    dalpha[k] = Uk.row(k).dot(DU);
    dalpha_mean += alpha[k] * dalpha[k];
  }
  for (int k = 0; k < kk; ++k) {
    const S da = alpha[k] * (dalpha[k] - dalpha_mean);
    S dc_factor = S(pow_p);
    for (int i = 1; i < pow_p; ++i) dc_factor *= c[k];
    const S dc = da * dc_factor;
    DI.row(k) += dc * Q;
    DQ += dc * Uk.row(k);
  }
}

/// Dense accumulators for one thread's share of a batch.
template <class S>
struct DenseGrads {
  detail::MatR<S> bilinear;  ///< [D, H] ([D, K H] with per_interest)
  detail::MatR<S> relu_weight;  ///< [H, H] (0x0 without relu_layer)
  detail::RowVec<S> relu_bias;  ///< [H]
  detail::RowVec<S> attention;  ///< self-attention: w1, b1, w2, position (ModelView's layout)
  void reset(const ModelView<S>& m) {
    if (m.self_attention) bilinear.resize(0, 0);
    else bilinear.setZero(m.dim, m.u_cols());
    attention.setZero(Eigen::Index(m.attention_size()));
    if (m.relu_layer) {
      relu_weight.setZero(m.hidden, m.hidden);
      relu_bias.setZero(m.hidden);
    }
  }
};

/// REMI's routing penalty of one user (LossConfig::routing_regularization) from the attention
/// weights W [kk, n] that attend_user left in `work`: Σ_k s_k² with s_k = Σ_{l<L} (a_{k,l} -
/// 1/L)² / H over all L positions (a = 0 past n), `w` being the attention [kk, n] (UserBuffers'
/// W). If `dw` is not null, writes d penalty / d W [kk, n] = 4 s_k (a_{k,l} - 1/L) / H there.
template <class S>
S routing_penalty(const ModelView<S>& m, int n, int kk, const S* w, S* dw) {
  const S inv_l = S(1) / S(m.maxlen), inv_h = S(1) / S(m.hidden);
  S total = 0;
  for (int k = 0; k < kk; ++k) {
    const S* a = w + size_t(k) * n;
    S s = S(m.maxlen - n) * inv_l * inv_l;  // the padded positions: (0 - 1/L)² each
    for (int l = 0; l < n; ++l) s += (a[l] - inv_l) * (a[l] - inv_l);
    s *= inv_h;
    total += s * s;
    if (dw)
      for (int l = 0; l < n; ++l) dw[size_t(k) * n + l] = S(4) * s * (a[l] - inv_l) * inv_h;
  }
  return total;
}

/// Backward of attend_user (ComiRec-SA) given dV [kk, D] = d loss / d v: adds to
/// g.attention (w1, b1, w2, position) and calls add_row(l, dE[l]) for each position whose id
/// is not 0. `rlambda` > 0 adds rlambda times routing_penalty()'s gradient. `scratch` holds
/// 2 K L + L (A + 2 D) scalars.
template <class S, class AddRow>
void attention_extractor_backward(const ModelView<S>& m, const int64_t* hist, int n, int kk,
                                  const S* dv, const UserBuffers<S>& buf, S* scratch,
                                  DenseGrads<S>& g, AddRow&& add_row, S rlambda) {
  using namespace mindrec::detail;
  const int D = m.dim, A = m.attn_hidden, K = m.max_k, L = m.maxlen;
  MapConstMat<S> dV(dv, kk, D), E(buf.E, n, D), W(buf.W, kk, n), T(buf.U, n, A),
      X(buf.U + size_t(L) * A, n, D);
  MapMat<S> dS(scratch, kk, n), dT(scratch + size_t(K) * L, n, A),
      dE(scratch + size_t(K) * L + size_t(L) * A, n, D);
  // v_k = Σ_l a_{k,l} e_l:  d a = dV Eᵀ,  d E = Wᵀ dV
  dS.noalias() = dV * E.transpose();
  dE.noalias() = W.transpose() * dV;
  if (rlambda > S(0)) {
    MapMat<S> dR(scratch + size_t(K) * L + size_t(L) * (A + 2 * D), kk, n);
    routing_penalty(m, n, kk, buf.W, dR.data());
    dS += rlambda * dR;
  }
  // softmax over l: d s_{k,l} = a_{k,l} (d a_{k,l} - Σ_l' a_{k,l'} d a_{k,l'})
  for (int k = 0; k < kk; ++k) {
    const S mean = W.row(k).dot(dS.row(k));
    dS.row(k) = W.row(k).cwiseProduct((dS.row(k).array() - mean).matrix());
  }
  // s = (T W2[:, :kk])ᵀ:  d W2[:, :kk] += Tᵀ dSᵀ,  d T = dSᵀ W2[:, :kk]ᵀ
  const size_t o_b1 = size_t(D) * A, o_w2 = o_b1 + A, o_pos = o_w2 + size_t(A) * K;
  MapMat<S> gW1(g.attention.data(), D, A), gW2(g.attention.data() + o_w2, A, K),
      gP(g.attention.data() + o_pos, L, D);
  MapRow<S> gB1(g.attention.data() + o_b1, A);
  MapConstMat<S> W2(m.sa_w2, A, K);
  gW2.leftCols(kk).noalias() += T.transpose() * dS.transpose();
  dT.noalias() = dS.transpose() * W2.leftCols(kk).transpose();
  // T = tanh(X W1 + b1):  d(pre) = dT (1 - T²)
  dT.array() *= (S(1) - T.array().square());
  gW1.noalias() += X.transpose() * dT;
  gB1 += dT.colwise().sum();
  // X = E + P:  d X = d(pre) W1ᵀ, to both
  MapMat<S> dX(scratch + size_t(K) * L + size_t(L) * (A + D), n, D);
  dX.noalias() = dT * MapConstMat<S>(m.sa_w1, D, A).transpose();
  dE += dX;
  gP.topRows(n) += dX;
  for (int l = 0; l < n; ++l)
    if (hist[l] != 0) add_row(l, dE.data() + size_t(l) * D);
}

/// Backward through the ReLU layer, squash, the final read-out z = w û (w constant) and
/// û = E S, for a user whose forward pass left its intermediates in `work` (extract_user).
/// `dout` [kk, H] is d(loss)/d(interests). Adds to `g` and calls add_row(position l,
/// const S* grad[D]) for each of the n history positions whose id is not 0. `scratch` needs
/// backward_scratch_size() scalars. With per_interest, dû [n, K H] holds in block k the
/// gradient through interest k only (z_k = Σ_l w[k,l] û_k[l]); blocks past kk stay zero.
template <class S, class AddRow>
void capsule_backward(const ModelView<S>& m, const int64_t* hist, int n, int kk, const S* dout,
                      S* work, S* scratch, DenseGrads<S>& g, AddRow&& add_row, S rlambda = S(0)) {
  using namespace mindrec::detail;
  const int D = m.dim, H = m.hidden, K = m.max_k, UH = m.u_cols();
  const UserBuffers<S> buf(m, work);
  MapMat<S> dP(scratch, kk, H), dV(scratch + size_t(K) * H, kk, H),
      dZ(scratch + size_t(2) * K * H, kk, H);
  S* du_buf = scratch + size_t(3) * K * H;
  S* de_buf = du_buf + size_t(m.maxlen) * UH;
  MapConstMat<S> V(buf.V, kk, H), W(buf.W, kk, n), E(buf.E, n, D);
  MapConstMat<S> dO(dout, kk, H);
  if (m.relu_layer) {
    MapConstMat<S> P(buf.P, kk, H);
    dP = dO.cwiseProduct((P.array() > S(0)).matrix().template cast<S>());
    g.relu_weight.noalias() += V.transpose() * dP;
    g.relu_bias += dP.colwise().sum();
    dV.noalias() = dP * MapConstMat<S>(m.relu_weight, H, H).transpose();
  } else {
    dV = dO;
  }
  if (m.self_attention) {
    attention_extractor_backward(m, hist, n, kk, dV.data(), buf, scratch + size_t(2) * K * H, g,
                                 add_row, rlambda);
    return;
  }
  for (int k = 0; k < kk; ++k) squash_backward(buf.Z + size_t(k) * H, dV.data() + size_t(k) * H,
                                               dZ.data() + size_t(k) * H, H);
  MapMat<S> dU(du_buf, n, UH), dE(de_buf, n, D);
  if (m.per_interest) {
    dU.setZero();
    for (int k = 0; k < kk; ++k)  // dû_k[l] = w[k,l] dz_k
      dU.middleCols(size_t(k) * H, H).noalias() = W.row(k).transpose() * dZ.row(k);
  } else {
    dU.noalias() = W.transpose() * dZ;
  }
  g.bilinear.noalias() += E.transpose() * dU;
  dE.noalias() = dU * MapConstMat<S>(m.bilinear, D, UH).transpose();
  for (int l = 0; l < n; ++l)
    if (hist[l] != 0) add_row(l, de_buf + size_t(l) * D);
}

/// Scalars of scratch capsule_backward() needs.
template <class S>
size_t backward_scratch_size(const ModelView<S>& m) {
  if (m.self_attention)
    return size_t(2) * m.max_k * m.hidden + size_t(2) * m.max_k * m.maxlen +
           size_t(m.maxlen) * (m.attn_hidden + 2 * m.dim);
  return size_t(3) * m.max_k * m.hidden + size_t(m.maxlen) * (m.u_cols() + m.dim);
}

}  // namespace mindrec::cpu
