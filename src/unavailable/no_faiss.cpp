// The faiss: backend in a build without Faiss (MINDREC_WITH_FAISS=OFF).
#include "mindrec/error.hpp"
#include "store/backends.hpp"

namespace mindrec::store {

std::unique_ptr<VectorStore> make_faiss_store(const std::string& base, int, Metric) {
  throw Unsupported("vector store '" + base + "' needs a build with MINDREC_WITH_FAISS=ON (Faiss, Debian's libfaiss-dev)");
}

}  // namespace mindrec::store
