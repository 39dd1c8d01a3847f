// YAML config loader (the text as a config file's content).
#include <string>

#include "mindrec/config.hpp"
#include "mindrec/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const mindrec::Config c = mindrec::parse_config(text, "/base", "fuzz.yaml");
    (void)mindrec::model_config_to_json(c.hyper_parameters);
  } catch (const mindrec::Error&) {
  }
  try {  // the model config's JSON form, as stored in weights files
    (void)mindrec::model_config_from_json(text, "fuzz.json");
  } catch (const mindrec::Error&) {
  }
  return 0;
}
