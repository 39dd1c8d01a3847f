// Private: sample construction (mind-spec.md, "Training"): the log-uniform negative sampler
// and the batch sampler. Not thread-safe: each Trainer owns its own.
#pragma once

#include <cstdint>
#include <vector>

#include "detail/random.hpp"
#include "mindrec/data.hpp"

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
/// it as history; plus one set of distinct log-uniform negatives. With `in_batch_negatives`
/// (LossConfig) the batch's targets join the negatives (distinct, after the sampled ones) and
/// every log-q, targets' included, is that of the union (log_q_mixed).
class BatchSampler {
 public:
  /// Throws InvalidArgument if fewer than batch_size users have more than 4 items.
  BatchSampler(const ClickLog& log, int64_t item_count, int maxlen, int batch_size, int num_neg,
               bool in_batch_negatives = false);
  void next(detail::Rng& rng, TrainingBatch& batch);
  int64_t eligible_users() const { return static_cast<int64_t>(eligible_.size()); }
  /// The chance that one sample's target is `id`: (1/E) sum over eligible users u of the
  /// share of u's target positions [4, m-1] holding `id` (in-batch negatives only; else 0).
  double target_probability(int64_t id) const {
    return target_freq_.empty() ? 0.0 : target_freq_[size_t(id)];
  }
  /// log q of `id` under mixed negatives: the chance it is among the sampled negatives or the
  /// batch's targets, log(1 - (1 + p)^(-2 num_neg) (1 - f)^B) with p the log-uniform
  /// probability and f = target_probability (LogUniformSampler::log_q's form for the first).
  double log_q_mixed(int64_t id) const;

 private:
  const ClickLog& log_;
  int maxlen_, batch_size_, num_neg_;
  LogUniformSampler neg_;
  std::vector<int64_t> eligible_;
  std::vector<uint8_t> marks_;       // [N] scratch for draw_distinct
  std::vector<uint8_t> user_marks_;  // [eligible] scratch for Floyd's subset sampling
  std::vector<int64_t> chosen_;
  std::vector<double> target_freq_;  // [N] with in-batch negatives, else empty
};

}  // namespace mindrec
