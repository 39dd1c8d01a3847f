// MindWeights: validation, random initialisation (the spec's table) and the safetensors
// mapping shared by weights files and checkpoints.
#include "mindrec/weights.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "detail/huge_vector.hpp"
#include "detail/random.hpp"
#include "mindrec/error.hpp"
#include "mindrec/safetensors.hpp"
#include "model/weights_io.hpp"
#include "detail/hash.hpp"
#include "detail/vector_math.hpp"

namespace mindrec {

namespace {
// The first non-finite value of a tensor, as "element i (row r)" text, or "" if none.
std::string first_non_finite(const AlignedVector<float>& v, size_t row_len) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      return "element " + std::to_string(i) + " (row " + std::to_string(row_len ? i / row_len : 0) + ")";
  return "";
}

size_t expect_size(const AlignedVector<float>& v, size_t n, const char* name) {
  if (v.size() != n)
    throw InvalidArgument(std::string("MindWeights: '") + name + "' has " +
                          std::to_string(v.size()) + " values, the config needs " +
                          std::to_string(n));
  return n;
}
}  // namespace

std::vector<AttentionPart> attention_parts(const ModelConfig& c) {
  if (c.capsule_extractor()) return {};
  const int64_t D = c.embedding_dim, A = c.attention_hidden(), K = c.capsule.max_k, L = c.maxlen;
  std::vector<AttentionPart> p;
  size_t at = 0;
  auto add = [&](const char* name, std::vector<int64_t> shape) {
    size_t n = 1;
    for (const int64_t d : shape) n *= size_t(d);
    p.push_back({name, std::move(shape), at, n});
    at += n;
  };
  add(tensor_names::sa_w1, {D, A});
  add(tensor_names::sa_b1, {A});
  add(tensor_names::sa_w2, {A, K});
  add(tensor_names::sa_position, {L, D});
  return p;
}

void MindWeights::validate() const {
  config.validate();
  const size_t N = config.item_count, D = config.embedding_dim, H = config.hidden_size,
               K = config.capsule.max_k, L = config.maxlen;
  expect_size(item_emb, N * D, tensor_names::item_emb);
  const size_t HB = size_t(config.bilinear_columns());
  const bool caps = config.capsule_extractor();
  expect_size(bilinear, caps ? D * HB : 0, tensor_names::bilinear);
  expect_size(routing_logits, caps ? K * L : 0, tensor_names::routing_logits);
  size_t att = 0;
  for (const auto& p : attention_parts(config)) att += p.size;
  expect_size(attention, att, "self_attention.*");
  expect_size(relu_weight, config.capsule.relu_layer ? H * H : 0, tensor_names::relu_weight);
  expect_size(relu_bias, config.capsule.relu_layer ? H : 0, tensor_names::relu_bias);
  // NaN or Inf would reach the search comparators (undefined behaviour in a sort).
  const std::pair<const AlignedVector<float>*, std::pair<const char*, size_t>> tensors[] = {
      {&item_emb, {tensor_names::item_emb, D}}, {&bilinear, {tensor_names::bilinear, HB}},
      {&routing_logits, {tensor_names::routing_logits, L}}, {&relu_weight, {tensor_names::relu_weight, H}},
      {&relu_bias, {tensor_names::relu_bias, H}}};
  for (const auto& [t, info] : tensors)
    if (const std::string at = first_non_finite(*t, info.second); !at.empty())
      throw InvalidArgument(std::string("MindWeights: '") + info.first + "' holds NaN or Inf at " + at);
  for (const auto& p : attention_parts(config))
    for (size_t i = 0; i < p.size; ++i)
      if (!std::isfinite(attention[p.offset + i]))
        throw InvalidArgument(std::string("MindWeights: '") + p.name + "' holds NaN or Inf at element " +
                              std::to_string(i) + " (row " + std::to_string(i / size_t(p.shape.back())) + ")");
  for (size_t i = 0; i < popular_items.size(); ++i)
    if (popular_items[i] < 1 || popular_items[i] >= config.item_count)
      throw InvalidArgument("MindWeights: popular_items[" + std::to_string(i) + "] = " + std::to_string(popular_items[i]) +
                            " is not an item id in [1, item_count=" + std::to_string(config.item_count) + ")");
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
    detail::assign_on_huge_pages(v, n, 0.0f);  // the item table: gathered at random rows
    for (auto& x : v) x = static_cast<float>((2.0 * rng.uniform() - 1.0) * a);
  };
  auto normal = [&](AlignedVector<float>& v, size_t n, double std) {
    v.resize(n);
    for (auto& x : v) x = static_cast<float>(rng.normal() * std);
  };
  xavier(w.item_emb, size_t(N) * D, double(N), double(D));
  std::fill(w.item_emb.begin(), w.item_emb.begin() + D, 0.0f);  // padding row
  if (config.capsule_extractor()) {
    normal(w.bilinear, size_t(D) * config.bilinear_columns(), 1.0);
    normal(w.routing_logits, size_t(K) * L, config.capsule.init_std);
  } else {
    const auto parts = attention_parts(config);
    w.attention.assign(parts.back().offset + parts.back().size, 0.0f);
    for (const auto& p : parts) {
      if (p.shape.size() != 2) continue;  // b1 stays 0
      const double a = std::sqrt(6.0 / double(p.shape[0] + p.shape[1]));
      for (size_t i = 0; i < p.size; ++i)
        w.attention[p.offset + i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * a);
    }
  }
  if (config.capsule.relu_layer) {
    xavier(w.relu_weight, size_t(H) * H, double(H), double(H));
    w.relu_bias.assign(H, 0.0f);
  }
  if (config.cosine()) detail::normalize_rows(w.item_emb.data(), N, D);  // unit rows, as saved
  return w;
}

