// MIND's weights (mind-spec.md, "Parameters"): the tensors, their random initialisation, and
// the safetensors weights file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mindrec/aligned.hpp"
#include "mindrec/config.hpp"
#include "mindrec/export.hpp"

namespace mindrec {

/// Names of the tensors in a weights file (exactly as mind-spec.md's parameter table).
namespace tensor_names {
inline constexpr const char* item_emb = "item_emb.weight";              // [N, D]
inline constexpr const char* bilinear = "capsule.bilinear";             // [D, H]
inline constexpr const char* routing_logits = "capsule.routing_logits"; // [1, K, L]
inline constexpr const char* relu_weight = "capsule.relu.weight";       // [H, H]
inline constexpr const char* relu_bias = "capsule.relu.bias";           // [H]
// extractor: self_attention (ComiRec-SA), in place of capsule.bilinear and routing_logits
inline constexpr const char* sa_w1 = "self_attention.w1";              // [D, A]
inline constexpr const char* sa_b1 = "self_attention.b1";              // [A]
inline constexpr const char* sa_w2 = "self_attention.w2";              // [A, K]
inline constexpr const char* sa_position = "self_attention.position";  // [L, D]
}  // namespace tensor_names

/// One tensor of MindWeights::attention: its name, shape, and where it starts.
struct MINDREC_API AttentionPart {
  const char* name;
  std::vector<int64_t> shape;
  size_t offset;  ///< in floats from the start of MindWeights::attention
  size_t size;    ///< floats
};

/// The tensors MindWeights::attention holds for `config`, in order (w1, b1, w2, position);
/// empty for extractor capsule.
MINDREC_API std::vector<AttentionPart> attention_parts(const ModelConfig& config);

/// The model's parameters, row-major float32 in 64-byte aligned storage, plus the config that
/// defines its function.
struct MINDREC_API MindWeights {
  ModelConfig config;
  AlignedVector<float> item_emb;        ///< [N, D]; row 0 = padding (zeros after init)
  AlignedVector<float> bilinear;        ///< [D, H] (empty with extractor self_attention)
  AlignedVector<float> routing_logits;  ///< [K, L] (stored as [1, K, L]; empty with self_attention)
  /// extractor self_attention: w1 [D, A], b1 [A], w2 [A, K], position [L, D] back to back
  /// (attention_parts); saved as four tensors. Empty with extractor capsule.
  AlignedVector<float> attention;
  AlignedVector<float> relu_weight;     ///< [H, H] (empty without relu_layer)
  AlignedVector<float> relu_bias;       ///< [H]    (empty without relu_layer)
  /// The training log's most clicked items, most first (ties: smaller id first), as
  /// `mindrec train` records them: what a recall answers for a user with no clicks (the
  /// fallback, flagged). Empty when unknown (weights imported or written elsewhere).
  /// Saved in the file's metadata ("mindrec.popular_items"), not a tensor.
  std::vector<int64_t> popular_items;
  /// The weights' last evaluation, as `mindrec train` records it ("recall@50",
  /// "popularity_recall@50", ...): what /metrics shows of the served model. Empty if none.
  /// Saved in the metadata ("mindrec.evaluation").
  std::map<std::string, double> evaluation;
  /// The largest item id in the training log (mindrec train records it; 0 = unknown): rows
  /// above it were never trained, and `mindrec index` refuses to index them unless asked.
  /// Saved in the metadata ("mindrec.largest_trained_item").
  int64_t largest_trained_item = 0;
  /// The fingerprint of the catalogue its item rows belong to (Catalogue::fingerprint of the
  /// ids below item_count; 0 = none: dense ids only). `mindrec train` records it when the
  /// data has a catalogue; tools that load the weights then find the catalogue beside them
  /// (catalogue.hpp: load_weights_catalogue). Saved in the metadata ("mindrec.catalogue_fingerprint").
  uint64_t catalogue_fingerprint = 0;

  /// Throws InvalidArgument if a vector's size does not match the config, a value is NaN or
  /// Inf, or a popular item is outside [1, item_count).
  void validate() const;
};

/// A 64-bit fingerprint of the item vectors: item_emb's shape and bytes (detail::WordHash).
/// Stores record the fingerprint of the weights they were filled from (VectorStore::
/// source_fingerprint), so that a store is never served beside other weights unnoticed.
/// Hashes the whole table (0.13 s per GB here). Never 0.
MINDREC_API uint64_t item_fingerprint(const MindWeights& weights);

/// The fingerprint as 16 hex digits (how logs, errors and /metrics show it).
MINDREC_API std::string fingerprint_hex(uint64_t fingerprint);

/// Random initial weights from `seed`, as the spec's table says: item_emb Xavier uniform
/// U(-a, a) with a = sqrt(6/(N+D)) (row 0 then zeroed: it is the padding row), bilinear
/// Normal(0, 1), routing logits Normal(0, capsule.init_std), relu weight Xavier uniform with
/// a = sqrt(6/(2H)), relu bias 0; with extractor self_attention, in place of bilinear and
/// the logits, w1, w2 and the positions Xavier uniform (fans D and A, A and K, L and D, as
/// ComiRec's Glorot defaults) and b1 0. Same seed, same weights, on every platform.
MINDREC_API MindWeights init_weights(const ModelConfig& config, uint64_t seed);

/// Writes the weights as safetensors with the model config as JSON in __metadata__
/// ("mindrec.model_config"), atomically.
MINDREC_API void save_weights(const std::string& path, const MindWeights& weights);

/// save_weights with `popular_items` and `evaluation` recorded in place of the weights' own
/// (a trainer's weights, without copying them).
MINDREC_API void save_weights(const std::string& path, const MindWeights& weights,
                              const std::vector<int64_t>& popular_items,
                              const std::map<std::string, double>& evaluation,
                              int64_t largest_trained_item = 0, uint64_t catalogue_fingerprint = 0);

/// Item rows a training log never reached, when item_count is far above its largest id
/// (`largest_trained_item`): item_count - 1 - largest when that exceeds max(10, largest / 10)
/// (a catalogue a little larger than a sample of its log is fine), else 0; 0 when the largest
/// id is unknown (0). `mindrec train` warns about them, `mindrec index` refuses to index them.
MINDREC_API int64_t never_trained_items(int64_t item_count, int64_t largest_trained_item);

/// Reads and validates a weights file: its format tag, names, dtypes (F32 only), shapes
/// against the config in its metadata. Throws IoError / FormatError naming the file and the tensor.
MINDREC_API MindWeights load_weights(const std::string& path);

/// Loads weights and refuses them (ConfigError) if `expected` describes another model.
MINDREC_API MindWeights load_weights(const std::string& path, const ModelConfig& expected);

}  // namespace mindrec
