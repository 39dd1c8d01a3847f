#include "mindrec/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace mindrec {
namespace {
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warning";
    case LogLevel::error: return "error";
    default: return "";
  }
}
std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
LogSink& sink() {
  static LogSink s = [](LogLevel level, std::string_view msg) {
    std::fprintf(stderr, "mindrec %s: %.*s\n", level_name(level), int(msg.size()), msg.data());
  };
  return s;
}
std::atomic<int> g_level{static_cast<int>(LogLevel::warn)};
}  // namespace

void set_log_sink(LogSink s) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  sink() = std::move(s);
}
void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level.load() || level == LogLevel::off) return;
  std::lock_guard<std::mutex> lock(sink_mutex());
  if (sink()) sink()(level, message);
}
}  // namespace mindrec
