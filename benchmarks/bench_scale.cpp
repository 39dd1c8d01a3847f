// Scale benchmark helpers for benchmarks/bench_scale.sh (issue 11): synthetic weights and
// click logs of any size, the click-log load (speed, resident bytes per click) followed by a
// few training batches, and single-user recall latency with the flat store at 1 and 2 scan
// threads. Memory is read from /proc/self/status (VmRSS now, VmHWM peak).
//
//   bench_scale gen-weights --items N [--dim 64] --out W.safetensors --config-out C.yaml
//   bench_scale gen-clicks --lines N --users U --items I --out clicks.txt
//   bench_scale load-clicks --data clicks.txt --items I [--train-batches B]
//   bench_scale recall --config C.yaml --weights W --index F [--requests R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <map>
#include <string>
#include <vector>

#include "detail/random.hpp"
#include "mindrec/config.hpp"
#include "mindrec/data.hpp"
#include "mindrec/model.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/train.hpp"
#include "mindrec/vector_store.hpp"
#include "mindrec/weights.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// kB of a /proc/self/status field ("VmRSS", "VmHWM").
double status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atof(line.c_str() + key.size());
  return 0;
}

struct Args {
  std::map<std::string, std::string> kv;
  Args(int argc, char** argv) {
    for (int i = 2; i + 1 < argc; i += 2) {
      if (std::strncmp(argv[i], "--", 2) != 0) throw std::runtime_error(std::string("bad argument ") + argv[i]);
      kv[argv[i] + 2] = argv[i + 1];
    }
  }
  std::string str(const char* k, const char* def = nullptr) const {
    auto it = kv.find(k);
    if (it != kv.end()) return it->second;
    if (!def) throw std::runtime_error(std::string("missing --") + k);
    return def;
  }
  int64_t num(const char* k, const char* def = nullptr) const { return std::atoll(str(k, def).c_str()); }
};

mindrec::Config scale_config(int64_t items, int dim) {
  mindrec::Config c;
  c.hyper_parameters.item_count = items;
  c.hyper_parameters.embedding_dim = dim;
  c.hyper_parameters.hidden_size = dim;
  c.hyper_parameters.neg_samples = 128;
  c.runner.train_batch_size = 128;
  c.runner.epochs = 1;
  c.runner.seed = 2021;
  return c;
}

int gen_weights(const Args& a) {
  const int64_t items = a.num("items");
  const int dim = int(a.num("dim", "64"));
  const mindrec::Config c = scale_config(items, dim);
  const auto t0 = Clock::now();
  mindrec::save_weights(a.str("out"), mindrec::init_weights(c.hyper_parameters, 1));
  std::ofstream(a.str("config-out")) << "# written by bench_scale gen-weights\n"
                                     << "runner:\n  train_batch_size: 128\n  seed: 2021\n"
                                     << "hyper_parameters:\n  item_count: " << items
                                     << "\n  embedding_dim: " << dim << "\n  hidden_size: " << dim
                                     << "\n  neg_samples: 128\n";
  std::printf("wrote %lld x %d weights in %.1f s\n", static_cast<long long>(items), dim, since(t0));
  return 0;
}

// Sorted by user (as PaddleRec and `mindrec prepare` write logs): user u has about
// lines/users clicks, order 0..m-1, items uniform in [1, items).
int gen_clicks(const Args& a) {
  const int64_t lines = a.num("lines"), users = a.num("users"), items = a.num("items");
  std::FILE* f = std::fopen(a.str("out").c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + a.str("out"));
  mindrec::detail::Rng rng(7);
  std::vector<char> buf(size_t(1) << 22);
  size_t used = 0;
  auto put_num = [&](int64_t v, char end) {
    char tmp[24];
    int n = 0;
    do tmp[n++] = char('0' + v % 10), v /= 10; while (v);
    while (n) buf[used++] = tmp[--n];
    buf[used++] = end;
  };
  const auto t0 = Clock::now();
  for (int64_t u = 0; u < users; ++u) {
    const int64_t m = lines / users + (u < lines % users ? 1 : 0);
    for (int64_t j = 0; j < m; ++j) {
      if (used > buf.size() - 80) {
        std::fwrite(buf.data(), 1, used, f);
        used = 0;
      }
      put_num(u, ',');
      put_num(1 + int64_t(rng.next() % uint64_t(items - 1)), ',');
      put_num(j, '\n');
    }
  }
  std::fwrite(buf.data(), 1, used, f);
  std::fclose(f);
  std::printf("wrote %lld clicks of %lld users in %.1f s\n", static_cast<long long>(lines),
              static_cast<long long>(users), since(t0));
  return 0;
}

