// Vector-store benchmark (issue: candidate generation): item vectors 367,983 x 64, synthetic
// with clustered structure; for each backend the build time, resident memory, ANN recall of
// the merged multi-interest top-50 against the exact flat store, batched throughput (users/s,
// all threads) and single-user end-to-end latency (history -> interests -> merged top-50) on
// one thread, p50 and p99.
//   bench_store [--items N] [--users U] [--noise S] [--backends flat,faiss:Flat,...]
//               [--search-only [--unfused]] [--export DIR] [--rerank R] [--index-cache DIR]
//               [--truth-cache DIR]
//   bench_store [--items N] [--noise S] --memory SPEC [--save FILE]    (one store's memory)
//   bench_store --load FILE                                            (in a fresh process)
//   bench_store [--items N] [--noise S] --exact-scan   (the flat scan: batch invariant vs GEMM)
// --index-cache DIR: a store built for a backend is saved there (named by backend, items and
// noise) and loaded instead of built by later runs (for sweeping search parameters).
// --truth-cache DIR: the exact top-50 of every user saved there (named by items, users and
// noise; raw int64) and read by later runs instead of computed.
// --rerank R: each interest fetches R x 50 candidates, scored again exactly against the item
// vectors before the merge (RecallOptions::rerank; for 8-bit stores such as IVF4096,SQ8).
// --search-only times what an ANN library is compared on: the user's K interest searches and
// the merge, from interests computed beforehand (no history -> interests step). A store with
// a fused multi-interest search (cuda:flat) answers the user in one
// call, as recall_items does; --unfused adds for each such store a row "SPEC [K searches]"
// timing the K separate searches + merge on the same store (the baseline of the fused path).
// --export DIR writes the data for benchmarks/ann_peers.py: items.npy [items-1, 64] (row r is
// item r+1), interests.npy [users, K, 64], counts.npy [users] and exact.npy [users, 50] (the
// exact merged top-50 ids; counts and ids as float32, exact below 2^24).
// Recall is always measured against the exact `flat` store, computed once before the table.
// --noise is the within-cluster spread relative to the spread of the 2,000 cluster centres
// (0.6: well separated topics; 1.5: diffuse, much harder for IVF and HNSW).
#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "detail/random.hpp"
#include "detail/simd.hpp"
#include "mindrec/npy.hpp"
#include "mindrec/topk.hpp"
#include "mindrec/retriever.hpp"
#include "store/backends.hpp"
#include "store/topk_select.hpp"
#include "synthetic_items.hpp"

namespace {

double rss_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return double(resident) * 4096.0 / (1 << 20);
}

// Anonymous memory on transparent huge pages (MiB), from /proc/self/smaps_rollup.
double anon_huge_mib() {
  std::ifstream f("/proc/self/smaps_rollup");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("AnonHugePages:", 0) == 0) return std::atof(line.c_str() + 14) / 1024.0;
  return 0;
}

