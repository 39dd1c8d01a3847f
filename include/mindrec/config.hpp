// Configuration: plain structs with validate(), in PaddleRec's YAML shape
// (`runner.*`, `hyper_parameters.*`). Only src/config.cpp sees YAML types.
//
// Defaults follow ../shared/docs/mind-spec.md (the Amazon Books recipe): D = H = 64,
// L = 20, K = 4, 3 routing iterations, 1280 negatives, Adam lr 0.001, batches of 128.
#pragma once

#include <cstdint>
#include <string>

#include "mindrec/export.hpp"

namespace mindrec {

/// Which axis the routing softmax normalises over (spec, "Switches").
enum class SoftmaxAxis {
  interests,  ///< over k, in the loop and the read-out (PaddleRec release/2.3.0, ComiRec)
  behaviors,  ///< over l, with the update Δb[k,:] divided by max(‖Δb[k,:]‖₂, 1) (release/2.1-2.2)
  hybrid      ///< over l inside the loop, over k for the final read-out (PaddleRec master)
};

/// Label-aware attention read-out used in training.
enum class Readout { soft, hard };

/// How a user's interests are computed from its history (`hyper_parameters.extractor`).
enum class Extractor {
  capsule,        ///< MIND's dynamic routing (capsule.*), the default
  self_attention  ///< ComiRec-SA (Cen et al., KDD 2020): K attention heads over the history
};

struct MINDREC_API CapsuleConfig {
  int iters = 3;          ///< routing iterations (iters-1 updates, then the read-out)
  int max_k = 4;          ///< K, interests per user
  double init_std = 1.0;  ///< std of the Normal init of the routing logits
  SoftmaxAxis softmax_axis = SoftmaxAxis::interests;
  bool relu_layer = true;  ///< u_k = ReLU(v_k W + b) after squash
  bool dynamic_k = false;  ///< K'_u = max(1, min(K, floor(log2 n)))
  /// ComiRec-DR's routing (Cen et al., KDD 2020): interest k reads its own transform of the
  /// behaviours, û_{k,l} = e_l S_k (capsule.bilinear is then [D, K H], S_k its k-th block of H
  /// columns), instead of MIND's shared û_l = e_l S. With init_std 0 (ComiRec-DR's
  /// zero-initialised routing logits) the interests differ only through their transforms.
  bool per_interest_transform = false;
};

struct MINDREC_API OptimizerConfig {
  std::string class_name = "Adam";  ///< YAML key `class`; only Adam is implemented
  double learning_rate = 0.001;
  bool lazy = false;  ///< update moments only for rows touched by the batch
};

/// `hyper_parameters.loss`: the training loss beyond PaddleRec's sampled softmax (issue 29).
/// Training only: neither changes the model function, inference, the store or serving.
struct MINDREC_API LossConfig {
  /// REMI's interest-aware hard negatives (Xie et al., RecSys 2023): each sample's negatives
  /// are re-weighted by w_j = M softmax(beta a)_j over its M negatives' corrected logits a_j,
  /// the partition term becoming sum_j w_j exp(a_j) (gradients flow through the weights, as
  /// REMI's). 0 (default) = the plain sampled softmax.
  double hard_negative_beta = 0.0;
  /// The batch's targets join the sampled negatives (mixed negative sampling): an item's log-q
  /// correction is then that of the union, 1 - (1 - q_sampled)(1 - q_batch), q_batch being
  /// the chance that one of the batch's B targets is the item (its share of the training
  /// clicks). A sample's own target is masked as an accidental hit.
  bool in_batch_negatives = false;
  /// REMI's routing regulariser (its `rlambda`), for extractor self_attention: adds
  /// lambda Σ_users Σ_k (Σ_{l<L} (a_{k,l} - 1/L)² / H)² to the batch's mean loss, a_k being
  /// head k's attention over the L history positions (0 on padding), as REMI's code sums it
  /// over the batch: it penalises attention that piles onto one item. 0 (default) = off.
  double routing_regularization = 0.0;
};

/// `hyper_parameters.self_attention`: ComiRec-SA's extractor (extractor: self_attention).
/// With x_l = e_l + p_l (p: learnt position embeddings [L, D]), the attention of head k over
/// the n behaviours is a_k = softmax_l((tanh(X W1 + b1) W2)[:, k]) and interest k is
/// Σ_l a_{k,l} e_l (the item embeddings, without positions), as ComiRec's code; then
/// capsule.relu_layer's layer if set (ComiRec-SA has none: set it false). ComiRec's second
/// bias b2 is left out: it is constant over l, so the softmax over l cancels it exactly.
/// capsule.max_k is K; capsule.dynamic_k keeps the first K'_u heads; the routing settings
/// (iters, init_std, softmax_axis, per_interest_transform) do not apply.
struct MINDREC_API SelfAttentionConfig {
  int hidden = 0;  ///< columns of W1 (ComiRec: 4 D); 0 = 4 embedding_dim
};

/// `hyper_parameters`: everything that defines the model function and its training.
struct MINDREC_API ModelConfig {
  int64_t item_count = 367983;  ///< N; ids 1..N-1, 0 = padding
  int embedding_dim = 64;       ///< D
  int hidden_size = 64;         ///< H (must equal D: interests are matched with item rows)
  int maxlen = 20;              ///< L
  int neg_samples = 1280;
  double pow_p = 1.0;  ///< attention exponent; an integer >= 1 (spec: non-integers are NaN)
  Readout readout = Readout::soft;
  /// Normalised vectors with a temperature (the cosine sampled softmax): 0 (default) = MIND's
  /// dot products; tau > 0: item vectors, interests and the training read-out are scaled to
  /// unit length and the sampled softmax's logits are cos / tau. The weights file then holds
  /// unit item rows (save_weights normalises them), so the store, retrieval and the merge of
  /// the K interests rank by cosine; the CPU model normalises the interests it returns.
  double cosine_temperature = 0.0;
  OptimizerConfig optimizer;
  Extractor extractor = Extractor::capsule;
  CapsuleConfig capsule;
  SelfAttentionConfig self_attention;
  LossConfig loss;

