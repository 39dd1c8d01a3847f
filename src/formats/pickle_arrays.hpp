// Private: reads NumPy arrays out of a Python pickle (what `paddle.save(state_dict)` and
// `pickle.dump({name: ndarray})` write: PaddleRec's .pdparams checkpoints), without Python.
//
// Only the subset of the pickle machine such files use is implemented, and no code runs: the
// only globals accepted are numpy's array reconstruction (`numpy.core.multiarray._reconstruct`,
// `numpy._core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`) and
// `collections.OrderedDict`; anything else is refused with a FormatError naming the global and
// the offset. Every length is checked against the bytes that remain before anything is
// allocated.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mindrec::detail {

/// One array of a pickled dict, converted to float32 (from '<f4', '>f4', '<f8' or '>f8').
struct PickledArray {
  std::vector<int64_t> shape;
  std::vector<float> values;  ///< row-major
  std::string dtype;          ///< as pickled, e.g. "<f4"
};

/// The top-level dict's entries whose key is a string and whose value is an array; other
/// values (Paddle's "StructuredToParameterName@@" name map) are skipped. Throws FormatError
/// naming `source` and the offset for anything malformed or outside the subset, IoError if
/// the file cannot be read.
std::map<std::string, PickledArray> read_pickled_arrays(const std::string& path);
/// The same from bytes in memory (`source` names them in errors).
std::map<std::string, PickledArray> parse_pickled_arrays(const std::string& bytes, const std::string& source);

}  // namespace mindrec::detail
