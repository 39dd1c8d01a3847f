// Recommender: a model + store snapshot swapped atomically (see recommender.hpp).
#include "mindrec/recommender.hpp"

#include <chrono>
#include <filesystem>

#include "mindrec/catalogue.hpp"
#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {

std::shared_ptr<const RecommenderSnapshot> make_snapshot(std::shared_ptr<const MindModel> model,
                                                         std::shared_ptr<VectorStore> store) {
  MINDREC_EXPECTS(model && store, "make_snapshot: null model or store");
  const int h = model->config().hidden_size;
  if (store->dim() != h)
    throw InvalidArgument("the store holds vectors of dimension " + std::to_string(store->dim()) +
                          " but the model's interests have " + std::to_string(h));
  auto s = std::make_shared<RecommenderSnapshot>();
  s->model = std::move(model);
  s->store = std::move(store);
  s->loaded_at_unix = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  return s;
}

FileStamp FileStamp::of(const std::string& path) {
  FileStamp st;
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return st;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  if (ec) return st;
  st.exists = true;
  st.size = static_cast<int64_t>(size);
  st.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
  return st;
}

std::string served_catalogue_path(const std::string& index_path) { return index_path + ".catalogue.csv"; }

std::shared_ptr<const RecommenderSnapshot> load_snapshot(const SnapshotSource& src) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool remote = !src.store_spec.empty() && is_remote_store(src.store_spec);
  if (src.create_index && remote)
    throw ConfigError("create_index with the remote store '" + src.store_spec.substr(0, src.store_spec.find('?')) +
                      "': a load never writes into a store other services may be reading; index a new collection "
                      "with mindrec index --store ... and load its descriptor");
  const FileStamp stamp = src.index.empty() ? FileStamp{} : FileStamp::of(src.index);
  if (!src.index.empty() && !stamp.exists && !src.create_index)
    throw IoError("the index file '" + src.index + "' does not exist (to build the store from the weights and save it "
                  "there, ask for it: create_index, mindrec-serve --create-index)");
  const Config cfg = load_config(src.config);
  auto model = std::make_shared<const MindModel>(load_weights(src.weights, cfg.hyper_parameters), src.device,
                                                 src.model_options);
  // The catalogue: named, or the served one saved beside the index when it belongs to these
  // weights (a host's items added by raw id since), or the weights' own.
  std::shared_ptr<Catalogue> catalogue;
  const std::string served = src.index.empty() ? "" : served_catalogue_path(src.index);
  if (src.catalogue.empty() && !served.empty() && FileStamp::of(served).exists) {
    auto c = std::make_shared<Catalogue>(Catalogue::load(served));
    const MindWeights& w = model->weights();
    if (w.catalogue_fingerprint != 0 && c->item_count() >= w.config.item_count &&
        c->fingerprint(w.config.item_count) == w.catalogue_fingerprint)
      catalogue = std::move(c);
    else
      log(LogLevel::warn, served + ": the served catalogue saved beside the index belongs to other weights (an older "
                                   "model's): using the catalogue of " + src.weights + " instead");
  }
  if (!catalogue)
    catalogue = load_weights_catalogue(src.weights, model->weights(), src.catalogue, src.allow_mismatched_index);
  std::shared_ptr<VectorStore> store;
  std::string spec = src.store_spec;
  if (stamp.exists) {
    store = load_vector_store(src.index, src.store_spec);
    try {
      check_store_pairing(*model, *store, src.index, src.allow_mismatched_index);
    } catch (const ConfigError& e) {
      // The likely cause, when the file is newer than the weights: a process serving other
      // weights wrote it after these were deployed (a server's shutdown save, before mindrec-
      // serve stopped overwriting an index that changed on disk since it loaded it).
      const FileStamp w = FileStamp::of(src.weights);
      if (w.exists && stamp.mtime_ns > w.mtime_ns)
        throw ConfigError(std::string(e.what()) + ". The index file is newer than the weights (" +
                          std::to_string((stamp.mtime_ns - w.mtime_ns) / 1000000000) + " s): a process serving "
                          "other weights probably saved it after these weights were written (a server's "
                          "shutdown save during a deploy?); rebuild it with mindrec index");
      throw;
    }
    if (spec.empty()) spec = store->backend();
  } else if (remote) {
    store = make_vector_store(spec, model->config().hidden_size);  // attached as it is
  } else {
    if (spec.empty()) spec = "flat";
    log(LogLevel::info, "building the '" + spec + "' store from the item vectors of " + src.weights +
                            (src.index.empty() ? std::string() : " (for " + src.index + ")"));
    store = catalogue ? build_item_store(*model, spec, *catalogue) : build_item_store(*model, spec);
  }
  auto snap = std::const_pointer_cast<RecommenderSnapshot>(make_snapshot(std::move(model), std::move(store)));
  snap->config_path = src.config;
  snap->weights_path = src.weights;
  snap->index_path = src.index;
  snap->index_created = !src.index.empty() && !stamp.exists;
  snap->index_stamp = stamp;
  snap->store_spec = spec;
  snap->catalogue_path = catalogue ? catalogue->source() : "";
  snap->catalogue = std::move(catalogue);
  snap->model->item_fingerprint();  // hashed now, not by the first request that shows it
  snap->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return snap;
}

Recommender::Recommender(std::shared_ptr<const RecommenderSnapshot> first) {
  MINDREC_EXPECTS(first && first->model && first->store, "Recommender: null snapshot");
  current_ = std::move(first);
}

std::shared_ptr<const RecommenderSnapshot> Recommender::current() const {
  std::lock_guard<std::mutex> lock(m_);
  return current_;
}

std::shared_ptr<const RecommenderSnapshot> Recommender::swap(std::shared_ptr<const RecommenderSnapshot> next) {
  MINDREC_EXPECTS(next && next->model && next->store, "Recommender::swap: null snapshot");
  std::lock_guard<std::mutex> lock(m_);
  std::swap(current_, next);
  ++generation_;
  return next;  // the old one; freed when the last request holding it is done
}

uint64_t Recommender::generation() const {
  std::lock_guard<std::mutex> lock(m_);
  return generation_;
}

}  // namespace mindrec
