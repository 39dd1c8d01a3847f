// Private: the store backends the factory can make, one maker per file. A backend this build
// does not have is still declared: its maker is then defined in src/unavailable/ and throws
// Unsupported naming the CMake option that builds it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mindrec/vector_store.hpp"

namespace mindrec::store {

/// "backend[?name=value&name=value]" split into the backend and its search parameters.
struct StoreSpec {
  std::string base;
  std::vector<std::pair<std::string, double>> params;
};
/// Throws InvalidArgument for a malformed parameter list.
StoreSpec parse_store_spec(const std::string& spec);
/// The backend without its modes (walk=, faiss_scan=, faiss_build=: how the contents are searched or made, not what
/// they are): a store file saved under one mode loads under another ("hnsw:M=32,walk=0" reads
/// a "hnsw:M=32" file: the same graph).
std::string contents_of(const std::string& backend);

std::unique_ptr<VectorStore> make_flat_store(int dim, Metric metric);                // flat_store.cpp
std::unique_ptr<VectorStore> make_faiss_store(const std::string& base, int dim,      // faiss_store.cpp
                                              Metric metric);                        //   MINDREC_WITH_FAISS
std::unique_ptr<VectorStore> make_cuda_flat_store(int dim, Metric metric);           // cuda/cuda_flat_store.cpp
std::unique_ptr<VectorStore> make_hnsw_store(const std::string& base, int dim,       // hnsw_store.cpp
                                             Metric metric);                         //   MINDREC_WITH_HNSW
/// How a milvus:// store is opened.
struct RemoteOpen {
  bool read_only = false;      ///< every write refused (attach_vector_store)
  bool url_from_file = false;  ///< the URL was read from a store file, not given by the caller:
                               ///< an environment token goes to it only if scoped to its host
};
/// "milvus://HOST:PORT/COLLECTION[?options]" (the options are the store's own, strings
/// included); backend() is the URL without the options.
std::unique_ptr<VectorStore> make_milvus_store(const std::string& spec, int dim,      // milvus_store.cpp
                                               Metric metric, const RemoteOpen& how = {});  // MINDREC_WITH_MILVUS
std::unique_ptr<VectorStore> make_faiss_gpu_store(const std::string& base, int dim,  // faiss_gpu_store.cpp
                                                  Metric metric);                    //   GPU-enabled Faiss

}  // namespace mindrec::store
