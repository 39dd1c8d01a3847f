// Device::cuda for MindModel: the weights' kernel view handed to ModelCuda (model_cuda.cu).
#include "model/device_model.hpp"

#include "model/weights_io.hpp"
#include "model_cuda.hpp"

namespace mindrec::model {
namespace {

class CudaModel final : public DeviceModel {
 public:
  CudaModel(const MindWeights& w, const float* projected)
      : pow_p_(static_cast<int>(w.config.pow_p)), hard_(w.config.readout == Readout::hard) {
    const auto v = detail::model_view(w);
    cuda::ModelHost mh;
    mh.projected = projected;
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
    gpu_ = std::make_unique<cuda::ModelCuda>(mh, 0);
  }
  void extract_interests(const int64_t* hist, const int32_t* lengths, int64_t batch, float* out,
                         int32_t* counts) override {
    gpu_->extract_interests(hist, lengths, batch, out, counts);
  }
  void label_aware_attention(const float* interests, const int32_t* counts, const int64_t* targets,
                             int64_t batch, float* out) override {
    gpu_->label_aware_attention(interests, counts, targets, batch, pow_p_, hard_, out);
  }

 private:
  int pow_p_;
  bool hard_;
  std::unique_ptr<cuda::ModelCuda> gpu_;
};

}  // namespace

std::unique_ptr<DeviceModel> make_cuda_model(const MindWeights& w, const float* projected) {
  return std::make_unique<CudaModel>(w, projected);
}

}  // namespace mindrec::model
