// MindModel: the CPU forward pass (header-only kernels of cpu/interests.hpp over a
// precomputed item projection, or a per-user GEMM for large catalogues), or a DeviceModel for Device::cuda.
#include "mindrec/model.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>

#include "mindrec/cpu/interests.hpp"
#include "detail/vector_math.hpp"
#include "mindrec/error.hpp"
#include "model/device_model.hpp"
#include "model/weights_io.hpp"

namespace mindrec {

struct MindModel::Impl {
  MindWeights w;
  Device device = Device::cpu;
  cpu::ModelView<float> view;
  AlignedVector<float> projected;  // item_emb · S [N, H] ([N, K H] per interest): û of every item, computed once
  std::unique_ptr<model::DeviceModel> gpu;  // Device::cuda: device copy of the weights
  std::unique_ptr<std::once_flag> fingerprint_once = std::make_unique<std::once_flag>();
  uint64_t fingerprint = 0;
};

MindModel::MindModel(MindWeights weights, Device device, const ModelOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (device == Device::cuda && !built_with_cuda())  // before any work on the weights
    throw Unsupported("MindModel: the CUDA device is not available in this build (MINDREC_WITH_CUDA=OFF)");
  if (device == Device::cuda && weights.config.capsule.per_interest_transform)
    throw Unsupported("MindModel on CUDA: capsule.per_interest_transform (ComiRec-DR routing) is not implemented "
                      "on the GPU; use Device::cpu");
  if (device == Device::cuda && !weights.config.capsule_extractor())
    throw Unsupported("MindModel on CUDA: extractor self_attention (ComiRec-SA) is not implemented on the GPU; "
                      "use Device::cpu");
  if (device == Device::cuda && weights.config.cosine())
    throw Unsupported("MindModel on CUDA: cosine_temperature (normalised vectors) is not implemented on the GPU; "
                      "use Device::cpu");
  weights.validate();
  if (weights.config.cosine()) {  // the rows a cosine model ranks by must be unit (as save_weights writes them)
    double norm = 0;
    if (const int64_t r = detail::first_non_unit_row(weights.item_emb.data(), weights.config.item_count,
                                                     weights.config.embedding_dim, &norm); r >= 0)
      throw InvalidArgument("MindModel: item_emb row " + std::to_string(r) + " has norm " + std::to_string(norm) +
                            " but cosine_temperature > 0 needs unit rows (init_weights and save_weights make them)");
  }
  impl_->w = std::move(weights);
  impl_->device = device;
  const auto& c = impl_->w.config;
  impl_->view = detail::model_view(impl_->w);
  const auto& v = impl_->view;
  // The weights never change inside a MindModel, so û = item_emb[i] S can be computed once
  // for every item: interest extraction then gathers rows instead of running a per-user GEMM
  // (two thirds of its FLOPs), at the price of N x H floats, as much as the embedding table.
  // Past options.max_projection_bytes the CPU model runs the per-user GEMM instead (same
  // function); the CUDA model uploads the projection and keeps no host copy.
  const int uh = v.u_cols();
  // Self-attention has no projection to precompute: the positions make each row user-specific.
  const bool precompute = c.capsule_extractor() && (device == Device::cuda ||
      double(c.item_count) * uh * sizeof(float) <= double(options.max_projection_bytes));
  if (precompute) {
    impl_->projected.resize(size_t(c.item_count) * uh);
    detail::MapMat<float>(impl_->projected.data(), c.item_count, uh).noalias() =
        detail::MapConstMat<float>(v.item_emb, c.item_count, c.embedding_dim) *
        detail::MapConstMat<float>(v.bilinear, c.embedding_dim, uh);
    for (int h = 0; h < uh; ++h) impl_->projected[h] = 0.0f;  // padding row
  }
  if (device == Device::cuda) {
    impl_->gpu = model::make_cuda_model(impl_->w, impl_->projected.data());
    AlignedVector<float>().swap(impl_->projected);
  }
}

MindModel::~MindModel() = default;
MindModel::MindModel(MindModel&&) noexcept = default;
MindModel& MindModel::operator=(MindModel&&) noexcept = default;

const ModelConfig& MindModel::config() const { return impl_->w.config; }
const MindWeights& MindModel::weights() const { return impl_->w; }
Device MindModel::device() const { return impl_->device; }

uint64_t MindModel::item_fingerprint() const {
  std::call_once(*impl_->fingerprint_once, [&] { impl_->fingerprint = mindrec::item_fingerprint(impl_->w); });
  return impl_->fingerprint;
}

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
  if (impl_->gpu) {
    impl_->gpu->extract_interests(hist, lengths, batch, out, counts);
    return;
  }
  const size_t stride = size_t(v.max_k) * v.hidden;
  const size_t ws = cpu::workspace_size(v);
  const float* proj = impl_->projected.empty() ? nullptr : impl_->projected.data();
  const float* rows = proj ? proj : v.item_emb;  // what the next user's lookups read
  const int row_len = proj ? v.u_cols() : v.dim;
  const int nthreads = static_cast<int>(std::min<int64_t>(resolve_threads(threads), batch));
  const bool cosine = impl_->w.config.cosine();
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
  {
    AlignedVector<float> work(ws);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      if (b + 1 < batch)  // the next user's rows: random reads from a table far beyond cache
        for (int l = 0; l < lengths[b + 1]; ++l)
          __builtin_prefetch(rows + hist[(b + 1) * v.maxlen + l] * row_len);
      const int k = cpu::extract_user(v, hist + b * v.maxlen, lengths[b], out + b * stride,
                                       work.data(), proj);
      if (cosine) detail::normalize_rows(out + b * stride, k, v.hidden);
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
  if (impl_->gpu) {
    impl_->gpu->label_aware_attention(interests, counts, targets, batch, out);
    return;
  }
  for (int64_t b = 0; b < batch; ++b) {
    cpu::attention_forward(interests + b * size_t(v.max_k) * v.hidden, counts[b], v.hidden,
                           v.item_emb + targets[b] * v.dim, static_cast<int>(cfg.pow_p),
                           cfg.readout, out + b * size_t(v.hidden), c.data(), alpha.data());
    if (cfg.cosine()) detail::normalize_rows(out + b * size_t(v.hidden), 1, v.hidden);
  }
}

}  // namespace mindrec