namespace detail {

void notes_to_metadata(const std::vector<int64_t>& popular, const std::map<std::string, double>& evaluation,
                       int64_t largest_trained_item, uint64_t catalogue_fingerprint,
                       std::map<std::string, std::string>& metadata) {
  metadata.erase(kCatalogueKey);
  if (catalogue_fingerprint != 0) metadata[kCatalogueKey] = fingerprint_hex(catalogue_fingerprint);
  metadata.erase(kPopularKey);
  metadata.erase(kEvaluationKey);
  metadata.erase(kLargestTrainedKey);
  if (largest_trained_item > 0) metadata[kLargestTrainedKey] = std::to_string(largest_trained_item);
  if (!popular.empty()) metadata[kPopularKey] = nlohmann::json(popular).dump();
  nlohmann::json e = nlohmann::json::object();
  for (const auto& [k, v] : evaluation)
    if (std::isfinite(v)) e[k] = v;
  if (!e.empty()) metadata[kEvaluationKey] = e.dump();
}

std::map<std::string, TensorRef> weights_to_refs(const MindWeights& w,
                                                 std::map<std::string, std::string>& metadata) {
  w.validate();
  const auto& c = w.config;
  const int64_t N = c.item_count, D = c.embedding_dim, H = c.hidden_size, K = c.capsule.max_k,
                L = c.maxlen;
  metadata[kFormatKey] = kFormatValue;
  metadata[kConfigKey] = model_config_to_json(c);
  notes_to_metadata(w.popular_items, w.evaluation, w.largest_trained_item, w.catalogue_fingerprint, metadata);
  std::map<std::string, TensorRef> t;
  t[tensor_names::item_emb] = {DType::F32, {N, D}, w.item_emb.data()};
  if (c.capsule_extractor()) {
    t[tensor_names::bilinear] = {DType::F32, {D, int64_t(c.bilinear_columns())}, w.bilinear.data()};
    t[tensor_names::routing_logits] = {DType::F32, {1, K, L}, w.routing_logits.data()};
  }
  for (const auto& p : attention_parts(c)) t[p.name] = {DType::F32, p.shape, w.attention.data() + p.offset};
  if (c.capsule.relu_layer) {
    t[tensor_names::relu_weight] = {DType::F32, {H, H}, w.relu_weight.data()};
    t[tensor_names::relu_bias] = {DType::F32, {H}, w.relu_bias.data()};
  }
  return t;
}

namespace {

// Where weights_from reads tensors: a parsed SafetensorsFile, or a file read tensor by tensor.
struct TensorSource {
  virtual ~TensorSource() = default;
  virtual const std::map<std::string, std::string>& metadata() const = 0;
  virtual std::vector<std::string> names() const = 0;
  /// dtype and shape of `name`; FormatError naming `path` if it is missing.
  virtual std::pair<DType, std::vector<int64_t>> info(const std::string& name) const = 0;
  virtual void read(const std::string& name, float* dst) = 0;
};

struct FileSource : TensorSource {
  const SafetensorsFile& f;
  const std::string& path;
  FileSource(const SafetensorsFile& f, const std::string& path) : f(f), path(path) {}
  const std::map<std::string, std::string>& metadata() const override { return f.metadata; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& [name, t] : f.tensors) n.push_back(name);
    return n;
  }
  std::pair<DType, std::vector<int64_t>> info(const std::string& name) const override {
    const Tensor& t = f.at(name, path);
    return {t.dtype, t.shape};
  }
  void read(const std::string& name, float* dst) override { f.at(name, path).copy_to(dst); }
};

struct StreamSource : TensorSource {
  SafetensorsReader& r;
  explicit StreamSource(SafetensorsReader& r) : r(r) {}
  const std::map<std::string, std::string>& metadata() const override { return r.metadata(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& [name, t] : r.tensors()) n.push_back(name);
    return n;
  }
  std::pair<DType, std::vector<int64_t>> info(const std::string& name) const override {
    const auto it = r.tensors().find(name);
    if (it == r.tensors().end()) throw FormatError(r.path() + ": missing tensor '" + name + "'");
    return {it->second.dtype, it->second.shape};
  }
  void read(const std::string& name, float* dst) override { r.read(name, dst); }
};

MindWeights weights_from(TensorSource& f, const std::string& path, bool allow_extra) {
  // A weights file carries its format tag; a checkpoint (allow_extra) carries its own.
  if (auto fmt = f.metadata().find(kFormatKey); !allow_extra && fmt != f.metadata().end() && fmt->second != kFormatValue)
    throw FormatError(path + ": format '" + fmt->second + "' is not mindrec weights ('" + kFormatValue + "')");
  auto it = f.metadata().find(kConfigKey);
  if (it == f.metadata().end())
    throw FormatError(path + ": no '" + kConfigKey +
                      "' in __metadata__: not a mindrec weights file");
  MindWeights w;
  w.config = model_config_from_json(it->second, path);
  if (const auto p = f.metadata().find(kPopularKey); p != f.metadata().end()) {
    const auto j = nlohmann::json::parse(p->second, nullptr, false);
    if (!j.is_array())
      throw FormatError(path + ": metadata '" + kPopularKey + "' is not a JSON array of item ids");
    for (const auto& v : j) {
      if (!v.is_number_integer())
        throw FormatError(path + ": metadata '" + kPopularKey + "' holds " + v.dump() + ", not an item id");
      w.popular_items.push_back(v.get<int64_t>());
    }
  }
  if (const auto l = f.metadata().find(kLargestTrainedKey); l != f.metadata().end()) {
    char* end = nullptr;
    w.largest_trained_item = std::strtoll(l->second.c_str(), &end, 10);
    if (l->second.empty() || *end != '\0' || w.largest_trained_item < 0)
      throw FormatError(path + ": metadata '" + kLargestTrainedKey + "' is '" + l->second + "', not an item id");
  }
  if (const auto c = f.metadata().find(kCatalogueKey); c != f.metadata().end()) {
    char* end = nullptr;
    w.catalogue_fingerprint = std::strtoull(c->second.c_str(), &end, 16);
    if (c->second.size() != 16 || *end != '\0' || w.catalogue_fingerprint == 0)
      throw FormatError(path + ": metadata '" + kCatalogueKey + "' is '" + c->second + "', not 16 hex digits");
  }
  if (const auto e = f.metadata().find(kEvaluationKey); e != f.metadata().end()) {
    const auto j = nlohmann::json::parse(e->second, nullptr, false);
    if (!j.is_object()) throw FormatError(path + ": metadata '" + kEvaluationKey + "' is not a JSON object");
    for (const auto& [k, v] : j.items()) {
      if (!v.is_number()) throw FormatError(path + ": metadata '" + kEvaluationKey + "' field '" + k + "' is not a number");
      w.evaluation[k] = v.get<double>();
    }
  }
  const auto& c = w.config;
  const int64_t N = c.item_count, D = c.embedding_dim, H = c.hidden_size, K = c.capsule.max_k,
                L = c.maxlen;
  auto check = [&](const char* name, const std::vector<int64_t>& shape) {
    const auto [dtype, tshape] = f.info(name);
    if (dtype != DType::F32)
      throw FormatError(path + ": tensor '" + name + "' has dtype " + to_string(dtype) +
                        ", expected F32");
    if (tshape != shape) {
      auto str = [](const std::vector<int64_t>& s) {
        std::string r = "[";
        for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
        return r + "]";
      };
      throw FormatError(path + ": tensor '" + name + "' has shape " + str(tshape) +
                        ", the model config in the file needs " + str(shape));
    }
  };
  auto take = [&](const char* name, std::vector<int64_t> shape) {
    check(name, shape);
    int64_t numel = 1;
    for (const int64_t d : shape) numel *= d;
    AlignedVector<float> v;
    detail::assign_on_huge_pages(v, static_cast<size_t>(numel), 0.0f);  // see huge_vector.hpp
    f.read(name, v.data());
    return v;
  };
  w.item_emb = take(tensor_names::item_emb, {N, D});
  const auto parts = attention_parts(c);
  if (c.capsule_extractor()) {
    w.bilinear = take(tensor_names::bilinear, {D, int64_t(c.bilinear_columns())});
    w.routing_logits = take(tensor_names::routing_logits, {1, K, L});
  } else {
    w.attention.assign(parts.back().offset + parts.back().size, 0.0f);
    for (const auto& p : parts) {
      check(p.name, p.shape);
      f.read(p.name, w.attention.data() + p.offset);
    }
  }
  if (c.capsule.relu_layer) {
    w.relu_weight = take(tensor_names::relu_weight, {H, H});
    w.relu_bias = take(tensor_names::relu_bias, {H});
  }
  if (!allow_extra) {
    std::string extra;
    auto expected = [&](const std::string& name) {
      if (name == tensor_names::item_emb) return true;
      if (c.capsule_extractor() && (name == tensor_names::bilinear || name == tensor_names::routing_logits))
        return true;
      for (const auto& p : parts)
        if (name == p.name) return true;
      return c.capsule.relu_layer && (name == tensor_names::relu_weight || name == tensor_names::relu_bias);
    };
    for (const auto& name : f.names())
      if (!expected(name)) extra += (extra.empty() ? "'" : ", '") + name + "'";
    if (!extra.empty())
      throw FormatError(path + ": unexpected tensor(s) " + extra +
                        " for the model config in the file (extractor=" + to_string(c.extractor) +
                        ", relu_layer=" + (c.capsule.relu_layer ? "true" : "false") + ")");
  }
  if (c.cosine() && !allow_extra) {  // a cosine model's weights file holds unit rows
    double norm = 0;
    if (const int64_t r = detail::first_non_unit_row(w.item_emb.data(), c.item_count, c.embedding_dim, &norm); r >= 0)
      throw FormatError(path + ": tensor '" + tensor_names::item_emb + "' row " + std::to_string(r) + " has norm " +
                        std::to_string(norm) + ", but the model config sets cosine_temperature " +
                        std::to_string(c.cosine_temperature) + " (unit rows; save_weights writes them so)");
  }
  try {
    w.validate();
  } catch (const InvalidArgument& e) {  // a file's content: FormatError naming the file
    throw FormatError(path + ": " + std::string(e.what()).substr(std::string("MindWeights: ").size()));
  }
  return w;
}

}  // namespace

