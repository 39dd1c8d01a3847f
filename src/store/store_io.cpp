#include "store/store_io.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <ostream>

#include "detail/file_util.hpp"

namespace mindrec::store {

namespace {
constexpr char kMagic[8] = {'M', 'R', 'V', 'S', 'T', 'O', 'R', 'E'};
constexpr uint32_t kVersion = 2;  // 2: faiss payload ends with the MIPS bound
template <class T>
void write_pod(std::ostream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}
}  // namespace

uint64_t fnv1a64(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

void write_store(std::ostream& out, const StoreHeader& h, const std::string& payload) {
  out.write(kMagic, 8);
  write_pod<uint32_t>(out, kVersion);
  write_pod<uint32_t>(out, static_cast<uint32_t>(h.backend.size()));
  out.write(h.backend.data(), static_cast<std::streamsize>(h.backend.size()));
  write_pod<uint32_t>(out, static_cast<uint32_t>(h.dim));
  write_pod<uint32_t>(out, h.metric == Metric::inner_product ? 0u : 1u);
  write_pod<int64_t>(out, h.count);
  write_pod<uint64_t>(out, payload.size());
  write_pod<uint64_t>(out, fnv1a64(payload.data(), payload.size()));
  out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
}

StoreHeader read_store(const std::string& path, std::string* payload) {
  // Header only: its fields fit in the first 8 + 4 + 4 + 4096 + 32 bytes.
  std::string s;
  if (payload) {
    s = read_file(path);
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
    s.resize(8 + 4 + 4 + 4096 + 32);
    in.read(s.data(), static_cast<std::streamsize>(s.size()));
    s.resize(static_cast<size_t>(in.gcount()));
  }
  size_t pos = 0;
  auto fail = [&](const std::string& m) -> void { throw FormatError(path + ": not a valid mindrec vector store: " + m); };
  auto need = [&](size_t n) {
    if (s.size() - pos < n) fail("truncated header");
  };
  auto get = [&](auto v) {  // one little-endian value of v's type
    need(sizeof v);
    std::memcpy(&v, s.data() + pos, sizeof v);
    pos += sizeof v;
    return v;
  };
  auto get32 = [&] { return get(uint32_t{0}); };
  auto get64 = [&] { return get(uint64_t{0}); };
  need(8);
  if (std::memcmp(s.data(), kMagic, 8) != 0) fail("bad magic (not a store file)");
  pos = 8;
  const uint32_t version = get32();
  if (version != kVersion) fail("unsupported version " + std::to_string(version) + " (this mindrec reads version " +
                                    std::to_string(kVersion) + "; rebuild the store, e.g. with mindrec index)");
  StoreHeader h;
  const uint32_t blen = get32();
  if (blen > 4096) fail("implausible backend name length");
  need(blen);
  h.backend = s.substr(pos, blen);
  pos += blen;
  h.dim = static_cast<int>(get32());
  const uint32_t metric = get32();
  if (metric > 1) fail("unknown metric " + std::to_string(metric));
  h.metric = metric == 0 ? Metric::inner_product : Metric::l2;
  h.count = static_cast<int64_t>(get64());
  const uint64_t len = get64(), sum = get64();
  if (h.dim < 1 || h.count < 0) fail("bad dimension or count");
  if (!payload) return h;
  if (s.size() - pos != len)
    fail("payload is " + std::to_string(s.size() - pos) + " bytes, the header says " +
         std::to_string(len) + " (truncated?)");
  if (fnv1a64(s.data() + pos, len) != sum) fail("checksum mismatch (corrupted)");
  s.erase(0, pos);  // the payload, without a second copy of it
  *payload = std::move(s);
  return h;
}

}  // namespace mindrec::store
