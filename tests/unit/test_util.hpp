// Helpers shared by the unit tests: a temporary folder and small file writers.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "mindrec/error.hpp"

namespace mindrec::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mindrec-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary) << text;
    return file(name);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// The message of the mindrec::Error that `fn` throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const mindrec::Error& e) {
    return e.what();
  }
  return "(no error)";
}

inline std::string data_dir() { return MINDREC_DATA_DIR; }
inline std::string fixture_dir() { return MINDREC_FIXTURE_DIR; }
inline std::string config_dir() { return MINDREC_CONFIG_DIR; }

}  // namespace mindrec::test
