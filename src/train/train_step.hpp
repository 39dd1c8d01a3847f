// Header-only loss and gradients of one training batch (mind-spec.md, "Training"): interest
// extraction, label-aware attention, and the sampled softmax over one shared negative set
// with the log-q correction and accidental-hit masking; then the backward pass of all of it.
// Templated on the scalar type (float for training, double for gradient checks).
//
// Determinism: per-sample work is cut into `threads` fixed chunks whose partial gradients are
// added in chunk order, so the same inputs and thread count give bit-identical results,
// whatever team OpenMP grants.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "detail/huge_vector.hpp"
#include "mindrec/aligned.hpp"
#include "train/backward.hpp"
#include "mindrec/cpu/interests.hpp"
#include "mindrec/error.hpp"


namespace mindrec::cpu {

/// One batch: B samples (right-padded histories [B, L], lengths, targets) and one set of
/// distinct negatives shared by all samples, with their log-q corrections.
template <class S>
struct BatchInput {
  const int64_t* hist = nullptr;     ///< [B, L]
  const int32_t* lengths = nullptr;  ///< [B]
  const int64_t* targets = nullptr;  ///< [B]
  int64_t batch = 0;
  const int64_t* negatives = nullptr;  ///< [num_neg], distinct ids in [1, N)
  int num_neg = 0;
  const S* log_q_negatives = nullptr;  ///< [num_neg]
  const S* log_q_targets = nullptr;    ///< [B]
};

/// Loss and gradients of a batch, plus the workspace to compute them (reused across steps).
template <class S>
class BatchGradient {
 public:
  BatchGradient(const ModelView<S>& m, int threads) : threads_(std::max(1, threads)) {
    detail::assign_on_huge_pages(slot_of, static_cast<size_t>(m.item_count), int32_t(-1));
  }

  S loss = 0;
  DenseGrads<S> dense;                 ///< d/d bilinear, relu weight, relu bias
  std::vector<int64_t> rows;           ///< item id of each gradient row ("slot")
  detail::MatR<S> row_grads;           ///< [rows, D] d/d item_emb rows
  std::vector<int32_t> slot_of;        ///< [N] slot of an item id, -1 if untouched

  /// Mean cross-entropy over the batch; fills dense, rows, row_grads and slot_of.
  /// `hard_negative_beta` > 0: REMI's re-weighted negatives (LossConfig::hard_negative_beta).
  /// `routing_regularization` > 0 (self-attention only): REMI's regulariser on the attention
  /// (LossConfig::routing_regularization), added to `loss`.
  S compute(const ModelView<S>& m, const BatchInput<S>& in, int pow_p, Readout readout,
            double hard_negative_beta = 0.0, double routing_regularization = 0.0,
            double cosine_temperature = 0.0);

  /// compute() for a cosine model (ModelConfig::cosine_temperature > 0): the batch's item rows
  /// are read normalised, ê = e / |e| (a compact table of the R rows it touches, ids remapped),
  /// the interests and the read-out are normalised, the logits are cos / tau; the row
  /// gradients are then carried back through the normalisation, (g - <ê, g> ê) / |e|, into
  /// `rows`, `row_grads` and `slot_of` of the original ids, as compute() leaves them.
  S compute_normalized(const ModelView<S>& m, const BatchInput<S>& in, int pow_p, Readout readout,
                       double hard_negative_beta, double routing_regularization,
                       double cosine_temperature);

 private:
  int slot(int64_t id) {
    int32_t& s = slot_of[static_cast<size_t>(id)];
    if (s < 0) {
      s = static_cast<int32_t>(rows.size());
      rows.push_back(id);
    }
    return s;
  }

