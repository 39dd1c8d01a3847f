// Loss and gradients of one batch against automatic differentiation: golden values from the
// JAX port of the spec (tools/reference/mind_jax.py golden-train, float64), with 3 routing
// iterations and the spec's stop-gradient through the routing loop and weights.
#include <doctest/doctest.h>

#include <cmath>

#include "train/train_step.hpp"
#include "mindrec/safetensors.hpp"
#include "test_util.hpp"

using namespace mindrec;

TEST_CASE("loss and gradients equal JAX autodiff of the spec (golden fixture)") {
  const SafetensorsFile g = read_safetensors(test::fixture_dir() + "/mind_golden_train.safetensors");
  auto f64 = [&](const std::string& name) {
    const Tensor& t = g.at(name);
    if (t.dtype == DType::F64) return t.values<double>();
    const auto v = t.values<float>();
    return std::vector<double>(v.begin(), v.end());
  };
  const auto emb = f64("item_emb.weight"), bil = f64("capsule.bilinear"),
             rl = f64("capsule.routing_logits"), rw = f64("capsule.relu.weight"),
             rb = f64("capsule.relu.bias"), lq_neg = f64("input.log_q_negatives"),
             lq_t = f64("input.log_q_targets");
  const auto hist = g.at("input.hist").values<int64_t>();
  const auto lens = g.at("input.lengths").values<int32_t>();
  const auto targets = g.at("input.targets").values<int64_t>();
  const auto negs = g.at("input.negatives").values<int64_t>();
  const int64_t N = g.at("item_emb.weight").shape[0];
  const int D = static_cast<int>(g.at("item_emb.weight").shape[1]);
  const int K = static_cast<int>(g.at("capsule.routing_logits").shape[1]);
  const int L = static_cast<int>(g.at("capsule.routing_logits").shape[2]);
  struct Variant {
    const char* name;
    SoftmaxAxis axis;
    bool relu, dynk;
    Readout readout;
    int pow_p;
  };
  const Variant variants[] = {
      {"interests_relu_soft", SoftmaxAxis::interests, true, false, Readout::soft, 1},
      {"behaviors_norelu_soft_p2", SoftmaxAxis::behaviors, false, false, Readout::soft, 2},
      {"hybrid_relu_dynk_soft", SoftmaxAxis::hybrid, true, true, Readout::soft, 1},
      {"interests_relu_hard", SoftmaxAxis::interests, true, false, Readout::hard, 1}};
  for (const auto& v : variants) {
    CAPTURE(v.name);
    cpu::ModelView<double> m;
    m.item_emb = emb.data();
    m.bilinear = bil.data();
    m.routing_logits = rl.data();
    m.relu_weight = v.relu ? rw.data() : nullptr;
    m.relu_bias = v.relu ? rb.data() : nullptr;
    m.item_count = N;
    m.dim = m.hidden = D;
    m.max_k = K;
    m.maxlen = L;
    m.iters = 3;
    m.axis = v.axis;
    m.relu_layer = v.relu;
    m.dynamic_k = v.dynk;
    cpu::BatchInput<double> in;
    in.hist = hist.data();
    in.lengths = lens.data();
    in.targets = targets.data();
    in.batch = static_cast<int64_t>(targets.size());
    in.negatives = negs.data();
    in.num_neg = static_cast<int>(negs.size());
    in.log_q_negatives = lq_neg.data();
    in.log_q_targets = lq_t.data();
    cpu::BatchGradient<double> bg(m, 2);
    const double loss = bg.compute(m, in, v.pow_p, v.readout);
    const std::string p = v.name;
    CHECK(loss == doctest::Approx(f64(p + ".loss")[0]).epsilon(1e-10));
    const auto ge = f64(p + ".grad.item_emb.weight");
    for (int64_t r = 0; r < N; ++r)
      for (int d = 0; d < D; ++d) {
        const int32_t slot = bg.slot_of[size_t(r)];
        const double got = slot >= 0 ? bg.row_grads(slot, d) : 0.0;
        REQUIRE(got == doctest::Approx(ge[size_t(r) * D + d]).epsilon(1e-8).scale(1e-10));
      }
    const auto gb = f64(p + ".grad.capsule.bilinear");
    for (size_t i = 0; i < gb.size(); ++i)
      REQUIRE(bg.dense.bilinear.data()[i] == doctest::Approx(gb[i]).epsilon(1e-8).scale(1e-10));
    if (v.relu) {
      const auto gw = f64(p + ".grad.capsule.relu.weight"), gr = f64(p + ".grad.capsule.relu.bias");
      for (size_t i = 0; i < gw.size(); ++i)
        REQUIRE(bg.dense.relu_weight.data()[i] == doctest::Approx(gw[i]).epsilon(1e-8).scale(1e-10));
      for (size_t i = 0; i < gr.size(); ++i)
        REQUIRE(bg.dense.relu_bias.data()[i] == doctest::Approx(gr[i]).epsilon(1e-8).scale(1e-10));
    }
  }
}
