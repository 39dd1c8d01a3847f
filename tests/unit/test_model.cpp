// The MIND forward pass against (1) cases worked by hand, (2) golden outputs of the
// independent NumPy port in tools/reference/mind_reference.py, and (3) invariances.
#include <doctest/doctest.h>

#include <cmath>

#include "mindrec/cpu/interests.hpp"
#include "mindrec/data.hpp"
#include "mindrec/error.hpp"
#include "mindrec/device.hpp"
#include "mindrec/model.hpp"
#include "mindrec/version.hpp"
#include "mindrec/safetensors.hpp"
#include "test_util.hpp"

using namespace mindrec;

namespace {

// Tiny model: K=2, L=3, D=H=2. item 1 = (1,0), item 2 = (0,1), item 3 = (1,1); S = I;
// routing logits b = [[ln 3, 0, 5], [0, 0, -5]] (the last column is only ever masked here).
MindWeights tiny_weights(bool relu, SoftmaxAxis axis, int iters) {
  MindWeights w;
  w.config.item_count = 4;
  w.config.embedding_dim = w.config.hidden_size = 2;
  w.config.maxlen = 3;
  w.config.neg_samples = 2;
  w.config.capsule.max_k = 2;
  w.config.capsule.iters = iters;
  w.config.capsule.relu_layer = relu;
  w.config.capsule.softmax_axis = axis;
  w.item_emb = {0, 0, 1, 0, 0, 1, 1, 1};
  w.bilinear = {1, 0, 0, 1};
  w.routing_logits = {float(std::log(3.0)), 0, 5, 0, 0, -5};
  if (relu) {
    w.relu_weight = {1, -1, 0.5f, 1};  // out = v W + b
    w.relu_bias = {0, -0.1f};
  }
  return w;
}

std::vector<float> run(const MindModel& m, std::vector<int64_t> hist, int32_t n) {
  std::vector<float> out(size_t(m.config().capsule.max_k) * m.config().hidden_size, -7.f);
  m.extract_interests(hist.data(), &n, 1, out.data());
  return out;
}

double squash_factor(double x, double y) {
  const double n2 = x * x + y * y;
  return n2 / (1 + n2) / std::sqrt(n2 + 1e-8);
}

}  // namespace

TEST_CASE("hand-worked: one routing update - softmax over interests") {
  // History [1, 2, pad], n = 2, iters = 2, no ReLU. û = E (S = I): û0 = (1,0), û1 = (0,1).
  // Read 1: softmax over k per column: col 0 of [ln3, 0] -> (3/4, 1/4); col 1 -> (1/2, 1/2).
  //   z0 = 3/4 û0 + 1/2 û1 = (0.75, 0.5); ‖z0‖² = 0.8125 -> v0 = z0 · 0.8125/1.8125/√0.8125
  //      = (0.372988, 0.248659)
  //   z1 = 1/4 û0 + 1/2 û1 = (0.25, 0.5); ‖z1‖² = 0.3125 -> v1 = (0.106479, 0.212959)
  // Update b[k,l] += <û_l, v_k>: b = [[ln3 + 0.372988, 0.248659], [0.106479, 0.212959]].
  // Read-out: w00 = σ(ln3 + 0.372988 - 0.106479) = 0.796591, w01 = σ(0.248659 - 0.212959)
  //   = 0.508924; z0 = (w00, w01), z1 = (1 - w00, 1 - w01) -> squash.
  MindModel m(tiny_weights(false, SoftmaxAxis::interests, 2));
  const auto out = run(m, {1, 2, 3}, 2);  // position 2 (item 3) is beyond n: ignored
  const double v0x = 0.75 * squash_factor(0.75, 0.5), v0y = 0.5 * squash_factor(0.75, 0.5);
  const double v1x = 0.25 * squash_factor(0.25, 0.5), v1y = 0.5 * squash_factor(0.25, 0.5);
  CHECK(v0x == doctest::Approx(0.372988).epsilon(1e-5));
  CHECK(v1y == doctest::Approx(0.212959).epsilon(1e-5));
  const double w00 = 1 / (1 + std::exp(-(std::log(3.0) + v0x - v1x)));
  const double w01 = 1 / (1 + std::exp(-(v0y - v1y)));
  CHECK(w00 == doctest::Approx(0.796591).epsilon(1e-5));
  CHECK(w01 == doctest::Approx(0.508924).epsilon(1e-5));
  const double f0 = squash_factor(w00, w01), f1 = squash_factor(1 - w00, 1 - w01);
  CHECK(out[0] == doctest::Approx(w00 * f0).epsilon(1e-5));
  CHECK(out[1] == doctest::Approx(w01 * f0).epsilon(1e-5));
  CHECK(out[2] == doctest::Approx((1 - w00) * f1).epsilon(1e-5));
  CHECK(out[3] == doctest::Approx((1 - w01) * f1).epsilon(1e-5));
  CHECK(out[0] == doctest::Approx(0.397666).epsilon(1e-5));  // the numbers, worked out
  CHECK(out[3] == doctest::Approx(0.203523).epsilon(1e-5));
}

