#include "detail/file_util.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mindrec/error.hpp"

namespace mindrec {
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
  std::string data;
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) throw IoError("cannot read '" + path + "'");
  data.resize(static_cast<size_t>(size));
  in.seekg(0, std::ios::beg);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (!in) throw IoError("cannot read '" + path + "'");
  return data;
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& fill) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw IoError("cannot create '" + tmp + "': " + std::strerror(errno));
      fill(out);
      out.flush();
      if (!out) throw IoError("cannot write '" + tmp + "' (disk full?)");
    }
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw IoError("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

namespace detail {

std::vector<std::string> data_files(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw IoError("no such file or folder '" + path + "'");
  if (!fs::is_directory(st)) return {path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const auto name = e.path().filename().string();
    if (!name.empty() && name[0] != '.' && e.is_regular_file()) files.push_back(e.path().string());
  }
  if (ec) throw IoError("cannot list folder '" + path + "': " + ec.message());
  if (files.empty()) throw IoError("folder '" + path + "' holds no data files");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace detail
}  // namespace mindrec
