// YAML config parsing: the only translation unit that sees yaml-cpp (built with
// MINDREC_WITH_YAML; without it load_config/parse_config answer Unsupported).
#include "mindrec/config.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "mindrec/error.hpp"
#include "mindrec/log.hpp"

namespace mindrec {
namespace {

namespace fs = std::filesystem;

// Keys of PaddleRec's MIND config that describe its Python runtime; accepted so that a
// PaddleRec config loads unchanged, and ignored with a log line.
const std::set<std::string> kIgnoredPaddleRecKeys = {
    "runner.train_reader_path", "runner.infer_reader_path", "runner.use_gpu",
    "runner.use_auc",           "runner.infer_load_path",   "runner.infer_start_epoch",
    "runner.infer_end_epoch",   "runner.use_inference",     "runner.save_checkpoint_interval",
    "hyper_parameters.optimizer.strategy"};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& msg) const {
    if (path.empty()) throw ConfigError(source_ + ": top level: " + msg);
    throw ConfigError(source_ + ": key '" + path + "': " + msg);
  }

  const std::string& scalar(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) fail(path, "expected a scalar value");
    return n.Scalar();
  }

  template <class Int>
  Int integer(const YAML::Node& n, const std::string& path) const {
    const std::string& s = scalar(n, path);
    Int v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty())
      fail(path, "expected an integer, got '" + s + "'");
    return v;
  }

  double real(const YAML::Node& n, const std::string& path) const {
    const std::string& s = scalar(n, path);
    std::istringstream in(s);
    in.imbue(std::locale::classic());
    double v = 0;
    in >> v;
    if (s.empty() || in.fail() || !in.eof() || !std::isfinite(v))
      fail(path, "expected a number, got '" + s + "'");
    return v;
  }

  bool boolean(const YAML::Node& n, const std::string& path) const {
    const std::string& s = scalar(n, path);
    if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "off") return false;
    fail(path, "expected true or false, got '" + s + "'");
  }

  // Calls fn(key, value, path) for every entry of a map; refuses non-maps.
  template <class Fn>
  void each(const YAML::Node& n, const std::string& path, Fn&& fn) const {
    if (!n.IsMap()) fail(path, "expected a mapping");
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      const std::string child = path.empty() ? key : path + "." + key;
      fn(key, kv.second, child);
    }
  }

  void unknown(const std::string& path) const {
    if (kIgnoredPaddleRecKeys.count(path)) {
      log(LogLevel::info, source_ + ": ignoring PaddleRec runtime key '" + path + "'");
      return;
    }
    throw ConfigError(source_ + ": unknown key '" + path + "'");
  }

 private:
  std::string source_;
};

std::string resolve_path(const std::string& p, const std::string& base_dir) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_relative() && !base_dir.empty()) path = fs::path(base_dir) / path;
  return path.lexically_normal().string();
}

SoftmaxAxis parse_axis(const std::string& s, const Reader& r, const std::string& path) {
  if (s == "interests") return SoftmaxAxis::interests;
  if (s == "behaviors") return SoftmaxAxis::behaviors;
  if (s == "hybrid") return SoftmaxAxis::hybrid;
  r.fail(path, "expected one of interests, behaviors, hybrid, got '" + s + "'");
}

Readout parse_readout(const std::string& s, const Reader& r, const std::string& path) {
  if (s == "soft") return Readout::soft;
  if (s == "hard") return Readout::hard;
  r.fail(path, "expected soft or hard, got '" + s + "'");
}

void parse_capsule(const YAML::Node& n, const std::string& path, const Reader& r,
                   CapsuleConfig& c) {
  r.each(n, path, [&](const std::string& k, const YAML::Node& v, const std::string& p) {
    if (k == "iters") c.iters = r.integer<int>(v, p);
    else if (k == "max_k") c.max_k = r.integer<int>(v, p);
    else if (k == "init_std") c.init_std = r.real(v, p);
    else if (k == "softmax_axis") c.softmax_axis = parse_axis(r.scalar(v, p), r, p);
    else if (k == "relu_layer") c.relu_layer = r.boolean(v, p);
    else if (k == "dynamic_k") c.dynamic_k = r.boolean(v, p);
    else if (k == "per_interest_transform") c.per_interest_transform = r.boolean(v, p);
    else r.unknown(p);
  });
}

// item_count: auto: read from the prepared data's dataset.json (resolve_item_count).
constexpr int64_t kItemCountAuto = -1;

// `item_count: auto`: the item_count in dataset.json beside the training data's folder (where
// mindrec prepare writes it: DIR/train and DIR/dataset.json).
void resolve_item_count(Config& cfg) {
  auto& m = cfg.hyper_parameters;
  if (m.item_count != kItemCountAuto) return;
  const std::string where = cfg.source + ": hyper_parameters.item_count: auto";
  if (cfg.runner.train_data_dir.empty())
    throw ConfigError(where + " reads dataset.json beside runner.train_data_dir, which is not set");
  fs::path dir = fs::path(cfg.runner.train_data_dir);
  if (!fs::is_directory(dir)) dir = dir.parent_path();
  const fs::path file = dir.parent_path() / "dataset.json";
  std::ifstream in(file);
  if (!in) throw ConfigError(where + " needs " + file.string() + " (written by mindrec prepare beside train/)");
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("item_count") || !j["item_count"].is_number_integer())
    throw ConfigError(where + ": " + file.string() + " has no integer item_count");
  m.item_count = j["item_count"].get<int64_t>();
  log(LogLevel::info, where + ": " + std::to_string(m.item_count) + " from " + file.string());
}

