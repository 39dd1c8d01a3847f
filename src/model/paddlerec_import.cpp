// import_paddlerec (paddlerec.hpp): PaddleRec's state_dict names and layouts to MindWeights.
#include "mindrec/paddlerec.hpp"

#include <map>
#include <string>
#include <vector>

#include "formats/pickle_arrays.hpp"
#include "mindrec/error.hpp"

namespace mindrec {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

MindWeights import_paddlerec(const std::string& path, const ModelConfig& config) {
  if (!config.capsule_extractor() || config.capsule.per_interest_transform)
    throw ConfigError(std::string("PaddleRec's MIND has capsule routing with one shared bilinear map; the config sets ") +
                      (config.capsule_extractor() ? "hyper_parameters.capsule.per_interest_transform: true"
                                                  : "hyper_parameters.extractor: self_attention") +
                      ", which " + path + " cannot hold");
  auto arrays = detail::read_pickled_arrays(path);
  static const char* kEmb = "item_emb.weight";
  static const char* kBilinear = "capsual_layer.bilinear_mapping_matrix";
  static const char* kRouting = "capsual_layer.routing_logits";
  static const char* kReluW = "capsual_layer.relu_layer.weight";
  static const char* kReluB = "capsual_layer.relu_layer.bias";
  static const char* kBias = "embedding_bias";
  for (const auto& [name, a] : arrays)
    if (name != kEmb && name != kBilinear && name != kRouting && name != kReluW && name != kReluB && name != kBias)
      throw FormatError(path + ": tensor '" + name + "' " + shape_str(a.shape) +
                        " is not part of PaddleRec's MIND (item_emb.weight, embedding_bias, capsual_layer.*)");
  auto need = [&](const char* name, size_t ndim) -> detail::PickledArray& {
    const auto it = arrays.find(name);
    if (it == arrays.end()) throw FormatError(path + ": missing tensor '" + std::string(name) + "'");
    if (it->second.shape.size() != ndim)
      throw FormatError(path + ": tensor '" + std::string(name) + "' has shape " + shape_str(it->second.shape) +
                        ", expected " + std::to_string(ndim) + " dimensions");
    return it->second;
  };
  auto& emb = need(kEmb, 2);
  auto& bil = need(kBilinear, 2);
  auto& rout = need(kRouting, 3);
  const int64_t N = emb.shape[0], D = emb.shape[1], H = bil.shape[1], K = rout.shape[1], L = rout.shape[2];
  // The config must describe the same model as the tensors.
  auto agree = [&](const char* key, int64_t configured, int64_t found, const char* where) {
    if (configured != found)
      throw ConfigError("hyper_parameters." + std::string(key) + " is " + std::to_string(configured) + " but " +
                        path + " holds " + where + " = " + std::to_string(found));
  };
  agree("item_count", config.item_count, N, "item_emb.weight's rows");
  agree("embedding_dim", config.embedding_dim, D, "item_emb.weight's columns");
  agree("hidden_size", config.hidden_size, H, "bilinear_mapping_matrix's columns");
  agree("maxlen", config.maxlen, L, "routing_logits' last dimension");
  agree("capsule.max_k (PaddleRec: capsual.max_k)", config.capsule.max_k, K, "routing_logits' second dimension");
  auto expect_shape = [&](const detail::PickledArray& a, const char* name, std::vector<int64_t> want) {
    if (a.shape != want)
      throw FormatError(path + ": tensor '" + std::string(name) + "' has shape " + shape_str(a.shape) + ", expected " +
                        shape_str(want));
  };
  expect_shape(bil, kBilinear, {D, H});
  expect_shape(rout, kRouting, {1, K, L});
  const auto bias = arrays.find(kBias);
  if (bias != arrays.end()) {
    expect_shape(bias->second, kBias, {N});
    for (size_t i = 0; i < bias->second.values.size(); ++i)
      if (bias->second.values[i] != 0.0f)
        throw FormatError(path + ": embedding_bias[" + std::to_string(i) + "] = " +
                          std::to_string(bias->second.values[i]) +
                          " is not 0: PaddleRec's MIND keeps this bias frozen at zero and mindrec's has none");
  }
  MindWeights w;
  w.config = config;
  auto copy = [](const detail::PickledArray& a) { return AlignedVector<float>(a.values.begin(), a.values.end()); };
  w.item_emb = copy(emb);
  w.bilinear = copy(bil);
  w.routing_logits = copy(rout);
  if (config.capsule.relu_layer) {
    auto& rw = need(kReluW, 2);
    auto& rb = need(kReluB, 1);
    expect_shape(rw, kReluW, {H, H});
    expect_shape(rb, kReluB, {H});
    w.relu_weight = copy(rw);
    w.relu_bias = copy(rb);
  } else if (arrays.count(kReluW) || arrays.count(kReluB)) {
    throw ConfigError(path + " has a ReLU layer (capsual_layer.relu_layer.*) but the config sets "
                      "hyper_parameters.capsule.relu_layer: false");
  }
  w.validate();
  return w;
}

}  // namespace mindrec
