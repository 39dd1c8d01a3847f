// Training (mind-spec.md, "Training"): sample construction, the log-uniform negative sampler,
// Adam, and the Trainer that runs epochs, checkpoints and resumes.
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
#include "mindrec/detail/random.hpp"
#include "mindrec/model.hpp"

namespace mindrec {

/// Log-uniform ("Zipfian") sampler over ids 1..N-1: p_i = (log(i+2) - log(i+1)) / log(N+1),
/// p_0 = 0 (TensorFlow's log_uniform_candidate_sampler with the padding id removed).
class LogUniformSampler {
 public:
  explicit LogUniformSampler(int64_t item_count);
  int64_t item_count() const { return n_; }
  /// The spec's p_i (unnormalised over 1..N-1: they sum to 1 - log 2 / log(N+1)).
  double probability(int64_t id) const;
  /// One id in [1, N) with probability p_i / Σ p (inverse CDF, then rejecting 0).
  int64_t draw(detail::Rng& rng) const;
  /// `count` distinct ids (draws repeated until distinct). `marks` is caller-owned scratch
  /// of N bytes, all zero on entry and on return. Throws InvalidArgument if count > N-1.
  void draw_distinct(detail::Rng& rng, int count, int64_t* out, std::vector<uint8_t>& marks) const;
  /// log_q[j] = log(1 - (1 + p_j)^(-2·num_neg)), the log expected count subtracted from logits.
  double log_q(int64_t id, int num_neg) const;

 private:
  int64_t n_;
  double log_n1_;
};

/// One training batch in the model's layout.
struct TrainingBatch {
  std::vector<int64_t> hist;        ///< [B, L], right-padded with 0
  std::vector<int32_t> lengths;     ///< [B] = min(k, L)
  std::vector<int64_t> targets;     ///< [B]
  std::vector<int64_t> users;       ///< [B] row of the user in the ClickLog
  std::vector<int64_t> negatives;   ///< [num_neg], distinct, shared by the batch
  std::vector<float> log_q_negatives;  ///< [num_neg]
  std::vector<float> log_q_targets;    ///< [B]
};

/// Draws training batches (spec): batch_size distinct users uniformly among those with more
/// than 4 items, for each a target position k uniform in [4, m-1], the last <= L items before
/// it as history; plus one set of distinct log-uniform negatives.
class BatchSampler {
 public:
  /// Throws InvalidArgument if fewer than batch_size users have more than 4 items.
  BatchSampler(const ClickLog& log, int64_t item_count, int maxlen, int batch_size, int num_neg);
  void next(detail::Rng& rng, TrainingBatch& batch);
  int64_t eligible_users() const { return static_cast<int64_t>(eligible_.size()); }

