// The hnsw: backend in a build without hnswlib (MINDREC_WITH_HNSW=OFF).
#include "mindrec/error.hpp"
#include "store/backends.hpp"

namespace mindrec::store {

std::unique_ptr<VectorStore> make_hnsw_store(const std::string& base, int, Metric) {
  throw Unsupported("vector store '" + base + "' needs a build with MINDREC_WITH_HNSW=ON (hnswlib, Debian's libhnswlib-dev)");
}

}  // namespace mindrec::store