int load_clicks(const Args& a) {
  const double rss0 = status_kb("VmRSS");
  const auto t0 = Clock::now();
  const mindrec::ClickLog log = mindrec::read_train_data(a.str("data"), a.num("items"));
  const double secs = since(t0);
  const double rss1 = status_kb("VmRSS"), hwm = status_kb("VmHWM");
  const double clicks = double(log.num_clicks());
  std::printf("click log: %.0f clicks, %lld users in %.2f s: %.2f M clicks/s (target >= 5)\n", clicks,
              static_cast<long long>(log.num_users()), secs, clicks / secs / 1e6);
  std::printf("click log resident: %.2f bytes/click after loading (target <= 12), %.2f at the peak while loading\n",
              (rss1 - rss0) * 1024 / clicks, (hwm - rss0) * 1024 / clicks);
  const int64_t batches = a.num("train-batches", "0");
  if (batches > 0) {
    mindrec::Config c = scale_config(a.num("items"), 64);
    c.runner.batches_per_epoch = batches;
    c.runner.threads = 0;
    mindrec::Trainer trainer(c, log, mindrec::init_weights(c.hyper_parameters, 2021));
    const auto t1 = Clock::now();
    const mindrec::EpochStats s = trainer.train_epoch();
    std::printf("training on it: %lld batches of 128 in %.1f s (%.0f samples/s), mean loss %.4f\n",
                static_cast<long long>(batches), since(t1), s.samples_per_s, s.loss);
  }
  return 0;
}

int recall(const Args& a) {
  const mindrec::Config cfg = mindrec::load_config(a.str("config"));
  mindrec::MindModel model(mindrec::load_weights(a.str("weights"), cfg.hyper_parameters));
  auto store = mindrec::load_vector_store(a.str("index"));
  std::printf("loaded %lld vectors; resident %.2f GB, peak %.2f GB\n", static_cast<long long>(store->size()),
              status_kb("VmRSS") * 1024 / 1e9, status_kb("VmHWM") * 1024 / 1e9);
  const int requests = int(a.num("requests", "20"));
  const int64_t n = cfg.hyper_parameters.item_count;
  mindrec::detail::Rng rng(3);
  std::vector<std::vector<int64_t>> hists(static_cast<size_t>(requests));
  for (auto& h : hists)
    for (int j = 0; j < 20; ++j) h.push_back(1 + int64_t(rng.next() % uint64_t(n - 1)));
  mindrec::RecallOptions opt;
  opt.topn = 50;
  opt.threads = 1;
  // 1 and 2 scan threads alternate request by request, so drift on a shared VM (other
  // tenants, page cache, clock) lands on both alike.
  std::vector<double> ms[3];
  std::vector<int64_t> first;
  for (int r = 0; r < requests; ++r) {
    for (int threads : {1, 2}) {
      store->set_search_param("threads", threads);
      const auto t0 = Clock::now();
      const auto res = mindrec::recall_histories(model, *store, {hists[size_t(r)]}, opt);
      ms[threads].push_back(since(t0) * 1e3);
      if (threads == 1) first = res.ids;
      else if (res.ids != first) throw std::runtime_error("2 scan threads returned other items than 1");
    }
  }
  double p50[3] = {0, 0, 0};
  for (int threads : {1, 2}) {
    std::sort(ms[threads].begin(), ms[threads].end());
    p50[threads] = ms[threads][ms[threads].size() / 2];
    std::printf("single-user recall (history of 20 -> merged top-50), flat, %d scan thread(s): p50 %.1f ms, min %.1f ms\n",
                threads, p50[threads], ms[threads].front());
  }
  std::printf("2 threads / 1 thread: %.2fx (target <= 0.60x)\n", p50[2] / p50[1]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_scale gen-weights|gen-clicks|load-clicks|recall --key value ...\n");
    return 2;
  }
  try {
    const Args a(argc, argv);
    const std::string cmd = argv[1];
    if (cmd == "gen-weights") return gen_weights(a);
    if (cmd == "gen-clicks") return gen_clicks(a);
    if (cmd == "load-clicks") return load_clicks(a);
    if (cmd == "recall") return recall(a);
    std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_scale: %s\n", e.what());
    return 1;
  }
}
