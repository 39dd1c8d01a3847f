#include "store/store_io.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <istream>
#include <memory>
#include <mutex>
#include <ostream>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include "detail/fault.hpp"

namespace mindrec::store {

namespace {
constexpr char kMagic[8] = {'M', 'R', 'V', 'S', 'T', 'O', 'R', 'E'};
// 2: faiss payload ends with the MIPS bound; 3: detail::WordHash instead of byte-wise FNV-1a;
// 4: the source weights' item fingerprint; 5: the attribute section after the payload.
constexpr uint32_t kVersion = 6, kOldestVersion = 2;
template <class T>
void write_pod(std::ostream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}

class CountingHashSink final : public StoreWriter {
 public:
  void write(const void* data, size_t n) override {
    hash.update(data, n);
    size += n;
  }
  detail::WordHash hash;
  uint64_t size = 0;
};

class StreamSink final : public StoreWriter {
 public:
  explicit StreamSink(std::ostream& out) : out_(out) {}
  void write(const void* data, size_t n) override {
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    size += n;
  }
  uint64_t size = 0;

 private:
  std::ostream& out_;
};
}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

FileSource::FileSource(std::istream& in, uint64_t size, uint32_t version, std::string what)
    : in_(in), remaining_(size), version_(version), what_(std::move(what)) {}

void FileSource::read(void* dst, size_t n) {
  detail::fault_point("store.load.read");
  if (n > remaining_) throw FormatError(what_ + ": truncated");
  if (n >= kParallelBytes && fd_ >= 0) {
    read_split(static_cast<char*>(dst), n);  // hashes as the chunks arrive
  } else {
    if (!in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n)))
      throw FormatError(what_ + ": the file ends before the payload does (truncated?)");
    absorb(dst, n);
  }
  remaining_ -= n;
}

void FileSource::absorb(const void* data, size_t n) {
  if (version_ >= 3) hash_.update(data, n);
  else if (version_ == 2) fnv_ = fnv1a64(data, n, fnv_);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
  if (direct_fd_ >= 0) ::close(direct_fd_);
}

std::pair<uint64_t, uint64_t> stat_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {0, 0};
  return {uint64_t(st.st_dev), uint64_t(st.st_ino)};
}

