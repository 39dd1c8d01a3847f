// The CUDA tests are plain programs (ctest skips them on exit 77): each check prints one line
// and failures are counted for the exit status.
#pragma once

#include <cstdio>
#include <string>

namespace mindrec::test {

inline int& failures() {
  static int n = 0;
  return n;
}

inline void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures();
}

}  // namespace mindrec::test