MindWeights weights_from_file(const SafetensorsFile& f, const std::string& path, bool allow_extra) {
  FileSource src(f, path);
  return weights_from(src, path, allow_extra);
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
  v.per_interest = c.capsule.per_interest_transform;
  if (!c.capsule_extractor()) {
    const auto parts = attention_parts(c);
    v.self_attention = true;
    v.bilinear = v.routing_logits = nullptr;
    v.sa_w1 = w.attention.data() + parts[0].offset;
    v.sa_b1 = w.attention.data() + parts[1].offset;
    v.sa_w2 = w.attention.data() + parts[2].offset;
    v.sa_pos = w.attention.data() + parts[3].offset;
    v.attn_hidden = c.attention_hidden();
  }
  return v;
}

}  // namespace detail

namespace {
// A cosine model's file holds unit item rows (ModelConfig::cosine_temperature): the rows it is
// trained on are normalised where they are read, so the file stores them as they are used.
// Returns the weights to write: `w` itself (also when its rows are unit already, as the
// trainer's are: no copy of a table of gigabytes), or `copy` filled with the normalised table.
const MindWeights& as_saved(const MindWeights& w, MindWeights& copy) {
  if (!w.config.cosine() ||
      detail::rows_normalized(w.item_emb.data(), w.config.item_count, w.config.embedding_dim))
    return w;
  copy = w;
  detail::normalize_rows(copy.item_emb.data(), w.config.item_count, w.config.embedding_dim);
  return copy;
}
}  // namespace

