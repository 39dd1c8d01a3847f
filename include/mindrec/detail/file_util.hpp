// Internal file helpers: whole-file reads, atomic writes, and the file list of a data folder.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace mindrec::detail {

/// Reads a whole file; throws IoError naming it.
std::string read_file(const std::string& path);

/// Writes through `fill` into `path + ".tmp-<pid>-<n>"`, flushes, fsyncs and renames it over
/// `path`. On any error the temporary file is removed and `path` is untouched.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& fill);

/// `path` itself if it is a file; otherwise the regular files in the folder, sorted by name,
/// skipping hidden files. Throws IoError if it does not exist or the folder has no files.
std::vector<std::string> data_files(const std::string& path);

}  // namespace mindrec::detail