  /// Throws ConfigError naming the key path of the first invalid field.
  void validate() const;
  /// Columns of capsule.bilinear: H, or K H with capsule.per_interest_transform.
  int bilinear_columns() const { return capsule.per_interest_transform ? capsule.max_k * hidden_size : hidden_size; }
  /// Columns of self_attention.w1 (A): self_attention.hidden, or 4 D when it is 0.
  int attention_hidden() const { return self_attention.hidden > 0 ? self_attention.hidden : 4 * embedding_dim; }
  bool capsule_extractor() const { return extractor == Extractor::capsule; }
  bool cosine() const { return cosine_temperature > 0.0; }
};

/// `runner`: data locations and the training/inference loop.
struct MINDREC_API RunnerConfig {
  std::string train_data_dir;  ///< a file or a folder of files (resolved absolute)
  std::string test_data_dir;
  int train_batch_size = 128;
  int infer_batch_size = 128;
  int epochs = 50;
  int batches_per_epoch = 1000;
  int print_interval = 100;
  std::string model_save_path = "output_model_mind";
  uint64_t seed = 2021;
  int threads = 0;  ///< 0 = all hardware threads
  /// Early stopping (ComiRec's): training stops after this many evaluated epochs in a row
  /// without a better validation Recall@50 than the best so far; 0 (default) = never.
  int patience = 0;

  void validate() const;
};

struct MINDREC_API Config {
  RunnerConfig runner;
  ModelConfig hyper_parameters;
  std::string source;  ///< file the config was read from ("" if built in code)

  void validate() const;
};

/// Reads a YAML config. Unknown keys and wrong types are refused with the key path;
/// relative paths in `runner` are resolved against the config file's folder.
/// Throws IoError (unreadable file) or ConfigError.
MINDREC_API Config load_config(const std::string& path);

/// Reads only the `hyper_parameters` of a YAML config, checked as load_config checks them;
/// every other section is ignored (a PaddleRec config's `runner` has keys of its own).
/// Throws IoError or ConfigError.
MINDREC_API ModelConfig load_model_config(const std::string& path);

/// Parses YAML text; `base_dir` resolves relative paths, `source` names it in errors.
MINDREC_API Config parse_config(const std::string& yaml_text, const std::string& base_dir,
                    const std::string& source);

/// Compact JSON of the model-defining fields, stored in the weights file's `__metadata__`.
MINDREC_API std::string model_config_to_json(const ModelConfig& cfg);
/// Inverse of model_config_to_json; unknown or missing fields throw FormatError naming `source`.
MINDREC_API ModelConfig model_config_from_json(const std::string& json, const std::string& source);

/// Throws ConfigError naming every model-defining field (shapes and the routing function)
/// where `a` (from the config file) and `b` (from the weights) differ.
MINDREC_API void check_same_model(const ModelConfig& config, const ModelConfig& weights,
                      const std::string& weights_source);

MINDREC_API const char* to_string(SoftmaxAxis axis);
MINDREC_API const char* to_string(Readout readout);
MINDREC_API const char* to_string(Extractor extractor);

/// mindrec's thread policy, the one place it is decided. Every `threads` argument and
/// `runner.threads` take a count; 0 (the default) means default_threads(), evaluated on the
/// calling thread at each call, as Faiss does:
///   1. OMP_NUM_THREADS, if the environment sets it (its first value);
///   2. else what the calling thread last gave omp_set_num_threads(), if it did;
///   3. else the CPUs this process may run on (sched_getaffinity);
///   and, when OMP_NUM_THREADS is unset, at most the process's cgroup CPU quota rounded up
///   (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us).
/// OpenMP may still grant a smaller team (OMP_THREAD_LIMIT, nesting, omp_set_dynamic): every
/// computation gives the same results whatever team it gets. mindrec-serve gives each HTTP
/// worker one compute thread (workers default to default_threads()).
MINDREC_API int default_threads();
/// `requested` if > 0, else default_threads().
MINDREC_API int resolve_threads(int requested);

}  // namespace mindrec