  /// REMI's loss for sample b (its corrected negative logits in logits_.row(b), accidental
  /// hits at -1e30; the target's `lt`): with a_j over the M negatives that are not the
  /// target, N_g = M sum_j exp((1+beta) a_j) / sum_j exp(beta a_j) and loss = log(exp(lt) +
  /// N_g) - lt. Leaves d loss / d logit (over B) in logit_t_[b] and logits_.row(b):
  /// d/d a_j = (N_g / T) ((1+beta) p_j - beta r_j), p = softmax((1+beta) a), r =
  /// softmax(beta a), T = exp(lt) + N_g. Returns the sample's loss.
  S hard_negatives(int64_t b, S lt, const int64_t* negatives, int nn, int64_t t, S beta) {
    const S Bs = S(logits_.rows());
    S mx = -std::numeric_limits<S>::infinity();
    int M = 0;
    for (int j = 0; j < nn; ++j)
      if (negatives[j] != t) mx = std::max(mx, logits_(b, j)), ++M;
    if (M == 0) {  // the only negative is the target itself: nothing to contrast, loss 0
      logit_t_[b] = 0;
      logits_.row(b).setZero();
      return 0;
    }
    // Two exponentials a negative, kept for the gradient below: exp((1+beta) d) = exp(d) exp(beta d).
    remi_.resize(2 * size_t(nn));
    S* e1 = remi_.data();
    S* eb = e1 + nn;
    S s1 = 0, s2 = 0;
    for (int j = 0; j < nn; ++j) {
      if (negatives[j] == t) {
        e1[j] = eb[j] = 0;
        continue;
      }
      const S d = logits_(b, j) - mx;
      eb[j] = std::exp(beta * d);
      e1[j] = std::exp(d) * eb[j];
      s1 += e1[j];
      s2 += eb[j];
    }
    const S log_ng = std::log(S(M)) + mx + std::log(s1) - std::log(s2);
    const S hi = std::max(lt, log_ng);
    const S log_t = hi + std::log(std::exp(lt - hi) + std::exp(log_ng - hi));
    logit_t_[b] = (std::exp(lt - log_t) - S(1)) / Bs;
    const S share = std::exp(log_ng - log_t) / Bs;
    const S c1 = share * (S(1) + beta) / s1, c2 = share * beta / s2;
    for (int j = 0; j < nn; ++j) logits_(b, j) = c1 * e1[j] - c2 * eb[j];  // 0 for the target
    return log_t - lt;
  }

