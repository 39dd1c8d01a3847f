// MindModel on CUDA against the CPU path (the reference): random models and histories, every
// softmax_axis, with and without the ReLU layer and dynamic_k, H a multiple of 32 and not;
// interests, counts and label-aware attention (soft and hard, pow_p 1 and 3) must agree to
// relative error <= 1e-5 (FP32). Skips (exit 77) with a message where no device exists.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "mindrec/device.hpp"
#include "mindrec/error.hpp"
#include "mindrec/model.hpp"
#include "cuda_check.hpp"
#include "common/random_data.hpp"

namespace {

// max |a - b| / max(max |b|, 1e-3): one scale per tensor, as FP32 sums of up to H terms drift
// in absolute terms relative to the tensor's magnitude.
double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 1e-3, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, double(std::abs(b[i])));
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
  }
  return diff / scale;
}

using mindrec::test::expect;

void check_variant(mindrec::SoftmaxAxis axis, bool relu, bool dynk, int hidden, uint64_t seed) {
  using namespace mindrec;
  ModelConfig c;
  c.item_count = 2000;
  c.embedding_dim = c.hidden_size = hidden;
  c.maxlen = 20;
  c.neg_samples = 10;
  c.capsule.max_k = 4;
  c.capsule.softmax_axis = axis;
  c.capsule.relu_layer = relu;
  c.capsule.dynamic_k = dynk;
  MindWeights w = init_weights(c, seed);
  MindModel cpu(w), gpu(w, Device::cuda);
  const int64_t B = 777;  // not a multiple of anything
  const int L = c.maxlen, K = c.capsule.max_k, H = hidden;
  detail::Rng rng(seed + 1);
  std::vector<int64_t> hist(size_t(B) * L, 0);
  std::vector<int32_t> len(B);
  for (int64_t b = 0; b < B; ++b) {
    len[b] = int32_t(rng.below(L + 1));  // 0..L, including empty histories
    for (int l = 0; l < len[b]; ++l) hist[b * L + l] = rng.below(10) == 0 ? 0 : 1 + int64_t(rng.below(c.item_count - 1));
  }
  std::vector<float> a(size_t(B) * K * H), g(a.size());
  std::vector<int32_t> ca(B), cg(B);
  cpu.extract_interests(hist.data(), len.data(), B, a.data(), ca.data());
  gpu.extract_interests(hist.data(), len.data(), B, g.data(), cg.data());
  const std::string name = std::string("axis=") + std::to_string(int(axis)) + " relu=" + std::to_string(relu) +
                           " dynamic_k=" + std::to_string(dynk) + " H=" + std::to_string(hidden);
  const double e = rel_error(g, a);
  expect(ca == cg, name + ": interest counts equal");
  expect(e <= 1e-5, name + ": interests rel. error " + std::to_string(e));
  // Twice in a row (grown workspace reused) gives the same bits.
  std::vector<float> g2(g.size());
  gpu.extract_interests(hist.data(), len.data(), B, g2.data(), nullptr);
  expect(g2 == g, name + ": repeat call identical");
  // Label-aware attention on the CPU interests, both read-outs.
  std::vector<int64_t> tgt(B);
  for (auto& t : tgt) t = 1 + int64_t(rng.below(c.item_count - 1));
  for (const Readout r : {Readout::soft, Readout::hard}) {
    for (const double p : {1.0, 3.0}) {
      MindWeights w2 = w;
      w2.config.readout = r;
      w2.config.pow_p = p;
      MindModel c2(w2), g2m(w2, Device::cuda);
      std::vector<float> ua(size_t(B) * H), ug(ua.size());
      c2.label_aware_attention(a.data(), ca.data(), tgt.data(), B, ua.data());
      g2m.label_aware_attention(a.data(), ca.data(), tgt.data(), B, ug.data());
      const double ea = rel_error(ug, ua);
      expect(ea <= 1e-5, name + (r == Readout::hard ? " hard" : " soft") + " p=" + std::to_string(int(p)) +
                             ": attention rel. error " + std::to_string(ea));
    }
  }
}

}  // namespace

int main() {
  using mindrec::SoftmaxAxis;
  if (mindrec::cuda_device_count() == 0) {
    std::printf("SKIP: no CUDA device on this host (the CPU/GPU parity test needs a GPU)\n");
    return 77;
  }
  try {
    std::printf("device 0: %s\n", mindrec::cuda_device_description(0).c_str());
    uint64_t seed = 11;
    for (auto axis : {SoftmaxAxis::interests, SoftmaxAxis::behaviors, SoftmaxAxis::hybrid})
      for (bool relu : {true, false})
        for (bool dynk : {false, true}) check_variant(axis, relu, dynk, 64, seed++);
    check_variant(SoftmaxAxis::interests, true, false, 48, seed++);   // H not a multiple of 32
    check_variant(SoftmaxAxis::behaviors, true, true, 128, seed++);
  } catch (const mindrec::Error& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d failure(s)\n", mindrec::test::failures() ? "FAILED" : "passed", mindrec::test::failures());
  return mindrec::test::failures() ? 1 : 0;
}
