// Vector-store files. The header's checksum would stop almost every mutated input before the
// payload parser, so for mindrec's own payloads (flat, cuda:flat) the harness rewrites the
// payload length and checksum to match whatever payload the input carries; the header fields
// and the payload stay the fuzzer's. Faiss payloads (faiss:, faiss-gpu:) keep the fuzzer's
// checksum: past it they go to Faiss 1.7.3's read_index, which allocates whatever sizes a
// payload states (fuzzing found a 2.4 GB direct map from a 1 KB file, and leaks when it
// throws), so only mindrec's checks in front of it are fuzzed there.
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"
#include "store/store_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  // "MRVSTORE" | u32 version | u32 backend length | backend | u32 dim | u32 metric | i64 count
  // | u64 fingerprint (version >= 4) | u64 payload length | u64 checksum | payload
  if (s.size() >= 16) {
    uint32_t blen = 0;
    std::memcpy(&blen, s.data() + 12, 4);
    uint32_t version = 0;
    std::memcpy(&version, s.data() + 8, 4);
    const size_t at = 16 + size_t(blen) + 16 + (version >= 4 ? 8 : 0);  // payload length field
    const std::string backend = blen <= 4096 && s.size() >= 16 + blen ? s.substr(16, blen) : "";
    if (blen <= 4096 && s.size() >= at + 16 && backend.rfind("faiss", 0) != 0) {
      const uint64_t len = s.size() - (at + 16);
      mindrec::detail::WordHash hash;
      hash.update(s.data() + at + 16, len);
      const uint64_t sum = version == 2 ? mindrec::store::fnv1a64(s.data() + at + 16, len) : hash.digest();
      std::memcpy(&s[at], &len, 8);
      std::memcpy(&s[at + 8], &sum, 8);
    }
  }
  // A milvus:// descriptor is read only after connecting to the server it names: not a file
  // parser to fuzz (and no fuzz input may make the harness open network connections).
  if (s.size() >= 16 && s.find("milvus:") != std::string::npos) return 0;
  const std::string& path =
      mindrec::fuzz::write_input(reinterpret_cast<const uint8_t*>(s.data()), s.size(), ".idx");
  try {
    auto store = mindrec::load_vector_store(path);
    if (store->size() > 0 && store->dim() <= 4096) {
      std::vector<float> q(size_t(store->dim()), 0.5f);
      std::vector<int64_t> ids(3);
      std::vector<float> scores(3);
      store->search(1, q.data(), 3, ids.data(), scores.data());
    }
  } catch (const mindrec::Error&) {
  }
  return 0;
}
