// Private: the word hash behind store checksums and item fingerprints.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mindrec::detail {

/// A fast 64-bit hash (the store file's checksum since version 3, and the weights'
/// item fingerprint): four 64-bit lanes, each taking every fourth 8-byte little-endian
/// word w of the data as h = (h ^ w) * 0x100000001b3, h ^= h >> 29 (lane l starts at
/// 0xcbf29ce484222325 ^ l); the bytes after the last full 32-byte block go through FNV-1a
/// into lane 0; the digest is h0 ^ rotl(h1, 16) ^ rotl(h2, 32) ^ rotl(h3, 48) ^ length.
/// Incremental: the same digest however the data is split into update() calls.
class WordHash {
 public:
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  void block(const unsigned char* p);
  uint64_t h_[4] = {0xcbf29ce484222325ull, 0xcbf29ce484222325ull ^ 1, 0xcbf29ce484222325ull ^ 2,
                    0xcbf29ce484222325ull ^ 3};
  unsigned char carry_[32] = {};
  size_t carried_ = 0;
  uint64_t length_ = 0;
};

}  // namespace mindrec::detail
