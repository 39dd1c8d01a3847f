// Shared by the libFuzzer targets: the readers under test take file paths, so each input is
// written to one temporary file per process first. A mindrec::Error is the expected answer to
// bad input; anything else (another exception, a crash, a sanitizer report) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace mindrec::fuzz {

inline const std::string& scratch_file(const char* ext) {
  static const std::string path =
      "/tmp/mindrec-fuzz-" + std::to_string(::getpid()) + std::string(ext);
  return path;
}

inline const std::string& write_input(const uint8_t* data, size_t size, const char* ext) {
  const std::string& path = scratch_file(ext);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                static_cast<std::streamsize>(size));
  return path;
}

}  // namespace mindrec::fuzz
