// The faiss-gpu: backend in a build without a GPU-enabled Faiss.
#include "mindrec/error.hpp"
#include "store/backends.hpp"

namespace mindrec::store {

std::unique_ptr<VectorStore> make_faiss_gpu_store(const std::string& base, int, Metric) {
  throw Unsupported("vector store '" + base + "' needs a GPU-enabled Faiss (scripts/build-faiss-gpu.sh, then "
                    "-DMINDREC_WITH_CUDA=ON -DCMAKE_PREFIX_PATH=<its prefix>)");
}

}  // namespace mindrec::store