// Peak resident memory (MiB), reset to the current RSS by reset_peak().
double peak_mib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}
void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// --exact-scan: the flat store's exact top-50 scan, batch-invariant row kernel (exact_topk,
// what the store runs) against Eigen's products (store::exact_topk_gemm: a matrix-vector
// product per query up to 8 queries, a GEMM per 64 above; the scan before issue 30), on the
// same table and queries, for 1, 16 and 1,024 users of 4 interests on 1 and 2 threads; best of
// a few calls each, the two paths alternated. Then how many of 256 users get other score bits
// alone than inside the batch of 1,024, per path.
int exact_scan_table(const float* base, int64_t nb, int d, mindrec::detail::Rng& rng) {
  const int k = 50, K = 4;
  const int64_t most = 1024 * K;
  std::vector<float> q(size_t(most) * size_t(d));
  for (auto& x : q) x = float(rng.uniform() - 0.5);
  std::vector<int64_t> ids(size_t(most) * k);
  std::vector<float> sc(size_t(most) * k);
  std::printf("exact scan: %lld items x %d, top %d, interests = 4 queries a user\n", static_cast<long long>(nb), d, k);
  std::printf("%6s %8s %14s %14s %8s\n", "users", "threads", "invariant ms", "GEMM ms", "ratio");
  for (int64_t users : {int64_t(1), int64_t(16), int64_t(1024)})
    for (int threads : {1, 2}) {
      const int64_t nq = users * K;
      const int reps = users >= 1024 ? 2 : 10;
      double best[2] = {1e30, 1e30};
      for (int r = 0; r < reps + 1; ++r)
        for (int path = 0; path < 2; ++path) {
          const double t0 = now_s();
          if (path == 0) mindrec::exact_topk(base, nb, d, q.data(), nq, k, ids.data(), sc.data(), threads);
          else mindrec::store::exact_topk_gemm(base, nb, d, q.data(), nq, k, ids.data(), sc.data(), threads);
          if (r > 0) best[path] = std::min(best[path], now_s() - t0);  // the first call warms up
        }
      std::printf("%6lld %8d %14.2f %14.2f %7.2fx\n", static_cast<long long>(users), threads, best[0] * 1e3,
                  best[1] * 1e3, best[1] / best[0]);
    }
  for (int path = 0; path < 2; ++path) {
    auto scan = [&](const float* qs, int64_t nq, int64_t* i, float* s) {
      if (path == 0) mindrec::exact_topk(base, nb, d, qs, nq, k, i, s, 2);
      else mindrec::store::exact_topk_gemm(base, nb, d, qs, nq, k, i, s, 2);
    };
    scan(q.data(), most, ids.data(), sc.data());
    int differ = 0;
    std::vector<int64_t> one_ids(size_t(K) * k);
    std::vector<float> one_sc(size_t(K) * k);
    for (int64_t u = 0; u < 256; ++u) {
      scan(q.data() + u * K * d, K, one_ids.data(), one_sc.data());
      differ += std::memcmp(one_sc.data(), sc.data() + u * K * k, sizeof(float) * K * k) != 0 ||
                std::memcmp(one_ids.data(), ids.data() + u * K * k, sizeof(int64_t) * K * k) != 0;
    }
    std::printf("%s: %d of 256 users get other bits alone than in the batch of 1,024\n",
                path == 0 ? "invariant" : "GEMM", differ);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t items = 367983, users = 2000;
  float noise = 0.6f;
  bool search_only = false, unfused = false, exact_scan = false;
  int rerank = 0;
  std::string export_dir, index_cache, truth_cache, memory_spec, save_to, load_from;
  std::string backends = "flat,faiss:Flat,faiss:IVF4096,Flat?nprobe=16,faiss:IVF4096,Flat?nprobe=64,faiss:HNSW32?ef=64,faiss:HNSW32?ef=256";
  for (int i = 1; i < argc; i += 2) {
    if (!std::strcmp(argv[i], "--search-only")) {
      search_only = true;
      --i;
      continue;
    }
    if (!std::strcmp(argv[i], "--unfused")) {
      unfused = true;
      --i;
      continue;
    }
    if (!std::strcmp(argv[i], "--exact-scan")) {
      exact_scan = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) break;
    if (!std::strcmp(argv[i], "--items")) items = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--export")) export_dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--rerank")) rerank = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--users")) users = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--backends")) backends = argv[i + 1];
    else if (!std::strcmp(argv[i], "--noise")) noise = std::strtof(argv[i + 1], nullptr);
    else if (!std::strcmp(argv[i], "--index-cache")) index_cache = argv[i + 1];
    else if (!std::strcmp(argv[i], "--truth-cache")) truth_cache = argv[i + 1];
    else if (!std::strcmp(argv[i], "--memory")) memory_spec = argv[i + 1];
    else if (!std::strcmp(argv[i], "--save")) save_to = argv[i + 1];
    else if (!std::strcmp(argv[i], "--load")) load_from = argv[i + 1];
  }
  // --load FILE (a fresh process, nothing else in memory): what loading a saved store costs,
  // the store's resident size after it and the peak during it (benchmarks/store_memory.sh).
  if (!load_from.empty()) {
    reset_peak();
    const double before = rss_mib();
    const double t0 = now_s();
    auto st = mindrec::load_vector_store(load_from);
    const double secs = now_s() - t0, peak = peak_mib();
    malloc_trim(0);  // what the allocator keeps of freed scratch is not the store's
    const double after = rss_mib(), store = after - before;
    std::printf("load %s: %lld vectors in %.2f s, store %.1f MiB (%.0f B/item), load peak %.1f MiB = %.2fx the store\n",
                st->backend().c_str(), static_cast<long long>(st->size()), secs, store,
                store * (1 << 20) / double(std::max<int64_t>(1, st->size())), peak - before, (peak - before) / store);
    return 0;
  }
  // Model: the Amazon Books shape; item vectors = 2,000 cluster centres + noise.
  mindrec::ModelConfig c;
  c.item_count = items;
  c.neg_samples = 10;
  // Interests that point at the clusters a user clicked (synthetic_items.hpp).
  c.capsule.relu_layer = false;
  mindrec::MindWeights w = mindrec::init_weights(c, 1);
  mindrec::detail::Rng rng(42);
  const int D = c.embedding_dim, L = c.maxlen, clusters = mindrec::bench::kClusters;
  const std::vector<int> cluster_of = mindrec::bench::make_clustered_items(w, c, noise, rng);
  // --memory SPEC: the store's resident size when built from the item vectors in this process
  // (measured as RSS after - before: the id maps and every structure included) and the peak
  // during the build; --save FILE keeps it for a --load run.
  if (!memory_spec.empty()) {
    std::vector<int64_t> ids(size_t(items - 1));
    for (int64_t i = 1; i < items; ++i) ids[size_t(i - 1)] = i;
    reset_peak();
    const double before = rss_mib();
    const double t0 = now_s();
    auto st = mindrec::make_vector_store(memory_spec, D);
    st->add(items - 1, w.item_emb.data() + D, ids.data());
    const double secs = now_s() - t0, peak = peak_mib();
    malloc_trim(0);  // the training sample and other freed scratch are not the store's
    const double after = rss_mib(), store = after - before;
    std::printf("build %s: %lld vectors in %.2f s, store %.1f MiB (%.0f B/item), build peak %.1f MiB = %.2fx the store\n",
                memory_spec.c_str(), static_cast<long long>(st->size()), secs, store,
                store * (1 << 20) / double(std::max<int64_t>(1, st->size())), peak - before, (peak - before) / store);
    if (!save_to.empty()) st->save(save_to);
    return 0;
  }
  if (exact_scan) return exact_scan_table(w.item_emb.data() + D, items - 1, D, rng);
  mindrec::MindModel model(std::move(w));  // not copied: at 20M items a table is 5 GB
  // Users: 2-4 clusters each, 20 clicks.
  std::vector<std::vector<int64_t>> by_cluster(clusters);
  for (int64_t i = 1; i < items; ++i) by_cluster[size_t(cluster_of[i])].push_back(i);
  std::vector<int64_t> hist(size_t(users) * L);
  std::vector<int32_t> lens(users, L);
  for (int64_t u = 0; u < users; ++u) {
    int cs[4];
    const int k = 2 + int(rng.below(3));
    for (int j = 0; j < k; ++j) cs[j] = int(rng.below(clusters));
    for (int l = 0; l < L; ++l) {
      const auto& pool = by_cluster[size_t(cs[rng.below(k)])];
      hist[size_t(u) * L + l] = pool.empty() ? 1 : pool[rng.below(pool.size())];
    }
  }
  const int N = 50;
  mindrec::RecallOptions opt;
  opt.topn = N;
  std::vector<int64_t> exact(size_t(users) * N), got(size_t(users) * N);
  std::vector<float> sc(size_t(users) * N);
  std::printf("items %lld x %d (noise %.2f), users %lld, merged top-%d, %d threads for batches\n",
              static_cast<long long>(items), D, double(noise), static_cast<long long>(users), N,
              omp_get_max_threads());
  // The exact top-50s: from --truth-cache when it holds them for this data, else by the flat
  // store (at 20M items about 5e12 products and a second copy of the vectors), then saved there.
  const std::string truth = truth_cache.empty() ? std::string()
                                                : truth_cache + "/exact-" + std::to_string(items) + "-" +
                                                      std::to_string(users) + "-" + std::to_string(noise) + ".i64";
  if (std::ifstream f(truth, std::ios::binary); !truth.empty() && f.good()) {
    f.read(reinterpret_cast<char*>(exact.data()), std::streamsize(exact.size() * sizeof(int64_t)));
    if (!f || f.peek() != std::char_traits<char>::eof()) {
      std::fprintf(stderr, "%s: not %lld users x %d int64 ids\n", truth.c_str(), static_cast<long long>(users), N);
      return 1;
    }
    std::printf("(exact top-%d of every user read from %s)\n", N, truth.c_str());
  } else {
    auto oracle = mindrec::build_item_store(model, "flat");
    mindrec::recall_items(model, *oracle, hist.data(), lens.data(), users, opt, exact.data(), sc.data());
    if (!truth.empty()) {  // raw int64 [users, 50], written aside and renamed
      std::ofstream o(truth + ".tmp", std::ios::binary);
      o.write(reinterpret_cast<const char*>(exact.data()), std::streamsize(exact.size() * sizeof(int64_t)));
      o.close();
      if (!o || std::rename((truth + ".tmp").c_str(), truth.c_str()) != 0) {  // never a short file in its place
        std::remove((truth + ".tmp").c_str());
        std::fprintf(stderr, "%s: could not be written (not cached)\n", truth.c_str());
      }
    }
  }
  // Every user's interests, computed once (the --search-only protocol and the export).
  const int K = c.capsule.max_k;
  std::vector<float> interests(size_t(users) * K * D);
  std::vector<int32_t> counts(static_cast<size_t>(users), 0);
  model.extract_interests(hist.data(), lens.data(), users, interests.data(), counts.data(), 0);
  if (!export_dir.empty()) {
    mindrec::write_npy(export_dir + "/items.npy", {items - 1, D}, model.weights().item_emb.data() + D);
    mindrec::write_npy(export_dir + "/interests.npy", {users, K, D}, interests.data());
    std::vector<float> f(counts.begin(), counts.end());
    mindrec::write_npy(export_dir + "/counts.npy", {users}, f.data());
    f.assign(exact.begin(), exact.end());
    mindrec::write_npy(export_dir + "/exact.npy", {users, N}, f.data());
    std::printf("exported the data to %s\n", export_dir.c_str());
  }
  // Users [u0, u0 + nu): their K searches (N each) and the spec's merge, into got/sc.
  std::vector<int64_t> fid;
  std::vector<float> fsc;
  const int F = N * std::max(1, rerank);  // fetched per interest
  // fused: the store's fused search where it has one (as recall_items); returns whether used.
  auto search_merge = [&](const mindrec::VectorStore& st, int64_t u0, int64_t nu, bool fused) {
    const float* q = interests.data() + size_t(u0) * K * D;
    if (fused && rerank == 0 &&
        st.search_merged(nu, K, counts.data() + u0, q, N, N, got.data() + size_t(u0) * N, sc.data() + size_t(u0) * N))
      return true;
    fid.resize(size_t(nu) * K * F);
    fsc.resize(size_t(nu) * K * F);
    st.search(nu * K, q, F, fid.data(), fsc.data());
    if (rerank > 0)  // as recall_items does: exact inner products with the item vectors
      for (size_t i = 0; i < fid.size(); ++i)
        if (fid[i] > 0)
          fsc[i] = mindrec::detail::simd().dot(q + (i / size_t(F)) * D, model.weights().item_emb.data() + size_t(fid[i]) * D, size_t(D));
    for (int64_t u = 0; u < nu; ++u)
      mindrec::merge_interests(fid.data() + size_t(u) * K * F, fsc.data() + size_t(u) * K * F, counts[size_t(u0 + u)], F,
                               N, got.data() + size_t(u0 + u) * N, sc.data() + size_t(u0 + u) * N);
    return false;
  };
  mindrec::RecallOptions ropt = opt;  // the stores' recall (the exact one above: no re-ranking)
  ropt.rerank = rerank;
  if (rerank > 0) std::printf("re-ranking: %d x %d candidates per interest scored exactly\n", rerank, N);
  if (search_only) std::printf("protocol: --search-only (K interest searches + merge; interests computed beforehand)\n");
  std::printf("| store | build s | insert items/s | memory MiB | recall@50 vs exact | batch users/s | p50 ms (1 thread) | p99 ms (1 thread) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);
  std::stringstream list(backends);
  std::string spec;
  // Split on commas that start a new backend ("flat" or "faiss:"), keeping factory commas.
  std::vector<std::string> specs;
  for (std::string part; std::getline(list, part, ',');) {
    if (part == "flat" || part == "hnsw" || part.rfind("hnsw:", 0) == 0 || part.rfind("faiss:", 0) == 0 ||
        part.rfind("milvus://", 0) == 0 || specs.empty())
      specs.push_back(part);
    else specs.back() += "," + part;
  }
  // Specs with the same backend before '?' share one built store; only the search
  // parameters change between their rows.
  std::string built_base;
  std::unique_ptr<mindrec::VectorStore> store;
  double build = 0, mem = 0;
  for (const auto& s : specs) {
    const std::string base = mindrec::store::parse_store_spec(s).base;
    if (base != built_base || !store) {
      store.reset();
      const double m0 = rss_mib(), t0 = now_s();
      std::string cached;
      if (!index_cache.empty()) {
        cached = index_cache + "/";
        // Named by the contents (modes such as walk=0 search the same graph).
        for (char ch : mindrec::store::contents_of(base) + "-" + std::to_string(items) + "-" + std::to_string(noise))
          cached += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
        cached += ".idx";
      }
      if (!cached.empty() && std::ifstream(cached).good()) {
        store = mindrec::load_vector_store(cached, base);
        std::printf("(%s: loaded from %s; 'build s' is the load)\n", base.c_str(), cached.c_str());
      } else {
        store = mindrec::build_item_store(model, base);
        if (!cached.empty()) store->save(cached);
      }
      build = now_s() - t0;
      mem = rss_mib() - m0;
      built_base = base;
      if (const double huge = anon_huge_mib(); huge > 0) std::printf("(on transparent huge pages now: %.0f MiB)\n", huge);
    }
    for (const auto& [name, value] : mindrec::store::parse_store_spec(s).params) store->set_search_param(name, value);
    // One row: recall and batch throughput over all users, then single-user latency.
    auto measure = [&](const std::string& label, bool fused) {
      std::fill(got.begin(), got.end(), -1);
      const double b0 = now_s();
      bool used_fused = false;
      if (search_only) used_fused = search_merge(*store, 0, users, fused);
      else mindrec::recall_items(model, *store, hist.data(), lens.data(), users, ropt, got.data(), sc.data());
      const double batch_s = now_s() - b0;
      int64_t hits = 0;
      for (int64_t u = 0; u < users; ++u) {
        std::set<int64_t> truth(exact.begin() + u * N, exact.begin() + (u + 1) * N);
        for (int j = 0; j < N; ++j) hits += truth.count(got[size_t(u) * N + j]);
      }
      // Single user, one thread, end to end.
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
      mindrec::RecallOptions one = ropt;
      one.threads = 1;
      std::vector<double> lat;
      const int64_t reps = std::min<int64_t>(users, 1000);
      for (int64_t u = 0; u < reps; ++u) {
        const double s0 = now_s();
        if (search_only) search_merge(*store, u, 1, fused);
        else mindrec::recall_items(model, *store, hist.data() + u * L, lens.data() + u, 1, one, got.data(), sc.data());
        lat.push_back((now_s() - s0) * 1e3);
      }
      omp_set_num_threads(threads);
      std::sort(lat.begin(), lat.end());
      std::printf("| %s | %.1f | %.0f | %.0f | %.3f | %.0f | %.3f | %.3f |\n", label.c_str(), build,
                  double(items - 1) / build, mem,
                  double(hits) / double(users * N), double(users) / batch_s,
                  lat[lat.size() / 2], lat[std::min(lat.size() - 1, size_t(lat.size() * 0.99))]);
      std::fflush(stdout);
      return used_fused;
    };
    if (measure(s, true) && unfused) measure(s + " [K searches]", false);
  }
  return 0;
}
