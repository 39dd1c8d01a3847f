#include "store/store_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <istream>
#include <ostream>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
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
  if (n >= kParallelBytes && fd_ >= 0) read_split(static_cast<char*>(dst), n);
  else if (!in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n)))
    throw FormatError(what_ + ": the file ends before the payload does (truncated?)");
  remaining_ -= n;
  if (version_ >= 3) hash_.update(dst, n);
  else if (version_ == 2) fnv_ = fnv1a64(dst, n, fnv_);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
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
}

void FileSource::read_split(char* dst, size_t n) {
  const std::istream::pos_type at = in_.tellg();
  if (at < 0) throw FormatError(what_ + ": cannot tell the read position");
  const size_t parts = std::min<size_t>(size_t(threads_), n / (kParallelBytes / 2));
  const size_t share = (n / parts + 4095) / 4096 * 4096;  // whole pages each
  std::vector<std::exception_ptr> failed(parts);
  auto read_part = [&](size_t t) {
    try {
      const size_t from = std::min(n, t * share), to = std::min(n, from + share);
      for (size_t done = from; done < to;) {
        const ssize_t got = ::pread(fd_, dst + done, std::min<size_t>(to - done, size_t(1) << 30),
                                    off_t(uint64_t(at) + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw IoError(what_ + ": read failed: " + std::strerror(errno));
        if (got == 0) throw FormatError(what_ + ": the file ends before the payload does (truncated?)");
        done += size_t(got);
      }
    } catch (...) {
      failed[t] = std::current_exception();
    }
  };
  {
    std::vector<std::thread> team;
    try {
      for (size_t t = 1; t < parts; ++t) team.emplace_back(read_part, t);
    } catch (...) {
      for (auto& th : team) th.join();
      throw;
    }
    read_part(0);
    for (auto& th : team) th.join();
  }
  for (const auto& e : failed)
    if (e) std::rethrow_exception(e);
  if (!in_.seekg(at + std::streamoff(n))) throw FormatError(what_ + ": the file ends before the payload does (truncated?)");
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
