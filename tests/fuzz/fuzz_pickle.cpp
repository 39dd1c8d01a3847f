// PaddleRec checkpoint reader: the restricted pickle machine (src/formats/pickle_arrays.cpp).
#include "formats/pickle_arrays.hpp"
#include "fuzz_common.hpp"
#include "mindrec/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)mindrec::detail::parse_pickled_arrays(std::string(reinterpret_cast<const char*>(data), size), "<fuzz>");
  } catch (const mindrec::Error&) {
  }
  return 0;
}