void save_weights(const std::string& path, const MindWeights& weights) {
  MindWeights copy;
  const MindWeights& w = as_saved(weights, copy);
  std::map<std::string, std::string> metadata;
  const auto tensors = detail::weights_to_refs(w, metadata);
  detail::write_safetensors(path, metadata, tensors);
}

void save_weights(const std::string& path, const MindWeights& weights, const std::vector<int64_t>& popular_items,
                  const std::map<std::string, double>& evaluation, int64_t largest_trained_item,
                  uint64_t catalogue_fingerprint) {
  MindWeights copy;
  const MindWeights& w = as_saved(weights, copy);
  for (size_t i = 0; i < popular_items.size(); ++i)
    if (popular_items[i] < 1 || popular_items[i] >= w.config.item_count)
      throw InvalidArgument("save_weights: popular_items[" + std::to_string(i) + "] = " +
                            std::to_string(popular_items[i]) + " is not an item id in [1, item_count=" +
                            std::to_string(w.config.item_count) + ")");
  std::map<std::string, std::string> metadata;
  const auto tensors = detail::weights_to_refs(w, metadata);
  detail::notes_to_metadata(popular_items, evaluation, largest_trained_item, catalogue_fingerprint, metadata);
  detail::write_safetensors(path, metadata, tensors);
}

