// Private to the command-line tools: CLI11 validators whose errors say what is wanted in
// words (CLI11's PositiveNumber prints its range as a 300-digit number).
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <string>

namespace mindrec::tools {

/// A number > 0 (`integer`: a whole one), at most `max` when given.
inline CLI::Validator positive(bool integer = true, double max = 0) {
  const std::string most = max > 0 ? " and <= " + std::to_string(static_cast<long long>(max)) : "";
  return CLI::Validator(
      [integer, max, most](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || !std::isfinite(v) || v <= 0 || (integer && v != std::floor(v)) ||
            (max > 0 && v > max))
          return std::string("must be a ") + (integer ? "whole number" : "number") + " > 0" + most + ", got '" + s + "'";
        return {};
      },
      (integer ? "INT > 0" : "NUMBER > 0") + most);
}

/// A number >= 0 (`integer`: a whole one).
inline CLI::Validator non_negative(bool integer = true) {
  return CLI::Validator(
      [integer](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || !std::isfinite(v) || v < 0 || (integer && v != std::floor(v)))
          return std::string("must be a ") + (integer ? "whole number" : "number") + " >= 0, got '" + s + "'";
        return {};
      },
      integer ? "INT >= 0" : "NUMBER >= 0");
}

}  // namespace mindrec::tools
