// Scale benchmark helpers for benchmarks/bench_scale.sh (issue 11): synthetic weights and
// click logs of any size, the click-log load (speed, resident bytes per click) followed by a
// few training batches, and single-user recall latency with the flat store at 1 and 2 scan
// threads. Memory is read from /proc/self/status (VmRSS now, VmHWM peak).
//
//   bench_scale gen-weights --items N [--dim 64] [--noise S] --out W.safetensors --config-out C.yaml
//                          (--noise: clustered item vectors, synthetic_items.hpp; 1.5 = the
//                          diffuse set of ann_target.sh; without it the weights are init_weights')
//   bench_scale load --index F [--repeat 3]  (store load: GB/s of the file, from the page cache
//                          and after evicting the file from it with posix_fadvise DONTNEED)
//   bench_scale gen-clicks --lines N --users U --items I --out clicks.txt
//   bench_scale load-clicks --data clicks.txt --items I [--train-batches B]
//   bench_scale recall --config C.yaml --weights W --index F [--requests R]
//   bench_scale catalogue --items N --out catalogue.csv  (raw ids of 10-16 bytes: write, load,
//                          bytes per item beyond the raw ids, raw -> dense of 20-item histories)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
#include "mindrec/catalogue.hpp"
#include "mindrec/config.hpp"
#include "mindrec/data.hpp"
#include "mindrec/model.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/train.hpp"
#include "mindrec/vector_store.hpp"
#include "mindrec/weights.hpp"
#include "synthetic_items.hpp"

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
  mindrec::Config c = scale_config(items, dim);
  const bool clustered = a.kv.count("noise") > 0;
  if (clustered) c.hyper_parameters.capsule.relu_layer = false;
  const auto t0 = Clock::now();
  {
    mindrec::MindWeights w = mindrec::init_weights(c.hyper_parameters, 1);
    if (clustered) {
      mindrec::detail::Rng rng(42);
      mindrec::bench::make_clustered_items(w, c.hyper_parameters, std::stof(a.str("noise")), rng);
    }
    mindrec::save_weights(a.str("out"), w);
  }
  std::ofstream(a.str("config-out")) << "# written by bench_scale gen-weights\n"
                                     << "runner:\n  train_batch_size: 128\n  seed: 2021\n"
                                     << "hyper_parameters:\n  item_count: " << items
                                     << "\n  embedding_dim: " << dim << "\n  hidden_size: " << dim
                                     << "\n  neg_samples: 128\n"
                                     << (clustered ? "  capsule:\n    relu_layer: false\n" : "");
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

