// Whole-file reads and crash-safe writes, as mindrec itself does them (weights, stores,
// checkpoints, reports): a host writing its own files beside mindrec's can use the same.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

#include "mindrec/export.hpp"

namespace mindrec {

/// Reads a whole file; throws IoError naming it.
MINDREC_API std::string read_file(const std::string& path);

/// Writes through `fill` into `path + ".tmp-<pid>-<n>"`, flushes, fsyncs and renames it over
/// `path`. On any error (IoError, or whatever `fill` throws) the temporary file is removed
/// and `path` is untouched.
MINDREC_API void write_file_atomic(const std::string& path,
                                   const std::function<void(std::ostream&)>& fill);

}  // namespace mindrec
