// YAML configs in a build without yaml-cpp (MINDREC_WITH_YAML=OFF): config structs are
// still plain data a host fills in itself.
#include "mindrec/config.hpp"
#include "mindrec/error.hpp"

namespace mindrec {

Config parse_config(const std::string&, const std::string&, const std::string& source) {
  throw Unsupported("cannot read the YAML config '" + source + "': this build of mindrec has no YAML support (MINDREC_WITH_YAML=OFF)");
}

ModelConfig load_model_config(const std::string& path) {
  throw Unsupported("cannot read the YAML config '" + path + "': this build of mindrec has no YAML support (MINDREC_WITH_YAML=OFF)");
}

Config load_config(const std::string& path) {
  throw Unsupported("cannot read the YAML config '" + path + "': this build of mindrec has no YAML support (MINDREC_WITH_YAML=OFF)");
}

}  // namespace mindrec
