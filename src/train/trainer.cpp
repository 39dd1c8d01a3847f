// Trainer: sample a batch, bring the rows it reads up to date, loss and gradients, Adam.
#include <chrono>
#include <cmath>
#include <string>

#include "mindrec/error.hpp"
#include "detail/vector_math.hpp"
#include "mindrec/log.hpp"
#include "train/trainer_state.hpp"

namespace mindrec {

Trainer::Trainer(Config config, const ClickLog& log, MindWeights init) {
  config.validate();
  check_same_model(config.hyper_parameters, init.config, "the initial weights");
  init.config = config.hyper_parameters;
  init.validate();
  impl_ = std::make_unique<Impl>(std::move(config), log, std::move(init));
}

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

double Trainer::step() {
  Impl& s = *impl_;
  const auto& hp = s.config.hyper_parameters;
  s.sampler.next(s.rng, s.batch);
  // Rows this batch reads must hold every update so far (dense Adam defers some).
  s.adam.prepare_rows(s.weights, s.batch.hist.data(), s.batch.hist.size(), s.threads);
  s.adam.prepare_rows(s.weights, s.batch.targets.data(), s.batch.targets.size(), s.threads);
  s.adam.prepare_rows(s.weights, s.batch.negatives.data(), s.batch.negatives.size(), s.threads);
  cpu::BatchInput<float> in;
  in.hist = s.batch.hist.data();
  in.lengths = s.batch.lengths.data();
  in.targets = s.batch.targets.data();
  in.batch = static_cast<int64_t>(s.batch.targets.size());
  in.negatives = s.batch.negatives.data();
  in.num_neg = static_cast<int>(s.batch.negatives.size());
  in.log_q_negatives = s.batch.log_q_negatives.data();
  in.log_q_targets = s.batch.log_q_targets.data();
  const double loss =
      hp.cosine()
          ? s.grad.compute_normalized(detail::model_view(s.weights), in, static_cast<int>(hp.pow_p), hp.readout,
                                      hp.loss.hard_negative_beta, hp.loss.routing_regularization,
                                      hp.cosine_temperature)
          : s.grad.compute(detail::model_view(s.weights), in, static_cast<int>(hp.pow_p), hp.readout,
                           hp.loss.hard_negative_beta, hp.loss.routing_regularization);
  if (!std::isfinite(loss))
    throw Error("training diverged: the loss is " + std::to_string(loss) + " at step " +
                std::to_string(s.steps_done + 1) + " (lower optimizer.learning_rate?)");
  s.adam.step(s.weights, s.grad.rows, s.grad.row_grads.data(), s.grad.slot_of,
              s.grad.dense.bilinear.data(),
              hp.capsule.relu_layer ? s.grad.dense.relu_weight.data() : nullptr,
              hp.capsule.relu_layer ? s.grad.dense.relu_bias.data() : nullptr,
              s.grad.dense.attention.data(), s.threads);
  ++s.steps_done;
  if (log_level() <= LogLevel::debug && s.steps_done % 100 == 0)
    log(LogLevel::debug, "step " + std::to_string(s.steps_done) + ": " +
                             std::to_string(s.adam.moving_rows()) + " of " +
                             std::to_string(hp.item_count) + " item rows moving (dense Adam)");
  return loss;
}

EpochStats Trainer::train_epoch(const std::function<void(const TrainProgress&)>& progress) {
  Impl& s = *impl_;
  const int64_t batches = s.config.runner.batches_per_epoch;
  const auto t0 = std::chrono::steady_clock::now();
  double sum = 0;
  for (int64_t b = 1; b <= batches; ++b) {
    sum += step();
    if (progress) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      TrainProgress p;
      p.epoch = s.epochs_done + 1;
      p.epochs = s.config.runner.epochs;
      p.batch = b;
      p.batches = batches;
      p.loss = sum / double(b);
      p.samples_per_s = el > 0 ? double(b) * s.config.runner.train_batch_size / el : 0;
      p.eta_s = el / double(b) * double(batches - b);
      p.run_eta_s = p.eta_s + el / double(b) * double(batches) * double(std::max(0, p.epochs - p.epoch));
      progress(p);
    }
  }
  s.adam.materialize(s.weights, s.threads);  // epoch boundary: resume is bit-exact from here
  ++s.epochs_done;
  EpochStats st;
  st.epoch = s.epochs_done;
  st.loss = sum / double(batches);
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.samples_per_s = st.seconds > 0 ? double(batches) * s.config.runner.train_batch_size / st.seconds : 0;
  return st;
}

const MindWeights& Trainer::weights() const {
  impl_->adam.flush(impl_->weights, impl_->threads);  // apply deferred updates (exact)
  if (!impl_->config.hyper_parameters.cosine()) return impl_->weights;
  // A cosine model is trained on rows read normalised: its weights are the unit rows (a copy;
  // the raw rows stay the optimiser's state, saved in checkpoints).
  impl_->unit_rows = impl_->weights;
  detail::normalize_rows(impl_->unit_rows.item_emb.data(), impl_->unit_rows.config.item_count,
                         impl_->unit_rows.config.embedding_dim);
  return impl_->unit_rows;
}
const Config& Trainer::config() const { return impl_->config; }
int Trainer::epochs_done() const { return impl_->epochs_done; }
int64_t Trainer::steps_done() const { return impl_->steps_done; }

}  // namespace mindrec
