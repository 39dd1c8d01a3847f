// The milvus:// backend in a build without it (MINDREC_WITH_MILVUS=OFF).
#include "mindrec/error.hpp"
#include "store/backends.hpp"

namespace mindrec::store {

std::unique_ptr<VectorStore> make_milvus_store(const std::string& spec, int, Metric, const RemoteOpen&) {
  throw Unsupported("vector store '" + spec.substr(0, spec.find('?')) +
                    "' needs a build with MINDREC_WITH_MILVUS=ON (cpp-httplib, Debian's libcpp-httplib-dev)");
}

}  // namespace mindrec::store
