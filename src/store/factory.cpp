// The store factory: backend strings -> backends (backends.hpp), and loading saved stores.
#include <sstream>

#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"
#include "store/backends.hpp"
#include "store/store_io.hpp"

namespace mindrec {

namespace store {

StoreSpec parse_store_spec(const std::string& spec) {
  StoreSpec out;
  const size_t q = spec.find('?');
  out.base = spec.substr(0, q);
  if (q == std::string::npos) return out;
  std::stringstream ss(spec.substr(q + 1));
  std::string kv;
  while (std::getline(ss, kv, '&')) {
    if (kv.empty()) continue;
    const size_t eq = kv.find('=');
    if (eq == std::string::npos)
      throw InvalidArgument("vector store '" + spec + "': expected name=value, got '" + kv + "'");
    char* end = nullptr;
    const std::string val = kv.substr(eq + 1);
    const double v = std::strtod(val.c_str(), &end);
    if (val.empty() || *end != '\0')
      throw InvalidArgument("vector store '" + spec + "': '" + val + "' is not a number");
    out.params.emplace_back(kv.substr(0, eq), v);
  }
  return out;
}

std::string contents_of(const std::string& backend) {
  if (backend.rfind("milvus://", 0) == 0) return backend;
  const size_t colon = backend.find(':');
  if (colon == std::string::npos) return backend;
  std::string kept;
  std::stringstream parts(backend.substr(colon + 1));
  for (std::string part; std::getline(parts, part, ',');)
    if (part.rfind("walk=", 0) != 0 && part.rfind("faiss_scan=", 0) != 0 && part.rfind("faiss_build=", 0) != 0)
      kept += (kept.empty() ? "" : ",") + part;
  return kept.empty() ? backend.substr(0, colon) : backend.substr(0, colon + 1) + kept;
}

}  // namespace store

std::unique_ptr<VectorStore> make_vector_store(const std::string& spec, int dim, Metric metric) {
  MINDREC_EXPECTS(dim >= 1, "make_vector_store: dim must be >= 1");
  // A remote store's options are its own (strings among them: token=, db=).
  if (spec.rfind("milvus://", 0) == 0) return store::make_milvus_store(spec, dim, metric);
  const store::StoreSpec s = store::parse_store_spec(spec);
  auto starts = [&](const char* prefix) { return s.base.rfind(prefix, 0) == 0; };
  std::unique_ptr<VectorStore> made;
  if (s.base == "flat") made = store::make_flat_store(dim, metric);
  else if (s.base == "cuda:flat") made = store::make_cuda_flat_store(dim, metric);
  else if (starts("faiss:")) made = store::make_faiss_store(s.base, dim, metric);
  else if (s.base == "hnsw" || starts("hnsw:")) made = store::make_hnsw_store(s.base, dim, metric);
  else if (starts("faiss-gpu:")) made = store::make_faiss_gpu_store(s.base, dim, metric);
  else
    throw InvalidArgument("unknown vector store '" + spec +
                          "' (expected 'flat', 'cuda:flat', 'faiss:<index_factory string>', 'faiss-gpu:<Flat|IVF<n>,Flat>', 'hnsw[:M=32,ef_construction=200]' or 'milvus://HOST:PORT/COLLECTION', e.g. faiss:HNSW32)");
  for (const auto& [name, value] : s.params) made->set_search_param(name, value);
  return made;
}

std::string stored_backend(const std::string& path) { return store::read_store_header(path).backend; }

bool is_remote_store(const std::string& spec) { return spec.rfind("milvus://", 0) == 0; }

std::unique_ptr<VectorStore> attach_vector_store(const std::string& spec, int dim, Metric metric) {
  if (!is_remote_store(spec))
    throw InvalidArgument("attach_vector_store: '" + spec.substr(0, spec.find('?')) +
                          "' is an in-process store: there is nothing to attach to (build it, or load its file)");
  // The collection must exist (after the caller's options), and the store refuses writes.
  store::RemoteOpen how;
  how.read_only = true;
  return store::make_milvus_store(spec + (spec.find('?') == std::string::npos ? "?" : "&") + "create=0", dim, metric, how);
}

std::unique_ptr<VectorStore> load_vector_store(const std::string& path, const std::string& spec) {
  const store::StoreHeader h = store::read_store_header(path);  // the header alone
  if (h.backend.rfind("milvus://", 0) == 0) {
    // A descriptor: the spec (or the URL saved in it) says how to reach the collection.
    const std::string base = spec.substr(0, spec.find('?'));
    if (!spec.empty() && base != h.backend)
      throw InvalidArgument(path + ": describes the '" + h.backend + "' store, not the requested '" + base + "'");
    // Attaches to the collection, never creates it (a later create=1 in the spec still wins).
    // A URL read from the file gets no credentials the caller did not scope to its host.
    const std::string url = spec.empty() ? h.backend : spec;
    const size_t q = url.find('?');
    store::RemoteOpen how;
    how.url_from_file = spec.empty();
    auto made = store::make_milvus_store(
        q == std::string::npos ? url + "?create=0" : url.substr(0, q + 1) + "create=0&" + url.substr(q + 1), h.dim, h.metric, how);
    made->load(path);
    return made;
  }
  const store::StoreSpec s = spec.empty() ? store::StoreSpec{h.backend, {}} : store::parse_store_spec(spec);
  if (store::contents_of(s.base) != store::contents_of(h.backend))
    throw InvalidArgument(path + ": holds a '" + h.backend + "' store, not the requested '" +
                          s.base + "'");
  auto made = make_vector_store(s.base, h.dim, h.metric);
  made->load(path);  // streams the payload once
  // The file brings the search parameters it was saved with; the caller's spec overrides them.
  for (const auto& [name, value] : s.params) made->set_search_param(name, value);
  return made;
}

}  // namespace mindrec
