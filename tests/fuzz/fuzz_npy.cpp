// .npy reader.
#include "fuzz_common.hpp"
#include "mindrec/error.hpp"
#include "mindrec/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = mindrec::fuzz::write_input(data, size, ".npy");
  try {
    std::vector<int64_t> shape;
    (void)mindrec::read_npy(path, &shape);
  } catch (const mindrec::Error&) {
  }
  return 0;
}