  int threads_;
  // 64-byte aligned (see aligned.hpp): results must not depend on where buffers land.
  AlignedVector<S> work_;      // [B, workspace]
  AlignedVector<S> out_;       // [B, K, H] interests
  std::vector<int32_t> kk_;    // [B]
  AlignedVector<S> c_, alpha_; // [B, K]
  detail::MatR<S> users_, dusers_, eneg_, logits_;
  AlignedVector<S> logit_t_;
  AlignedVector<S> remi_;  // [2 nn] hard_negatives()'s exponentials
  AlignedVector<S> reg_;   // [B] each sample's routing penalty
  AlignedVector<S> inorm_, unorm_;  // cosine: [B, K] interests' and [B] read-outs' norms
  // compute_normalized(): the compact table (row 0 = padding), its rows' norms and original
  // ids, and the remapped batch
  AlignedVector<S> ctab_, cnorm_;
  std::vector<int64_t> corig_, chist_, ctargets_, cnegs_;
  std::vector<detail::MatR<S>> thread_rows_;
  std::vector<DenseGrads<S>> thread_dense_;
  std::vector<AlignedVector<S>> thread_scratch_;
};

template <class S>
S BatchGradient<S>::compute(const ModelView<S>& m, const BatchInput<S>& in, int pow_p,
                            Readout readout, double hard_negative_beta,
                            double routing_regularization, double cosine_temperature) {
  using namespace mindrec::detail;
  const int D = m.dim, H = m.hidden, K = m.max_k, L = m.maxlen;
  const int64_t B = in.batch;
  const int nn = in.num_neg;
  MINDREC_EXPECTS(B >= 1 && nn >= 1, "BatchGradient: empty batch or no negatives");

  // Slots: negatives first (slot j = negative j), then targets and history items.
  for (int64_t id : rows) slot_of[static_cast<size_t>(id)] = -1;
  rows.clear();
  for (int j = 0; j < nn; ++j) {
    if (slot_of[static_cast<size_t>(in.negatives[j])] >= 0)
      throw InvalidArgument("BatchGradient: negatives must be distinct");
    slot(in.negatives[j]);
  }
  for (int64_t b = 0; b < B; ++b) {
    slot(in.targets[b]);
    for (int l = 0; l < in.lengths[b]; ++l)
      if (in.hist[b * L + l] != 0) slot(in.hist[b * L + l]);
  }
  const int64_t R = static_cast<int64_t>(rows.size());

  const size_t ws = workspace_size(m);
  work_.resize(size_t(B) * ws);
  out_.resize(size_t(B) * K * H);
  kk_.resize(B);
  c_.resize(size_t(B) * K);
  alpha_.resize(size_t(B) * K);
  users_.resize(B, H);
  logit_t_.resize(B);
  const int nt = static_cast<int>(std::min<int64_t>(threads_, B));
  const S rlambda = m.self_attention ? static_cast<S>(routing_regularization) : S(0);
  reg_.assign(size_t(B), S(0));
  const bool cosine = cosine_temperature > 0.0;
  const S inv_tau = cosine ? static_cast<S>(1.0 / cosine_temperature) : S(1);
  if (cosine) inorm_.assign(size_t(B) * K, S(0)), unorm_.assign(size_t(B), S(0));
  // Normalises the n-vector at x in place; returns its norm (0 stays 0).
  auto unit = [](S* x, int n) {
    S s = 0;
    for (int j = 0; j < n; ++j) s += x[j] * x[j];
    const S r = std::sqrt(s);
    if (r > S(0))
      for (int j = 0; j < n; ++j) x[j] /= r;
    return r;
  };
  // Backward of unit(): dx = (dy - <dy, y> y) / r for y = x / r (0 where r = 0), in place on dy.
  auto unit_backward = [](const S* y, S r, S* dy, int n) {
    if (r <= S(0)) {
      for (int j = 0; j < n; ++j) dy[j] = 0;
      return;
    }
    S d = 0;
    for (int j = 0; j < n; ++j) d += dy[j] * y[j];
    for (int j = 0; j < n; ++j) dy[j] = (dy[j] - d * y[j]) / r;
  };

  // Forward: interests and attention per sample.
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t b = 0; b < B; ++b) {
    S* o = out_.data() + size_t(b) * K * H;
    kk_[b] = extract_user(m, in.hist + b * L, in.lengths[b], o, work_.data() + size_t(b) * ws);
    if (rlambda > S(0))
      reg_[size_t(b)] = routing_penalty(m, in.lengths[b], kk_[b],
                                        UserBuffers<S>(m, work_.data() + size_t(b) * ws).W, static_cast<S*>(nullptr));
    if (cosine)
      for (int k = 0; k < kk_[b]; ++k) inorm_[size_t(b) * K + k] = unit(o + size_t(k) * H, H);
    attention_forward(o, kk_[b], H, m.item_emb + in.targets[b] * D, pow_p, readout,
                      users_.data() + size_t(b) * H, c_.data() + size_t(b) * K,
                      alpha_.data() + size_t(b) * K);
    if (cosine) unorm_[size_t(b)] = unit(users_.data() + size_t(b) * H, H);
  }

