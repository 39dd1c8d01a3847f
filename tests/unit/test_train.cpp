// Sampling, Adam and the Trainer: distributions checked with a chi-square bound, Adam on a
// problem with a known optimum, the parked-row dense Adam against a plain dense loop, and
// bit-for-bit determinism and resume.
#include <doctest/doctest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "mindrec/catalogue.hpp"
#include "mindrec/config.hpp"
#include "mindrec/cpu/interests.hpp"
#include "mindrec/model.hpp"
#include "mindrec/weights.hpp"
#include "mindrec/data.hpp"
#include "mindrec/file_io.hpp"
#include "mindrec/error.hpp"
#include "mindrec/eval.hpp"
#include "mindrec/train.hpp"
#include "train/adam.hpp"
#include "train/report.hpp"
#include "train/sampler.hpp"
#include "test_util.hpp"

using namespace mindrec;

TEST_CASE("log-uniform sampler: p_i and log_q as the spec writes them") {
  LogUniformSampler s(1000);
  const double ln1001 = std::log(1001.0);
  CHECK(s.probability(0) == 0.0);
  CHECK(s.probability(1) == doctest::Approx((std::log(3.0) - std::log(2.0)) / ln1001));
  CHECK(s.probability(999) == doctest::Approx((std::log(1001.0) - std::log(1000.0)) / ln1001));
  CHECK(s.probability(1000) == 0.0);
  const double p5 = (std::log(7.0) - std::log(6.0)) / ln1001;
  CHECK(s.log_q(5, 10) == doctest::Approx(std::log(1 - std::pow(1 + p5, -20.0))).epsilon(1e-12));
}

TEST_CASE("log-uniform sampler: single-draw frequencies pass a chi-square test") {
  const int64_t N = 1000;
  LogUniformSampler s(N);
  detail::Rng rng(123);
  const int draws = 400000;
  std::vector<int64_t> count(N, 0);
  for (int i = 0; i < draws; ++i) {
    const int64_t x = s.draw(rng);
    REQUIRE(x >= 1);
    REQUIRE(x < N);
    ++count[x];
  }
  // Expected: p_i renormalised over 1..N-1. Bins of >= 50 expected draws (tail lumped).
  double total_p = 0;
  for (int64_t i = 1; i < N; ++i) total_p += s.probability(i);
  double chi2 = 0, exp_acc = 0, obs_acc = 0;
  int bins = 0;
  for (int64_t i = 1; i < N; ++i) {
    exp_acc += draws * s.probability(i) / total_p;
    obs_acc += double(count[i]);
    if (exp_acc >= 50 || i == N - 1) {
      chi2 += (obs_acc - exp_acc) * (obs_acc - exp_acc) / exp_acc;
      exp_acc = obs_acc = 0;
      ++bins;
    }
  }
  const double df = bins - 1;
  MESSAGE("chi2 = " << chi2 << " with " << df << " degrees of freedom");
  CHECK(chi2 < df + 5 * std::sqrt(2 * df));  // about 5 standard deviations
  CHECK(bins > 100);
}

TEST_CASE("distinct negatives: distinct - in range - scratch left clean") {
  LogUniformSampler s(60);
  detail::Rng rng(5);
  std::vector<uint8_t> marks(60, 0);
  std::vector<int64_t> out(40);
  s.draw_distinct(rng, 40, out.data(), marks);
  CHECK(std::set<int64_t>(out.begin(), out.end()).size() == 40);
  for (auto x : out) CHECK((x >= 1 && x < 60));
  for (auto m : marks) CHECK(m == 0);
  CHECK_THROWS_AS(s.draw_distinct(rng, 60, out.data(), marks), InvalidArgument);
}

TEST_CASE("training samples follow the spec") {
  ClickLog log;  // user 0: 3 items (never eligible); user 1: 30 items; users 2..9: 5..12 items
  log.offsets = {0};
  for (int u = 0; u < 10; ++u) {
    const int m = u == 0 ? 3 : u == 1 ? 30 : 3 + u;
    log.user_ids.push_back(100 + u);
    for (int i = 0; i < m; ++i) log.items.push_back(1 + (u * 7 + i) % 90);
    log.offsets.push_back(static_cast<int64_t>(log.items.size()));
  }
  BatchSampler sampler(log, 100, 6, 8, 10);
  CHECK(sampler.eligible_users() == 9);
  detail::Rng rng(1);
  TrainingBatch b;
  std::map<int64_t, int> target_pos_seen;
  for (int it = 0; it < 300; ++it) {
    sampler.next(rng, b);
    REQUIRE(b.users.size() == 8);
    CHECK(std::set<int64_t>(b.users.begin(), b.users.end()).size() == 8);  // without replacement
    for (int i = 0; i < 8; ++i) {
      const int64_t u = b.users[i];
      CHECK(u != 0);
      const int64_t m = log.length(u);
      const int64_t* x = log.begin(u);
      // find k: target = x[k] with history = the <= 6 items before it
      int64_t k = -1;
      for (int64_t c = 4; c < m; ++c)
        if (x[c] == b.targets[i] && b.lengths[i] == std::min<int64_t>(c, 6) &&
            std::equal(x + c - b.lengths[i], x + c, b.hist.begin() + i * 6))
          k = c;
      REQUIRE(k >= 4);
      REQUIRE(k <= m - 1);
      for (int l = b.lengths[i]; l < 6; ++l) CHECK(b.hist[i * 6 + l] == 0);  // right-padded
      if (u == 1) ++target_pos_seen[k];
    }
    CHECK(std::set<int64_t>(b.negatives.begin(), b.negatives.end()).size() == 10);
  }
  CHECK(target_pos_seen.size() >= 20);  // user 1's k spreads over [4, 29]
  CHECK(target_pos_seen.begin()->first >= 4);
  CHECK(target_pos_seen.rbegin()->first <= 29);
  CHECK_THROWS_AS(BatchSampler(log, 100, 6, 10, 10), InvalidArgument);  // only 9 eligible
}

