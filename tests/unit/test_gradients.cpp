// Backward pass against central finite differences in double precision, for every trainable
// tensor and every switch. With iters = 1 the routing weights do not depend on any parameter,
// so the spec's stop-gradient function and the plain function coincide and finite
// differences of the whole loss are the exact reference. (Golden gradients from the JAX port
// in tools/reference cover iters = 3 with the stop-gradient; see test_golden_training.cpp.)
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "train/train_step.hpp"

using namespace mindrec;

namespace {

struct Problem {
  int64_t N = 30;
  int D = 5, K = 3, L = 6, B = 4, NN = 6;
  int A = 7;  // self-attention's hidden width
  std::vector<double> emb, bil, rl, rw, rb, att;
  std::vector<int64_t> hist, targets, negs;
  std::vector<int32_t> lens;
  std::vector<double> lq_neg, lq_t;
  cpu::ModelView<double> view;

  Problem(SoftmaxAxis axis, bool relu, bool dynk, uint32_t seed, bool per_interest = false,
          bool zero_logits = false, bool self_attention = false) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> u(-1, 1);
    emb.resize(N * D);
    for (auto& x : emb) x = u(gen);
    for (int d = 0; d < D; ++d) emb[d] = 0;
    bil.resize(D * D * (per_interest ? K : 1));
    for (auto& x : bil) x = 0.8 * u(gen);
    rl.resize(K * L);
    for (auto& x : rl) x = zero_logits ? 0.0 : u(gen);
    if (relu) {
      rw.resize(D * D);
      for (auto& x : rw) x = u(gen);
      rb.resize(D);
      for (auto& x : rb) x = 0.3 * u(gen);
    }
    lens = {6, 4, 1, 5};
    hist.assign(B * L, 0);
    std::uniform_int_distribution<int64_t> id(1, N - 1);
    for (int b = 0; b < B; ++b)
      for (int l = 0; l < lens[b]; ++l) hist[b * L + l] = id(gen);
    hist[3 * L + 1] = hist[3 * L + 3];  // one item twice in a history
    hist[1 * L + 2] = hist[0];           // one item in two users' histories
    negs = {3, 7, 11, 12, 20, 29};
    targets = {5, 11, hist[0], 2};       // sample 1's target is also a negative (accidental hit)
    lq_neg.resize(NN);
    for (auto& x : lq_neg) x = -2 + u(gen);
    lq_t.resize(B);
    for (auto& x : lq_t) x = -2 + u(gen);
    view.item_emb = emb.data();
    view.bilinear = bil.data();
    view.routing_logits = rl.data();
    view.relu_weight = relu ? rw.data() : nullptr;
    view.relu_bias = relu ? rb.data() : nullptr;
    view.item_count = N;
    view.dim = view.hidden = D;
    view.max_k = K;
    view.maxlen = L;
    view.iters = 1;
    view.axis = axis;
    view.relu_layer = relu;
    view.dynamic_k = dynk;
    view.per_interest = per_interest;
    if (self_attention) {  // ComiRec-SA in place of routing: w1 [D, A], b1 [A], w2 [A, K], pos [L, D]
      att.resize(size_t(D) * A + A + size_t(A) * K + size_t(L) * D);
      for (auto& x : att) x = u(gen);
      view.self_attention = true;
      view.attn_hidden = A;
      view.bilinear = view.routing_logits = nullptr;
      view.sa_w1 = att.data();
      view.sa_b1 = att.data() + D * A;
      view.sa_w2 = att.data() + D * A + A;
      view.sa_pos = att.data() + D * A + A + A * K;
      bil.clear();
    }
  }

  cpu::BatchInput<double> input() const {
    cpu::BatchInput<double> in;
    in.hist = hist.data();
    in.lengths = lens.data();
    in.targets = targets.data();
    in.batch = B;
    in.negatives = negs.data();
    in.num_neg = NN;
    in.log_q_negatives = lq_neg.data();
    in.log_q_targets = lq_t.data();
    return in;
  }
};