  // Sampled softmax: logits [B, 1 + nn] = <user, emb[j]> - log_q[j]; class 0 = target.
  eneg_.resize(nn, D);
  for (int j = 0; j < nn; ++j) eneg_.row(j) = MapConstRow<S>(m.item_emb + in.negatives[j] * D, D);
  logits_.resize(B, nn);
  logits_.noalias() = users_ * eneg_.transpose();
  if (cosine) logits_ *= inv_tau;  // cos / tau (users and rows are unit here)
  S total = 0;
  const S beta = static_cast<S>(hard_negative_beta);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t t = in.targets[b];
    S lt = inv_tau * users_.row(b).dot(MapConstRow<S>(m.item_emb + t * D, D)) - in.log_q_targets[b];
    S mx = lt;
    for (int j = 0; j < nn; ++j) {
      S& x = logits_(b, j);
      x = in.negatives[j] == t ? S(-1e30) : x - in.log_q_negatives[j];  // accidental hit
      mx = std::max(mx, x);
    }
    if (beta > S(0)) {
      total += hard_negatives(b, lt, in.negatives, nn, t, beta);
      continue;
    }
    S sum = std::exp(lt - mx);
    for (int j = 0; j < nn; ++j) sum += std::exp(logits_(b, j) - mx);
    total += std::log(sum) + mx - lt;
    // d loss / d logit = (softmax - onehot(0)) / B
    const S inv = S(1) / (sum * S(B));
    logit_t_[b] = std::exp(lt - mx) * inv - S(1) / S(B);
    for (int j = 0; j < nn; ++j) logits_(b, j) = std::exp(logits_(b, j) - mx) * inv;
  }
  loss = total / S(B);
  if (rlambda > S(0)) {
    S reg = 0;
    for (int64_t b = 0; b < B; ++b) reg += reg_[size_t(b)];
    loss += rlambda * reg;
  }

  // d users = G_neg E_neg + g_t emb[t];  d E_neg = G_negᵀ users;  d emb[t] += g_t user.
  if (cosine) {  // through the 1/tau of the logits
    logits_ *= inv_tau;
    for (int64_t b = 0; b < B; ++b) logit_t_[b] *= inv_tau;
  }
  row_grads.setZero(R, D);
  dusers_.resize(B, H);
  dusers_.noalias() = logits_ * eneg_;
  row_grads.topRows(nn).noalias() = logits_.transpose() * users_;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t t = in.targets[b];
    dusers_.row(b) += logit_t_[b] * MapConstRow<S>(m.item_emb + t * D, D);
    row_grads.row(slot_of[size_t(t)]) += logit_t_[b] * users_.row(b);
  }

  // Backward per sample: attention, then capsule. The samples are cut into nt fixed chunks
  // (the split OpenMP's static schedule makes for nt threads), each summed into its own
  // partial gradient, and the partials are added in chunk order: the result depends on nt
  // only, not on how many threads OpenMP actually grants (OMP_THREAD_LIMIT, nesting,
  // dynamic teams), and a chunk's buffers are always zeroed before use.
  thread_rows_.resize(nt);
  thread_dense_.resize(nt);
  thread_scratch_.resize(nt);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int c = 0; c < nt; ++c) {
    MatR<S>& tr = thread_rows_[c];
    tr.setZero(R, D);
    DenseGrads<S>& td = thread_dense_[c];
    td.reset(m);
    AlignedVector<S>& scratch = thread_scratch_[c];
    scratch.resize(backward_scratch_size(m) + size_t(K) * H + D + H);
    S* dout = scratch.data() + backward_scratch_size(m);
    S* dq = dout + size_t(K) * H;
    S* du = dq + D;  // d read-out before its normalisation (cosine)
    const int64_t q = B / nt, r = B % nt;
    const int64_t b0 = c * q + std::min<int64_t>(c, r), b1 = b0 + q + (c < r ? 1 : 0);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t t = in.targets[b];
      const int kk = kk_[b];
      std::fill(dq, dq + D, S(0));
      const S* duser = dusers_.data() + size_t(b) * H;
      if (cosine) {
        std::copy(duser, duser + H, du);
        unit_backward(users_.data() + size_t(b) * H, unorm_[size_t(b)], du, H);
        duser = du;
      }
      attention_backward(out_.data() + size_t(b) * K * H, kk, H, m.item_emb + t * D, pow_p,
                         readout, c_.data() + size_t(b) * K, alpha_.data() + size_t(b) * K,
                         duser, dout, dq);
      if (cosine)
        for (int k = 0; k < kk; ++k)
          unit_backward(out_.data() + size_t(b) * K * H + size_t(k) * H, inorm_[size_t(b) * K + k],
                        dout + size_t(k) * H, H);
      tr.row(slot_of[size_t(t)]) += MapConstRow<S>(dq, D);
      const int64_t* h = in.hist + b * L;
      capsule_backward(m, h, in.lengths[b], kk, dout, work_.data() + size_t(b) * ws,
                       scratch.data(), td, [&](int l, const S* g) {
                         tr.row(slot_of[size_t(h[l])]) += MapConstRow<S>(g, D);
                       }, rlambda);
    }
  }
  dense.reset(m);
  for (int t = 0; t < nt; ++t) {
    row_grads += thread_rows_[t];
    dense.bilinear += thread_dense_[t].bilinear;
    dense.attention += thread_dense_[t].attention;
    if (m.relu_layer) {
      dense.relu_weight += thread_dense_[t].relu_weight;
      dense.relu_bias += thread_dense_[t].relu_bias;
    }
  }
  return loss;
}