TEST_CASE("in-batch negatives: the union of sampled negatives and targets with mixed log-q") {
  // Users with known item lists; the target frequency worked by hand: user u (m items) puts
  // 1/(m-4) of its draws on each of positions 4..m-1.
  ClickLog log;
  log.offsets = {0};
  const std::vector<std::vector<int64_t>> users = {
      {1, 2, 3, 4, 5, 6},          // positions 4, 5: items 5, 6 (1/2 each)
      {7, 8, 9, 10, 5},            // position 4: item 5
      {11, 12, 13, 14, 15, 5, 5},  // positions 4..6: 15, 5, 5 (1/3 each)
      {16, 17, 18, 19, 20}};       // position 4: item 20
  for (size_t u = 0; u < users.size(); ++u) {
    log.user_ids.push_back(int64_t(u));
    log.items.insert(log.items.end(), users[u].begin(), users[u].end());
    log.offsets.push_back(static_cast<int64_t>(log.items.size()));
  }
  const int B = 3, NN = 5;
  BatchSampler plain(log, 40, 4, B, NN), mixed(log, 40, 4, B, NN, true);
  CHECK(plain.target_probability(5) == 0.0);
  CHECK(mixed.target_probability(5) == doctest::Approx((0.5 + 1.0 + 2.0 / 3.0) / 4.0).epsilon(1e-12));
  CHECK(mixed.target_probability(6) == doctest::Approx(0.5 / 4.0).epsilon(1e-12));
  CHECK(mixed.target_probability(15) == doctest::Approx(1.0 / 12.0).epsilon(1e-12));
  CHECK(mixed.target_probability(20) == doctest::Approx(0.25).epsilon(1e-12));
  CHECK(mixed.target_probability(1) == 0.0);
  // log q of the union: 1 - (1 + p)^(-2 NN) (1 - f)^B.
  LogUniformSampler lu(40);
  const double p5 = lu.probability(5), f5 = mixed.target_probability(5);
  CHECK(mixed.log_q_mixed(5) ==
        doctest::Approx(std::log(1 - std::pow(1 + p5, -2.0 * NN) * std::pow(1 - f5, B))).epsilon(1e-12));
  CHECK(mixed.log_q_mixed(3) == doctest::Approx(lu.log_q(3, NN)).epsilon(1e-12));  // never a target
  // Same seed: the sampled part is the plain sampler's; then the batch's targets not in it.
  detail::Rng r1(9), r2(9);
  TrainingBatch a, b;
  for (int it = 0; it < 50; ++it) {
    plain.next(r1, a);
    mixed.next(r2, b);
    REQUIRE(a.targets == b.targets);
    REQUIRE(b.negatives.size() >= size_t(NN));
    CHECK(std::equal(a.negatives.begin(), a.negatives.end(), b.negatives.begin()));
    std::set<int64_t> want(a.negatives.begin(), a.negatives.end());
    want.insert(a.targets.begin(), a.targets.end());
    CHECK(std::set<int64_t>(b.negatives.begin(), b.negatives.end()) == want);
    CHECK(b.negatives.size() == want.size());  // distinct
    REQUIRE(b.log_q_negatives.size() == b.negatives.size());
    for (size_t j = 0; j < b.negatives.size(); ++j)
      CHECK(b.log_q_negatives[j] == doctest::Approx(mixed.log_q_mixed(b.negatives[j])));
    for (int i = 0; i < B; ++i) CHECK(b.log_q_targets[i] == doctest::Approx(mixed.log_q_mixed(b.targets[i])));
  }
}

TEST_CASE("Adam converges to the optimum of a quadratic") {
  // f(w) = Σ (w_i - c_i)^2 / 2, gradient w - c, optimum w = c.
  std::vector<float> w(16, 0.f), m(16, 0.f), v(16, 0.f), g(16), c(16);
  for (int i = 0; i < 16; ++i) c[i] = 0.1f * float(i) - 0.7f;
  for (int t = 1; t <= 3000; ++t) {
    for (int i = 0; i < 16; ++i) g[i] = w[i] - c[i];
    adam_update(w.data(), m.data(), v.data(), g.data(), 16, AdamStep::at(0.01, t));
  }
  for (int i = 0; i < 16; ++i) CHECK(w[i] == doctest::Approx(c[i]).epsilon(0.002).scale(1.0));
  // First step of Adam moves every coordinate by lr (m̂/√v̂ = sign(g)).
  std::vector<float> w1(1, 1.f), m1(1, 0.f), v1(1, 0.f), g1(1, 3.f);
  adam_update(w1.data(), m1.data(), v1.data(), g1.data(), 1, AdamStep::at(0.05, 1));
  CHECK(w1[0] == doctest::Approx(0.95f).epsilon(1e-6));
}

namespace {
MindWeights quad_weights(int64_t N, int D) {
  MindWeights w;
  w.config.item_count = N;
  w.config.embedding_dim = w.config.hidden_size = D;
  w.config.maxlen = 4;
  w.config.neg_samples = 2;
  w.config.capsule.max_k = 2;
  w.config.capsule.relu_layer = false;
  w.item_emb.assign(size_t(N) * D, 0.f);
  w.bilinear.assign(size_t(D) * D, 0.f);
  w.routing_logits.assign(8, 0.f);
  return w;
}
float target_of(int64_t r, int d) { return 0.05f * float((r * 7 + d * 3) % 11) - 0.25f; }
}  // namespace

