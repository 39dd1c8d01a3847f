#include "train/adam.hpp"

#include <algorithm>
#include <cmath>

#include "mindrec/config.hpp"
#include "detail/huge_vector.hpp"
#include "mindrec/error.hpp"

namespace mindrec {

AdamStep AdamStep::at(double lr, int64_t t, double beta1, double beta2, double eps) {
  const double c2 = std::sqrt(1.0 - std::pow(beta2, double(t)));
  AdamStep s;
  s.beta1 = float(beta1);
  s.beta2 = float(beta2);
  s.lr_t = float(lr * c2 / (1.0 - std::pow(beta1, double(t))));
  s.eps_t = float(eps * c2);
  return s;
}

void adam_update(float* __restrict w, float* __restrict m, float* __restrict v,
                 const float* __restrict g, size_t n, const AdamStep& s) {
  const float b1 = s.beta1, b2 = s.beta2, c1 = 1.0f - s.beta1, c2 = 1.0f - s.beta2;
  if (g) {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + c1 * g[i];
      v[i] = b2 * v[i] + c2 * g[i] * g[i];
      w[i] -= s.lr_t * m[i] / (std::sqrt(v[i]) + s.eps_t);
    }
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i];
      v[i] = b2 * v[i];
      w[i] -= s.lr_t * m[i] / (std::sqrt(v[i]) + s.eps_t);
    }
  }
}

AdamOptimizer::AdamOptimizer(const MindWeights& w, double learning_rate, bool lazy_rows)
    : lr(learning_rate), lazy(lazy_rows) {
  // Read and written at random rows, as the item table: on huge pages (detail/huge_vector.hpp).
  detail::assign_on_huge_pages(m_emb, w.item_emb.size(), 0.f);
  detail::assign_on_huge_pages(v_emb, w.item_emb.size(), 0.f);
  m_bil.assign(w.bilinear.size(), 0.f);
  v_bil.assign(w.bilinear.size(), 0.f);
  m_rw.assign(w.relu_weight.size(), 0.f);
  v_rw.assign(w.relu_weight.size(), 0.f);
  m_rb.assign(w.relu_bias.size(), 0.f);
  v_rb.assign(w.relu_bias.size(), 0.f);
  m_att.assign(w.attention.size(), 0.f);
  v_att.assign(w.attention.size(), 0.f);
  detail::assign_on_huge_pages(row_step_, size_t(w.config.item_count), int64_t(0));
  detail::assign_on_huge_pages(moving_, size_t(w.config.item_count), uint8_t(0));
  detail::assign_on_huge_pages(marks_, size_t(w.config.item_count), uint8_t(0));
  dim_ = w.config.embedding_dim;
}

const AdamStep& AdamOptimizer::coef(int64_t t) {
  while (int64_t(coef_.size()) <= t) coef_.push_back(AdamStep::at(lr, int64_t(coef_.size())));
  return coef_[size_t(t)];
}

void AdamOptimizer::decay_parked(int64_t row, int64_t upto) {
  const int64_t gap = upto - row_step_[size_t(row)];
  if (gap <= 0) return;
  // gap zero-gradient steps of a parked row: its weights did not move (see the class doc),
  // its moments only decayed.
  const float f1 = static_cast<float>(std::pow(0.9, double(gap)));
  const float f2 = static_cast<float>(std::pow(0.999, double(gap)));
  float* m = m_emb.data() + size_t(row) * dim_;
  float* v = v_emb.data() + size_t(row) * dim_;
  for (int64_t i = 0; i < dim_; ++i) m[i] *= f1, v[i] *= f2;
  row_step_[size_t(row)] = upto;
}

void AdamOptimizer::advance_moving(float* w, int64_t row, int64_t upto) {
  // The pending zero-gradient steps of a moving row, one by one with the same float
  // operations as a dense loop (bitwise the same), while the row sits in cache.
  const size_t off = size_t(row) * dim_;
  for (int64_t j = row_step_[size_t(row)] + 1; j <= upto; ++j)
    adam_update(w + off, m_emb.data() + off, v_emb.data() + off, nullptr, size_t(dim_), coef_[size_t(j)]);
  row_step_[size_t(row)] = std::max(row_step_[size_t(row)], upto);
}

void AdamOptimizer::update_parking(const float* w, int64_t row) {
  // Park when the next zero-gradient update of every element is below a quarter of the
  // float spacing at its weight; the bound on later updates only shrinks from step 10 on.
  if (t_ < 10) return;
  const AdamStep& next = coef_[size_t(t_ + 1)];
  const size_t off = size_t(row) * dim_;
  const float* m = m_emb.data() + off;
  const float* v = v_emb.data() + off;
  for (int64_t i = 0; i < dim_; ++i) {
    const float next_update =
        next.lr_t * (next.beta1 * std::abs(m[i])) / (std::sqrt(next.beta2 * v[i]) + next.eps_t);
    const float a = std::abs(w[off + i]);
    const float spacing = std::nextafter(a, std::numeric_limits<float>::infinity()) - a;
    if (!(next_update < 0.25f * spacing)) return;
  }
  moving_[size_t(row)] = 0;
}

