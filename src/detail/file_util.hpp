// Private file helpers: the file list of a data folder (plus the public read/write helpers).
#pragma once

#include <string>
#include <vector>

#include "mindrec/file_io.hpp"

namespace mindrec::detail {

/// `path` itself if it is a file; otherwise the regular files in the folder, sorted by name,
/// skipping hidden files. Throws IoError if it does not exist or the folder has no files.
std::vector<std::string> data_files(const std::string& path);

}  // namespace mindrec::detail
