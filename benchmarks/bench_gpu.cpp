// Interest extraction on the GPU against the CPU, same process, same model and histories
// (Amazon Books shape: 367,983 items, D = H = 64, K = 4, L = 20, 3 routing iterations, ReLU
// layer): users/s at batch 1, 1,024 and 65,536, and the GPU's share of its FP32 peak. The
// API is host in, host out, so GPU times include the copies of histories and interests.
//   bench_gpu [--reps R]        (prints a markdown table; exit 77 without a device)
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "detail/random.hpp"
#include "mindrec/device.hpp"
#include "mindrec/model.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/version.hpp"

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds per call of fn over reps calls (after one warm-up call).
template <class Fn>
double median_time(int reps, Fn&& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    fn();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  if (mindrec::cuda_device_count() == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  mindrec::ModelConfig c;  // defaults: the Amazon Books shape
  c.neg_samples = 10;
  const mindrec::MindWeights w = mindrec::init_weights(c, 1);
  const mindrec::MindModel cpu(w), gpu(w, mindrec::Device::cuda);
  const int L = c.maxlen, K = c.capsule.max_k, H = c.hidden_size, iters = c.capsule.iters;
  // FLOPs per user with n = L behaviours: read-outs 2KLH per iteration, logit updates 2KLH per
  // iteration but the last, squash ~3KH per iteration, ReLU layer 2KH^2 + KH.
  const double flops = double(iters) * 2 * K * L * H + double(iters - 1) * 2 * K * L * H +
                       double(iters) * 3 * K * H + 2.0 * K * H * H + K * H;
  int dev = 0, sms = 0, clock_khz = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev);
  const double peak = double(sms) * 128 * 2 * clock_khz * 1e3;  // 128 FP32 lanes per SM (sm_80/90)
  std::printf("device: %s; FP32 peak %.1f TFLOP/s; %.0f FLOPs per user\n",
              mindrec::cuda_device_description(0).c_str(), peak / 1e12, flops);
  std::printf("| interest extraction | batch | GPU users/s | CPU users/s | GPU/CPU | GPU %% of FP32 peak |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  mindrec::detail::Rng rng(3);
  for (const int64_t B : {int64_t(1), int64_t(1024), int64_t(65536)}) {
    std::vector<int64_t> hist(size_t(B) * L);
    std::vector<int32_t> len(B, L);
    for (auto& h : hist) h = 1 + int64_t(rng.below(c.item_count - 1));
    std::vector<float> out(size_t(B) * K * H);
    const int r = B >= 65536 ? std::max(3, reps / 4) : reps;
    const double tg = median_time(r, [&] { gpu.extract_interests(hist.data(), len.data(), B, out.data()); });
    const double tc = median_time(std::max(3, B >= 65536 ? 3 : r), [&] {
      cpu.extract_interests(hist.data(), len.data(), B, out.data());
    });
    std::printf("| Amazon Books shape | %lld | %.3g | %.3g | %.1fx | %.2f%% |\n", static_cast<long long>(B),
                double(B) / tg, double(B) / tc, tc / tg, 100.0 * double(B) * flops / tg / peak);
  }

  // Merged multi-interest top-50 over all 367,982 item vectors: cuda:flat (GEMM + device
  // top-k + device merge) against the CPU flat store, same users, same run.
  auto gpu_store = mindrec::build_item_store(cpu, "cuda:flat");
  auto cpu_store = mindrec::build_item_store(cpu, "flat");
  mindrec::RecallOptions opt;
  opt.topn = 50;
  std::printf("\n| merged top-50 over %lld items | batch | cuda:flat users/s | CPU flat users/s | GPU/CPU | cuda:flat latency ms |\n",
              static_cast<long long>(c.item_count - 1));
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (const int64_t B : {int64_t(1), int64_t(4096)}) {
    std::vector<int64_t> hist(size_t(B) * L), ids(size_t(B) * 50);
    std::vector<int32_t> len(B, L);
    std::vector<float> sc(size_t(B) * 50);
    for (auto& h : hist) h = 1 + int64_t(rng.below(c.item_count - 1));
    const double tg = median_time(B == 1 ? reps : 3, [&] {
      mindrec::recall_items(gpu, *gpu_store, hist.data(), len.data(), B, opt, ids.data(), sc.data());
    });
    const double tc = median_time(B == 1 ? reps : 1, [&] {
      mindrec::recall_items(cpu, *cpu_store, hist.data(), len.data(), B, opt, ids.data(), sc.data());
    });
    std::printf("| cuda:flat vs flat | %lld | %.3g | %.3g | %.1fx | %.3f |\n", static_cast<long long>(B),
                double(B) / tg, double(B) / tc, tc / tg, tg * 1e3);
  }
#if MINDREC_HAS_FAISS_GPU
  // Faiss GPU flat search of all K interests, then the host-side merge (recall_items' path
  // for a store without a fused search): the baseline cuda:flat is meant to beat.
  auto faiss_store = mindrec::build_item_store(cpu, "faiss-gpu:Flat");
  for (const int64_t B : {int64_t(1), int64_t(4096)}) {
    std::vector<int64_t> hist(size_t(B) * L), ids(size_t(B) * 50);
    std::vector<int32_t> len(B, L);
    std::vector<float> sc(size_t(B) * 50);
    for (auto& h : hist) h = 1 + int64_t(rng.below(c.item_count - 1));
    const double tf = median_time(B == 1 ? reps : 3, [&] {
      mindrec::recall_items(gpu, *faiss_store, hist.data(), len.data(), B, opt, ids.data(), sc.data());
    });
    const double tg = median_time(B == 1 ? reps : 3, [&] {
      mindrec::recall_items(gpu, *gpu_store, hist.data(), len.data(), B, opt, ids.data(), sc.data());
    });
    std::printf("| faiss-gpu:Flat + host merge vs cuda:flat | %lld | %.3g | (cuda:flat %.3g) | cuda:flat %.2fx | %.3f |\n",
                static_cast<long long>(B), double(B) / tf, double(B) / tg, tf / tg, tf * 1e3);
  }
#else
  std::printf("| faiss-gpu:Flat | - | not built: no GPU-enabled Faiss (scripts/build-faiss-gpu.sh) | | | |\n");
#endif
  return 0;
}
