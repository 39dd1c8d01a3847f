// Catalogue reader (catalogue.csv). A file it accepts must also hold together: every row maps
// both ways, and it saves and reads back with the same fingerprint.
#include <cstdlib>

#include "fuzz_common.hpp"
#include "mindrec/catalogue.hpp"
#include "mindrec/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = mindrec::fuzz::write_input(data, size, ".csv");
  try {
    const mindrec::Catalogue c = mindrec::Catalogue::load(path);
    for (int64_t id = 1; id < c.item_count(); ++id) {
      if (!c.has_id(id)) continue;
      if (c.to_dense(c.to_raw(id)) != id) std::abort();  // a row that does not map back
    }
    const std::string copy = path + ".saved";
    c.save(copy);
    if (mindrec::Catalogue::load(copy).fingerprint() != c.fingerprint()) std::abort();
    std::remove(copy.c_str());
  } catch (const mindrec::Error&) {
  }
  return 0;
}
