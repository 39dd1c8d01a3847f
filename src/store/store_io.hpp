// Private: the vector-store file format and payload (de)serialisation helpers.
//
// File: "MRVSTORE" | u32 version (2) | u32 backend length | backend | u32 dim | u32 metric |
//       i64 count | u64 payload length | u64 FNV-1a 64 checksum of the payload | payload.
// Everything little-endian.
#pragma once

#include <cstdint>
#include <cstring>
#include <iosfwd>
#include <string>
#include <vector>

#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::store {

struct StoreHeader {
  std::string backend;
  int dim = 0;
  Metric metric = Metric::inner_product;
  int64_t count = 0;
};

void write_store(std::ostream& out, const StoreHeader& h, const std::string& payload);
/// Reads and checks the header, and with `payload` the payload, its length and checksum;
/// without it only the header's bytes are read (the payload is left to whoever loads it).
/// Throws IoError / FormatError naming the file.
StoreHeader read_store(const std::string& path, std::string* payload);
uint64_t fnv1a64(const void* data, size_t n);

template <class T>
void put(std::string& s, const T* v, size_t n) {
  const uint64_t len = n;
  s.append(reinterpret_cast<const char*>(&len), 8);
  s.append(reinterpret_cast<const char*>(v), n * sizeof(T));
}

/// Reads what put() wrote, refusing short or mis-sized data.
struct Cursor {
  const std::string& s;
  size_t pos;
  const char* what;
  template <class T>
  void get(T* v, size_t n) {
    uint64_t len = 0;
    if (s.size() - pos < 8) throw FormatError(std::string(what) + ": truncated");
    std::memcpy(&len, s.data() + pos, 8);
    pos += 8;
    if (len != n) throw FormatError(std::string(what) + ": holds " + std::to_string(len) +
                                    " values where " + std::to_string(n) + " were expected");
    if (s.size() - pos < n * sizeof(T)) throw FormatError(std::string(what) + ": truncated");
    if (n) std::memcpy(v, s.data() + pos, n * sizeof(T));
    pos += n * sizeof(T);
  }
  /// Reads what put() wrote, of any length.
  template <class T>
  std::vector<T> get_vector() {
    uint64_t len = 0;
    if (s.size() - pos < 8) throw FormatError(std::string(what) + ": truncated");
    std::memcpy(&len, s.data() + pos, 8);
    pos += 8;
    if ((s.size() - pos) / sizeof(T) < len) throw FormatError(std::string(what) + ": truncated");
    std::vector<T> out(static_cast<size_t>(len));
    if (len) std::memcpy(out.data(), s.data() + pos, len * sizeof(T));
    pos += len * sizeof(T);
    return out;
  }
  void expect_end() const {
    if (pos != s.size()) throw FormatError(std::string(what) + ": trailing bytes");
  }
};

}  // namespace mindrec::store