void FileSource::read_in_parallel_from(const std::string& path, int threads,
                                       const std::pair<uint64_t, uint64_t>& same_as) {
  if (threads <= 1 || same_as == std::pair<uint64_t, uint64_t>{0, 0}) return;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // the stream reads alone
  struct stat st {};
  if (::fstat(fd, &st) != 0 || std::pair<uint64_t, uint64_t>{uint64_t(st.st_dev), uint64_t(st.st_ino)} != same_as) {
    ::close(fd);  // the path names another file than the one being read: not mixed in
    return;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  threads_ = threads;
  // The same file again, bypassing the page cache where the file system allows it: checked to
  // be the same inode too; absent (-1) where O_DIRECT is refused (tmpfs).
  const int direct = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  struct stat dst {};
  if (direct >= 0 && (::fstat(direct, &dst) != 0 || dst.st_dev != st.st_dev || dst.st_ino != st.st_ino)) {
    ::close(direct);
    return;
  }
  if (direct_fd_ >= 0) ::close(direct_fd_);
  direct_fd_ = direct;
}

void FileSource::read_split(char* dst, size_t n) {
  const std::istream::pos_type at_pos = in_.tellg();
  if (at_pos < 0) throw FormatError(what_ + ": cannot tell the read position");
  const uint64_t at = uint64_t(at_pos);
  // Chunks of kChunk file bytes on a kAlign grid (what O_DIRECT asks of offsets and lengths),
  // taken in order by the readers; chunk c holds dst bytes [lo(c), lo(c + 1)).
  const uint64_t first = at / kAlign * kAlign, end = at + n;
  const size_t chunks = size_t((end - first + kChunk - 1) / kChunk);
  auto lo = [&](size_t c) { return size_t(std::min(end, std::max(at, first + uint64_t(c) * kChunk)) - at); };
  std::atomic<size_t> next{0};
  std::atomic<bool> direct{direct_fd_ >= 0}, stop{false};
  std::atomic<size_t> direct_read{0}, cached{0};
  std::vector<uint8_t> done(chunks, 0);
  std::mutex m;
  std::condition_variable arrived;
  std::exception_ptr failed;
  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> l(m);
    if (!failed) failed = e;
    stop = true;
    arrived.notify_all();
  };
  // pread until `len` bytes or the end of the file; the bytes read.
  auto pread_all = [&](int fd, char* to, size_t len, uint64_t off) {
    size_t got = 0;
    while (got < len) {
      const ssize_t r = ::pread(fd, to + got, len - got, off_t(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return r == -1 && errno == EINVAL && fd == direct_fd_ ? ssize_t(-2) : ssize_t(-1);
      if (r == 0) break;
      got += size_t(r);
    }
    return ssize_t(got);
  };
  // Whether every page of file bytes [off, off + len) is in the page cache (no mapping: no).
  void* const map = direct_fd_ >= 0 ? ::mmap(nullptr, size_t(end), PROT_READ, MAP_SHARED, fd_, 0) : MAP_FAILED;
  const std::unique_ptr<void, std::function<void(void*)>> unmap(map == MAP_FAILED ? nullptr : map, [&](void* p) { ::munmap(p, size_t(end)); });
  auto in_cache = [&](uint64_t off, size_t len) {
    if (map == MAP_FAILED) return false;
    const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE)), a = off / page * page;
    std::vector<unsigned char> resident(size_t((off + len - a + page - 1) / page));
    if (::mincore(static_cast<char*>(map) + a, size_t(off + len - a), resident.data()) != 0) return false;
    return std::all_of(resident.begin(), resident.end(), [](unsigned char r) { return (r & 1) != 0; });
  };
  auto reader = [&] {
    try {
      char* bounce = nullptr;
      std::unique_ptr<char, void (*)(void*)> own(nullptr, std::free);
      for (size_t c; !stop && (c = next.fetch_add(1)) < chunks;) {
        const size_t from = lo(c), to = lo(c + 1);
        bool read = false;
        // From the page cache where the chunk is all there (a copy out of memory beats a disk
        // read; mincore on a mapping of the file asks without starting any read).
        if (direct && in_cache(at + from, to - from)) {
          const ssize_t got = pread_all(fd_, dst + from, to - from, at + from);
          read = got == ssize_t(to - from);
          cached += read;
        }
        if (direct && !read) {  // an aligned block into the bounce buffer, its part of the payload copied out
          if (!bounce) {
            void* p = nullptr;
            if (::posix_memalign(&p, kAlign, kChunk) != 0) throw std::bad_alloc();
            own.reset(static_cast<char*>(p));
            bounce = own.get();
          }
          const uint64_t off = first + uint64_t(c) * kChunk;
          const ssize_t got = pread_all(direct_fd_, bounce, size_t(std::min<uint64_t>(kChunk, (end - off + kAlign - 1) / kAlign * kAlign)), off);
          if (got == -2) {
            direct = false;  // refused after all: the page cache for this chunk and the rest
          } else if (got < 0) {
            throw IoError(what_ + ": read failed: " + std::strerror(errno));
          } else {
            if (off + uint64_t(got) < at + to) throw FormatError(what_ + ": the file ends before the payload does (truncated?)");
            std::memcpy(dst + from, bounce + (at + from - off), to - from);
            read = true;
            ++direct_read;
          }
        }
        if (!read) {
          const ssize_t got = pread_all(fd_, dst + from, to - from, at + from);
          if (got < 0) throw IoError(what_ + ": read failed: " + std::strerror(errno));
          if (size_t(got) < to - from) throw FormatError(what_ + ": the file ends before the payload does (truncated?)");
        }
        std::lock_guard<std::mutex> l(m);
        done[c] = 1;
        arrived.notify_all();
      }
    } catch (...) {
      fail(std::current_exception());
    }
  };
  {
    const size_t team = std::min<size_t>(size_t(threads_), chunks);
    std::vector<std::thread> readers;
    try {
      for (size_t t = 0; t < team; ++t) readers.emplace_back(reader);
    } catch (...) {
      fail(std::current_exception());
    }
    // This thread hashes the chunks in order as they arrive (the checksum overlaps the reads).
    try {
      for (size_t c = 0; c < chunks; ++c) {
        {
          std::unique_lock<std::mutex> l(m);
          arrived.wait(l, [&] { return done[c] || stop; });
          if (!done[c]) break;
        }
        absorb(dst + lo(c), lo(c + 1) - lo(c));
      }
    } catch (...) {
      fail(std::current_exception());
    }
    if (readers.empty() && !failed) reader();  // no thread could start: read here
    for (auto& th : readers) th.join();
  }
  direct_chunks_ += direct_read;
  cached_chunks_ += cached;
  if (failed) std::rethrow_exception(failed);
  if (!in_.seekg(at_pos + std::streamoff(n))) throw FormatError(what_ + ": the file ends before the payload does (truncated?)");
}

void verify_payload(std::istream& in, uint64_t size, uint32_t version, uint64_t expected, const std::string& what) {
  FileSource src(in, size, version, what);
  std::vector<char> block(size_t(1) << 20);
  while (src.remaining() > 0) {
    const size_t n = size_t(std::min<uint64_t>(src.remaining(), block.size()));
    src.read(block.data(), n);
  }
  src.finish(expected);
}

