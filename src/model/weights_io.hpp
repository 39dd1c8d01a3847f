// Private: MindWeights <-> safetensors tensors, shared by weights files and checkpoints.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mindrec/cpu/interests.hpp"
#include "mindrec/weights.hpp"
#include "mindrec/safetensors.hpp"
#include "formats/safetensors_io.hpp"

namespace mindrec::detail {

/// Metadata keys: the file's format tag, and the model config of a weights file.
inline constexpr const char* kFormatKey = "format";
inline constexpr const char* kConfigKey = "mindrec.model_config";
inline constexpr const char* kPopularKey = "mindrec.popular_items";
inline constexpr const char* kEvaluationKey = "mindrec.evaluation";
inline constexpr const char* kLargestTrainedKey = "mindrec.largest_trained_item";
inline constexpr const char* kCatalogueKey = "mindrec.catalogue_fingerprint";
inline constexpr const char* kFormatValue = "mindrec-mind-weights-v1";

/// Writes the popular items, the evaluation, the largest trained id and the catalogue's
/// fingerprint into `metadata` (replacing any; nothing for an empty one or 0).
void notes_to_metadata(const std::vector<int64_t>& popular, const std::map<std::string, double>& evaluation,
                       int64_t largest_trained_item, uint64_t catalogue_fingerprint, std::map<std::string, std::string>& metadata);

/// The weights' tensors (views of `w`) and their format tag and model config in `metadata`
/// (validates first).
std::map<std::string, TensorRef> weights_to_refs(const MindWeights& w,
                                                 std::map<std::string, std::string>& metadata);

/// Reads the weights' tensors from `f` (other tensors are allowed only if `allow_extra`),
/// validating names, dtypes and shapes against the config in its metadata.
MindWeights weights_from_file(const SafetensorsFile& f, const std::string& source,
                              bool allow_extra);

/// The kernels' view of `w` (pointers into its vectors; valid while `w` lives unresized).
cpu::ModelView<float> model_view(const MindWeights& w);

}  // namespace mindrec::detail
