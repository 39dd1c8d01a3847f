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

#include "mindrec/catalogue.hpp"
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
  /// For the rest of the run: this epoch and the epochs left (runner.epochs), each as long as
  /// this one so far, evaluations not counted (an early stop ends it sooner).
  double run_eta_s = 0;
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

/// One epoch of a training run: a row of its metrics.csv.
struct MINDREC_API EpochRecord {
  int epoch = 0;
  double loss = 0, seconds = 0, samples_per_s = 0;
  /// Whether the epoch was evaluated (runner.test_data_dir set and evaluation on); the metrics
  /// below are then the exact-retrieval Recall/NDCG/HitRate at 20 and 50 on those users.
  bool has_eval = false;
  double recall20 = 0, ndcg20 = 0, hitrate20 = 0, recall50 = 0, ndcg50 = 0, hitrate50 = 0;
  /// The popularity baseline (evaluate_popularity from the training log) on the same users,
  /// set with the metrics above; the same for every epoch of a run.
  double pop_recall20 = 0, pop_ndcg20 = 0, pop_hitrate20 = 0, pop_recall50 = 0, pop_ndcg50 = 0, pop_hitrate50 = 0;
  bool best = false;  ///< the best validation Recall@50 so far (best.safetensors was written)
};

/// What a training run reads before its first step (for the caller's report).
struct MINDREC_API TrainStart {
  int64_t clicks = 0, users = 0;  ///< of the training click log
  int64_t eval_users = 0;         ///< 0 without per-epoch evaluation
  int epochs_done = 0;            ///< > 0 when resumed
  int64_t steps_done = 0;
  int threads = 1;                ///< resolve_threads(runner.threads)
};

struct MINDREC_API WarmStartReport {
  int64_t copied = 0;       ///< item rows copied from the previous model (matched by raw id)
  int64_t initialised = 0;  ///< item rows of items it did not know, initialised as init_weights does
};

struct MINDREC_API TrainRunOptions {
  std::string out_dir;  ///< "" = runner.model_save_path
  std::string resume;   ///< a checkpoint.safetensors to continue from ("" = start afresh)
  /// The data's catalogue ("" = the catalogue.csv `mindrec prepare` wrote in the folder above
  /// runner.train_data_dir, when it exists). It is copied beside the weights written and its
  /// fingerprint recorded in them; its item_count must be hyper_parameters.item_count.
  std::string catalogue;
  /// Warm start: a previous model's weights (with its catalogue beside them, or
  /// `init_from_catalogue`); see warm_start_weights. "" = init_weights.
  std::string init_from;
  std::string init_from_catalogue;
  bool evaluate = true; ///< evaluate each epoch on runner.test_data_dir (when set)
  std::string title;    ///< the title of metrics.svg ("" = "mindrec train: " + config.source)
  std::function<void(const TrainStart&)> on_start;
  /// After a warm start's weights are made (init_from), before the first step.
  std::function<void(const WarmStartReport&)> on_warm_start;
  /// After every step (see Trainer::train_epoch). May throw to stop the run: the files of the
  /// epochs done stay as they were written.
  std::function<void(const TrainProgress&)> on_progress;
  /// After every epoch, once its files are written. May throw to stop the run.
  std::function<void(const EpochRecord&)> on_epoch;
};

/// Weights for `config` that start from a previous model: init_weights(config, seed), then
/// every tensor but item_emb copied from `previous`, and each item row copied from the row of
/// the same raw id in `previous` (through both catalogues; never by position). Shapes other
/// than item_count must match: ConfigError naming the field and `previous_name`.
MINDREC_API MindWeights warm_start_weights(const ModelConfig& config, uint64_t seed, const MindWeights& previous,
                                           const Catalogue& previous_catalogue, const Catalogue& catalogue,
                                           const std::string& previous_name, WarmStartReport* report = nullptr);

/// What `mindrec train` does: reads runner.train_data_dir (and runner.test_data_dir), trains
/// runner.epochs epochs from init_weights(hyper_parameters, runner.seed), from
/// `options.init_from` (warm_start_weights) or from `options.resume` (stopping earlier after runner.patience evaluated epochs without a better
/// validation Recall@50, when set), and after each epoch writes, atomically, into the output folder:
/// checkpoint.safetensors (Trainer::save_checkpoint), last.safetensors, best.safetensors (when
/// evaluated and Recall@50 improved), metrics.csv and metrics.svg (a resumed run keeps the rows
/// of the epochs before its checkpoint). Returns every epoch's record, earlier ones included.
/// Throws ConfigError (no train_data_dir, a checkpoint of another model), IoError/FormatError
/// (data, checkpoint), or what a callback threw.
MINDREC_API std::vector<EpochRecord> run_training(const Config& config, const TrainRunOptions& options = {});

}  // namespace mindrec