TEST_CASE("hand-worked: softmax over behaviours and the ReLU layer") {
  // iters = 1 (read-out only). Softmax over l of the unmasked logits: row 0 = softmax(ln3, 0)
  // = (3/4, 1/4), row 1 = (1/2, 1/2); the masked column gets exp(-2^32) = 0.
  // z0 = (0.75, 0.25) -> v0 = (0.364878, 0.121626); z1 = (0.5, 0.5) -> v1 = (0.235702, 0.235702)
  // ReLU: u = max(v W + b, 0) with W = [[1, -1], [0.5, 1]], b = (0, -0.1):
  //   u0 = (0.364878 + 0.060813, max(-0.364878 + 0.121626 - 0.1, 0)) = (0.425691, 0)
  //   u1 = (0.235702 + 0.117851, -0.235702 + 0.235702 - 0.1 -> 0) = (0.353553, 0)
  MindModel m(tiny_weights(true, SoftmaxAxis::behaviors, 1));
  const auto out = run(m, {1, 2, 0}, 2);
  CHECK(out[0] == doctest::Approx(0.425691).epsilon(1e-5));
  CHECK(out[1] == 0.0f);
  CHECK(out[2] == doctest::Approx(0.353553).epsilon(1e-5));
  CHECK(out[3] == 0.0f);
}

TEST_CASE("hand-worked: label-aware attention") {
  // u0 = (1, 0), u1 = (0, 2), q = item 3 = (1, 1): a = (1, 2).
  // p = 1: α = (1, e)/(1 + e) -> user = (1/(1+e), 2e/(1+e)) = (0.268941, 1.462117)
  // p = 2: a = (1, 4): α1 = e^3/(1+e^3) = 0.952574 -> user = (0.047426, 1.905148)
  // hard: argmax a = 1 -> user = u1 = (0, 2)
  const std::vector<float> u = {1, 0, 0, 2};
  const std::vector<float> q = {1, 1};
  float out[2], c[2], alpha[2];
  cpu::attention_forward(u.data(), 2, 2, q.data(), 1, Readout::soft, out, c, alpha);
  CHECK(out[0] == doctest::Approx(0.268941).epsilon(1e-5));
  CHECK(out[1] == doctest::Approx(1.462117).epsilon(1e-5));
  cpu::attention_forward(u.data(), 2, 2, q.data(), 2, Readout::soft, out, c, alpha);
  CHECK(out[0] == doctest::Approx(0.047426).epsilon(1e-4));
  CHECK(out[1] == doctest::Approx(1.905148).epsilon(1e-5));
  cpu::attention_forward(u.data(), 2, 2, q.data(), 1, Readout::hard, out, c, alpha);
  CHECK(out[0] == 0.0f);
  CHECK(out[1] == 2.0f);
}

TEST_CASE("dynamic K'_u = max(1 - min(K - floor(log2 n)))") {
  CHECK(cpu::interest_count(0, 4, true) == 1);
  CHECK(cpu::interest_count(1, 4, true) == 1);
  CHECK(cpu::interest_count(3, 4, true) == 1);
  CHECK(cpu::interest_count(4, 4, true) == 2);
  CHECK(cpu::interest_count(7, 4, true) == 2);
  CHECK(cpu::interest_count(8, 4, true) == 3);
  CHECK(cpu::interest_count(15, 4, true) == 3);
  CHECK(cpu::interest_count(16, 4, true) == 4);
  CHECK(cpu::interest_count(1000, 4, true) == 4);
  CHECK(cpu::interest_count(16, 2, true) == 2);
  CHECK(cpu::interest_count(1, 4, false) == 4);
}