// Loads a store file `repeat` times from the page cache (the file read through it first) and
// `repeat` times after evicting it
// (posix_fadvise DONTNEED: the next read goes to the disk, no root needed); prints GB/s of the
// file's bytes, the best of each. Last line: load_gb_per_s_cached=A load_gb_per_s_evicted=B.
int load(const Args& a) {
  const std::string path = a.str("index");
  const int repeat = int(a.num("repeat", "3"));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
  const double gb = double(st.st_size) / 1e9;
  auto evict = [&] {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error("cannot open " + path);
    ::fdatasync(fd);
    const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    if (err != 0) throw std::runtime_error("posix_fadvise(DONTNEED) on " + path + " failed: the evicted loads would be cached ones");
  };
  // The cached loads' file read into the page cache first, through it: the loader itself
  // reads what is not cached with O_DIRECT, which leaves nothing there.
  auto warm = [&] {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> block(size_t(16) << 20);
    while (in.read(block.data(), std::streamsize(block.size())) || in.gcount() > 0) {
    }
  };
  double best[2] = {1e30, 1e30};
  int64_t n = 0;
  std::string backend;
  warm();
  for (int evicted : {0, 1})
    for (int r = 0; r < repeat + (evicted ? 0 : 1); ++r) {  // the first cached load warms the rest
      if (evicted) evict();
      const auto t0 = Clock::now();
      auto store = mindrec::load_vector_store(path);
      const double s = since(t0);
      n = store->size();
      backend = store->backend();
      if (evicted || r > 0) best[evicted] = std::min(best[evicted], s);
    }
  std::printf("load %s (%lld vectors, %.2f GB): %.3f s from the page cache (%.2f GB/s), %.3f s evicted (%.2f GB/s); "
              "best of %d\n",
              backend.c_str(), static_cast<long long>(n), gb, best[0], gb / best[0], best[1], gb / best[1], repeat);
  std::printf("load_gb_per_s_cached=%.3f load_gb_per_s_evicted=%.3f\n", gb / best[0], gb / best[1]);
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

// A catalogue of N raw ids of 10-16 bytes ("SKU" + base-36 digits, distinct by construction):
// written, loaded (time, resident bytes per item beyond the raw ids' own bytes: by the process's
// RSS and by the catalogue's own accounting), and the cost of translating 20-item histories.
int catalogue(const Args& a) {
  const int64_t n = a.num("items");
  const std::string out = a.str("out");
  mindrec::detail::Rng rng(7);
  auto t0 = Clock::now();
  int64_t raw_bytes = 0;
  {
    std::ofstream o(out, std::ios::binary);
    o << "id,raw_id,status,clicks\n";
    std::string line, raw;
    for (int64_t id = 1; id <= n; ++id) {
      raw = "SKU";
      for (uint64_t v = uint64_t(id) * 2654435761ull % 4000000000000ull + 1000000000000ull; v; v /= 36)
        raw += "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[v % 36];
      raw.append(size_t(rng.below(6)), 'X');  // 11-16 bytes (3 + 8 digits + 0-5)
      raw_bytes += int64_t(raw.size());
      line = std::to_string(id) + "," + raw + ",active," + std::to_string(rng.below(1000)) + "\n";
      o << line;
    }
  }
  std::printf("wrote %lld raw ids (%.1f bytes each on average) in %.1f s\n", static_cast<long long>(n),
              double(raw_bytes) / double(n), since(t0));
  const double rss0 = status_kb("VmRSS");
  t0 = Clock::now();
  const mindrec::Catalogue c = mindrec::Catalogue::load(out);
  const double load_s = since(t0);
  const double rss1 = status_kb("VmRSS");
  const double per_item_rss = ((rss1 - rss0) * 1024 - double(raw_bytes)) / double(n);
  const double per_item_own = double(c.overhead_bytes()) / double(n);
  double huge_kb = 0;
  {
    std::ifstream in("/proc/self/smaps_rollup");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("AnonHugePages:", 0) == 0) huge_kb = std::atof(line.c_str() + 14);
  }
  std::printf("catalogue load: %.2f s (%.1f M items/s); %.0f MB of the process on huge pages\n", load_s,
              double(n) / load_s / 1e6, huge_kb / 1024);
  std::printf("catalogue bytes/item beyond the raw ids: %.1f (process RSS), %.1f (own accounting) (target <= 48)\n",
              per_item_rss, per_item_own);
  // 20-item histories of raw ids, each history's ids back to back in one buffer as a request
  // body holds them (views into it, as a parser makes them); 1M ids: far more than the caches
  // hold, as in a service.
  const int H = 20, R = 200000;
  const int distinct = std::getenv("DISTINCT") ? std::atoi(std::getenv("DISTINCT")) : 50000;
  std::string body;
  std::vector<std::string_view> all(size_t(H) * distinct);
  std::vector<size_t> at(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    at[i] = body.size();
    body += c.to_raw(1 + int64_t(rng.below(uint64_t(n))));
    body += ',';
  }
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = std::string_view(body.data() + at[i], (i + 1 < all.size() ? at[i + 1] : body.size()) - at[i] - 1);
  std::vector<int64_t> dense(H);
  int64_t check = 0, check1 = 0;
  // As the edges translate a history (one batch), and id by id (for comparison). Each history
  // is read once before its lookup is timed: a server translates the ids its parser has just
  // written, so the request's bytes are in the cache and the lookup's own reads are what counts.
  auto touch = [&](const std::string_view* row) {
    unsigned sum = 0;
    for (int i = 0; i < H; ++i) sum += static_cast<unsigned char>(row[i][0]) + unsigned(row[i].size());
    return sum;
  };
  unsigned touched = 0;
  double timed = 0;
  for (int r = 0; r < R; ++r) {
    const std::string_view* row = all.data() + size_t((int64_t(r) * 7919) % distinct) * H;
    touched += touch(row);
    const auto t = Clock::now();
    c.to_dense(row, H, dense.data());
    timed += since(t);
    check += dense[size_t(r % H)];
  }
  const double us = timed / R * 1e6;
  timed = 0;
  for (int r = 0; r < R; ++r) {
    const std::string_view* row = all.data() + size_t((int64_t(r) * 7919) % distinct) * H;
    touched += touch(row);
    const auto t = Clock::now();
    for (int i = 0; i < H; ++i) dense[size_t(i)] = c.to_dense(row[i]);
    timed += since(t);
    check1 += dense[size_t(r % H)];
  }
  const double us1 = timed / R * 1e6;
  if (touched == 0) std::printf(" ");
  if (check != check1) throw std::runtime_error("batched and single lookups differ");
  std::printf("raw -> dense of a 20-item history: %.3f us (target < 2); one id at a time: %.3f us [checksum %lld]\n", us,
              us1, static_cast<long long>(check));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_scale gen-weights|gen-clicks|load-clicks|recall|load|catalogue --key value ...\n");
    return 2;
  }
  try {
    const Args a(argc, argv);
    const std::string cmd = argv[1];
    if (cmd == "gen-weights") return gen_weights(a);
    if (cmd == "gen-clicks") return gen_clicks(a);
    if (cmd == "load-clicks") return load_clicks(a);
    if (cmd == "recall") return recall(a);
    if (cmd == "load") return load(a);
    if (cmd == "catalogue") return catalogue(a);
    std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_scale: %s\n", e.what());
    return 1;
  }
}
