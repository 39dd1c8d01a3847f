// Training (mind-spec.md, "Training"): the Trainer that runs epochs, checkpoints and resumes.
// Its parts are private: the samplers (src/train/sampler.hpp), Adam (src/train/adam.hpp), the
// batch loss and gradient (src/train/train_step.hpp) and the checkpoint file
// (src/train/checkpoint.cpp).
//
// Reproducibility: one generator is seeded once per run from runner.seed and drives every
// random choice (users, targets, negatives); its state is part of each checkpoint. The same
// seed and thread count give the same loss curve bit for bit, and a resumed run continues
// exactly as the uninterrupted one would have.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mindrec/config.hpp"
#include "mindrec/data.hpp"
#include "mindrec/export.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {

struct MINDREC_API TrainProgress {
  int epoch = 0, epochs = 0;          ///< 1-based epoch
  int64_t batch = 0, batches = 0;     ///< batches done in this epoch
  double loss = 0;                    ///< mean loss of this epoch so far
  double samples_per_s = 0;
  double eta_s = 0;                   ///< for the rest of this epoch
};

struct MINDREC_API EpochStats {
  int epoch = 0;
  double loss = 0;  ///< mean batch loss over the epoch
  double seconds = 0;
  double samples_per_s = 0;
};

/// Runs MIND training. Not thread-safe itself; uses `runner.threads` threads internally.
class MINDREC_API Trainer {
 public:
  /// Starts from `init` (e.g. init_weights(config.hyper_parameters, config.runner.seed)).
  /// `log` is referenced, not copied: it must outlive the Trainer.
  Trainer(Config config, const ClickLog& log, MindWeights init);
  ~Trainer();

  /// Continues from a checkpoint written by save_checkpoint(). Refuses (ConfigError) a
  /// checkpoint whose model differs from `config`'s.
  static std::unique_ptr<Trainer> resume(const std::string& checkpoint, Config config,
                                         const ClickLog& log);

  /// One optimisation step; returns the batch's loss.
  double step();
  /// One epoch of runner.batches_per_epoch steps; calls `progress` after each step.
  EpochStats train_epoch(const std::function<void(const TrainProgress&)>& progress = {});

  /// Weights, Adam state, generator state and counters, written atomically (safetensors).
  void save_checkpoint(const std::string& path);

  /// Current weights (applies dense Adam's deferred row updates first; exact).
  const MindWeights& weights() const;
  const Config& config() const;
  int epochs_done() const;
  int64_t steps_done() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit Trainer(std::unique_ptr<Impl> impl);
};

}  // namespace mindrec
