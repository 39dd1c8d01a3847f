// PaddleRec interoperability: a MIND model trained by PaddleRec (models/recall/mind,
// release/2.3.0) served by mindrec.
#pragma once

#include <string>

#include "mindrec/config.hpp"
#include "mindrec/export.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {

/// Reads a PaddleRec MIND checkpoint (`rec.pdparams`: `paddle.save(model.state_dict())`, a
/// pickled dict of NumPy arrays, read without Python and without running any pickled code) and
/// returns mindrec's weights for `config` (the PaddleRec config's hyper_parameters, e.g. from
/// load_config of PaddleRec's own config.yaml). Tensor mapping:
///   item_emb.weight [N, D]                            -> item_emb
///   capsual_layer.bilinear_mapping_matrix [D, H]      -> capsule.bilinear
///   capsual_layer.routing_logits [1, K, L]            -> capsule.routing_logits
///   capsual_layer.relu_layer.weight [H, H] (in, out)  -> capsule.relu.weight
///   capsual_layer.relu_layer.bias [H]                 -> capsule.relu.bias
///   embedding_bias [N]                                (PaddleRec's frozen zero bias: must be 0)
/// Throws ConfigError when the config's item_count, embedding_dim, hidden_size, maxlen or
/// capsule.max_k disagree with the tensors' shapes (naming both), FormatError for a missing,
/// unknown or misshapen tensor or a file that is not such a pickle, IoError if unreadable.
MINDREC_API MindWeights import_paddlerec(const std::string& pdparams, const ModelConfig& config);

}  // namespace mindrec