namespace {
// Runs AdamOptimizer for `steps` steps; rows 1..9 are touched every step and 5 random rows of
// 10..N-1 each step (so most rows are touched rarely and park). grad(row, d, t, w) gives the
// gradient. If `check` is set, a plain dense loop over every row runs alongside.
template <class Grad>
void run_adam(MindWeights& w, AdamOptimizer& opt, int steps, Grad&& grad, bool check) {
  const int64_t N = w.config.item_count;
  const int D = w.config.embedding_dim;
  std::vector<float> rw(w.item_emb.begin(), w.item_emb.end()), rm(rw.size(), 0.f), rv(rw.size(), 0.f);
  detail::Rng rng(3);
  std::vector<int32_t> slot_of(N, -1);
  std::vector<float> zeros(size_t(D) * D, 0.f);
  int64_t min_moving = N;
  for (int t = 1; t <= steps; ++t) {
    std::vector<int64_t> rows;
    for (int64_t r = 1; r < 10; ++r) rows.push_back(r);
    while (rows.size() < 14) {
      const int64_t r = 10 + int64_t(rng.below(N - 10));
      if (std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
    }
    opt.prepare_rows(w, rows.data(), rows.size());  // the gradient below reads these rows
    std::vector<float> grads(rows.size() * D);
    for (size_t i = 0; i < rows.size(); ++i) {
      slot_of[rows[i]] = int32_t(i);
      for (int d = 0; d < D; ++d) grads[i * D + d] = grad(rows[i], d, t, w.item_emb[rows[i] * D + d]);
    }
    opt.step(w, rows, grads.data(), slot_of, zeros.data(), nullptr, nullptr, nullptr, 2);
    min_moving = std::min(min_moving, opt.moving_rows());
    if (check) {
      const AdamStep s = AdamStep::at(opt.lr, t);
      std::vector<float> g(D);
      for (int64_t r = 1; r < N; ++r) {
        const int32_t sl = slot_of[r];
        for (int d = 0; d < D; ++d) g[d] = sl >= 0 ? grads[sl * D + d] : 0.f;
        adam_update(rw.data() + r * D, rm.data() + r * D, rv.data() + r * D,
                    sl >= 0 ? g.data() : nullptr, D, s);
      }
    }
    for (auto r : rows) slot_of[r] = -1;
  }
  for (int d = 0; d < D; ++d) CHECK(w.item_emb[d] == 0.f);  // padding row untouched
  if (check) {
    CHECK(min_moving < N / 2);  // parking happened
    opt.materialize(w);
    int bitwise = 0;
    float max_diff = 0;
    for (size_t i = D; i < rw.size(); ++i) {
      bitwise += w.item_emb[i] == rw[i];
      max_diff = std::max(max_diff, std::abs(w.item_emb[i] - rw[i]));
      // 1e-6: a ten-thousandth of one step (lr = 0.01); float rounding of the moments'
      // closed-form decay (pow) against 1500 repeated multiplications stays far below it.
      REQUIRE(std::abs(w.item_emb[i] - rw[i]) <= 1e-6f);
      REQUIRE(opt.m_emb[i] == doctest::Approx(rm[i]).epsilon(1e-5).scale(1e-12));
      REQUIRE(opt.v_emb[i] == doctest::Approx(rv[i]).epsilon(1e-5).scale(1e-14));
    }
    MESSAGE(bitwise << " of " << rw.size() - D << " weights bitwise equal to plain dense Adam; "
                    "largest difference " << max_diff);
  }
}
}  // namespace

TEST_CASE("dense Adam with parked rows computes what a plain dense loop computes") {
  // Gradients independent of the weights, so the two trajectories can differ only by the
  // rounding of the closed-form moment decay.
  MindWeights w = quad_weights(200, 8);
  AdamOptimizer opt(w, 0.01, false);
  run_adam(w, opt, 1500, [](int64_t r, int d, int t, float) {
    return 0.01f * std::sin(0.37f * float(r * 8 + d) + 0.11f * float(t));
  }, true);
}

TEST_CASE("dense and lazy Adam optimise item rows to a known optimum") {
  for (const bool lazy : {false, true}) {
    CAPTURE(lazy);
    MindWeights w = quad_weights(200, 8);
    AdamOptimizer opt(w, 0.01, lazy);
    run_adam(w, opt, 1500, [](int64_t r, int d, int, float wv) { return wv - target_of(r, d); }, false);
    for (int64_t r = 1; r < 10; ++r)  // rows touched every step reach their optimum
      for (int d = 0; d < 8; ++d)
        CHECK(w.item_emb[r * 8 + d] == doctest::Approx(target_of(r, d)).epsilon(0.01).scale(1.0));
  }
}

namespace {
Config small_training_config(bool lazy, int threads) {
  Config cfg;
  auto& hp = cfg.hyper_parameters;
  hp.item_count = 120;
  hp.embedding_dim = hp.hidden_size = 8;
  hp.maxlen = 5;
  hp.neg_samples = 12;
  hp.capsule.max_k = 3;
  hp.optimizer.learning_rate = 0.01;
  hp.optimizer.lazy = lazy;
  cfg.runner.train_batch_size = 16;
  cfg.runner.batches_per_epoch = 15;
  cfg.runner.epochs = 3;
  cfg.runner.seed = 77;
  cfg.runner.threads = threads;
  return cfg;
}
ClickLog small_log() {
  ClickLog log;
  log.offsets = {0};
  for (int u = 0; u < 60; ++u) {
    log.user_ids.push_back(u);
    const int m = 5 + u % 17;
    for (int i = 0; i < m; ++i) log.items.push_back(1 + ((u % 4) * 30 + i * 5 + u) % 119);
    log.offsets.push_back(static_cast<int64_t>(log.items.size()));
  }
  return log;
}
}  // namespace

TEST_CASE("same seed and threads: the same loss curve bit for bit - the loss falls") {
  const ClickLog log = small_log();
  for (const bool lazy : {false, true}) {
    const Config cfg = small_training_config(lazy, 2);
    Trainer a(cfg, log, init_weights(cfg.hyper_parameters, 1));
    Trainer b(cfg, log, init_weights(cfg.hyper_parameters, 1));
    std::vector<double> la, lb;
    for (int i = 0; i < 40; ++i) la.push_back(a.step()), lb.push_back(b.step());
    CHECK(la == lb);
    CHECK(a.weights().item_emb == b.weights().item_emb);
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += la[i], last += la[35 + i];
    CHECK(last < first);
  }
}

TEST_CASE("the gradient does not depend on the team OpenMP grants: 1 - 2 - 4 threads and a limited team") {
  const ClickLog log = small_log();
  auto losses = [&](int threads, bool limited_team) {
    const Config cfg = small_training_config(false, threads);
    Trainer t(cfg, log, init_weights(cfg.hyper_parameters, 3));
    std::vector<double> l(12);
    auto run = [&] {
      for (auto& x : l) x = t.step();
    };
    if (!limited_team) {
      run();
    } else {
#ifdef _OPENMP
      // Inside an active parallel region with nesting off, every region the trainer opens
      // gets a team of one thread, whatever num_threads it asks for.
      const int levels = omp_get_max_active_levels();
      omp_set_max_active_levels(1);
#pragma omp parallel num_threads(2)
      {
#pragma omp single
        {
          CHECK(omp_get_active_level() == 1);
          run();
        }
      }
      omp_set_max_active_levels(levels);
#else
      run();
#endif
    }
    return std::make_pair(l, t.weights().item_emb);
  };
  const auto [l4, w4] = losses(4, false);
  const auto [l4_limited, w4_limited] = losses(4, true);
  CHECK(l4_limited == l4);  // bit for bit: the chunking depends on the requested count only
  CHECK(w4_limited == w4);
  const auto [l2_limited, w2_limited] = losses(2, true);
  CHECK(l2_limited == losses(2, false).first);
  for (const int threads : {1, 2}) {
    const auto l = losses(threads, false).first;
    for (size_t i = 0; i < l.size(); ++i) CHECK(l[i] == doctest::Approx(l4[i]).epsilon(1e-4));
  }
}

TEST_CASE("resume from a checkpoint continues exactly") {
  const ClickLog log = small_log();
  test::TempDir tmp;
  for (const bool lazy : {false, true}) {
    const Config cfg = small_training_config(lazy, 2);
    Trainer straight(cfg, log, init_weights(cfg.hyper_parameters, 9));
    const double e1 = straight.train_epoch().loss;
    const double e2 = straight.train_epoch().loss;
    Trainer first(cfg, log, init_weights(cfg.hyper_parameters, 9));
    CHECK(first.train_epoch().loss == e1);
    first.save_checkpoint(tmp.file("ck.safetensors"));
    auto resumed = Trainer::resume(tmp.file("ck.safetensors"), cfg, log);
    CHECK(resumed->epochs_done() == 1);
    CHECK(resumed->steps_done() == 15);
    CHECK(resumed->train_epoch().loss == e2);
    CHECK(resumed->weights().item_emb == straight.weights().item_emb);
    CHECK(resumed->weights().bilinear == straight.weights().bilinear);
  }
  // A weights file is not a checkpoint; a checkpoint of another model is refused.
  const Config cfg = small_training_config(false, 1);
  save_weights(tmp.file("w.safetensors"), init_weights(cfg.hyper_parameters, 1));
  CHECK_THROWS_WITH_AS(Trainer::resume(tmp.file("w.safetensors"), cfg, log),
                       doctest::Contains("not a mindrec training checkpoint"), FormatError);
  Config other = cfg;
  other.hyper_parameters.capsule.max_k = 2;
  CHECK_THROWS_AS(Trainer::resume(tmp.file("ck.safetensors"), other, log), ConfigError);
}

// 45 steps: the mean loss of the last 5 below that of the first 5.
static bool loss_falls(Trainer& t) {
  std::vector<double> l;
  for (int i = 0; i < 45; ++i) l.push_back(t.step());
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += l[i], last += l[40 + i];
  return last < first;
}

TEST_CASE("ComiRec-DR and the loss options train end to end: the loss falls - saved and loaded - resumed - served as trained") {
  const ClickLog log = small_log();
  test::TempDir tmp;
  Config cfg = small_training_config(false, 2);
  auto& hp = cfg.hyper_parameters;
  hp.capsule.per_interest_transform = true;
  hp.capsule.init_std = 0.0;
  hp.capsule.relu_layer = false;
  hp.loss.hard_negative_beta = 0.5;
  hp.loss.in_batch_negatives = true;
  const MindWeights w0 = init_weights(hp, 4);
  CHECK(w0.bilinear.size() == size_t(8 * 3 * 8));  // [D, K H]
  for (float x : w0.routing_logits) CHECK(x == 0.0f);
  Trainer t(cfg, log, w0);
  CHECK(loss_falls(t));
  save_weights(tmp.file("dr.safetensors"), t.weights());
  const MindWeights back = load_weights(tmp.file("dr.safetensors"));
  CHECK(back.config.capsule.per_interest_transform);
  CHECK(back.config.loss.hard_negative_beta == 0.5);
  CHECK(back.config.loss.in_batch_negatives);
  CHECK(back.bilinear == t.weights().bilinear);
  // A config without the option does not match the weights.
  ModelConfig plain = hp;
  plain.capsule.per_interest_transform = false;
  plain.capsule.init_std = 1.0;
  CHECK_THROWS_WITH_AS(check_same_model(plain, back.config, "dr.safetensors"),
                       doctest::Contains("capsule.per_interest_transform 0 vs 1"), ConfigError);
  // Served as trained: MindModel (the precomputed [N, K H] projection, and the per-user GEMM)
  // against the training kernel in double precision.
  const int64_t hist[5] = {3, 17, 44, 90, 0};
  const int32_t len = 4;
  std::vector<float> a(3 * 8), b(3 * 8);
  MindModel(back).extract_interests(hist, &len, 1, a.data(), nullptr, 1);
  ModelOptions no_projection;
  no_projection.max_projection_bytes = 0;
  MindModel(back, Device::cpu, no_projection).extract_interests(hist, &len, 1, b.data(), nullptr, 1);
  std::vector<double> emb(back.item_emb.begin(), back.item_emb.end()), bil(back.bilinear.begin(), back.bilinear.end()),
      rl(back.routing_logits.begin(), back.routing_logits.end());
  cpu::ModelView<double> v;
  v.item_emb = emb.data(), v.bilinear = bil.data(), v.routing_logits = rl.data();
  v.item_count = 120, v.dim = v.hidden = 8, v.max_k = 3, v.maxlen = 5, v.iters = 3;
  v.relu_layer = false, v.per_interest = true;
  std::vector<double> work(cpu::workspace_size(v)), want(3 * 8);
  cpu::extract_user(v, hist, len, want.data(), work.data());
  for (int i = 0; i < 3 * 8; ++i) {
    CHECK(a[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(1e-3));
    CHECK(b[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(1e-3));
  }
  // Resumed from a checkpoint: the same next steps (the sampler's in-batch state included).
  t.save_checkpoint(tmp.file("ck.safetensors"));
  auto resumed = Trainer::resume(tmp.file("ck.safetensors"), cfg, log);
  for (int i = 0; i < 5; ++i) CHECK(resumed->step() == t.step());
}

TEST_CASE("ComiRec-SA trains end to end: the loss falls - saved and loaded - resumed exactly - served as trained - warm-started") {
  const ClickLog log = small_log();
  test::TempDir tmp;
  Config cfg = small_training_config(false, 2);
  auto& hp = cfg.hyper_parameters;
  hp.extractor = Extractor::self_attention;
  hp.self_attention.hidden = 12;
  hp.capsule.relu_layer = false;
  hp.readout = Readout::hard;  // ComiRec's
  const MindWeights w0 = init_weights(hp, 4);
  CHECK(w0.bilinear.empty());
  CHECK(w0.routing_logits.empty());
  REQUIRE(w0.attention.size() == size_t(8 * 12 + 12 + 12 * 3 + 5 * 8));
  for (int i = 8 * 12; i < 8 * 12 + 12; ++i) CHECK(w0.attention[size_t(i)] == 0.0f);  // b1
  Trainer t(cfg, log, w0);
  CHECK(loss_falls(t));
  CHECK(t.weights().attention != w0.attention);  // the extractor's parameters moved
  save_weights(tmp.file("sa.safetensors"), t.weights());
  const MindWeights back = load_weights(tmp.file("sa.safetensors"));
  CHECK(back.config.extractor == Extractor::self_attention);
  CHECK(back.attention == t.weights().attention);
  ModelConfig capsule = hp;
  capsule.extractor = Extractor::capsule;
  CHECK_THROWS_WITH_AS(check_same_model(capsule, back.config, "sa.safetensors"),
                       doctest::Contains("extractor capsule vs self_attention"), ConfigError);
  // Served as trained: MindModel against the training kernel in double precision.
  const int64_t hist[5] = {3, 17, 44, 90, 0};
  const int32_t len = 4;
  std::vector<float> a(3 * 8);
  MindModel(back).extract_interests(hist, &len, 1, a.data(), nullptr, 1);
  std::vector<double> emb(back.item_emb.begin(), back.item_emb.end()), att(back.attention.begin(), back.attention.end());
  cpu::ModelView<double> v;
  v.item_emb = emb.data();
  v.item_count = 120, v.dim = v.hidden = 8, v.max_k = 3, v.maxlen = 5;
  v.relu_layer = false, v.self_attention = true, v.attn_hidden = 12;
  v.sa_w1 = att.data(), v.sa_b1 = att.data() + 96, v.sa_w2 = att.data() + 108, v.sa_pos = att.data() + 144;
  std::vector<double> work(cpu::workspace_size(v)), want(3 * 8);
  cpu::extract_user(v, hist, len, want.data(), work.data());
  for (int i = 0; i < 3 * 8; ++i) CHECK(a[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(1e-3));
  // Resumed from a checkpoint: the same next steps (the extractor's Adam moments included).
  t.save_checkpoint(tmp.file("ck.safetensors"));
  auto resumed = Trainer::resume(tmp.file("ck.safetensors"), cfg, log);
  for (int i = 0; i < 5; ++i) CHECK(resumed->step() == t.step());
  // A checkpoint of a capsule model is not resumed as self-attention.
  Config caps = cfg;
  caps.hyper_parameters.extractor = Extractor::capsule;
  CHECK_THROWS_AS(Trainer::resume(tmp.file("ck.safetensors"), caps, log), ConfigError);
}

TEST_CASE("normalised vectors with a temperature train end to end: unit rows saved - unit interests served - resumed exactly") {
  const ClickLog log = small_log();
  test::TempDir tmp;
  Config cfg = small_training_config(false, 2);
  auto& hp = cfg.hyper_parameters;
  hp.cosine_temperature = 0.1;
  const MindWeights w0 = init_weights(hp, 4);
  auto norm = [](const float* x, int d) {
    double s = 0;
    for (int i = 0; i < d; ++i) s += double(x[i]) * x[i];
    return std::sqrt(s);
  };
  for (int64_t r = 1; r < 120; ++r) REQUIRE(norm(w0.item_emb.data() + r * 8, 8) == doctest::Approx(1.0).epsilon(1e-6));
  Trainer t(cfg, log, w0);
  CHECK(loss_falls(t));
  save_weights(tmp.file("cos.safetensors"), t.weights());
  const MindWeights back = load_weights(tmp.file("cos.safetensors"));
  CHECK(back.config.cosine_temperature == 0.1);
  CHECK(back.item_emb == t.weights().item_emb);  // saved as the trainer serves them: normalised once
  for (int64_t r = 1; r < 120; ++r) CHECK(norm(back.item_emb.data() + r * 8, 8) == doctest::Approx(1.0).epsilon(1e-6));
  // Served: unit interests, the same function as training's forward on the unit table.
  const int64_t hist[5] = {3, 17, 44, 90, 0};
  const int32_t len = 4;
  std::vector<float> a(3 * 8);
  int32_t kk = 0;
  MindModel(back).extract_interests(hist, &len, 1, a.data(), &kk, 1);
  REQUIRE(kk == 3);
  for (int k = 0; k < 3; ++k) CHECK(norm(a.data() + k * 8, 8) == doctest::Approx(1.0).epsilon(1e-5));
  // Raw rows are refused where a cosine model ranks by them; a dot-product config does not match.
  MindWeights raw = back;
  raw.item_emb[8] *= 2.0f;
  CHECK_THROWS_AS((void)MindModel(raw), InvalidArgument);
  {  // and by load_weights: the file's row 1 doubled in place (save_weights would normalise it)
    std::string bytes;
    {
      std::ifstream in(tmp.file("cos.safetensors"), std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string row(reinterpret_cast<const char*>(back.item_emb.data() + 8), 8 * sizeof(float));
    const size_t at = bytes.find(row);
    REQUIRE(at != std::string::npos);
    for (int i = 0; i < 8; ++i) {
      const float twice = back.item_emb[size_t(8 + i)] * 2.0f;
      std::memcpy(&bytes[at + size_t(i) * sizeof(float)], &twice, sizeof(float));
    }
    std::ofstream(tmp.file("cos-raw.safetensors"), std::ios::binary) << bytes;
    CHECK_THROWS_WITH_AS((void)load_weights(tmp.file("cos-raw.safetensors")),
                         doctest::Contains("'item_emb.weight' row 1 has norm 2.0"), FormatError);
  }
  ModelConfig dot = hp;
  dot.cosine_temperature = 0;
  CHECK_THROWS_WITH_AS(check_same_model(dot, back.config, "cos.safetensors"),
                       doctest::Contains("cosine_temperature > 0 false vs true"), ConfigError);
  ModelConfig warmer = hp;
  warmer.cosine_temperature = 0.5;  // tau itself is training only
  CHECK_NOTHROW(check_same_model(warmer, back.config, "cos.safetensors"));
  // Resumed from a checkpoint (raw rows, the optimiser's state): the same next steps.
  t.save_checkpoint(tmp.file("ck.safetensors"));
  auto resumed = Trainer::resume(tmp.file("ck.safetensors"), cfg, log);
  for (int i = 0; i < 5; ++i) CHECK(resumed->step() == t.step());
}

TEST_CASE("run_training: files per epoch - the popularity baseline beside each evaluation - early stopping") {
  test::TempDir tmp;
  const ClickLog log = small_log();
  write_train_data(tmp.file("train.txt"), log);
  EvalSet valid;  // the same users: history = all but the last two clicks, ground truth = those two
  valid.hist_offsets = {0};
  valid.eval_offsets = {0};
  for (int64_t u = 0; u < log.num_users(); ++u) {
    valid.user_ids.push_back(u + 1);
    valid.target_items.push_back(0);
    const int64_t n = log.length(u);
    valid.hist_items.insert(valid.hist_items.end(), log.begin(u), log.begin(u) + n - 2);
    valid.eval_items.insert(valid.eval_items.end(), log.begin(u) + n - 2, log.begin(u) + n);
    valid.hist_offsets.push_back(static_cast<int64_t>(valid.hist_items.size()));
    valid.eval_offsets.push_back(static_cast<int64_t>(valid.eval_items.size()));
  }
  write_eval_data(tmp.file("valid.txt"), valid);
  Config cfg = small_training_config(false, 1);
  cfg.runner.train_data_dir = tmp.file("train.txt");
  cfg.runner.test_data_dir = tmp.file("valid.txt");
  cfg.runner.batches_per_epoch = 2;
  cfg.runner.epochs = 8;
  cfg.runner.patience = 2;
  // A learning rate far below one ulp of the weights: every epoch evaluates the same model, so
  // epoch 1 is the best and the run stops after epochs 2 and 3 brought nothing better.
  cfg.hyper_parameters.optimizer.learning_rate = 1e-30;
  TrainRunOptions o;
  o.out_dir = tmp.file("out");
  std::vector<int> seen;
  o.on_epoch = [&](const EpochRecord& r) { seen.push_back(r.epoch); };
  // Progress: the run's ETA is this epoch's plus the epochs left, each as long as this one so
  // far: (run - epoch) / (epochs left) = el/b x batches, and epoch = el/b x (batches - b).
  int progress_calls = 0;
  o.on_progress = [&](const TrainProgress& p) {
    ++progress_calls;
    CHECK(p.epochs == 8);
    const int left = p.epochs - p.epoch;
    REQUIRE(left > 0);
    const double per_epoch = (p.run_eta_s - p.eta_s) / left;
    CHECK(per_epoch * double(p.batches - p.batch) / double(p.batches) == doctest::Approx(p.eta_s).epsilon(1e-9));
    CHECK(per_epoch > 0);
  };
  const auto rows = run_training(cfg, o);
  o.on_progress = nullptr;
  CHECK(progress_calls == 6);
  REQUIRE(rows.size() == 3);
  CHECK(seen == std::vector<int>{1, 2, 3});
  CHECK(rows[0].best);
  CHECK_FALSE(rows[1].best);
  CHECK_FALSE(rows[2].best);
  CHECK(rows[2].recall50 == rows[0].recall50);
  // the baseline: evaluate_popularity on the same users, in every row
  EvalOptions eo;
  eo.topk = {20, 50};
  const EvalReport pop = evaluate_popularity(log, valid, eo);
  for (const auto& r : rows) {
    CHECK(r.pop_recall20 == pop.metrics[0].recall);
    CHECK(r.pop_recall50 == pop.metrics[1].recall);
    CHECK(r.pop_hitrate50 == pop.metrics[1].hitrate);
  }
  CHECK(pop.metrics[1].recall > 0);
  for (const char* f : {"checkpoint.safetensors", "last.safetensors", "best.safetensors", "metrics.csv", "metrics.svg"})
    CHECK(std::filesystem::exists(tmp.file(std::string("out/") + f)));
  // The weights carry the training log's most clicked items (the no-click fallback) and the
  // epoch's evaluation. Oracle: click counts of the log, counted here.
  {
    std::map<int64_t, int64_t> clicks;
    for (const int64_t i : log.items) ++clicks[i];
    std::vector<std::pair<int64_t, int64_t>> by(clicks.begin(), clicks.end());
    std::stable_sort(by.begin(), by.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::vector<int64_t> want;
    for (size_t i = 0; i < std::min<size_t>(by.size(), 1000); ++i) want.push_back(by[i].first);
    for (const char* f : {"out/last.safetensors", "out/best.safetensors"}) {
      const MindWeights w = load_weights(tmp.file(f));
      CHECK(w.popular_items == want);
      CHECK(w.evaluation.at("recall@50") == doctest::Approx(rows[std::string(f) == "out/best.safetensors" ? 0 : 2].recall50));
      CHECK(w.evaluation.at("popularity_recall@50") == doctest::Approx(pop.metrics[1].recall));
    }
    CHECK(load_weights(tmp.file("out/last.safetensors")).evaluation.at("epoch") == 3);
    CHECK(load_weights(tmp.file("out/last.safetensors")).largest_trained_item ==
          *std::max_element(log.items.begin(), log.items.end()));
  }
  // resuming counts the CSV's epochs since the best: nothing left to train under patience 2
  o.resume = tmp.file("out/checkpoint.safetensors");
  seen.clear();
  const auto resumed = run_training(cfg, o);
  CHECK(resumed.size() == 3);
  CHECK(seen.empty());
  CHECK(resumed[2].pop_recall50 == doctest::Approx(rows[2].pop_recall50).epsilon(1e-5));  // read back from metrics.csv (6 decimals)
  // patience 0: every epoch runs
  cfg.runner.patience = 0;
  cfg.runner.epochs = 4;
  o.resume.clear();
  o.out_dir = tmp.file("out0");
  CHECK(run_training(cfg, o).size() == 4);
  cfg.runner.patience = -1;
  CHECK_THROWS_AS(cfg.validate(), ConfigError);
}

TEST_CASE("metrics.csv: written and read back - files of the first version (no baseline columns) still read") {
  test::TempDir tmp;
  std::vector<EpochRecord> rows(2);
  rows[0].epoch = 1, rows[0].loss = 5.5, rows[0].has_eval = true, rows[0].recall50 = 0.125, rows[0].pop_recall50 = 0.0625;
  rows[1].epoch = 2, rows[1].loss = 5.25;  // not evaluated
  train::write_csv(tmp.file("m.csv"), rows);
  const auto back = train::read_csv(tmp.file("m.csv"), 10);
  REQUIRE(back.size() == 2);
  CHECK(back[0].has_eval);
  CHECK(back[0].recall50 == 0.125);
  CHECK(back[0].pop_recall50 == 0.0625);
  CHECK_FALSE(back[1].has_eval);
  CHECK(back[1].loss == 5.25);
  CHECK(train::read_csv(tmp.file("m.csv"), 1).size() == 1);  // rows past the checkpoint's epoch dropped
  {
    std::ofstream v1(tmp.file("v1.csv"));
    v1 << "epoch,loss,seconds,samples_per_s,recall@20,ndcg@20,hitrate@20,recall@50,ndcg@50,hitrate@50\n"
       << "1,6.5,1.0,100.0,0.1,0.2,0.3,0.4,0.5,0.6\n";
  }
  const auto old = train::read_csv(tmp.file("v1.csv"), 10);
  REQUIRE(old.size() == 1);
  CHECK(old[0].hitrate50 == 0.6);
  CHECK(old[0].pop_recall50 == 0.0);
}

TEST_CASE("warm_start_weights: item rows matched by raw id - never by position - other tensors copied") {
  ModelConfig pc;
  pc.item_count = 4;
  pc.embedding_dim = pc.hidden_size = 4;
  pc.maxlen = 3;
  pc.capsule.max_k = 2;
  pc.neg_samples = 2;
  const MindWeights prev = init_weights(pc, 1);
  Catalogue prev_cat, cat;
  for (const char* r : {"a", "b", "c"}) prev_cat.add(r);
  for (const char* r : {"c", "x", "a", "y"}) cat.add(r);  // another numbering: c=1, a=3; b gone; x, y new
  ModelConfig nc = pc;
  nc.item_count = 5;
  WarmStartReport rep;
  const MindWeights w = warm_start_weights(nc, 9, prev, prev_cat, cat, "prev.safetensors", &rep);
  const MindWeights fresh = init_weights(nc, 9);
  CHECK(rep.copied == 2);
  CHECK(rep.initialised == 2);
  auto row = [](const MindWeights& m, int64_t id) {
    return std::vector<float>(m.item_emb.begin() + id * 4, m.item_emb.begin() + id * 4 + 4);
  };
  CHECK(row(w, 1) == row(prev, 3));  // c
  CHECK(row(w, 3) == row(prev, 1));  // a
  CHECK(row(w, 2) == row(fresh, 2)); // x: as init_weights
  CHECK(row(w, 4) == row(fresh, 4)); // y
  CHECK(row(w, 0) == row(fresh, 0)); // padding
  CHECK(std::vector<float>(w.bilinear.begin(), w.bilinear.end()) == std::vector<float>(prev.bilinear.begin(), prev.bilinear.end()));
  CHECK(std::vector<float>(w.routing_logits.begin(), w.routing_logits.end()) ==
        std::vector<float>(prev.routing_logits.begin(), prev.routing_logits.end()));
  ModelConfig other = nc;
  other.hidden_size = 8;
  CHECK(test::error_of([&] { (void)warm_start_weights(other, 9, prev, prev_cat, cat, "prev.safetensors"); })
            .find("cannot warm-start from prev.safetensors: hyper_parameters.hidden_size is 8 but 4 in the previous model") !=
        std::string::npos);
  // A self-attentive model warm-starts with its extractor's tensors, and only as one.
  ModelConfig sc = pc;
  sc.extractor = Extractor::self_attention;
  const MindWeights sprev = init_weights(sc, 2);
  ModelConfig snc = sc;
  snc.item_count = 5;
  const MindWeights sw = warm_start_weights(snc, 9, sprev, prev_cat, cat, "prev.safetensors");
  CHECK(sw.attention == sprev.attention);
  CHECK(row(sw, 1) == row(sprev, 3));
  CHECK(test::error_of([&] { (void)warm_start_weights(nc, 9, sprev, prev_cat, cat, "prev.safetensors"); })
            .find("hyper_parameters.extractor is capsule but self_attention in the previous model") != std::string::npos);
}

TEST_CASE("run_training with a catalogue: copied beside the weights - fingerprint recorded and checked - warm start") {
  test::TempDir tmp;
  namespace fs = std::filesystem;
  const ClickLog log = small_log();
  fs::create_directories(tmp.file("data/train"));
  write_train_data(tmp.file("data/train/data.txt"), log);
  Catalogue cat;
  for (int i = 1; i < 120; ++i) cat.add("SKU-" + std::to_string(1000 + i));
  cat.save(tmp.file("data/catalogue.csv"));
  Config cfg = small_training_config(false, 1);
  cfg.runner.train_data_dir = tmp.file("data/train/");  // the trailing slash still finds data/catalogue.csv
  cfg.runner.epochs = 1;
  cfg.runner.batches_per_epoch = 2;
  TrainRunOptions o;
  o.out_dir = tmp.file("day1");
  run_training(cfg, o);
  const MindWeights w1 = load_weights(tmp.file("day1/last.safetensors"));
  CHECK(w1.catalogue_fingerprint == cat.fingerprint());
  CHECK(read_file(tmp.file("day1/catalogue.csv")) == read_file(tmp.file("data/catalogue.csv")));
  const auto found = load_weights_catalogue(tmp.file("day1/last.safetensors"), w1);
  REQUIRE(found);
  CHECK(found->to_dense("SKU-1007") == 7);
  // another catalogue (two raw ids swapped) is refused naming both files, unless allowed
  Catalogue swapped;
  for (int i = 1; i < 120; ++i) swapped.add("SKU-" + std::to_string(1000 + (i == 1 ? 2 : i == 2 ? 1 : i)));
  swapped.save(tmp.file("swapped.csv"));
  const std::string e = test::error_of([&] { (void)load_weights_catalogue(tmp.file("day1/last.safetensors"), w1, tmp.file("swapped.csv")); });
  CHECK(e.find("swapped.csv: catalogue ") != std::string::npos);
  CHECK(e.find("is not the one " + tmp.file("day1/last.safetensors") + " was trained with (" + fingerprint_hex(cat.fingerprint()) + ")") != std::string::npos);
  CHECK(load_weights_catalogue(tmp.file("day1/last.safetensors"), w1, tmp.file("swapped.csv"), true) != nullptr);
  // a catalogue smaller than item_count: rows without raw ids, always refused
  Catalogue small;
  for (int i = 1; i < 100; ++i) small.add("SKU-" + std::to_string(1000 + i));
  small.save(tmp.file("small.csv"));
  CHECK(test::error_of([&] { (void)load_weights_catalogue(tmp.file("day1/last.safetensors"), w1, tmp.file("small.csv"), true); })
            .find("the catalogue's ids end at 99 but") != std::string::npos);
  // training with a catalogue of another size: the config's item_count is named
  small.save(tmp.file("data/catalogue.csv"));
  o.out_dir = tmp.file("bad");
  CHECK(test::error_of([&] { run_training(cfg, o); }).find("hyper_parameters.item_count is 120 but the catalogue") != std::string::npos);

  // Day 2: the catalogue gains 10 items (ids 120..129, item_count 130); warm start from day 1.
  Catalogue day2 = cat;
  for (int i = 0; i < 10; ++i) day2.add("NEW-" + std::to_string(i));
  day2.save(tmp.file("data/catalogue.csv"));
  cfg.hyper_parameters.item_count = 130;
  cfg.hyper_parameters.optimizer.learning_rate = 1e-30;  // the steps change nothing: what was copied shows
  o.out_dir = tmp.file("day2");
  o.init_from = tmp.file("day1/last.safetensors");
  WarmStartReport seen;
  o.on_warm_start = [&](const WarmStartReport& r) { seen = r; };
  run_training(cfg, o);
  CHECK(seen.copied == 119);
  CHECK(seen.initialised == 10);
  const MindWeights w2 = load_weights(tmp.file("day2/last.safetensors"));
  CHECK(w2.catalogue_fingerprint == day2.fingerprint());
  CHECK(std::equal(w1.item_emb.begin(), w1.item_emb.end(), w2.item_emb.begin()));
  CHECK(std::equal(w1.bilinear.begin(), w1.bilinear.end(), w2.bilinear.begin()));
  // without a catalogue beside the previous weights: refused (rows are never matched by position)
  fs::remove(tmp.file("day1/catalogue.csv"));
  o.out_dir = tmp.file("day2b");
  CHECK(test::error_of([&] { run_training(cfg, o); }).find("no catalogue beside the weights") != std::string::npos);
}
