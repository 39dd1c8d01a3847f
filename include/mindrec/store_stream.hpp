// The streams a vector-store backend saves its contents to and loads them from
// (VectorStore::payload_writer_impl / read_payload_impl): a backend of one's own, subclassing
// VectorStore, needs only these and vector_store.hpp. VectorStore::save frames the payload in
// the store file (header, checksum, attributes; temporary file renamed into place) and
// VectorStore::load checks the checksum and the length; a backend writes and reads its bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mindrec/error.hpp"
#include "mindrec/export.hpp"

namespace mindrec {

/// Where a backend writes its payload. save() calls the backend's writer twice (to size and
/// checksum the payload, then to write it): both calls must write the same bytes.
class MINDREC_API StoreWriter {
 public:
  virtual ~StoreWriter();
  virtual void write(const void* data, size_t n) = 0;
  /// A frame: the element count (u64, little-endian on the machines mindrec runs on), then the
  /// n elements' bytes. StoreReader::get reads it back.
  template <class T>
  void put(const T* v, size_t n) {
    const uint64_t len = n;
    write(&len, 8);
    if (n) write(v, n * sizeof(T));
  }
};

/// Where a backend reads its payload from: the bytes its writer wrote, no more (reading past
/// them throws FormatError naming the file).
class MINDREC_API StoreReader {
 public:
  virtual ~StoreReader();
  /// Reads exactly n bytes (FormatError if fewer remain or the file ends).
  virtual void read(void* dst, size_t n) = 0;
  /// Bytes of the payload not read yet.
  virtual uint64_t remaining() const = 0;
  /// The file (and section) being read, for error messages.
  virtual const std::string& what() const = 0;

  /// Reads a put() frame of exactly n values (FormatError naming the count otherwise).
  template <class T>
  void get(T* v, size_t n) {
    if (frame_length() != n)
      throw FormatError(what() + ": holds " + std::to_string(last_len_) + " values where " + std::to_string(n) +
                        " were expected");
    if (n) read(v, n * sizeof(T));
  }
  /// Reads a put() frame of any length (refused before allocating if the payload cannot hold
  /// it).
  template <class T>
  std::vector<T> get_vector() {
    const uint64_t len = begin_frame(sizeof(T));
    std::vector<T> out(static_cast<size_t>(len));
    if (len) read(out.data(), out.size() * sizeof(T));
    return out;
  }
  /// Reads a put() frame's element count (its elements follow: read them with read()),
  /// refused if the payload cannot hold that many elements of `elem_size` bytes.
  uint64_t begin_frame(size_t elem_size);
  /// Everything not read yet.
  std::string read_rest();

 private:
  uint64_t frame_length();
  uint64_t last_len_ = 0;
};

}  // namespace mindrec
