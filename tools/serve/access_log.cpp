#include "access_log.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include "mindrec/error.hpp"

namespace mindrec::serve {

AccessLog::AccessLog(std::string where) : where_(std::move(where)) {
  if (where_ == "-") {
    f_ = stderr;
  } else if (!where_.empty() && where_ != "off") {
    f_ = std::fopen(where_.c_str(), "a");
    if (!f_) throw IoError("cannot open the access log '" + where_ + "': " + std::strerror(errno));
    owned_ = true;
  }
}

AccessLog::~AccessLog() {
  if (owned_ && f_) std::fclose(f_);
}

std::string AccessLog::reopen() {
  if (!owned_) return "";
  std::FILE* fresh = std::fopen(where_.c_str(), "a");
  if (!fresh) return "cannot reopen the access log '" + where_ + "': " + std::strerror(errno);
  std::lock_guard<std::mutex> l(m_);
  std::fclose(f_);
  f_ = fresh;
  return "";
}

void AccessLog::write(const std::string& method, const std::string& path, int status, double ms, const std::string& id) {
  if (!f_) return;
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const nlohmann::json line = {{"time", when}, {"method", method}, {"path", path}, {"status", status},
                               {"latency_ms", std::round(ms * 1000) / 1000}, {"request_id", id}};
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> l(m_);
  std::fwrite(text.data(), 1, text.size(), f_);  // one write per line: lines do not interleave
  std::fflush(f_);
}

}  // namespace mindrec::serve
