#include "train/sampler.hpp"

#include <algorithm>
#include <cmath>

#include "mindrec/error.hpp"

namespace mindrec {

// ---- negative sampler
LogUniformSampler::LogUniformSampler(int64_t item_count)
    : n_(item_count), log_n1_(std::log(double(item_count) + 1.0)) {
  MINDREC_EXPECTS(item_count >= 2, "LogUniformSampler: item_count must be >= 2");
}

double LogUniformSampler::probability(int64_t id) const {
  if (id <= 0 || id >= n_) return 0.0;
  return std::log1p(1.0 / (double(id) + 1.0)) / log_n1_;
}

int64_t LogUniformSampler::draw(detail::Rng& rng) const {
  for (;;) {
    // P(floor(exp(u log(N+1))) - 1 = i) = (log(i+2) - log(i+1)) / log(N+1) for i in [0, N).
    const int64_t x = static_cast<int64_t>(std::floor(std::exp(rng.uniform() * log_n1_))) - 1;
    if (x >= 1 && x < n_) return x;
  }
}

void LogUniformSampler::draw_distinct(detail::Rng& rng, int count, int64_t* out,
                                      std::vector<uint8_t>& marks) const {
  MINDREC_EXPECTS(count >= 0 && count <= n_ - 1, "draw_distinct: count must be in [0, N-1]");
  MINDREC_EXPECTS(int64_t(marks.size()) >= n_, "draw_distinct: marks must hold N entries");
  for (int i = 0; i < count;) {
    const int64_t x = draw(rng);
    if (marks[size_t(x)]) continue;
    marks[size_t(x)] = 1;
    out[i++] = x;
  }
  for (int i = 0; i < count; ++i) marks[size_t(out[i])] = 0;
}

double LogUniformSampler::log_q(int64_t id, int num_neg) const {
  const double p = probability(id);
  return std::log(-std::expm1(-2.0 * num_neg * std::log1p(p)));
}

// ---- batches
BatchSampler::BatchSampler(const ClickLog& log, int64_t item_count, int maxlen, int batch_size,
                           int num_neg, bool in_batch_negatives)
    : log_(log), maxlen_(maxlen), batch_size_(batch_size), num_neg_(num_neg), neg_(item_count) {
  for (int64_t u = 0; u < log.num_users(); ++u)
    if (log.length(u) > 4) eligible_.push_back(u);
  if (int64_t(eligible_.size()) < batch_size)
    throw InvalidArgument("training data has " + std::to_string(eligible_.size()) +
                          " users with more than 4 items, fewer than train_batch_size=" +
                          std::to_string(batch_size));
  for (int64_t id : log.items)
    if (id >= item_count)
      throw InvalidArgument("training data holds item id " + std::to_string(id) +
                            " >= item_count " + std::to_string(item_count));
  marks_.assign(size_t(item_count), 0);
  user_marks_.assign(eligible_.size(), 0);
  if (in_batch_negatives) {
    target_freq_.assign(size_t(item_count), 0.0);
    const double per_user = 1.0 / double(eligible_.size());
    for (int64_t u : eligible_) {
      const int64_t m = log.length(u);
      const int64_t* x = log.begin(u);
      for (int64_t k = 4; k < m; ++k) target_freq_[size_t(x[k])] += per_user / double(m - 4);
    }
  }
}

double BatchSampler::log_q_mixed(int64_t id) const {
  const double log_not_sampled = -2.0 * num_neg_ * std::log1p(neg_.probability(id));
  const double log_not_target = double(batch_size_) * std::log1p(-std::min(1.0, target_freq_[size_t(id)]));
  return std::log(-std::expm1(log_not_sampled + log_not_target));
}

void BatchSampler::next(detail::Rng& rng, TrainingBatch& b) {
  const int B = batch_size_, L = maxlen_;
  b.hist.assign(size_t(B) * L, 0);
  b.lengths.resize(B);
  b.targets.resize(B);
  b.users.resize(B);
  b.log_q_targets.resize(B);
  // B distinct users, uniformly (Floyd's algorithm: no state carried between batches).
  const int64_t E = static_cast<int64_t>(eligible_.size());
  chosen_.clear();
  for (int64_t j = E - B; j < E; ++j) {
    const int64_t t = static_cast<int64_t>(rng.below(uint64_t(j) + 1));
    const int64_t pick = user_marks_[size_t(t)] ? j : t;
    user_marks_[size_t(pick)] = 1;
    chosen_.push_back(pick);
  }
  for (int64_t c : chosen_) user_marks_[size_t(c)] = 0;
  for (int i = 0; i < B; ++i) {
    const int64_t u = eligible_[size_t(chosen_[i])];
    const int64_t m = log_.length(u);
    const int64_t k = 4 + static_cast<int64_t>(rng.below(uint64_t(m - 4)));  // [4, m-1]
    const int64_t* x = log_.begin(u);
    const int64_t start = std::max<int64_t>(0, k - L);
    std::copy(x + start, x + k, b.hist.begin() + size_t(i) * L);
    b.lengths[i] = static_cast<int32_t>(k - start);
    b.targets[i] = x[k];
    b.users[i] = u;
    b.log_q_targets[i] = static_cast<float>(neg_.log_q(x[k], num_neg_));
  }
  b.negatives.resize(num_neg_);
  neg_.draw_distinct(rng, num_neg_, b.negatives.data(), marks_);
  if (target_freq_.empty()) {
    b.log_q_negatives.resize(num_neg_);
    for (int j = 0; j < num_neg_; ++j)
      b.log_q_negatives[j] = static_cast<float>(neg_.log_q(b.negatives[j], num_neg_));
    return;
  }
  // Mixed negatives: the batch's targets not already drawn join the set, in batch order.
  for (int64_t id : b.negatives) marks_[size_t(id)] = 1;
  for (int i = 0; i < B; ++i)
    if (!marks_[size_t(b.targets[i])]) {
      marks_[size_t(b.targets[i])] = 1;
      b.negatives.push_back(b.targets[i]);
    }
  for (int64_t id : b.negatives) marks_[size_t(id)] = 0;
  b.log_q_negatives.resize(b.negatives.size());
  for (size_t j = 0; j < b.negatives.size(); ++j)
    b.log_q_negatives[j] = static_cast<float>(log_q_mixed(b.negatives[j]));
  for (int i = 0; i < B; ++i) b.log_q_targets[i] = static_cast<float>(log_q_mixed(b.targets[i]));
}

}  // namespace mindrec