template <class S>
S BatchGradient<S>::compute_normalized(const ModelView<S>& m, const BatchInput<S>& in, int pow_p,
                                       Readout readout, double hard_negative_beta,
                                       double routing_regularization, double cosine_temperature) {
  using namespace mindrec::detail;
  const int D = m.dim, L = m.maxlen;
  const int64_t B = in.batch;
  const int nn = in.num_neg;
  // The rows the batch reads, in compute()'s slot order, as compact ids 1..R (slot_of is the
  // map meanwhile; compute() then owns it again).
  for (int64_t id : rows) slot_of[static_cast<size_t>(id)] = -1;
  rows.clear();
  corig_.assign(1, 0);
  auto compact = [&](int64_t id) -> int64_t {
    if (id == 0) return 0;
    int32_t& s = slot_of[static_cast<size_t>(id)];
    if (s < 0) {
      s = static_cast<int32_t>(corig_.size());
      corig_.push_back(id);
    }
    return s;
  };
  cnegs_.resize(size_t(nn));
  for (int j = 0; j < nn; ++j) cnegs_[size_t(j)] = compact(in.negatives[j]);
  ctargets_.resize(size_t(B));
  chist_.assign(size_t(B) * L, 0);
  for (int64_t b = 0; b < B; ++b) {
    ctargets_[size_t(b)] = compact(in.targets[b]);
    for (int l = 0; l < in.lengths[b]; ++l) chist_[size_t(b * L + l)] = compact(in.hist[b * L + l]);
  }
  const int64_t C = static_cast<int64_t>(corig_.size());
  for (int64_t c = 1; c < C; ++c) slot_of[static_cast<size_t>(corig_[size_t(c)])] = -1;
  ctab_.assign(size_t(C) * D, S(0));
  cnorm_.assign(size_t(C), S(0));
  for (int64_t c = 1; c < C; ++c) {
    const S* e = m.item_emb + corig_[size_t(c)] * D;
    S* x = ctab_.data() + size_t(c) * D;
    S s = 0;
    for (int d = 0; d < D; ++d) s += e[d] * e[d];
    cnorm_[size_t(c)] = std::sqrt(s);
    for (int d = 0; d < D; ++d) x[d] = cnorm_[size_t(c)] > S(0) ? e[d] / cnorm_[size_t(c)] : S(0);
  }
  ModelView<S> cm = m;
  cm.item_emb = ctab_.data();
  cm.item_count = C;
  BatchInput<S> cin = in;
  cin.hist = chist_.data();
  cin.targets = ctargets_.data();
  cin.negatives = cnegs_.data();
  const S l = compute(cm, cin, pow_p, readout, hard_negative_beta, routing_regularization, cosine_temperature);
  // Back to the original ids, each row's gradient through its normalisation.
  for (int64_t c : rows) slot_of[static_cast<size_t>(c)] = -1;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t c = rows[i];
    const S r = cnorm_[size_t(c)];
    const S* y = ctab_.data() + size_t(c) * D;
    S* g = row_grads.data() + i * size_t(D);
    S dot = 0;
    for (int d = 0; d < D; ++d) dot += g[d] * y[d];
    for (int d = 0; d < D; ++d) g[d] = r > S(0) ? (g[d] - dot * y[d]) / r : S(0);
    rows[i] = corig_[size_t(c)];
    slot_of[static_cast<size_t>(rows[i])] = static_cast<int32_t>(i);
  }
  return l;
}

}  // namespace mindrec::cpu
