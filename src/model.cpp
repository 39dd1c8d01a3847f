#include "mindrec/model.hpp"

#include <cmath>
#include <vector>

#include "mindrec/cpu/interests.hpp"
#include "mindrec/detail/random.hpp"
#include "mindrec/detail/weights_io.hpp"
#include "mindrec/error.hpp"
#include "mindrec/safetensors.hpp"
#include "mindrec/version.hpp"
#if MINDREC_HAS_CUDA
#include "model_cuda.hpp"  // cuda/: plain pointers only, no CUDA headers
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mindrec {

namespace {
constexpr const char* kConfigKey = "mindrec.model_config";
constexpr const char* kFormatKey = "format";
constexpr const char* kFormatValue = "mindrec-mind-weights-v1";

size_t expect_size(const AlignedVector<float>& v, size_t n, const char* name) {
  if (v.size() != n)
    throw InvalidArgument(std::string("MindWeights: '") + name + "' has " +
                          std::to_string(v.size()) + " values, the config needs " +
                          std::to_string(n));
  return n;
}
}  // namespace

void MindWeights::validate() const {
  config.validate();
  const size_t N = config.item_count, D = config.embedding_dim, H = config.hidden_size,
               K = config.capsule.max_k, L = config.maxlen;
  expect_size(item_emb, N * D, tensor_names::item_emb);
  expect_size(bilinear, D * H, tensor_names::bilinear);
  expect_size(routing_logits, K * L, tensor_names::routing_logits);
  expect_size(relu_weight, config.capsule.relu_layer ? H * H : 0, tensor_names::relu_weight);
  expect_size(relu_bias, config.capsule.relu_layer ? H : 0, tensor_names::relu_bias);
}

MindWeights init_weights(const ModelConfig& config, uint64_t seed) {
  config.validate();
  detail::Rng rng(seed);
  MindWeights w;
  w.config = config;
  const int64_t N = config.item_count;
  const int D = config.embedding_dim, H = config.hidden_size, K = config.capsule.max_k,
            L = config.maxlen;
  auto xavier = [&](AlignedVector<float>& v, size_t n, double fan_in, double fan_out) {
    const double a = std::sqrt(6.0 / (fan_in + fan_out));
    v.resize(n);
    for (auto& x : v) x = static_cast<float>((2.0 * rng.uniform() - 1.0) * a);
  };
  auto normal = [&](AlignedVector<float>& v, size_t n, double std) {
    v.resize(n);
    for (auto& x : v) x = static_cast<float>(rng.normal() * std);
  };
  xavier(w.item_emb, size_t(N) * D, double(N), double(D));
  std::fill(w.item_emb.begin(), w.item_emb.begin() + D, 0.0f);  // padding row
  normal(w.bilinear, size_t(D) * H, 1.0);
  normal(w.routing_logits, size_t(K) * L, config.capsule.init_std);
  if (config.capsule.relu_layer) {
    xavier(w.relu_weight, size_t(H) * H, double(H), double(H));
    w.relu_bias.assign(H, 0.0f);
  }
  return w;
}

namespace detail {

SafetensorsFile weights_to_file(const MindWeights& w) {
  w.validate();
  const auto& c = w.config;
  const int64_t N = c.item_count, D = c.embedding_dim, H = c.hidden_size, K = c.capsule.max_k,
                L = c.maxlen;
  SafetensorsFile f;
  f.metadata[kFormatKey] = kFormatValue;
  f.metadata[kConfigKey] = model_config_to_json(c);
  f.tensors[tensor_names::item_emb] = Tensor::from_f32({N, D}, w.item_emb.data());
  f.tensors[tensor_names::bilinear] = Tensor::from_f32({D, H}, w.bilinear.data());
  f.tensors[tensor_names::routing_logits] = Tensor::from_f32({1, K, L}, w.routing_logits.data());
  if (c.capsule.relu_layer) {
    f.tensors[tensor_names::relu_weight] = Tensor::from_f32({H, H}, w.relu_weight.data());
    f.tensors[tensor_names::relu_bias] = Tensor::from_f32({H}, w.relu_bias.data());
  }
  return f;
}

MindWeights weights_from_file(const SafetensorsFile& f, const std::string& path,
                              bool allow_extra) {
  auto it = f.metadata.find(kConfigKey);
  if (it == f.metadata.end())
    throw FormatError(path + ": no '" + kConfigKey +
                      "' in __metadata__: not a mindrec weights file");
  MindWeights w;
  w.config = model_config_from_json(it->second, path);
  const auto& c = w.config;
  const int64_t N = c.item_count, D = c.embedding_dim, H = c.hidden_size, K = c.capsule.max_k,
                L = c.maxlen;
  auto take = [&](const char* name, std::vector<int64_t> shape) {
    const Tensor& t = f.at(name, path);
    if (t.dtype != DType::F32)
      throw FormatError(path + ": tensor '" + name + "' has dtype " + to_string(t.dtype) +
                        ", expected F32");
    if (t.shape != shape) {
      auto str = [](const std::vector<int64_t>& s) {
        std::string r = "[";
        for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
        return r + "]";
      };
      throw FormatError(path + ": tensor '" + name + "' has shape " + str(t.shape) +
                        ", the model config in the file needs " + str(shape));
    }
    AlignedVector<float> v(size_t(t.numel()));
    t.copy_to(v.data());
    return v;
  };
  w.item_emb = take(tensor_names::item_emb, {N, D});
  w.bilinear = take(tensor_names::bilinear, {D, H});
  w.routing_logits = take(tensor_names::routing_logits, {1, K, L});
  if (c.capsule.relu_layer) {
    w.relu_weight = take(tensor_names::relu_weight, {H, H});
    w.relu_bias = take(tensor_names::relu_bias, {H});
  }
  if (!allow_extra) {
    std::string extra;
    for (const auto& [name, t] : f.tensors)
      if (name != tensor_names::item_emb && name != tensor_names::bilinear &&
          name != tensor_names::routing_logits &&
          !(c.capsule.relu_layer &&
            (name == tensor_names::relu_weight || name == tensor_names::relu_bias)))
        extra += (extra.empty() ? "'" : ", '") + name + "'";
    if (!extra.empty())
      throw FormatError(path + ": unexpected tensor(s) " + extra +
                        " for the model config in the file (relu_layer=" +
                        (c.capsule.relu_layer ? "true" : "false") + ")");
  }
  for (float x : w.item_emb)
    if (!std::isfinite(x)) throw FormatError(path + ": 'item_emb.weight' holds NaN or Inf");
  return w;
}

cpu::ModelView<float> model_view(const MindWeights& w) {
  const auto& c = w.config;
  cpu::ModelView<float> v;
  v.item_emb = w.item_emb.data();
  v.bilinear = w.bilinear.data();
  v.routing_logits = w.routing_logits.data();
  v.relu_weight = c.capsule.relu_layer ? w.relu_weight.data() : nullptr;
  v.relu_bias = c.capsule.relu_layer ? w.relu_bias.data() : nullptr;
  v.item_count = c.item_count;
  v.dim = c.embedding_dim;
  v.hidden = c.hidden_size;
  v.max_k = c.capsule.max_k;
  v.maxlen = c.maxlen;
  v.iters = c.capsule.iters;
  v.axis = c.capsule.softmax_axis;
  v.relu_layer = c.capsule.relu_layer;
  v.dynamic_k = c.capsule.dynamic_k;
  return v;
}

}  // namespace detail

void save_weights(const std::string& path, const MindWeights& w) {
  write_safetensors(path, detail::weights_to_file(w));
}

MindWeights load_weights(const std::string& path) {
  return detail::weights_from_file(read_safetensors(path), path, false);
}

MindWeights load_weights(const std::string& path, const ModelConfig& expected) {
  MindWeights w = load_weights(path);
  check_same_model(expected, w.config, path);
  // Training-only settings (readout, pow_p, negatives, optimiser) follow the caller's config.
  w.config = expected;
  return w;
}

// ---------------------------------------------------------------------------------------
struct MindModel::Impl {
  MindWeights w;
  Device device = Device::cpu;
  cpu::ModelView<float> view;
  AlignedVector<float> projected;  // item_emb · S [N, H]: û of every item, computed once
#if MINDREC_HAS_CUDA
  std::unique_ptr<cuda::ModelCuda> gpu;  // Device::cuda: device copy of the weights
#endif
};

MindModel::MindModel(MindWeights weights, Device device) : impl_(std::make_unique<Impl>()) {
#if !MINDREC_HAS_CUDA
  if (device == Device::cuda)
    throw Unsupported("MindModel: the CUDA device is not available in this build (MINDREC_WITH_CUDA=OFF)");
#endif
  weights.validate();
  impl_->w = std::move(weights);
  impl_->device = device;
  const auto& c = impl_->w.config;
  impl_->view = detail::model_view(impl_->w);
  const auto& v = impl_->view;
  // The weights never change inside a MindModel, so û = item_emb[i] S is computed once for
  // every item: interest extraction then gathers rows instead of running a per-user GEMM
  // (two thirds of its FLOPs). Costs N x H floats, as much as the embedding table itself.
  impl_->projected.resize(size_t(c.item_count) * c.hidden_size);
  detail::MapMat<float>(impl_->projected.data(), c.item_count, c.hidden_size).noalias() =
      detail::MapConstMat<float>(v.item_emb, c.item_count, c.embedding_dim) *
      detail::MapConstMat<float>(v.bilinear, c.embedding_dim, c.hidden_size);
  for (int h = 0; h < c.hidden_size; ++h) impl_->projected[h] = 0.0f;  // padding row
#if MINDREC_HAS_CUDA
  if (device == Device::cuda) {
    // The device gets the same û table (computed above), so both paths gather equal rows.
    cuda::ModelHost mh;
    mh.projected = impl_->projected.data();
    mh.item_emb = v.item_emb;
    mh.routing_logits = v.routing_logits;
    mh.relu_weight = v.relu_weight;
    mh.relu_bias = v.relu_bias;
    mh.item_count = v.item_count;
    mh.dim = v.dim;
    mh.hidden = v.hidden;
    mh.max_k = v.max_k;
    mh.maxlen = v.maxlen;
    mh.iters = v.iters;
    mh.axis = static_cast<int>(v.axis);
    mh.dynamic_k = v.dynamic_k;
    impl_->gpu = std::make_unique<cuda::ModelCuda>(mh, 0);
  }
#endif
}

MindModel::~MindModel() = default;
MindModel::MindModel(MindModel&&) noexcept = default;
MindModel& MindModel::operator=(MindModel&&) noexcept = default;

const ModelConfig& MindModel::config() const { return impl_->w.config; }
const MindWeights& MindModel::weights() const { return impl_->w; }
Device MindModel::device() const { return impl_->device; }

int MindModel::interest_count(int n) const {
  return cpu::interest_count(n, impl_->view.max_k, impl_->view.dynamic_k);
}

void MindModel::extract_interests(const int64_t* hist, const int32_t* lengths, int64_t batch,
                                  float* out, int32_t* counts, int threads) const {
  const auto& v = impl_->view;
  MINDREC_EXPECTS(batch >= 0, "extract_interests: batch must be >= 0");
  if (batch == 0) return;
  MINDREC_EXPECTS(hist && lengths && out, "extract_interests: null input or output");
  for (int64_t b = 0; b < batch; ++b) {
    const int32_t n = lengths[b];
    if (n < 0 || n > v.maxlen)
      throw InvalidArgument("extract_interests: lengths[" + std::to_string(b) + "] = " +
                            std::to_string(n) + " is outside [0, maxlen=" +
                            std::to_string(v.maxlen) + "]");
    for (int l = 0; l < n; ++l) {
      const int64_t id = hist[b * v.maxlen + l];
      if (id < 0 || id >= v.item_count)
        throw InvalidArgument("extract_interests: item id " + std::to_string(id) + " of user " +
                              std::to_string(b) + " is outside [0, item_count=" +
                              std::to_string(v.item_count) + ")");
    }
  }
#if MINDREC_HAS_CUDA
  if (impl_->gpu) {
    impl_->gpu->extract_interests(hist, lengths, batch, out, counts);
    return;
  }
#endif
  const size_t stride = size_t(v.max_k) * v.hidden;
  const size_t ws = cpu::workspace_size(v);
  const float* proj = impl_->projected.data();
  const int nthreads = static_cast<int>(std::min<int64_t>(resolve_threads(threads), batch));
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
  {
    AlignedVector<float> work(ws);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      if (b + 1 < batch)  // the next user's rows: random reads from a table far beyond cache
        for (int l = 0; l < lengths[b + 1]; ++l)
          __builtin_prefetch(proj + hist[(b + 1) * v.maxlen + l] * v.hidden);
      const int k = cpu::extract_user(v, hist + b * v.maxlen, lengths[b], out + b * stride,
                                       work.data(), proj);
      if (counts) counts[b] = k;
    }
  }
}