TEST_CASE("golden outputs of the NumPy reference - every switch combination") {
  const SafetensorsFile g = read_safetensors(test::fixture_dir() + "/mind_golden.safetensors");
  const auto hist = g.at("input.hist").values<int64_t>();
  const auto lens = g.at("input.lengths").values<int32_t>();
  const auto targets = g.at("input.targets").values<int64_t>();
  const auto emb_shape = g.at("item_emb.weight").shape;
  const int64_t B = static_cast<int64_t>(lens.size());
  const int L = static_cast<int>(g.at("input.hist").shape[1]);
  const int K = static_cast<int>(g.at("capsule.routing_logits").shape[1]);
  const int D = static_cast<int>(emb_shape[1]);
  struct Variant {
    const char* name;
    SoftmaxAxis axis;
    bool relu, dynk;
  };
  const Variant variants[] = {
      {"interests_relu", SoftmaxAxis::interests, true, false},
      {"interests_norelu", SoftmaxAxis::interests, false, false},
      {"behaviors_relu", SoftmaxAxis::behaviors, true, false},
      {"behaviors_norelu", SoftmaxAxis::behaviors, false, false},
      {"hybrid_relu", SoftmaxAxis::hybrid, true, false},
      {"interests_relu_dynk", SoftmaxAxis::interests, true, true},
      {"behaviors_norelu_dynk", SoftmaxAxis::behaviors, false, true},
      {"hybrid_relu_dynk", SoftmaxAxis::hybrid, true, true}};
  for (const auto& v : variants) {
    CAPTURE(v.name);
    MindWeights w;
    w.config.item_count = emb_shape[0];
    w.config.embedding_dim = w.config.hidden_size = D;
    w.config.maxlen = L;
    w.config.neg_samples = 5;
    w.config.capsule.max_k = K;
    w.config.capsule.softmax_axis = v.axis;
    w.config.capsule.relu_layer = v.relu;
    w.config.capsule.dynamic_k = v.dynk;
    {
      const auto v = g.at("item_emb.weight").values<float>();
      w.item_emb.assign(v.begin(), v.end());
    }
    {
      const auto v = g.at("capsule.bilinear").values<float>();
      w.bilinear.assign(v.begin(), v.end());
    }
    {
      const auto v = g.at("capsule.routing_logits").values<float>();
      w.routing_logits.assign(v.begin(), v.end());
    }
    if (v.relu) {
      {
      const auto v = g.at("capsule.relu.weight").values<float>();
      w.relu_weight.assign(v.begin(), v.end());
    }
      {
      const auto v = g.at("capsule.relu.bias").values<float>();
      w.relu_bias.assign(v.begin(), v.end());
    }
    }
    const std::string prefix = v.name;
    const auto want = g.at(prefix + ".interests").values<float>();
    const auto want_counts = g.at(prefix + ".counts").values<int32_t>();
    for (const Readout readout : {Readout::soft, Readout::hard}) {
      for (int p = 1; p <= 3; ++p) {
        w.config.readout = readout;
        w.config.pow_p = p;
        MindModel model(w);
        std::vector<float> got(size_t(B) * K * D);
        std::vector<int32_t> counts(B);
        model.extract_interests(hist.data(), lens.data(), B, got.data(), counts.data(), 2);
        CHECK(counts == want_counts);
        for (size_t i = 0; i < got.size(); ++i)
          REQUIRE(got[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(1e-3));
        // Without the precomputed projection (large catalogues): the per-user GEMM path.
        ModelOptions no_projection;
        no_projection.max_projection_bytes = 0;
        MindModel gemm_model(w, Device::cpu, no_projection);
        std::vector<float> got2(got.size());
        std::vector<int32_t> counts2(B);
        gemm_model.extract_interests(hist.data(), lens.data(), B, got2.data(), counts2.data(), 2);
        CHECK(counts2 == want_counts);
        for (size_t i = 0; i < got2.size(); ++i)
          REQUIRE(got2[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(1e-3));
        std::vector<float> att(size_t(B) * D);
        model.label_aware_attention(got.data(), counts.data(), targets.data(), B, att.data());
        const auto want_att = g.at(prefix + ".attention_" + (readout == Readout::soft ? "soft" : "hard") +
                                   "_p" + std::to_string(p)).values<float>();
        for (size_t i = 0; i < att.size(); ++i)
          REQUIRE(att[i] == doctest::Approx(want_att[i]).epsilon(1e-4).scale(1e-3));
      }
    }
  }
}

// ComiRec-SA (extractor: self_attention) against mind_reference.py golden-sa: the NumPy port
// works on the full [L] history with the mask value, mindrec skips padded positions.
TEST_CASE("golden outputs of the NumPy reference - self-attentive extractor") {
  const SafetensorsFile g = read_safetensors(test::fixture_dir() + "/mind_golden_sa.safetensors");
  const auto hist = g.at("input.hist").values<int64_t>();
  const auto lens = g.at("input.lengths").values<int32_t>();
  const auto emb_shape = g.at("item_emb.weight").shape;
  const int64_t B = static_cast<int64_t>(lens.size());
  const int L = static_cast<int>(g.at("input.hist").shape[1]);
  const int K = static_cast<int>(g.at("self_attention.w2").shape[1]);
  const int A = static_cast<int>(g.at("self_attention.w1").shape[1]);
  const int D = static_cast<int>(emb_shape[1]);
  struct Variant {
    const char* name;
    bool relu, dynk;
  };
  for (const Variant& v : {Variant{"sa_norelu", false, false}, Variant{"sa_relu", true, false},
                           Variant{"sa_norelu_dynk", false, true}}) {
    CAPTURE(v.name);
    MindWeights w;
    w.config.item_count = emb_shape[0];
    w.config.embedding_dim = w.config.hidden_size = D;
    w.config.maxlen = L;
    w.config.neg_samples = 5;
    w.config.extractor = Extractor::self_attention;
    w.config.self_attention.hidden = A;
    w.config.capsule.max_k = K;
    w.config.capsule.relu_layer = v.relu;
    w.config.capsule.dynamic_k = v.dynk;
    auto take = [&](const char* name) {
      const auto t = g.at(name).values<float>();
      return AlignedVector<float>(t.begin(), t.end());
    };
    w.item_emb = take("item_emb.weight");
    w.bilinear.clear();
    w.routing_logits.clear();
    for (const auto& part : attention_parts(w.config)) {
      REQUIRE(g.at(part.name).shape == part.shape);
      const auto t = take(part.name);
      w.attention.insert(w.attention.end(), t.begin(), t.end());
    }
    if (v.relu) {
      w.relu_weight = take("capsule.relu.weight");
      w.relu_bias = take("capsule.relu.bias");
    }
    const auto want = g.at(std::string(v.name) + ".interests").values<float>();
    const auto want_counts = g.at(std::string(v.name) + ".counts").values<int32_t>();
    MindModel model(w);
    std::vector<float> got(size_t(B) * K * D);
    std::vector<int32_t> counts(B);
    model.extract_interests(hist.data(), lens.data(), B, got.data(), counts.data(), 2);
    CHECK(counts == want_counts);
    for (size_t i = 0; i < got.size(); ++i)
      REQUIRE(got[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(1e-3));
    // The weights file keeps the extractor and its four tensors; a CUDA model refuses it.
    test::TempDir dir;
    const std::string path = dir.file("sa.safetensors");
    save_weights(path, w);
    const MindWeights back = load_weights(path);
    CHECK(back.config.extractor == Extractor::self_attention);
    CHECK(back.config.attention_hidden() == A);
    CHECK(back.attention == w.attention);
    CHECK(back.bilinear.empty());
    CHECK_THROWS_AS(MindModel(back, Device::cuda), Unsupported);
  }
}

TEST_CASE("trailing padding never changes the result - threads do not either") {
  ModelConfig c;
  c.item_count = 500;
  c.neg_samples = 10;
  c.embedding_dim = c.hidden_size = 16;
  c.maxlen = 10;
  c.capsule.max_k = 4;
  MindWeights w = init_weights(c, 3);
  // Scale the embeddings out of the tiny init's near-linear regime so routing does real work.
  for (auto& x : w.item_emb) x *= 300.0f;
  for (const auto axis : {SoftmaxAxis::interests, SoftmaxAxis::behaviors, SoftmaxAxis::hybrid}) {
    for (const bool dyn : {false, true}) {
      w.config.capsule.softmax_axis = axis;
      w.config.capsule.dynamic_k = dyn;
      MindModel m(w);
      const int B = 64, L = 10, K = 4, H = 16;
      std::vector<int64_t> clean(B * L, 0), noisy(B * L);
      std::vector<int32_t> lens(B);
      for (int b = 0; b < B; ++b) {
        lens[b] = b % (L + 1);
        for (int l = 0; l < L; ++l) {
          if (l < lens[b]) clean[b * L + l] = 1 + (b * 31 + l * 17) % 499;
          noisy[b * L + l] = l < lens[b] ? clean[b * L + l] : 1 + (b + l * 7) % 499;
        }
      }
      std::vector<float> a(B * K * H), b1(B * K * H), b2(B * K * H);
      m.extract_interests(clean.data(), lens.data(), B, a.data(), nullptr, 1);
      m.extract_interests(noisy.data(), lens.data(), B, b1.data(), nullptr, 1);
      m.extract_interests(clean.data(), lens.data(), B, b2.data(), nullptr, 2);
      CHECK(a == b1);  // bit for bit: padded positions are never read
      CHECK(a == b2);  // per-user work is the same on any thread
      // One user alone gives the same result as inside a batch.
      std::vector<float> one(K * H);
      m.extract_interests(clean.data() + 37 * L, lens.data() + 37, 1, one.data());
      CHECK(std::vector<float>(a.begin() + 37 * K * H, a.begin() + 38 * K * H) == one);
    }
  }
}

TEST_CASE("the double-precision kernel agrees with float") {
  // The same header kernel instantiated on double (the path used for gradient checks).
  MindWeights w = tiny_weights(true, SoftmaxAxis::hybrid, 3);
  std::vector<double> emb(w.item_emb.begin(), w.item_emb.end()), bil(w.bilinear.begin(), w.bilinear.end()),
      rl(w.routing_logits.begin(), w.routing_logits.end()), rw(w.relu_weight.begin(), w.relu_weight.end()),
      rb(w.relu_bias.begin(), w.relu_bias.end());
  cpu::ModelView<double> v;
  v.item_emb = emb.data();
  v.bilinear = bil.data();
  v.routing_logits = rl.data();
  v.relu_weight = rw.data();
  v.relu_bias = rb.data();
  v.item_count = 4;
  v.dim = v.hidden = 2;
  v.max_k = 2;
  v.maxlen = 3;
  v.iters = 3;
  v.axis = SoftmaxAxis::hybrid;
  std::vector<double> work(cpu::workspace_size(v)), out(4);
  const int64_t hist[3] = {3, 1, 2};
  cpu::extract_user(v, hist, 3, out.data(), work.data());
  MindModel m(w);
  const auto f = run(m, {3, 1, 2}, 3);
  for (int i = 0; i < 4; ++i) CHECK(f[i] == doctest::Approx(out[i]).epsilon(1e-6));
}

TEST_CASE("an empty history gives ReLU(bias) - bad inputs are refused before any write") {
  MindModel m(tiny_weights(true, SoftmaxAxis::interests, 3));
  const auto out = run(m, {0, 0, 0}, 0);
  CHECK(out == std::vector<float>{0, 0, 0, 0});  // ReLU((0,0) W + (0, -0.1)) = (0, 0)

  std::vector<float> buf(4, -7.f);
  int64_t bad_id[3] = {1, 4, 0};
  int32_t n = 2;
  CHECK_THROWS_WITH_AS(m.extract_interests(bad_id, &n, 1, buf.data()),
                       doctest::Contains("item id 4 of user 0 is outside [0, item_count=4)"),
                       InvalidArgument);
  int64_t ok[3] = {1, 2, 3};
  n = 4;
  CHECK_THROWS_AS(m.extract_interests(ok, &n, 1, buf.data()), InvalidArgument);
  CHECK(buf == std::vector<float>(4, -7.f));
  int32_t count = 2;
  int64_t target = 0;
  CHECK_THROWS_AS(m.label_aware_attention(buf.data(), &count, &target, 1, buf.data()), InvalidArgument);
#if MINDREC_HAS_CUDA
  // A CUDA build refuses only when there is no device (tests/cuda covers the device case).
  if (cuda_device_count() == 0)
    CHECK_THROWS_AS(MindModel(tiny_weights(true, SoftmaxAxis::interests, 3), Device::cuda), CudaError);
#else
  CHECK_THROWS_AS(MindModel(tiny_weights(true, SoftmaxAxis::interests, 3), Device::cuda), Unsupported);
#endif
}