void check_gradients(SoftmaxAxis axis, bool relu, bool dynk, int pow_p, Readout readout,
                     double beta = 0.0, bool per_interest = false, bool zero_logits = false,
                     bool self_attention = false, double rlambda = 0.0, double tau = 0.0) {
  Problem p(axis, relu, dynk, 17, per_interest, zero_logits, self_attention);
  REQUIRE(cpu::workspace_size(p.view) > 0);
  cpu::BatchGradient<double> g(p.view, 2);
  auto run = [&](cpu::BatchGradient<double>& bg) {
    return tau > 0 ? bg.compute_normalized(p.view, p.input(), pow_p, readout, beta, rlambda, tau)
                   : bg.compute(p.view, p.input(), pow_p, readout, beta, rlambda);
  };
  const double loss = run(g);
  CHECK(std::isfinite(loss));
  auto loss_at = [&]() {
    cpu::BatchGradient<double> g2(p.view, 1);
    return run(g2);
  };
  const double h = 1e-6;
  auto fd = [&](double& x) {
    const double x0 = x;
    x = x0 + h;
    const double lp = loss_at();
    x = x0 - h;
    const double lm = loss_at();
    x = x0;
    return (lp - lm) / (2 * h);
  };
  auto close = [](double a, double b) { return std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(b)); };
  // Every entry of every item row (touched or not: untouched rows must have zero gradient).
  int bad = 0;
  for (int64_t r = 0; r < p.N; ++r)
    for (int d = 0; d < p.D; ++d) {
      const double want = r == 0 ? 0.0 : fd(p.emb[r * p.D + d]);
      const int32_t slot = g.slot_of[size_t(r)];
      const double got = slot >= 0 ? g.row_grads(slot, d) : 0.0;
      if (!close(got, want)) {
        ++bad;
        MESSAGE("item_emb[" << r << "][" << d << "]: backward " << got << ", finite diff " << want);
      }
    }
  CHECK(g.slot_of[0] < 0);  // the padding row never gets a gradient
  for (int i = 0; i < int(p.bil.size()); ++i) {
    const double want = fd(p.bil[i]);
    if (!close(g.dense.bilinear.data()[i], want)) {
      ++bad;
      MESSAGE("bilinear[" << i << "]: backward " << g.dense.bilinear.data()[i] << ", finite diff " << want);
    }
  }
  REQUIRE(size_t(g.dense.attention.size()) == p.att.size());
  for (size_t i = 0; i < p.att.size(); ++i) {  // w1, b1, w2, positions
    const double want = fd(p.att[i]);
    if (!close(g.dense.attention.data()[i], want)) {
      ++bad;
      MESSAGE("self_attention[" << i << "]: backward " << g.dense.attention.data()[i] << ", finite diff " << want);
    }
  }
  if (relu) {
    for (int i = 0; i < p.D * p.D; ++i)
      if (!close(g.dense.relu_weight.data()[i], fd(p.rw[i]))) {
        ++bad;
        MESSAGE("relu.weight[" << i << "]");
      }
    for (int i = 0; i < p.D; ++i)
      if (!close(g.dense.relu_bias.data()[i], fd(p.rb[i]))) {
        ++bad;
        MESSAGE("relu.bias[" << i << "]");
      }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("gradients match finite differences: softmax over interests - ReLU - soft read-out") {
  check_gradients(SoftmaxAxis::interests, true, false, 1, Readout::soft);
}
TEST_CASE("gradients match finite differences: no ReLU layer - pow_p = 2") {
  check_gradients(SoftmaxAxis::interests, false, false, 2, Readout::soft);
}
TEST_CASE("gradients match finite differences: the previous recommended config (interests - ReLU - pow_p = 2 - REMI beta 0.5)") {
  check_gradients(SoftmaxAxis::interests, true, false, 2, Readout::soft, 0.5);
}
TEST_CASE("gradients match finite differences: softmax over behaviours - pow_p = 3") {
  check_gradients(SoftmaxAxis::behaviors, true, false, 3, Readout::soft);
}
TEST_CASE("gradients match finite differences: hybrid - dynamic K") {
  check_gradients(SoftmaxAxis::hybrid, true, true, 1, Readout::soft);
}
TEST_CASE("gradients match finite differences: hard read-out") {
  check_gradients(SoftmaxAxis::interests, true, false, 1, Readout::hard);
}

TEST_CASE("gradients match finite differences: ComiRec-DR per-interest transforms") {
  check_gradients(SoftmaxAxis::interests, true, false, 1, Readout::soft, 0.0, true);
}
TEST_CASE("gradients match finite differences: ComiRec-DR zero routing logits - no ReLU - dynamic K - pow_p = 2") {
  check_gradients(SoftmaxAxis::interests, false, true, 2, Readout::soft, 0.0, true, true);
}
TEST_CASE("gradients match finite differences: ComiRec-DR with behaviours softmax and hard read-out") {
  check_gradients(SoftmaxAxis::behaviors, true, false, 1, Readout::hard, 0.0, true);
}

TEST_CASE("gradients match finite differences: ComiRec-SA self-attention - no ReLU - hard read-out (ComiRec's)") {
  check_gradients(SoftmaxAxis::interests, false, false, 1, Readout::hard, 0.0, false, false, true);
}
TEST_CASE("gradients match finite differences: ComiRec-SA with the ReLU layer - soft read-out - pow_p = 2 - REMI") {
  check_gradients(SoftmaxAxis::interests, true, false, 2, Readout::soft, 0.5, false, false, true);
}
TEST_CASE("gradients match finite differences: ComiRec-SA with REMI's routing regulariser (the first case: configs/recommended.yaml)") {
  check_gradients(SoftmaxAxis::interests, false, false, 1, Readout::hard, 0.0, false, false, true, 3.0);
  check_gradients(SoftmaxAxis::interests, true, true, 2, Readout::soft, 0.5, false, false, true, 50.0);
}

// REMI's regulariser by its definition (REMI's calculate_atten_loss): the attention over all L
// positions (0 on padding), centred by its mean over L, C = A_c A_cᵀ / H, the penalty the squared
// norm of diag(C), summed over users; the training loss grows by lambda times it.
TEST_CASE("REMI routing regulariser: the penalty by its definition") {
  Problem p(SoftmaxAxis::interests, false, false, 5, false, false, true);
  const double lambda = 7.0;
  cpu::BatchGradient<double> g0(p.view, 1), g1(p.view, 1);
  const double plain = g0.compute(p.view, p.input(), 1, Readout::soft, 0.0, 0.0);
  const double reg = g1.compute(p.view, p.input(), 1, Readout::soft, 0.0, lambda);
  std::vector<double> work(cpu::workspace_size(p.view)), out(p.K * p.D);
  double want = 0;
  for (int b = 0; b < p.B; ++b) {
    const int n = p.lens[b];
    cpu::extract_user(p.view, p.hist.data() + b * p.L, n, out.data(), work.data());
    const cpu::UserBuffers<double> buf(p.view, work.data());
    for (int k = 0; k < p.K; ++k) {
      std::vector<double> a(p.L, 0.0);  // head k over all L positions
      for (int l = 0; l < n; ++l) a[l] = buf.W[k * n + l];
      double mean = 0;
      for (double x : a) mean += x / p.L;
      double c = 0;
      for (double x : a) c += (x - mean) * (x - mean);
      c /= p.D;  // H
      want += c * c;
    }
  }
  CHECK(want > 0);
  CHECK(reg - plain == doctest::Approx(lambda * want).epsilon(1e-12));
}
TEST_CASE("gradients match finite differences: normalised vectors with a temperature (cosine)") {
  check_gradients(SoftmaxAxis::interests, true, false, 1, Readout::soft, 0.0, false, false, false, 0.0, 0.2);
  check_gradients(SoftmaxAxis::interests, false, true, 2, Readout::soft, 0.5, false, false, false, 0.0, 0.05);
  check_gradients(SoftmaxAxis::interests, false, false, 1, Readout::hard, 0.0, false, false, true, 3.0, 0.1);
}

// The cosine loss by its definition: every item row, interest and read-out scaled to unit length,
// logits cos / tau; compute_normalized() of the raw table equals compute() of the normalised one.
TEST_CASE("cosine loss: compute_normalized of raw rows equals the plain loss on unit rows with cos over tau") {
  Problem p(SoftmaxAxis::interests, true, false, 9);
  cpu::BatchGradient<double> g(p.view, 2);
  const double tau = 0.25;
  const double got = g.compute_normalized(p.view, p.input(), 1, Readout::soft, 0.0, 0.0, tau);
  // By hand: normalise the table, the interests and the read-out, then the sampled softmax.
  std::vector<double> unit = p.emb;
  for (int64_t r = 1; r < p.N; ++r) {
    double s = 0;
    for (int d = 0; d < p.D; ++d) s += unit[r * p.D + d] * unit[r * p.D + d];
    for (int d = 0; d < p.D; ++d) unit[r * p.D + d] /= std::sqrt(s);
  }
  cpu::ModelView<double> v = p.view;
  v.item_emb = unit.data();
  std::vector<double> work(cpu::workspace_size(v)), out(p.K * p.D), user(p.D), c(p.K), a(p.K);
  auto normalise = [&](double* x) {
    double s = 0;
    for (int d = 0; d < p.D; ++d) s += x[d] * x[d];
    for (int d = 0; d < p.D; ++d) x[d] /= std::sqrt(s);
  };
  double total = 0;
  for (int b = 0; b < p.B; ++b) {
    const int kk = cpu::extract_user(v, p.hist.data() + b * p.L, p.lens[b], out.data(), work.data());
    for (int k = 0; k < kk; ++k) normalise(out.data() + k * p.D);
    cpu::attention_forward(out.data(), kk, p.D, unit.data() + p.targets[b] * p.D, 1, Readout::soft, user.data(), c.data(), a.data());
    normalise(user.data());
    auto logit = [&](int64_t id) {
      double s = 0;
      for (int d = 0; d < p.D; ++d) s += user[d] * unit[id * p.D + d];
      return s / tau;
    };
    const double lt = logit(p.targets[b]) - p.lq_t[b];
    double z = std::exp(lt);
    for (int j = 0; j < p.NN; ++j)
      if (p.negs[j] != p.targets[b]) z += std::exp(logit(p.negs[j]) - p.lq_neg[j]);
    total += std::log(z) - lt;
  }
  CHECK(got == doctest::Approx(total / p.B).epsilon(1e-12));
}

TEST_CASE("gradients match finite differences: ComiRec-SA with dynamic K") {
  check_gradients(SoftmaxAxis::interests, false, true, 1, Readout::soft, 0.0, false, false, true);
}

TEST_CASE("gradients match finite differences: REMI hard negatives beta = 0.5") {
  check_gradients(SoftmaxAxis::interests, true, false, 1, Readout::soft, 0.5);
}
TEST_CASE("gradients match finite differences: REMI hard negatives beta = 3 with pow_p = 2") {
  check_gradients(SoftmaxAxis::interests, true, false, 2, Readout::soft, 3.0);
}

// The REMI loss by its definition (Xie et al. 2023, and REMI's code): per sample, over the M
// negatives that are not the target, w_j = M exp(beta a_j) / sum_k exp(beta a_k) and
// loss = -log(exp(a_t) / (exp(a_t) + sum_j w_j exp(a_j))), a = corrected logits.
TEST_CASE("REMI hard negatives: the loss by its definition and beta = 0 as the plain loss") {
  Problem p(SoftmaxAxis::interests, true, false, 5);
  std::vector<double> work(cpu::workspace_size(p.view)), out(p.K * p.D), user(p.D), c(p.K), a(p.K);
  auto by_hand = [&](double beta) {
    double total = 0;
    for (int b = 0; b < p.B; ++b) {
      const int kk = cpu::extract_user(p.view, p.hist.data() + b * p.L, p.lens[b], out.data(), work.data());
      const double* q = p.emb.data() + p.targets[b] * p.D;
      cpu::attention_forward(out.data(), kk, p.D, q, 2, Readout::soft, user.data(), c.data(), a.data());
      auto dot = [&](int64_t id) {
        double s = 0;
        for (int d = 0; d < p.D; ++d) s += user[d] * p.emb[id * p.D + d];
        return s;
      };
      const double at = dot(p.targets[b]) - p.lq_t[b];
      std::vector<double> an;
      for (int j = 0; j < p.NN; ++j)
        if (p.negs[j] != p.targets[b]) an.push_back(dot(p.negs[j]) - p.lq_neg[j]);
      double wsum = 0;
      for (double x : an) wsum += std::exp(beta * x);
      double ng = 0;
      for (double x : an) ng += double(an.size()) * std::exp(beta * x) / wsum * std::exp(x);
      total += -std::log(std::exp(at) / (std::exp(at) + ng));
    }
    return total / p.B;
  };
  for (double beta : {0.0, 0.25, 1.0, 4.0}) {
    cpu::BatchGradient<double> g(p.view, 2);
    CHECK(g.compute(p.view, p.input(), 2, Readout::soft, beta) == doctest::Approx(by_hand(beta)).epsilon(1e-11));
  }
  // beta -> 0: the weights are all 1 and the loss is the plain sampled softmax's.
  cpu::BatchGradient<double> g0(p.view, 1), g1(p.view, 1);
  CHECK(g0.compute(p.view, p.input(), 2, Readout::soft, 1e-9) ==
        doctest::Approx(g1.compute(p.view, p.input(), 2, Readout::soft)).epsilon(1e-9));
}

TEST_CASE("the loss is the mean cross-entropy with log-q correction and hit masking") {
  // Recompute the loss of the Problem by hand from the forward outputs.
  Problem p(SoftmaxAxis::interests, true, false, 5);
  cpu::BatchGradient<double> g(p.view, 1);
  const double loss = g.compute(p.view, p.input(), 1, Readout::soft);
  std::vector<double> work(cpu::workspace_size(p.view)), out(p.K * p.D), user(p.D), c(p.K), a(p.K);
  double total = 0;
  for (int b = 0; b < p.B; ++b) {
    const int kk = cpu::extract_user(p.view, p.hist.data() + b * p.L, p.lens[b], out.data(), work.data());
    const double* q = p.emb.data() + p.targets[b] * p.D;
    cpu::attention_forward(out.data(), kk, p.D, q, 1, Readout::soft, user.data(), c.data(), a.data());
    auto dot = [&](int64_t id) {
      double s = 0;
      for (int d = 0; d < p.D; ++d) s += user[d] * p.emb[id * p.D + d];
      return s;
    };
    const double lt = dot(p.targets[b]) - p.lq_t[b];
    double z = std::exp(lt);
    for (int j = 0; j < p.NN; ++j)
      if (p.negs[j] != p.targets[b]) z += std::exp(dot(p.negs[j]) - p.lq_neg[j]);
    total += std::log(z) - lt;
  }
  CHECK(loss == doctest::Approx(total / p.B).epsilon(1e-12));
}

// ComiRec-DR's forward written out from its definition (Cen et al. 2020, section 3.2; MIND's
// routing with û_{k,l} = e_l S_k): three routing iterations, softmax over interests, squash,
// the ReLU layer; against extract_user with per_interest, for every user of the Problem.
TEST_CASE("ComiRec-DR forward: extract_user against the routing written out - three iterations") {
  for (const bool zero_logits : {false, true}) {
    Problem p(SoftmaxAxis::interests, true, false, 23, true, zero_logits);
    p.view.iters = 3;
    const int D = p.D, H = p.D, K = p.K, L = p.L;
    std::vector<double> work(cpu::workspace_size(p.view)), out(K * H);
    for (int b = 0; b < p.B; ++b) {
      const int n = p.lens[b];
      const int64_t* h = p.hist.data() + b * L;
      // û[k][l][:] = e_l S_k
      std::vector<double> uh(size_t(K) * n * H, 0.0);
      for (int k = 0; k < K; ++k)
        for (int l = 0; l < n; ++l)
          for (int c = 0; c < H; ++c)
            for (int d = 0; d < D; ++d)
              uh[(size_t(k) * n + l) * H + c] += p.emb[h[l] * D + d] * p.bil[size_t(d) * K * H + k * H + c];
      std::vector<double> logit(size_t(K) * n), v(size_t(K) * H);
      for (int k = 0; k < K; ++k)
        for (int l = 0; l < n; ++l) logit[k * n + l] = p.rl[k * L + l];
      for (int it = 0; it < 3; ++it) {
        for (int k = 0; k < K; ++k) {
          std::vector<double> z(H, 0.0);
          for (int l = 0; l < n; ++l) {
            double den = 0;
            for (int j = 0; j < K; ++j) den += std::exp(logit[j * n + l]);
            const double w = std::exp(logit[k * n + l]) / den;
            for (int c = 0; c < H; ++c) z[c] += w * uh[(size_t(k) * n + l) * H + c];
          }
          double n2 = 0;
          for (double x : z) n2 += x * x;
          for (int c = 0; c < H; ++c) v[k * H + c] = z[c] * n2 / (1 + n2) / std::sqrt(n2 + 1e-8);
        }
        if (it < 2)
          for (int k = 0; k < K; ++k)
            for (int l = 0; l < n; ++l) {
              double dot = 0;
              for (int c = 0; c < H; ++c) dot += v[k * H + c] * uh[(size_t(k) * n + l) * H + c];
              logit[k * n + l] += dot;
            }
      }
      const int kk = cpu::extract_user(p.view, h, n, out.data(), work.data());
      REQUIRE(kk == K);
      for (int k = 0; k < K; ++k)
        for (int c = 0; c < H; ++c) {
          double x = p.rb[c];
          for (int j = 0; j < H; ++j) x += v[k * H + j] * p.rw[j * H + c];
          CHECK(out[k * H + c] == doctest::Approx(std::max(0.0, x)).epsilon(1e-12));
        }
      if (zero_logits) {  // the interests differ, through their transforms alone
        double diff = 0;
        for (int c = 0; c < H; ++c) diff += std::abs(v[c] - v[H + c]);
        CHECK(diff > 1e-3);
      }
    }
  }
}
