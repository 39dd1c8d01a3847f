// Config validation, the model config's JSON form stored in weights files, and the thread
// count policy.
#include "mindrec/config.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "mindrec/error.hpp"

namespace mindrec {

namespace {
[[noreturn]] void invalid(const std::string& path, const std::string& msg) {
  throw ConfigError("key '" + path + "': " + msg);
}
}  // namespace

const char* to_string(SoftmaxAxis axis) {
  switch (axis) {
    case SoftmaxAxis::interests: return "interests";
    case SoftmaxAxis::behaviors: return "behaviors";
    case SoftmaxAxis::hybrid: return "hybrid";
  }
  return "?";
}

const char* to_string(Readout readout) { return readout == Readout::soft ? "soft" : "hard"; }

const char* to_string(Extractor extractor) {
  return extractor == Extractor::capsule ? "capsule" : "self_attention";
}

void ModelConfig::validate() const {
  const std::string hp = "hyper_parameters.";
  if (item_count < 2) invalid(hp + "item_count", "must be >= 2 (id 0 is padding)");
  if (item_count > (int64_t(1) << 40)) invalid(hp + "item_count", "is implausibly large");
  if (embedding_dim < 1 || embedding_dim > 4096)
    invalid(hp + "embedding_dim", "must be in [1, 4096]");
  if (hidden_size != embedding_dim)
    invalid(hp + "hidden_size",
            "must equal embedding_dim (" + std::to_string(embedding_dim) +
                "): interests are scored against item embeddings");
  if (maxlen < 1 || maxlen > 4096) invalid(hp + "maxlen", "must be in [1, 4096]");
  if (neg_samples < 1 || neg_samples > item_count - 1)
    invalid(hp + "neg_samples", "must be in [1, item_count - 1]");
  if (!(pow_p >= 1.0) || pow_p > 64.0 || std::floor(pow_p) != pow_p)
    invalid(hp + "pow_p",
            "must be an integer in [1, 64] (a fractional power is NaN on negative scores)");
  if (optimizer.class_name != "Adam" && optimizer.class_name != "adam")
    invalid(hp + "optimizer.class", "only Adam is implemented, got '" + optimizer.class_name + "'");
  if (!(optimizer.learning_rate > 0.0)) invalid(hp + "optimizer.learning_rate", "must be > 0");
  if (capsule.iters < 1 || capsule.iters > 100)
    invalid(hp + "capsule.iters", "must be in [1, 100]");
  if (capsule.max_k < 1 || capsule.max_k > 64) invalid(hp + "capsule.max_k", "must be in [1, 64]");
  if (!(capsule.init_std >= 0.0)) invalid(hp + "capsule.init_std", "must be >= 0");
  if (self_attention.hidden < 0 || self_attention.hidden > 65536)
    invalid(hp + "self_attention.hidden", "must be in [0, 65536] (0 = 4 embedding_dim)");
  if (extractor == Extractor::self_attention && capsule.per_interest_transform)
    invalid(hp + "capsule.per_interest_transform",
            "is a routing option; extractor self_attention has no routing (set it false)");
  if (capsule_extractor() && capsule.init_std == 0.0 && !capsule.per_interest_transform && capsule.max_k > 1)
    invalid(hp + "capsule.init_std",
            "0 (zero routing logits) makes every interest the same unless capsule.per_interest_transform is true");
  if (!(cosine_temperature >= 0.0 && cosine_temperature <= 100.0))
    invalid(hp + "cosine_temperature", "must be in [0, 100] (0 = dot products)");
  if (!(loss.routing_regularization >= 0.0 && loss.routing_regularization <= 1e6))
    invalid(hp + "loss.routing_regularization", "must be in [0, 1e6] (0 = off)");
  if (loss.routing_regularization > 0.0 && extractor != Extractor::self_attention)
    invalid(hp + "loss.routing_regularization",
            "regularises self-attention's weights; MIND's routing weights carry no gradient (set extractor: self_attention)");
  if (!(loss.hard_negative_beta >= 0.0 && loss.hard_negative_beta <= 100.0))
    invalid(hp + "loss.hard_negative_beta", "must be in [0, 100] (0 = off)");
}

void RunnerConfig::validate() const {
  if (train_batch_size < 1) invalid("runner.train_batch_size", "must be >= 1");
  if (infer_batch_size < 1) invalid("runner.infer_batch_size", "must be >= 1");
  if (epochs < 1) invalid("runner.epochs", "must be >= 1");
  if (batches_per_epoch < 1) invalid("runner.batches_per_epoch", "must be >= 1");
  if (print_interval < 1) invalid("runner.print_interval", "must be >= 1");
  if (threads < 0) invalid("runner.threads", "must be >= 0 (0 = all cores)");
  if (patience < 0) invalid("runner.patience", "must be >= 0 (0 = no early stopping)");
}

void Config::validate() const {
  try {
    runner.validate();
    hyper_parameters.validate();
  } catch (const ConfigError& e) {
    if (source.empty()) throw;
    throw ConfigError(source + ": " + e.what());
  }
}

std::string model_config_to_json(const ModelConfig& m) {
  nlohmann::json j = {
      {"item_count", m.item_count},
      {"embedding_dim", m.embedding_dim},
      {"hidden_size", m.hidden_size},
      {"maxlen", m.maxlen},
      {"neg_samples", m.neg_samples},
      {"pow_p", m.pow_p},
      {"readout", to_string(m.readout)},
      {"cosine_temperature", m.cosine_temperature},
      {"extractor", to_string(m.extractor)},
      {"self_attention", {{"hidden", m.self_attention.hidden}}},
      {"capsule",
       {{"iters", m.capsule.iters},
        {"max_k", m.capsule.max_k},
        {"init_std", m.capsule.init_std},
        {"softmax_axis", to_string(m.capsule.softmax_axis)},
        {"relu_layer", m.capsule.relu_layer},
        {"dynamic_k", m.capsule.dynamic_k},
        {"per_interest_transform", m.capsule.per_interest_transform}}},
      {"loss",
       {{"hard_negative_beta", m.loss.hard_negative_beta},
        {"in_batch_negatives", m.loss.in_batch_negatives},
        {"routing_regularization", m.loss.routing_regularization}}}};
  return j.dump();
}

ModelConfig model_config_from_json(const std::string& text, const std::string& source) {
  ModelConfig m;
  try {
    const auto j = nlohmann::json::parse(text);
    const auto& c = j.at("capsule");
    m.item_count = j.at("item_count").get<int64_t>();
    m.embedding_dim = j.at("embedding_dim").get<int>();
    m.hidden_size = j.at("hidden_size").get<int>();
    m.maxlen = j.at("maxlen").get<int>();
    m.neg_samples = j.at("neg_samples").get<int>();
    m.pow_p = j.at("pow_p").get<double>();
    const auto readout = j.at("readout").get<std::string>();
    if (readout != "soft" && readout != "hard") throw FormatError("readout '" + readout + "'");
    m.readout = readout == "soft" ? Readout::soft : Readout::hard;
    m.capsule.iters = c.at("iters").get<int>();
    m.capsule.max_k = c.at("max_k").get<int>();
    m.capsule.init_std = c.at("init_std").get<double>();
    const auto axis = c.at("softmax_axis").get<std::string>();
    if (axis == "interests") m.capsule.softmax_axis = SoftmaxAxis::interests;
    else if (axis == "behaviors") m.capsule.softmax_axis = SoftmaxAxis::behaviors;
    else if (axis == "hybrid") m.capsule.softmax_axis = SoftmaxAxis::hybrid;
    else throw FormatError("softmax_axis '" + axis + "'");
    m.capsule.relu_layer = c.at("relu_layer").get<bool>();
    m.capsule.dynamic_k = c.at("dynamic_k").get<bool>();
    m.capsule.per_interest_transform = c.value("per_interest_transform", false);  // absent before issue 29
    m.cosine_temperature = j.value("cosine_temperature", 0.0);  // absent before issue 29: dot products
    if (j.contains("extractor")) {  // absent before issue 29: capsule
      const auto ex = j.at("extractor").get<std::string>();
      if (ex == "capsule") m.extractor = Extractor::capsule;
      else if (ex == "self_attention") m.extractor = Extractor::self_attention;
      else throw FormatError("extractor '" + ex + "'");
      m.self_attention.hidden = j.at("self_attention").at("hidden").get<int>();
    }
    if (j.contains("loss")) {  // absent in files written before issue 29: the defaults
      const auto& l = j.at("loss");
      m.loss.hard_negative_beta = l.at("hard_negative_beta").get<double>();
      m.loss.in_batch_negatives = l.at("in_batch_negatives").get<bool>();
      m.loss.routing_regularization = l.value("routing_regularization", 0.0);
    }
    m.validate();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(source + ": bad model config in __metadata__: " + e.what());
  } catch (const Error& e) {
    throw FormatError(source + ": bad model config in __metadata__: " + e.what());
  }
  return m;
}

void check_same_model(const ModelConfig& a, const ModelConfig& b,
                      const std::string& weights_source) {
  std::string diff;
  auto cmp = [&](const char* key, const std::string& x, const std::string& y) {
    if (x != y) diff += std::string(diff.empty() ? "" : ", ") + key + " " + x + " vs " + y;
  };
  auto s = [](auto v) { return std::to_string(v); };
  cmp("item_count", s(a.item_count), s(b.item_count));
  cmp("embedding_dim", s(a.embedding_dim), s(b.embedding_dim));
  cmp("hidden_size", s(a.hidden_size), s(b.hidden_size));
  cmp("maxlen", s(a.maxlen), s(b.maxlen));
  cmp("extractor", to_string(a.extractor), to_string(b.extractor));
  // Whether vectors are normalised defines the model (its item rows, its interests); tau is training only.
  cmp("cosine_temperature > 0", a.cosine() ? "true" : "false", b.cosine() ? "true" : "false");
  if (a.extractor == Extractor::self_attention && b.extractor == Extractor::self_attention)
    cmp("self_attention.hidden", s(a.attention_hidden()), s(b.attention_hidden()));
  cmp("capsule.max_k", s(a.capsule.max_k), s(b.capsule.max_k));
  if (a.capsule_extractor() && b.capsule_extractor()) {  // routing settings: capsule models only
    cmp("capsule.iters", s(a.capsule.iters), s(b.capsule.iters));
    cmp("capsule.softmax_axis", to_string(a.capsule.softmax_axis), to_string(b.capsule.softmax_axis));
  }
  cmp("capsule.relu_layer", s(a.capsule.relu_layer), s(b.capsule.relu_layer));
  cmp("capsule.dynamic_k", s(a.capsule.dynamic_k), s(b.capsule.dynamic_k));
  cmp("capsule.per_interest_transform", s(a.capsule.per_interest_transform), s(b.capsule.per_interest_transform));
  if (!diff.empty())
    throw ConfigError("the config does not match the model in '" + weights_source +
                      "' (config vs weights): " + diff);
}



}  // namespace mindrec