int64_t never_trained_items(int64_t item_count, int64_t largest) {
  if (largest <= 0) return 0;
  const int64_t above = item_count - 1 - largest;
  return above > std::max<int64_t>(10, largest / 10) ? above : 0;
}

uint64_t item_fingerprint(const MindWeights& w) {
  detail::WordHash h;
  const int64_t shape[2] = {w.config.item_count, w.config.embedding_dim};
  h.update(shape, sizeof shape);
  h.update(w.item_emb.data(), w.item_emb.size() * sizeof(float));
  const uint64_t d = h.digest();
  return d == 0 ? 1 : d;  // 0 means "unknown" in a store
}

std::string fingerprint_hex(uint64_t fingerprint) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fingerprint));
  return buf;
}

MindWeights load_weights(const std::string& path) {
  // Tensor by tensor, straight from the file into the weights (the table is held once).
  detail::SafetensorsReader reader(path);
  detail::StreamSource src(reader);
  return detail::weights_from(src, path, false);
}

MindWeights load_weights(const std::string& path, const ModelConfig& expected) {
  MindWeights w = load_weights(path);
  check_same_model(expected, w.config, path);
  // Training-only settings (readout, pow_p, negatives, optimiser) follow the caller's config.
  w.config = expected;
  return w;
}

}  // namespace mindrec
