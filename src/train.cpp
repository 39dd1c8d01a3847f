#include "mindrec/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "mindrec/cpu/train_step.hpp"
#include "mindrec/detail/weights_io.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/safetensors.hpp"

namespace mindrec {

// ---------------------------------------------------------------- negative sampler
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

// ---------------------------------------------------------------- batches
BatchSampler::BatchSampler(const ClickLog& log, int64_t item_count, int maxlen, int batch_size,
                           int num_neg)
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
  b.log_q_negatives.resize(num_neg_);
  for (int j = 0; j < num_neg_; ++j)
    b.log_q_negatives[j] = static_cast<float>(neg_.log_q(b.negatives[j], num_neg_));
}

// ---------------------------------------------------------------- Adam
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
  m_emb.assign(w.item_emb.size(), 0.f);
  v_emb.assign(w.item_emb.size(), 0.f);
  m_bil.assign(w.bilinear.size(), 0.f);
  v_bil.assign(w.bilinear.size(), 0.f);
  m_rw.assign(w.relu_weight.size(), 0.f);
  v_rw.assign(w.relu_weight.size(), 0.f);
  m_rb.assign(w.relu_bias.size(), 0.f);
  v_rb.assign(w.relu_bias.size(), 0.f);
  row_step_.assign(size_t(w.config.item_count), 0);
  moving_.assign(size_t(w.config.item_count), 0);
  marks_.assign(size_t(w.config.item_count), 0);
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
                         const float* d_relu_weight, const float* d_relu_bias, int threads) {
  ++t_;
  const AdamStep s = coef(t_);
  coef(t_ + 1);
  adam_update(w.bilinear.data(), m_bil.data(), v_bil.data(), d_bilinear, w.bilinear.size(), s);
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

// ---------------------------------------------------------------- Trainer
namespace {
constexpr const char* kCheckpointFormat = "mindrec-mind-checkpoint-v1";

}  // namespace

struct Trainer::Impl {
  Impl(Config cfg, const ClickLog& log, MindWeights w)
      : config(std::move(cfg)),
        weights(std::move(w)),
        rng(config.runner.seed),
        sampler(log, config.hyper_parameters.item_count, config.hyper_parameters.maxlen,
                config.runner.train_batch_size, config.hyper_parameters.neg_samples),
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
  int epochs_done = 0;
  int64_t steps_done = 0;
};

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
  const double loss = s.grad.compute(detail::model_view(s.weights), in, static_cast<int>(hp.pow_p), hp.readout);
  if (!std::isfinite(loss))
    throw Error("training diverged: the loss is " + std::to_string(loss) + " at step " +
                std::to_string(s.steps_done + 1) + " (lower optimizer.learning_rate?)");
  s.adam.step(s.weights, s.grad.rows, s.grad.row_grads.data(), s.grad.slot_of,
              s.grad.dense.bilinear.data(),
              hp.capsule.relu_layer ? s.grad.dense.relu_weight.data() : nullptr,
              hp.capsule.relu_layer ? s.grad.dense.relu_bias.data() : nullptr, s.threads);
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

void Trainer::save_checkpoint(const std::string& path) {
  Impl& s = *impl_;
  s.adam.materialize(s.weights, s.threads);
  SafetensorsFile f = detail::weights_to_file(s.weights);
  f.metadata["format"] = kCheckpointFormat;
  f.metadata["mindrec.trainer"] = nlohmann::json{{"epochs_done", s.epochs_done},
                                                 {"steps_done", s.steps_done},
                                                 {"adam_steps", s.adam.t_},
                                                 {"threads", s.threads},
                                                 {"seed", s.config.runner.seed}}
                                      .dump();
  const auto& w = s.weights;
  auto shape_of = [&](const char* name) { return f.at(name).shape; };
  auto put = [&](const char* moment, const char* name, const AlignedVector<float>& v) {
    f.tensors[std::string("adam.") + moment + "." + name] = Tensor::from_f32(shape_of(name), v.data());
  };
  put("m", tensor_names::item_emb, s.adam.m_emb);
  put("v", tensor_names::item_emb, s.adam.v_emb);
  put("m", tensor_names::bilinear, s.adam.m_bil);
  put("v", tensor_names::bilinear, s.adam.v_bil);
  if (!w.relu_weight.empty()) {
    put("m", tensor_names::relu_weight, s.adam.m_rw);
    put("v", tensor_names::relu_weight, s.adam.v_rw);
    put("m", tensor_names::relu_bias, s.adam.m_rb);
    put("v", tensor_names::relu_bias, s.adam.v_rb);
  }
  std::vector<int64_t> moving = s.adam.moving_row_ids();
  f.tensors["adam.moving_rows"] = Tensor::from_i64({int64_t(moving.size())}, moving);
  const auto st = s.rng.state();
  std::vector<int64_t> rng(st.begin(), st.end());
  f.tensors["trainer.rng"] = Tensor::from_i64({int64_t(rng.size())}, rng);
  write_safetensors(path, f);
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& path, Config config,
                                         const ClickLog& log) {
  config.validate();
  const SafetensorsFile f = read_safetensors(path);
  auto fmt = f.metadata.find("format");
  auto meta = f.metadata.find("mindrec.trainer");
  if (fmt == f.metadata.end() || fmt->second != kCheckpointFormat || meta == f.metadata.end())
    throw FormatError(path + ": not a mindrec training checkpoint (a weights file cannot be "
                             "resumed from: it has no optimizer or sampler state)");
  MindWeights w = detail::weights_from_file(f, path, true);
  check_same_model(config.hyper_parameters, w.config, path);
  w.config = config.hyper_parameters;
  auto impl = std::make_unique<Impl>(config, log, std::move(w));
  try {
    const auto j = nlohmann::json::parse(meta->second);
    impl->epochs_done = j.at("epochs_done").get<int>();
    impl->steps_done = j.at("steps_done").get<int64_t>();
    impl->adam.t_ = j.at("adam_steps").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": bad trainer state in __metadata__: " + e.what());
  }
  auto load = [&](const std::string& name, AlignedVector<float>& dst) {
    const Tensor& t = f.at(name, path);
    if (size_t(t.numel()) != dst.size())
      throw FormatError(path + ": tensor '" + name + "' has " + std::to_string(t.numel()) +
                        " values, expected " + std::to_string(dst.size()));
    t.copy_to(dst.data());
  };
  auto& a = impl->adam;
  load("adam.m." + std::string(tensor_names::item_emb), a.m_emb);
  load("adam.v." + std::string(tensor_names::item_emb), a.v_emb);
  load("adam.m." + std::string(tensor_names::bilinear), a.m_bil);
  load("adam.v." + std::string(tensor_names::bilinear), a.v_bil);
  if (config.hyper_parameters.capsule.relu_layer) {
    load("adam.m." + std::string(tensor_names::relu_weight), a.m_rw);
    load("adam.v." + std::string(tensor_names::relu_weight), a.v_rw);
    load("adam.m." + std::string(tensor_names::relu_bias), a.m_rb);
    load("adam.v." + std::string(tensor_names::relu_bias), a.v_rb);
  }
  a.restore_parking(f.at("adam.moving_rows", path).values<int64_t>());
  const auto rng = f.at("trainer.rng", path).values<int64_t>();
  if (rng.size() != 6) throw FormatError(path + ": tensor 'trainer.rng' must hold 6 values");
  std::array<uint64_t, 6> st;
  for (int i = 0; i < 6; ++i) st[i] = static_cast<uint64_t>(rng[i]);
  impl->rng.set_state(st);
  return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

const MindWeights& Trainer::weights() const {
  impl_->adam.flush(impl_->weights, impl_->threads);  // apply deferred updates (exact)
  return impl_->weights;
}
const Config& Trainer::config() const { return impl_->config; }
int Trainer::epochs_done() const { return impl_->epochs_done; }
int64_t Trainer::steps_done() const { return impl_->steps_done; }

}  // namespace mindrec
