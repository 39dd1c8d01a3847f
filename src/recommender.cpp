// Recommender: a model + store snapshot swapped atomically (see recommender.hpp).
#include "mindrec/recommender.hpp"

#include <chrono>
#include <filesystem>

#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
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

std::shared_ptr<const RecommenderSnapshot> load_snapshot(const SnapshotSource& src) {
  const auto t0 = std::chrono::steady_clock::now();
  const Config cfg = load_config(src.config);
  auto model = std::make_shared<const MindModel>(load_weights(src.weights, cfg.hyper_parameters), src.device,
                                                 src.model_options);
  std::shared_ptr<VectorStore> store;
  bool loaded = false;
  if (!src.index.empty() && std::filesystem::exists(src.index)) {
    store = load_vector_store(src.index, src.store_spec);
    check_store_pairing(*model, *store, src.index, src.allow_mismatched_index);
    loaded = true;
  } else if (src.build_missing_store) {
    store = build_item_store(*model, src.store_spec.empty() ? "flat" : src.store_spec);
  } else {
    store = make_vector_store(src.store_spec.empty() ? "flat" : src.store_spec, model->config().hidden_size);
  }
  auto snap = std::const_pointer_cast<RecommenderSnapshot>(make_snapshot(std::move(model), std::move(store)));
  snap->weights_path = src.weights;
  snap->index_path = loaded ? src.index : "";
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
