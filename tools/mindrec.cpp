// `mindrec`: the command-line front end of the library.
//   mindrec init  --config C.yaml --out W.safetensors [--seed S]
//   mindrec infer --config C.yaml --weights W.safetensors --data VALID --out U.npy
// Every error ends the program with one line "mindrec: error: ..." and a non-zero status.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <vector>

#include "mindrec/mindrec.hpp"

namespace {

struct InitArgs {
  std::string config, out;
  std::optional<uint64_t> seed;
};

struct InferArgs {
  std::string config, weights, data, out;
  int threads = -1;
};

int run_init(const InitArgs& a) {
  const mindrec::Config cfg = mindrec::load_config(a.config);
  const uint64_t seed = a.seed.value_or(cfg.runner.seed);
  const auto w = mindrec::init_weights(cfg.hyper_parameters, seed);
  mindrec::save_weights(a.out, w);
  const auto& m = cfg.hyper_parameters;
  std::printf("wrote %s: random MIND weights (seed %llu): %lld items x %d dims, K=%d, L=%d, "
              "softmax over %s, relu_layer=%s, dynamic_k=%s\n",
              a.out.c_str(), static_cast<unsigned long long>(seed),
              static_cast<long long>(m.item_count), m.embedding_dim, m.capsule.max_k, m.maxlen,
              mindrec::to_string(m.capsule.softmax_axis), m.capsule.relu_layer ? "true" : "false",
              m.capsule.dynamic_k ? "true" : "false");
  return 0;
}

int run_infer(const InferArgs& a) {
  const mindrec::Config cfg = mindrec::load_config(a.config);
  const auto& mc = cfg.hyper_parameters;
  mindrec::MindModel model(mindrec::load_weights(a.weights, mc));
  const mindrec::EvalSet set = mindrec::read_eval_data(a.data, mc.item_count);
  const int64_t U = set.num_users();
  const int K = mc.capsule.max_k, H = mc.hidden_size, L = mc.maxlen;
  const int threads = a.threads >= 0 ? a.threads : cfg.runner.threads;
  const int64_t batch = cfg.runner.infer_batch_size;

  std::vector<float> out(size_t(U) * K * H);
  std::vector<int32_t> counts(U);
  std::vector<int64_t> ids(size_t(batch) * L);
  std::vector<int32_t> lens(batch);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < U; first += batch) {
    const int64_t n = std::min(batch, U - first);
    mindrec::pack_histories(set.hist_offsets, set.hist_items, first, n, L, ids.data(),
                            lens.data());
    model.extract_interests(ids.data(), lens.data(), n, out.data() + size_t(first) * K * H,
                            counts.data() + first, threads);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  mindrec::write_npy(a.out, {U, K, H}, out.data());

  // Summary: per interest slot, how many users have it and the mean norm of the vectors.
  std::printf("interests of %lld users from %s -> %s [%lld, %d, %d] float32\n",
              static_cast<long long>(U), a.data.c_str(), a.out.c_str(),
              static_cast<long long>(U), K, H);
  std::printf("%-9s %8s %11s %11s %11s\n", "interest", "users", "mean_norm", "min_norm",
              "max_norm");
  for (int k = 0; k < K; ++k) {
    int64_t users = 0;
    double sum = 0, mn = INFINITY, mx = 0;
    for (int64_t u = 0; u < U; ++u) {
      if (counts[u] <= k) continue;
      double n2 = 0;
      for (int h = 0; h < H; ++h) {
        const double x = out[(size_t(u) * K + k) * H + h];
        n2 += x * x;
      }
      const double nrm = std::sqrt(n2);
      ++users;
      sum += nrm;
      mn = std::min(mn, nrm);
      mx = std::max(mx, nrm);
    }
    std::printf("%-9d %8lld %11.5f %11.5f %11.5f\n", k, static_cast<long long>(users),
                users ? sum / users : 0.0, users ? mn : 0.0, mx);
  }
  std::printf("extracted in %.3f ms (%.0f users/s, %d thread(s))\n", secs * 1e3,
              secs > 0 ? U / secs : 0.0, mindrec::resolve_threads(threads));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mindrec: MIND multi-interest candidate generation, in-process"};
  app.set_version_flag("--version", MINDREC_VERSION_STRING);
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("mindrec: error: ") + e.what() + " (see --help)\n";
  });
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log progress and ignored config keys");

  InitArgs init;
  auto* ci = app.add_subcommand("init", "write random initial weights (seeded) for a config");
  ci->add_option("--config", init.config, "YAML config (PaddleRec shape)")->required()->check(CLI::ExistingFile);
  ci->add_option("--out", init.out, "weights file to write (.safetensors)")->required();
  ci->add_option("--seed", init.seed, "random seed (default: runner.seed)");

  InferArgs infer;
  auto* cf = app.add_subcommand("infer", "extract users' interest vectors into a .npy file");
  cf->add_option("--config", infer.config, "YAML config")->required()->check(CLI::ExistingFile);
  cf->add_option("--weights", infer.weights, "weights file (.safetensors)")->required()->check(CLI::ExistingFile);
  cf->add_option("--data", infer.data, "validation/test file or folder (slot:value format)")->required()->check(CLI::ExistingPath);
  cf->add_option("--out", infer.out, "output .npy, float32 [users, max_k, hidden_size]")->required();
  cf->add_option("--threads", infer.threads, "threads (default runner.threads; 0 = all cores)")->check(CLI::NonNegativeNumber);

  CLI11_PARSE(app, argc, argv);
  mindrec::set_log_level(verbose ? mindrec::LogLevel::info : mindrec::LogLevel::warn);
  try {
    if (*ci) return run_init(init);
    if (*cf) return run_infer(infer);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mindrec: error: %s\n", e.what());
    return 1;
  }
  return 2;
}