void AdamOptimizer::prepare_rows(MindWeights& w, const int64_t* ids, size_t n, int threads) {
  if (lazy) return;
  coef(t_ + 1);
  unique_.clear();
  for (size_t i = 0; i < n; ++i) {
    const int64_t r = ids[i];
    if (r <= 0 || marks_[size_t(r)]) continue;
    marks_[size_t(r)] = 1;
    if (moving_[size_t(r)] && row_step_[size_t(r)] < t_) unique_.push_back(r);
  }
  for (size_t i = 0; i < n; ++i)
    if (ids[i] > 0) marks_[size_t(ids[i])] = 0;
  const int64_t U = static_cast<int64_t>(unique_.size());
  const int nt = resolve_threads(threads);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && U > 256)
  for (int64_t i = 0; i < U; ++i) advance_moving(w.item_emb.data(), unique_[size_t(i)], t_);
}

void AdamOptimizer::flush(MindWeights& w, int threads) {
  if (lazy) return;
  coef(t_ + 1);
  const int64_t N = static_cast<int64_t>(row_step_.size());
  const int nt = resolve_threads(threads);
#pragma omp parallel for num_threads(nt) schedule(static, 4096) if (nt > 1)
  for (int64_t r = 1; r < N; ++r)
    if (moving_[size_t(r)] && row_step_[size_t(r)] < t_) {
      advance_moving(w.item_emb.data(), r, t_);
      update_parking(w.item_emb.data(), r);
    }
}

void AdamOptimizer::materialize(MindWeights& w, int threads) {
  if (lazy) return;
  flush(w, threads);
  const int64_t N = static_cast<int64_t>(row_step_.size());
  const int nt = resolve_threads(threads);
#pragma omp parallel for num_threads(nt) schedule(static, 4096) if (nt > 1)
  for (int64_t r = 1; r < N; ++r)
    if (!moving_[size_t(r)]) decay_parked(r, t_);
}

std::vector<int64_t> AdamOptimizer::moving_row_ids() const {
  std::vector<int64_t> ids;
  for (size_t r = 0; r < moving_.size(); ++r)
    if (moving_[r]) ids.push_back(static_cast<int64_t>(r));
  return ids;
}

void AdamOptimizer::restore_parking(const std::vector<int64_t>& moving_ids) {
  std::fill(moving_.begin(), moving_.end(), uint8_t(0));
  for (int64_t r : moving_ids) {
    if (r < 1 || r >= static_cast<int64_t>(moving_.size()))
      throw FormatError("checkpoint: moving row id " + std::to_string(r) + " is out of range");
    moving_[size_t(r)] = 1;
  }
  std::fill(row_step_.begin(), row_step_.end(), t_);
  moving_rows_ = static_cast<int64_t>(moving_ids.size());
}

void AdamOptimizer::step(MindWeights& w, const std::vector<int64_t>& rows, const float* row_grads,
                         const std::vector<int32_t>& slot_of, const float* d_bilinear,
                         const float* d_relu_weight, const float* d_relu_bias,
                         const float* d_attention, int threads) {
  ++t_;
  const AdamStep s = coef(t_);
  coef(t_ + 1);
  adam_update(w.bilinear.data(), m_bil.data(), v_bil.data(), d_bilinear, w.bilinear.size(), s);
  adam_update(w.attention.data(), m_att.data(), v_att.data(), d_attention, w.attention.size(), s);
  if (!w.relu_weight.empty()) {
    adam_update(w.relu_weight.data(), m_rw.data(), v_rw.data(), d_relu_weight,
                w.relu_weight.size(), s);
    adam_update(w.relu_bias.data(), m_rb.data(), v_rb.data(), d_relu_bias, w.relu_bias.size(), s);
  }
  const int64_t D = dim_;
  const int nt = resolve_threads(threads);
  const int64_t R = static_cast<int64_t>(rows.size());
  if (lazy) {
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t i = 0; i < R; ++i) {
      const size_t off = size_t(rows[i]) * D;
      adam_update(w.item_emb.data() + off, m_emb.data() + off, v_emb.data() + off,
                  row_grads + size_t(i) * D, size_t(D), s);
    }
    return;
  }
  // Dense. Rows with a gradient: bring them to step t-1, apply step t. Moving rows without a
  // gradient: their zero-gradient steps are deferred and applied kDeferSteps at a time (row
  // r when t ≡ r mod kDeferSteps), which reads and writes each row once per kDeferSteps steps
  // instead of every step; the arithmetic is the dense loop's, step by step. Rows a batch
  // reads are brought up to date first (prepare_rows), so deferral is never observable.
  constexpr int64_t kDeferSteps = 8;
  float* W = w.item_emb.data();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && R > 256)
  for (int64_t i = 0; i < R; ++i) {
    const int64_t r = rows[size_t(i)];
    if (moving_[size_t(r)]) advance_moving(W, r, t_ - 1);
    else decay_parked(r, t_ - 1);
    const size_t off = size_t(r) * D;
    adam_update(W + off, m_emb.data() + off, v_emb.data() + off, row_grads + size_t(i) * D,
                size_t(D), s);
    row_step_[size_t(r)] = t_;
    moving_[size_t(r)] = 1;
    update_parking(W, r);
  }
  const int64_t N = w.config.item_count;
  const int64_t phase = t_ % kDeferSteps;
  int64_t moving = 0;
#pragma omp parallel for num_threads(nt) schedule(static, 512) reduction(+ : moving) if (nt > 1)
  for (int64_t r = 1; r < N; ++r) {
    if (!moving_[size_t(r)]) continue;
    if (r % kDeferSteps == phase && slot_of[size_t(r)] < 0) {
      advance_moving(W, r, t_);
      update_parking(W, r);
    }
    moving += moving_[size_t(r)];
  }
  moving_rows_ = moving;
}

}  // namespace mindrec
