// Private: MindWeights <-> safetensors tensors, shared by weights files and checkpoints.
#pragma once

#include <string>

#include "mindrec/cpu/interests.hpp"
#include "mindrec/weights.hpp"
#include "mindrec/safetensors.hpp"

namespace mindrec::detail {

/// Metadata keys: the file's format tag, and the model config of a weights file.
inline constexpr const char* kFormatKey = "format";
inline constexpr const char* kConfigKey = "mindrec.model_config";
inline constexpr const char* kFormatValue = "mindrec-mind-weights-v1";

/// The weights' tensors and their model config in metadata (validates first).
SafetensorsFile weights_to_file(const MindWeights& w);

/// Reads the weights' tensors from `f` (other tensors are allowed only if `allow_extra`),
/// validating names, dtypes and shapes against the config in its metadata.
MindWeights weights_from_file(const SafetensorsFile& f, const std::string& source,
                              bool allow_extra);

/// The kernels' view of `w` (pointers into its vectors; valid while `w` lives unresized).
cpu::ModelView<float> model_view(const MindWeights& w);

}  // namespace mindrec::detail