void FileSource::finish(uint64_t expected) const {
  if (remaining_ != 0) throw FormatError(what_ + ": trailing bytes");
  if (version_ != 0 && (version_ >= 3 ? hash_.digest() : fnv_) != expected)
    throw FormatError(what_ + ": checksum mismatch (corrupted)");
}

void write_store(std::ostream& out, const StoreHeader& h,
                 const std::function<void(StoreWriter&)>& write_payload,
                 const std::function<void(StoreWriter&)>& write_attributes) {
  CountingHashSink sizing, attr_sizing;
  write_payload(sizing);
  if (write_attributes) write_attributes(attr_sizing);
  out.write(kMagic, 8);
  write_pod<uint32_t>(out, kVersion);
  write_pod<uint32_t>(out, static_cast<uint32_t>(h.backend.size()));
  out.write(h.backend.data(), static_cast<std::streamsize>(h.backend.size()));
  write_pod<uint32_t>(out, static_cast<uint32_t>(h.dim));
  write_pod<uint32_t>(out, h.metric == Metric::inner_product ? 0u : 1u);
  write_pod<int64_t>(out, h.count);
  write_pod<uint64_t>(out, h.fingerprint);
  write_pod<uint64_t>(out, sizing.size);
  write_pod<uint64_t>(out, sizing.hash.digest());
  write_pod<uint64_t>(out, attr_sizing.size);
  write_pod<uint64_t>(out, attr_sizing.hash.digest());
  detail::fault_point("store.save.write");  // a long write starts; searches go on
  StreamSink sink(out);
  write_payload(sink);
  if (write_attributes) write_attributes(sink);
  if (sink.size != sizing.size + attr_sizing.size)
    throw Error("vector store: the payload changed while it was written");
}

StoreHeader read_store_header(std::istream& in, const std::string& path) {
  auto fail = [&](const std::string& m) -> void { throw FormatError(path + ": not a valid mindrec vector store: " + m); };
  auto get = [&](auto v) {  // one little-endian value of v's type
    if (!in.read(reinterpret_cast<char*>(&v), sizeof v)) fail("truncated header");
    return v;
  };
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) fail("bad magic (not a store file)");
  StoreHeader h;
  h.version = get(uint32_t{0});
  if (h.version < kOldestVersion || h.version > kVersion)
    fail("unsupported version " + std::to_string(h.version) + " (this mindrec reads versions " +
         std::to_string(kOldestVersion) + " to " + std::to_string(kVersion) +
         "; rebuild the store, e.g. with mindrec index)");
  const uint32_t blen = get(uint32_t{0});
  if (blen > 4096) fail("implausible backend name length");
  h.backend.resize(blen);
  if (blen && !in.read(h.backend.data(), blen)) fail("truncated header");
  h.dim = static_cast<int>(get(uint32_t{0}));
  const uint32_t metric = get(uint32_t{0});
  if (metric > 1) fail("unknown metric " + std::to_string(metric));
  h.metric = metric == 0 ? Metric::inner_product : Metric::l2;
  h.count = get(int64_t{0});
  h.fingerprint = h.version >= 4 ? get(uint64_t{0}) : 0;
  h.payload_size = get(uint64_t{0});
  h.checksum = get(uint64_t{0});
  if (h.version >= 5) {
    h.attributes_size = get(uint64_t{0});
    h.attributes_checksum = get(uint64_t{0});
  }
  if (h.dim < 1 || h.count < 0) fail("bad dimension or count");
  return h;
}

std::ifstream open_store_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
  if (std::filesystem::is_directory(path)) throw IoError("'" + path + "' is a directory, not a vector store file");
  return in;
}

StoreHeader read_store_header(const std::string& path) {
  std::ifstream in = open_store_file(path);
  return read_store_header(in, path);
}

}  // namespace mindrec::store

namespace mindrec {

StoreWriter::~StoreWriter() = default;
StoreReader::~StoreReader() = default;

uint64_t StoreReader::frame_length() {
  uint64_t len = 0;
  if (remaining() < 8) throw FormatError(what() + ": truncated");
  read(&len, 8);
  last_len_ = len;
  return len;
}

uint64_t StoreReader::begin_frame(size_t elem_size) {
  const uint64_t len = frame_length();
  if (remaining() / std::max<size_t>(elem_size, 1) < len) throw FormatError(what() + ": truncated");
  return len;
}

std::string StoreReader::read_rest() {
  std::string s(static_cast<size_t>(remaining()), '\0');
  if (!s.empty()) read(s.data(), s.size());
  return s;
}

}  // namespace mindrec