 private:
  const ClickLog& log_;
  int maxlen_, batch_size_, num_neg_;
  LogUniformSampler neg_;
  std::vector<int64_t> eligible_;
  std::vector<uint8_t> marks_;       // [N] scratch for draw_distinct
  std::vector<uint8_t> user_marks_;  // [eligible] scratch for Floyd's subset sampling
  std::vector<int64_t> chosen_;
};

/// Adam coefficients for one step t (1-based), in PaddlePaddle's form:
/// lr_t = lr·sqrt(1-β2^t)/(1-β1^t); w -= lr_t · m / (sqrt(v) + ε·sqrt(1-β2^t)),
/// which equals the textbook m̂ / (sqrt(v̂) + ε) update.
struct AdamStep {
  float beta1, beta2, lr_t, eps_t;
  static AdamStep at(double lr, int64_t t, double beta1 = 0.9, double beta2 = 0.999,
                     double eps = 1e-8);
};

/// One Adam update of n parameters; g == nullptr means a zero gradient (moments still decay
/// and the parameters still move by momentum, as in a dense optimiser).
void adam_update(float* w, float* m, float* v, const float* g, size_t n, const AdamStep& s);

/// Adam over all of MIND's trainable tensors. Dense (default, as PaddleRec): every row of
/// item_emb has its moments decayed and its update applied each step, touched or not. Lazy
/// (hyper_parameters.optimizer.lazy): only rows with a gradient in the batch are updated, as
/// TensorFlow's LazyAdam; cheaper on big tables, not the same trajectory. Row 0 never changes.
///
/// How dense stays fast: a row that got no gradient keeps moving by momentum, but its update
/// lr_t·β1^j·m/(√(β2^j v)+ε_t) shrinks geometrically (by at least 0.944 per step from step 10
/// on: β1/√β2 times the bias-correction growth). Once the next update of every element of a
/// row is below a quarter of the float spacing at its weight, every later zero-gradient
/// update rounds to a no-op, so the row is "parked": its weights are exactly what dense float
/// Adam would hold, and its moments (which only decay) are brought forward in closed form,
/// m·β1^j and v·β2^j, when the row is touched again or a checkpoint is written. Rows still
/// moving have their zero-gradient steps applied several at a time, step by step with the
/// same arithmetic as a dense loop, so each is read and written once per few steps; rows a
/// batch reads are brought up to date before it (prepare_rows). A step then moves the memory
/// of the touched rows and a fraction of the moving ones instead of all N·D parameters.
class AdamOptimizer {
 public:
  AdamOptimizer(const MindWeights& w, double learning_rate, bool lazy);
  /// Applies one step with the batch's gradient. `threads` 0 = all cores.
  void step(MindWeights& w, const std::vector<int64_t>& rows, const float* row_grads,
            const std::vector<int32_t>& slot_of, const float* d_bilinear,
            const float* d_relu_weight, const float* d_relu_bias, int threads);
  int64_t steps() const { return t_; }
  /// Dense mode defers zero-gradient updates of moving rows; call before a batch reads the
  /// rows `ids` (id 0 ignored) so that they hold every update so far.
  void prepare_rows(MindWeights& w, const int64_t* ids, size_t n, int threads = 0);
  /// Applies every deferred update: the weights are then exactly dense Adam's.
  void flush(MindWeights& w, int threads = 0);
  /// flush() and bring parked rows' moments up to the current step (before reading or
  /// saving m_emb/v_emb).
  void materialize(MindWeights& w, int threads = 0);
  /// Rows updated every step after the last step (dense mode): for diagnostics.
  int64_t moving_rows() const { return moving_rows_; }
  /// Rows not parked (checkpoint state); restore_parking() sets it back after materialize().
  std::vector<int64_t> moving_row_ids() const;
  void restore_parking(const std::vector<int64_t>& moving_ids);

  // State, for checkpoints (same shapes as the weights).
  AlignedVector<float> m_emb, v_emb, m_bil, v_bil, m_rw, v_rw, m_rb, v_rb;
  int64_t t_ = 0;
  double lr;
  bool lazy;

 private:
  const AdamStep& coef(int64_t t);
  void decay_parked(int64_t row, int64_t upto);
  void advance_moving(float* w, int64_t row, int64_t upto);
  void update_parking(const float* w, int64_t row);
  std::vector<AdamStep> coef_;     ///< coefficients of step t at [t]
  std::vector<int64_t> row_step_;  ///< last step applied to a row (weights and moments)
  std::vector<uint8_t> moving_;    ///< 1: still moving; 0: parked or never touched
  std::vector<uint8_t> marks_;
  std::vector<int64_t> unique_;
  int64_t dim_ = 0;
  int64_t moving_rows_ = 0;
};

struct TrainProgress {
  int epoch = 0, epochs = 0;          ///< 1-based epoch
  int64_t batch = 0, batches = 0;     ///< batches done in this epoch
  double loss = 0;                    ///< mean loss of this epoch so far
  double samples_per_s = 0;
  double eta_s = 0;                   ///< for the rest of this epoch
};

struct EpochStats {
  int epoch = 0;
  double loss = 0;  ///< mean batch loss over the epoch
  double seconds = 0;
  double samples_per_s = 0;
};

/// Runs MIND training. Not thread-safe itself; uses `runner.threads` threads internally.
class Trainer {
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