void parse_hyper(const YAML::Node& n, const std::string& path, const Reader& r,
                 ModelConfig& m) {
  r.each(n, path, [&](const std::string& k, const YAML::Node& v, const std::string& p) {
    if (k == "item_count") m.item_count = v.IsScalar() && v.Scalar() == "auto" ? kItemCountAuto : r.integer<int64_t>(v, p);
    else if (k == "embedding_dim") m.embedding_dim = r.integer<int>(v, p);
    else if (k == "hidden_size") m.hidden_size = r.integer<int>(v, p);
    else if (k == "maxlen") m.maxlen = r.integer<int>(v, p);
    else if (k == "neg_samples") m.neg_samples = r.integer<int>(v, p);
    else if (k == "pow_p") m.pow_p = r.real(v, p);
    else if (k == "readout") m.readout = parse_readout(r.scalar(v, p), r, p);
    else if (k == "cosine_temperature") m.cosine_temperature = r.real(v, p);
    else if (k == "capsule" || k == "capsual") parse_capsule(v, p, r, m.capsule);  // PaddleRec spells it "capsual"
    else if (k == "extractor") {
      const std::string& e = r.scalar(v, p);
      if (e == "capsule") m.extractor = Extractor::capsule;
      else if (e == "self_attention") m.extractor = Extractor::self_attention;
      else r.fail(p, "expected capsule or self_attention, got '" + e + "'");
    } else if (k == "self_attention") {
      r.each(v, p, [&](const std::string& sk, const YAML::Node& sv, const std::string& sp) {
        if (sk == "hidden") m.self_attention.hidden = r.integer<int>(sv, sp);
        else r.unknown(sp);
      });
    }
    else if (k == "optimizer") {
      r.each(v, p, [&](const std::string& ok, const YAML::Node& ov, const std::string& op) {
        if (ok == "class") m.optimizer.class_name = r.scalar(ov, op);
        else if (ok == "learning_rate") m.optimizer.learning_rate = r.real(ov, op);
        else if (ok == "lazy") m.optimizer.lazy = r.boolean(ov, op);
        else r.unknown(op);
      });
    } else if (k == "loss") {
      r.each(v, p, [&](const std::string& lk, const YAML::Node& lv, const std::string& lp) {
        if (lk == "hard_negative_beta") m.loss.hard_negative_beta = r.real(lv, lp);
        else if (lk == "in_batch_negatives") m.loss.in_batch_negatives = r.boolean(lv, lp);
        else if (lk == "routing_regularization") m.loss.routing_regularization = r.real(lv, lp);
        else r.unknown(lp);
      });
    } else r.unknown(p);
  });
}

void parse_runner(const YAML::Node& n, const std::string& path, const Reader& r,
                  const std::string& base_dir, RunnerConfig& c) {
  r.each(n, path, [&](const std::string& k, const YAML::Node& v, const std::string& p) {
    if (k == "train_data_dir") c.train_data_dir = resolve_path(r.scalar(v, p), base_dir);
    else if (k == "test_data_dir") c.test_data_dir = resolve_path(r.scalar(v, p), base_dir);
    else if (k == "model_save_path") c.model_save_path = resolve_path(r.scalar(v, p), base_dir);
    else if (k == "train_batch_size") c.train_batch_size = r.integer<int>(v, p);
    else if (k == "infer_batch_size") c.infer_batch_size = r.integer<int>(v, p);
    else if (k == "epochs") c.epochs = r.integer<int>(v, p);
    else if (k == "batches_per_epoch") c.batches_per_epoch = r.integer<int>(v, p);
    else if (k == "print_interval") c.print_interval = r.integer<int>(v, p);
    else if (k == "seed") c.seed = r.integer<uint64_t>(v, p);
    else if (k == "threads") c.threads = r.integer<int>(v, p);
    else if (k == "patience") c.patience = r.integer<int>(v, p);
    else r.unknown(p);
  });
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& base_dir,
                    const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ": invalid YAML at line " + std::to_string(e.mark.line + 1) +
                      ": " + e.msg);
  }
  Config cfg;
  cfg.source = source;
  Reader r(source);
  if (root.IsNull()) throw ConfigError(source + ": the config is empty");
  try {
    r.each(root, "", [&](const std::string& k, const YAML::Node& v, const std::string& p) {
      if (k == "runner") parse_runner(v, p, r, base_dir, cfg.runner);
      else if (k == "hyper_parameters") parse_hyper(v, p, r, cfg.hyper_parameters);
      else r.unknown(p);
    });
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ": malformed YAML near line " + std::to_string(e.mark.line + 1) +
                      ": " + e.msg);
  }
  resolve_item_count(cfg);
  cfg.validate();
  return cfg;
}

namespace {
std::string read_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open config file '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("cannot read config file '" + path + "'");
  return ss.str();
}
}  // namespace

ModelConfig load_model_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(read_config_file(path));
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap() || !root["hyper_parameters"]) throw ConfigError(path + ": no hyper_parameters section");
  ModelConfig mc;
  Reader r(path);
  try {
    parse_hyper(root["hyper_parameters"], "hyper_parameters", r, mc);
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ": malformed YAML near line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (mc.item_count == kItemCountAuto)
    throw ConfigError(path + ": hyper_parameters.item_count: auto needs the runner section's data (use the training config)");
  mc.validate();
  return mc;
}

Config load_config(const std::string& path) {
  const std::string text = read_config_file(path);
  std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return parse_config(text, base, path);
}

}  // namespace mindrec
