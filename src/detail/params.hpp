// Private: store parameters read from strings and doubles (set_search_param, spec options):
// a count must be an integer within its range; NaN, infinities, fractions and values that an
// int cannot hold are refused before any cast (a cast of 1e12 to int is undefined).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include "mindrec/error.hpp"

namespace mindrec::detail {

/// `value` as an integer in [lo, hi], else InvalidArgument "<who>: <name>=<value> must be an
/// integer in [lo, hi]<hint>".
inline long long integer_param(const std::string& who, const std::string& name, double value, long long lo,
                               long long hi, const std::string& hint = "") {
  if (!(value >= double(lo) && value <= double(hi)) || value != std::floor(value)) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%.10g", value);
    throw InvalidArgument(who + ": " + name + "=" + shown + " must be an integer in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "]" + hint);
  }
  return static_cast<long long>(value);
}

}  // namespace mindrec::detail
