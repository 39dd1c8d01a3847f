// Private to mindrec-serve: one JSON line per request (time, method, path, status, latency,
// request id) to stderr, a file (appended; reopened on SIGHUP, for logrotate), or nowhere.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

namespace mindrec::serve {

class AccessLog {
 public:
  /// "-" = stderr, "off" or "" = nothing, else a file appended to (IoError if it cannot be opened).
  explicit AccessLog(std::string where);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  void write(const std::string& method, const std::string& path, int status, double ms, const std::string& id);
  /// Opens the file again (after logrotate moved it); on failure keeps writing the old one
  /// and returns the error ("" on success or when not writing to a file).
  std::string reopen();

 private:
  std::string where_;
  std::mutex m_;
  std::FILE* f_ = nullptr;
  bool owned_ = false;
};

}  // namespace mindrec::serve
