// Private: Adam over MIND's trainable tensors (dense with parked rows, or lazy). Not
// thread-safe: each Trainer owns its own (it uses `threads` threads inside a step).
#pragma once

#include <cstdint>
#include <vector>

#include "mindrec/aligned.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {

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
            const float* d_relu_weight, const float* d_relu_bias, const float* d_attention,
            int threads);
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
  AlignedVector<float> m_emb, v_emb, m_bil, v_bil, m_rw, v_rw, m_rb, v_rb, m_att, v_att;
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

}  // namespace mindrec