void MindModel::label_aware_attention(const float* interests, const int32_t* counts,
                                      const int64_t* targets, int64_t batch, float* out) const {
  const auto& v = impl_->view;
  const auto& cfg = impl_->w.config;
  MINDREC_EXPECTS(batch >= 0, "label_aware_attention: batch must be >= 0");
  if (batch == 0) return;
  MINDREC_EXPECTS(interests && counts && targets && out, "label_aware_attention: null pointer");
  AlignedVector<float> c(v.max_k), alpha(v.max_k);
  for (int64_t b = 0; b < batch; ++b) {
    if (targets[b] < 1 || targets[b] >= v.item_count)
      throw InvalidArgument("label_aware_attention: target " + std::to_string(targets[b]) +
                            " is outside [1, item_count)");
    if (counts[b] < 1 || counts[b] > v.max_k)
      throw InvalidArgument("label_aware_attention: counts[" + std::to_string(b) +
                            "] is outside [1, max_k]");
  }
#if MINDREC_HAS_CUDA
  if (impl_->gpu) {
    impl_->gpu->label_aware_attention(interests, counts, targets, batch, static_cast<int>(cfg.pow_p),
                                      cfg.readout == Readout::hard, out);
    return;
  }
#endif
  for (int64_t b = 0; b < batch; ++b) {
    cpu::attention_forward(interests + b * size_t(v.max_k) * v.hidden, counts[b], v.hidden,
                           v.item_emb + targets[b] * v.dim, static_cast<int>(cfg.pow_p),
                           cfg.readout, out + b * size_t(v.hidden), c.data(), alpha.data());
  }
}

}  // namespace mindrec
