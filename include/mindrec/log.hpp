// Logging: the library prints nothing itself; every message goes through one sink that the
// host application can replace or silence. Thread-safe: the sink is called under a mutex.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "mindrec/export.hpp"

namespace mindrec {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

/// Receives every message at or above the current level.
using LogSink = std::function<void(LogLevel, std::string_view)>;

/// Replaces the sink (default: one line per message on stderr). An empty function silences.
MINDREC_API void set_log_sink(LogSink sink);
/// Messages below `level` are dropped before formatting reaches the sink. Default: warn.
MINDREC_API void set_log_level(LogLevel level);
MINDREC_API LogLevel log_level();
/// Sends one message to the sink if `level` is enabled.
MINDREC_API void log(LogLevel level, std::string_view message);

}  // namespace mindrec
