// Config structs (config.hpp) as Python classes with read-write attributes.
#include <nanobind/stl/string.h>

#include "core.hpp"
#include "mindrec/config.hpp"

namespace mindrec::py {

void bind_config(nb::module_& m) {
  nb::enum_<SoftmaxAxis>(m, "SoftmaxAxis", "Which axis the routing softmax normalises over (mind-spec.md, Switches).")
      .value("interests", SoftmaxAxis::interests)
      .value("behaviors", SoftmaxAxis::behaviors)
      .value("hybrid", SoftmaxAxis::hybrid);
  nb::enum_<Readout>(m, "Readout", "Label-aware attention read-out used in training.")
      .value("soft", Readout::soft)
      .value("hard", Readout::hard);

  nb::enum_<Extractor>(m, "Extractor", "hyper_parameters.extractor: MIND's capsule routing or ComiRec-SA's self-attention.")
      .value("capsule", Extractor::capsule)
      .value("self_attention", Extractor::self_attention);
  nb::class_<SelfAttentionConfig>(m, "SelfAttentionConfig", "hyper_parameters.self_attention")
      .def(nb::init<>())
      .def_rw("hidden", &SelfAttentionConfig::hidden);
  nb::class_<CapsuleConfig>(m, "CapsuleConfig", "hyper_parameters.capsule")
      .def(nb::init<>())
      .def_rw("iters", &CapsuleConfig::iters)
      .def_rw("max_k", &CapsuleConfig::max_k)
      .def_rw("init_std", &CapsuleConfig::init_std)
      .def_rw("softmax_axis", &CapsuleConfig::softmax_axis)
      .def_rw("relu_layer", &CapsuleConfig::relu_layer)
      .def_rw("dynamic_k", &CapsuleConfig::dynamic_k)
      .def_rw("per_interest_transform", &CapsuleConfig::per_interest_transform);
  nb::class_<OptimizerConfig>(m, "OptimizerConfig", "hyper_parameters.optimizer")
      .def(nb::init<>())
      .def_rw("class_name", &OptimizerConfig::class_name)
      .def_rw("learning_rate", &OptimizerConfig::learning_rate)
      .def_rw("lazy", &OptimizerConfig::lazy);
  nb::class_<LossConfig>(m, "LossConfig", "hyper_parameters.loss (training only)")
      .def(nb::init<>())
      .def_rw("hard_negative_beta", &LossConfig::hard_negative_beta)
      .def_rw("in_batch_negatives", &LossConfig::in_batch_negatives)
      .def_rw("routing_regularization", &LossConfig::routing_regularization);
  nb::class_<ModelConfig>(m, "ModelConfig", "hyper_parameters: what defines the model function and its training.")
      .def(nb::init<>())
      .def_rw("item_count", &ModelConfig::item_count)
      .def_rw("embedding_dim", &ModelConfig::embedding_dim)
      .def_rw("hidden_size", &ModelConfig::hidden_size)
      .def_rw("maxlen", &ModelConfig::maxlen)
      .def_rw("neg_samples", &ModelConfig::neg_samples)
      .def_rw("pow_p", &ModelConfig::pow_p)
      .def_rw("readout", &ModelConfig::readout)
      .def_rw("cosine_temperature", &ModelConfig::cosine_temperature)
      .def_rw("optimizer", &ModelConfig::optimizer)
      .def_rw("extractor", &ModelConfig::extractor)
      .def_rw("capsule", &ModelConfig::capsule)
      .def_rw("self_attention", &ModelConfig::self_attention)
      .def_rw("loss", &ModelConfig::loss)
      .def("validate", &ModelConfig::validate, "Raises ConfigError naming the key path of the first invalid field.")
      .def("to_json", [](const ModelConfig& c) { return model_config_to_json(c); },
           "Compact JSON of the model-defining fields (as stored in a weights file).")
      .def_static("from_json", [](const std::string& j) { return model_config_from_json(j, "<json>"); }, nb::arg("json"));
  nb::class_<RunnerConfig>(m, "RunnerConfig", "runner: data locations and the training/inference loop.")
      .def(nb::init<>())
      .def_rw("train_data_dir", &RunnerConfig::train_data_dir)
      .def_rw("test_data_dir", &RunnerConfig::test_data_dir)
      .def_rw("train_batch_size", &RunnerConfig::train_batch_size)
      .def_rw("infer_batch_size", &RunnerConfig::infer_batch_size)
      .def_rw("epochs", &RunnerConfig::epochs)
      .def_rw("batches_per_epoch", &RunnerConfig::batches_per_epoch)
      .def_rw("print_interval", &RunnerConfig::print_interval)
      .def_rw("model_save_path", &RunnerConfig::model_save_path)
      .def_rw("seed", &RunnerConfig::seed)
      .def_rw("threads", &RunnerConfig::threads)
      .def("validate", &RunnerConfig::validate);
  nb::class_<Config>(m, "Config", "A whole config file: runner and hyper_parameters.")
      .def(nb::init<>())
      .def_rw("runner", &Config::runner)
      .def_rw("hyper_parameters", &Config::hyper_parameters)
      .def_rw("source", &Config::source)
      .def("validate", &Config::validate);

  m.def("load_config", &load_config, nb::arg("path"),
        "Reads a YAML config (PaddleRec's shape). Unknown keys and wrong types raise ConfigError with "
        "the key path; relative paths in `runner` are resolved against the file's folder.");
  m.def("load_model_config", &load_model_config, nb::arg("path"),
        "Reads only the hyper_parameters of a YAML config (other sections, a PaddleRec runner's keys "
        "among them, are ignored).");
  m.def("parse_config", &parse_config, nb::arg("yaml_text"), nb::arg("base_dir") = ".", nb::arg("source") = "<string>",
        "Parses YAML text; `base_dir` resolves relative paths, `source` names it in errors.");
}

}  // namespace mindrec::py
