// Private: the state a Trainer owns (trainer.cpp runs it, checkpoint.cpp saves and restores it).
#pragma once

#include "detail/random.hpp"
#include "mindrec/train.hpp"
#include "model/weights_io.hpp"
#include "train/adam.hpp"
#include "train/sampler.hpp"
#include "train/train_step.hpp"

namespace mindrec {

struct Trainer::Impl {
  Impl(Config cfg, const ClickLog& log, MindWeights w)
      : config(std::move(cfg)),
        weights(std::move(w)),
        rng(config.runner.seed),
        sampler(log, config.hyper_parameters.item_count, config.hyper_parameters.maxlen,
                config.runner.train_batch_size, config.hyper_parameters.neg_samples,
                config.hyper_parameters.loss.in_batch_negatives),
        adam(weights, config.hyper_parameters.optimizer.learning_rate,
             config.hyper_parameters.optimizer.lazy),
        threads(resolve_threads(config.runner.threads)),
        grad(detail::model_view(weights), threads) {}

  Config config;
  MindWeights weights;
  detail::Rng rng;
  BatchSampler sampler;
  AdamOptimizer adam;
  int threads;
  cpu::BatchGradient<float> grad;
  TrainingBatch batch;
  MindWeights unit_rows;  // Trainer::weights() of a cosine model: item rows normalised
  int epochs_done = 0;
  int64_t steps_done = 0;
};

}  // namespace mindrec
