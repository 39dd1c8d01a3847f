// safetensors reader, then the weights mapping on top of it (load_weights).
#include "fuzz_common.hpp"
#include "mindrec/error.hpp"
#include "mindrec/safetensors.hpp"
#include "mindrec/weights.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = mindrec::fuzz::write_input(data, size, ".safetensors");
  try {
    const mindrec::SafetensorsFile f = mindrec::read_safetensors(path);
    for (const auto& [name, t] : f.tensors)
      if (t.dtype == mindrec::DType::F32) (void)t.values<float>();
  } catch (const mindrec::Error&) {
  }
  try {
    (void)mindrec::load_weights(path);
  } catch (const mindrec::Error&) {
  }
  return 0;
}
