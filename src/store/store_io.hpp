// Private: the vector-store file format and the streamed payload.
//
// File: "MRVSTORE" | u32 version | u32 backend length | backend | u32 dim | u32 metric |
//       i64 count | u64 source fingerprint (version >= 4) | u64 payload length |
//       u64 checksum of the payload | u64 attributes length | u64 attributes checksum
//       (version >= 5) | payload | attributes.
// Everything little-endian. Version 6 (written now) has the layout of version 5; its hnsw:
// payload keeps the vectors apart from the level-0 block (hnsw_file.hpp; a version 5 reader
// would misread it, so the version says it). Version 5 (still read) adds the attribute section (the item
// attributes filters read; AttributeTable::write; length 0 when none); version 4 (still read)
// records the item fingerprint of the weights the vectors came from (0: unknown); versions 2
// and 3 (still read) have none. Files older than 5 load with no attributes.
// Versions >= 3 checksum with detail::WordHash, version 2 with FNV-1a 64 over bytes, ten times
// slower (1.2 s per GB here).
//
// Payloads are streamed: a backend writes its arrays straight from its own memory to the file
// and reads them straight into new arrays, so saving or loading a store never holds a second
// copy of it (a Faiss index is serialised and parsed through a reader and writer over the
// stream; its payload is checksummed in a first pass over the file before Faiss parses it).
// Values are written as put() frames: u64 element count, then the elements.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <istream>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

#include "detail/hash.hpp"
#include "mindrec/error.hpp"
#include "mindrec/store_stream.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::store {

struct StoreHeader {
  std::string backend;
  int dim = 0;
  Metric metric = Metric::inner_product;
  int64_t count = 0;
  uint64_t fingerprint = 0;   ///< item fingerprint of the source weights (0: unknown)
  uint32_t version = 0;       ///< set by read_store_header
  uint64_t payload_size = 0;  ///< set by read_store_header
  uint64_t checksum = 0;      ///< set by read_store_header
  uint64_t attributes_size = 0;      ///< set by read_store_header (version >= 5)
  uint64_t attributes_checksum = 0;  ///< set by read_store_header (version >= 5)
};

/// FNV-1a 64 over bytes (version 2's checksum), continuing from `h`.
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 1469598103934665603ull);

/// A put() frame (StoreWriter::put).
template <class T>
void put(StoreWriter& out, const T* v, size_t n) {
  out.put(v, n);
}

/// The payload (or attribute) section of a store file being loaded: the bytes the header
/// announced, no more (reading past them is FormatError naming `what`), hashed as they are
/// read with the checksum of the file's `version` (0: bytes already verified, not hashed
/// again).
class FileSource final : public StoreReader {
 public:
  FileSource(std::istream& in, uint64_t size, uint32_t version, std::string what);
  void read(void* dst, size_t n) override;
  uint64_t remaining() const override { return remaining_; }
  const std::string& what() const override { return what_; }
  /// Throws FormatError unless every byte was read and the checksum matches `expected`
  /// (the file's length was checked against the header before reading).
  void finish(uint64_t expected) const;
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  /// Reads of kParallelBytes and more are then split among up to `threads` threads reading
  /// chunks of `path` (pread, with O_DIRECT where the file system allows it): each faults in and
  /// fills its own part of the destination, where one thread filling gigabytes of new memory was the load's bound
  /// (RESULTS "The full size": the kernel zeroing fresh pages and copying from the page cache,
  /// 56% of a 20M-item load). The checksum is taken in order as the chunks arrive. `same_as` identifies the
  /// file `in` reads (stat_identity of the path taken before `in` was opened): if the path
  /// names another file now (replaced meanwhile), every read stays on `in`.
  void read_in_parallel_from(const std::string& path, int threads, const std::pair<uint64_t, uint64_t>& same_as);
  static constexpr size_t kParallelBytes = size_t(64) << 20;
  /// Chunks of the split reads so far that came from the disk with O_DIRECT, and those copied
  /// from the page cache found holding them (tests, benchmarks).
  size_t direct_chunks() const { return direct_chunks_; }
  size_t cached_chunks() const { return cached_chunks_; }

 private:
  // The split read: chunks of kChunk bytes taken in order by threads_ readers. A chunk in the
  // page cache is copied from it (a read told not to wait for the disk); one that is not is
  // read with O_DIRECT where the file system allows it (into a kAlign-aligned buffer each, then
  // copied out: no page-cache pages to fill and evict, which halved the evicted load's speed),
  // else through the page cache. The calling thread hashes the chunks in order as they arrive.
  static constexpr size_t kChunk = size_t(8) << 20, kAlign = 4096;
  void read_split(char* dst, size_t n);
  void absorb(const void* data, size_t n);  // into the checksum
  std::istream& in_;
  int fd_ = -1;
  int direct_fd_ = -1;
  size_t direct_chunks_ = 0, cached_chunks_ = 0;
  int threads_ = 1;
  uint64_t remaining_;
  uint32_t version_;
  std::string what_;
  detail::WordHash hash_;
  uint64_t fnv_ = 1469598103934665603ull;
};

/// A file's (device, inode), {0, 0} if it cannot be stat'ed: which file a path names now.
std::pair<uint64_t, uint64_t> stat_identity(const std::string& path);

/// An istream over bytes in memory (no copy).
class MemoryStream : public std::istream {
 public:
  MemoryStream(char* data, size_t n) : std::istream(nullptr), buf_(data, n) { rdbuf(&buf_); }

 private:
  struct Buf : std::streambuf {
    Buf(char* b, size_t n) { setg(b, b, b + n); }
  } buf_;
};

/// Writes header, payload and attributes (if `write_attributes`); each writer is called twice (once to size and checksum the
/// payload, once to write it), so it must write the same bytes both times.
void write_store(std::ostream& out, const StoreHeader& h,
                 const std::function<void(StoreWriter&)>& write_payload,
                 const std::function<void(StoreWriter&)>& write_attributes = nullptr);

/// Reads the `size` payload bytes from `in` in blocks, hashing them with the checksum of
/// file `version`, and throws FormatError naming `what` unless the digest is `expected`:
/// a payload verified before a parser that must never see damaged bytes reads it, without
/// holding it in memory.
void verify_payload(std::istream& in, uint64_t size, uint32_t version, uint64_t expected, const std::string& what);

/// Reads and checks the header from `in` (positioned at the start of the file); `in` is then
/// at the first payload byte. Throws FormatError naming `path`.
StoreHeader read_store_header(std::istream& in, const std::string& path);

/// Opens a store file for reading (IoError if it cannot be opened or is a directory).
std::ifstream open_store_file(const std::string& path);

/// The header of the store file at `path` (opens and reads only the header).
StoreHeader read_store_header(const std::string& path);

}  // namespace mindrec::store
