// NumPy .npy files (format version 1.0) of little-endian float32, C order: how mindrec hands
// interest vectors to Python tools (`numpy.load`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mindrec/export.hpp"

namespace mindrec {

/// Writes `data` (prod(shape) floats, row-major) as '<f4' atomically.
MINDREC_API void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

/// Reads a '<f4' C-order .npy file; throws FormatError for anything else or a short file.
MINDREC_API std::vector<float> read_npy(const std::string& path, std::vector<int64_t>* shape);

}  // namespace mindrec
