// The training checkpoint: weights, Adam moments and parked rows, generator state and
// counters in one safetensors file (format tag "mindrec-mind-checkpoint-v1").
#include <array>
#include <nlohmann/json.hpp>

#include "mindrec/error.hpp"
#include "mindrec/safetensors.hpp"
#include "train/trainer_state.hpp"

namespace mindrec {

namespace {
constexpr const char* kCheckpointFormat = "mindrec-mind-checkpoint-v1";
}  // namespace

void Trainer::save_checkpoint(const std::string& path) {
  Impl& s = *impl_;
  s.adam.materialize(s.weights, s.threads);
  // Views of the weights and moments: nothing the size of a table is copied to write them.
  std::map<std::string, std::string> metadata;
  std::map<std::string, detail::TensorRef> t = detail::weights_to_refs(s.weights, metadata);
  metadata[detail::kFormatKey] = kCheckpointFormat;
  metadata["mindrec.trainer"] = nlohmann::json{{"epochs_done", s.epochs_done},
                                               {"steps_done", s.steps_done},
                                               {"adam_steps", s.adam.t_},
                                               {"threads", s.threads},
                                               {"seed", s.config.runner.seed}}
                                    .dump();
  const auto& w = s.weights;
  auto put = [&](const char* moment, const char* name, const AlignedVector<float>& v) {
    t[std::string("adam.") + moment + "." + name] = {DType::F32, t.at(name).shape, v.data()};
  };
  put("m", tensor_names::item_emb, s.adam.m_emb);
  put("v", tensor_names::item_emb, s.adam.v_emb);
  if (w.config.capsule_extractor()) {
    put("m", tensor_names::bilinear, s.adam.m_bil);
    put("v", tensor_names::bilinear, s.adam.v_bil);
  }
  for (const auto& p : attention_parts(w.config)) {  // views of the moments, as the weights'
    t[std::string("adam.m.") + p.name] = {DType::F32, p.shape, s.adam.m_att.data() + p.offset};
    t[std::string("adam.v.") + p.name] = {DType::F32, p.shape, s.adam.v_att.data() + p.offset};
  }
  if (!w.relu_weight.empty()) {
    put("m", tensor_names::relu_weight, s.adam.m_rw);
    put("v", tensor_names::relu_weight, s.adam.v_rw);
    put("m", tensor_names::relu_bias, s.adam.m_rb);
    put("v", tensor_names::relu_bias, s.adam.v_rb);
  }
  const std::vector<int64_t> moving = s.adam.moving_row_ids();
  t["adam.moving_rows"] = {DType::I64, {int64_t(moving.size())}, moving.data()};
  const auto st = s.rng.state();
  const std::vector<int64_t> rng(st.begin(), st.end());
  t["trainer.rng"] = {DType::I64, {int64_t(rng.size())}, rng.data()};
  detail::write_safetensors(path, metadata, t);
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& path, Config config,
                                         const ClickLog& log) {
  config.validate();
  const SafetensorsFile f = read_safetensors(path);
  auto fmt = f.metadata.find(detail::kFormatKey);
  auto meta = f.metadata.find("mindrec.trainer");
  if (fmt == f.metadata.end() || fmt->second != kCheckpointFormat || meta == f.metadata.end())
    throw FormatError(path + ": not a mindrec training checkpoint (a weights file cannot be "
                             "resumed from: it has no optimizer or sampler state)");
  MindWeights w = detail::weights_from_file(f, path, true);
  check_same_model(config.hyper_parameters, w.config, path);
  w.config = config.hyper_parameters;
  auto impl = std::make_unique<Impl>(config, log, std::move(w));
  try {
    const auto j = nlohmann::json::parse(meta->second);
    impl->epochs_done = j.at("epochs_done").get<int>();
    impl->steps_done = j.at("steps_done").get<int64_t>();
    impl->adam.t_ = j.at("adam_steps").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": bad trainer state in __metadata__: " + e.what());
  }
  auto load = [&](const std::string& name, AlignedVector<float>& dst) {
    const Tensor& t = f.at(name, path);
    if (size_t(t.numel()) != dst.size())
      throw FormatError(path + ": tensor '" + name + "' has " + std::to_string(t.numel()) +
                        " values, expected " + std::to_string(dst.size()));
    t.copy_to(dst.data());
  };
  auto& a = impl->adam;
  load("adam.m." + std::string(tensor_names::item_emb), a.m_emb);
  load("adam.v." + std::string(tensor_names::item_emb), a.v_emb);
  if (config.hyper_parameters.capsule_extractor()) {
    load("adam.m." + std::string(tensor_names::bilinear), a.m_bil);
    load("adam.v." + std::string(tensor_names::bilinear), a.v_bil);
  }
  for (const auto& p : attention_parts(config.hyper_parameters)) {
    for (const char* moment : {"m", "v"}) {
      const std::string name = std::string("adam.") + moment + "." + p.name;
      const Tensor& t = f.at(name, path);
      if (size_t(t.numel()) != p.size)
        throw FormatError(path + ": tensor '" + name + "' has " + std::to_string(t.numel()) +
                          " values, expected " + std::to_string(p.size));
      t.copy_to((moment[0] == 'm' ? a.m_att : a.v_att).data() + p.offset);
    }
  }
  if (config.hyper_parameters.capsule.relu_layer) {
    load("adam.m." + std::string(tensor_names::relu_weight), a.m_rw);
    load("adam.v." + std::string(tensor_names::relu_weight), a.v_rw);
    load("adam.m." + std::string(tensor_names::relu_bias), a.m_rb);
    load("adam.v." + std::string(tensor_names::relu_bias), a.v_rb);
  }
  a.restore_parking(f.at("adam.moving_rows", path).values<int64_t>());
  const auto rng = f.at("trainer.rng", path).values<int64_t>();
  if (rng.size() != 6) throw FormatError(path + ": tensor 'trainer.rng' must hold 6 values");
  std::array<uint64_t, 6> st;
  for (int i = 0; i < 6; ++i) st[i] = static_cast<uint64_t>(rng[i]);
  impl->rng.set_state(st);
  return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

}  // namespace mindrec
