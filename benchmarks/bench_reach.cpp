// Elements no search reaches: how many items each HNSW build leaves unreachable on level 0
// from its entry point (where every search ends: an item not reached there is never returned,
// never recommended), beside the build's time, in one run: mindrec's hnsw: store (its graph
// walked and the unreached linked again: Graph::plan_relinks), the same store with relink=0
// (the insertion alone), hnswlib 0.6.2's own addPoint (Debian's header, all cores through
// OpenMP) and faiss's IndexHNSWFlat (Debian's libfaiss 1.7.3), at the same M and
// ef_construction on the same vectors; then mindrec's store filled in place (nine tenths
// built, the rest in batches), with and without relink. Every graph is walked by the same code
// here (a depth-first walk of level 0 from the entry point); mindrec's from its saved file, by
// the layout hnsw_file.hpp documents.
//
//   bench_reach [--items N] [--dim D] [--noise S | --gauss] [--metric ip|l2] [--M M]
//               [--efc E] [--batch B] [--no-peers]
//
// Data: bench_store's clustered set (--noise 1.5, the default: the diffuse set of
// ann_target.sh) or plain N(0, I) vectors (--gauss). --no-peers: mindrec's four graphs only
// (the peers' counts print as -1). Last line:
// `unreached: mindrec=A mindrec_relink0=B hnswlib=C faiss=D in_place=E in_place_relink0=F`.
#include <faiss/IndexHNSW.h>
#include <hnswlib/hnswlib.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "detail/random.hpp"
#include "mindrec/config.hpp"
#include "mindrec/log.hpp"
#include "mindrec/vector_store.hpp"
#include "mindrec/weights.hpp"
#include "store/store_io.hpp"
#include "synthetic_items.hpp"

using namespace mindrec;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Elements of 0..n-1 a depth-first walk of level 0 from `entry` does not reach; `links(e, out)`
// gives element e's level-0 links.
template <class Links>
int64_t unreached(size_t n, size_t entry, const Links& links) {
  std::vector<char> seen(n, 0);
  std::vector<size_t> stack{entry}, out;
  seen[entry] = 1;
  while (!stack.empty()) {
    const size_t e = stack.back();
    stack.pop_back();
    links(e, out);
    for (const size_t t : out)
      if (t < n && !seen[t]) seen[t] = 1, stack.push_back(t);
  }
  return int64_t(n) - std::count(seen.begin(), seen.end(), char(1));
}

// The same on mindrec's graph, read from the store saved at `path`: the payload's head (u64 5;
// M, ef_construction, ef, elements, layout; u64 2; max level, entry point), then per element
// its level-0 record, (2M + 1) u32 (a count in the first's low 16 bits, then the links) and a
// u64 label.
int64_t unreached_in_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const store::StoreHeader h = store::read_store_header(in, path);
  std::string payload(h.payload_size, '\0');
  in.read(payload.data(), std::streamsize(payload.size()));
  uint64_t head[6];
  int64_t where[3];
  std::memcpy(head, payload.data(), sizeof head);
  std::memcpy(where, payload.data() + sizeof head, sizeof where);
  const size_t M = head[1], n = head[4], rec = (2 * M + 1) * 4 + 8, at = sizeof head + sizeof where;
  if (head[0] != 5 || head[5] != 1 || where[0] != 2 || at + n * rec > payload.size()) {
    std::fprintf(stderr, "bench_reach: %s is not an hnsw store file of layout 1\n", path.c_str());
    std::exit(1);
  }
  return unreached(n, size_t(where[2]), [&](size_t e, std::vector<size_t>& out) {
    uint32_t w[1 + 2 * 512];
    std::memcpy(w, payload.data() + at + e * rec, (2 * M + 1) * 4);
    out.assign(w + 1, w + 1 + (w[0] & 0xFFFF));
  });
}

void row(const std::string& name, double build_s, int64_t n, int64_t missing) {
  std::printf("| %s | %.1f | %lld | %.4f%% |\n", name.c_str(), build_s, static_cast<long long>(missing),
              100.0 * double(missing) / double(n));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 367983, batch = 1000;
  int d = 64, M = 32, efc = 64;
  float noise = 1.5f;
  bool gauss = false, peers = true;
  std::string metric_name = "ip";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_reach: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--items") n = std::atoll(next());
    else if (a == "--dim") d = std::atoi(next());
    else if (a == "--noise") noise = float(std::atof(next()));
    else if (a == "--gauss") gauss = true;
    else if (a == "--metric") metric_name = next();
    else if (a == "--M") M = std::atoi(next());
    else if (a == "--efc") efc = std::atoi(next());
    else if (a == "--batch") batch = std::atoll(next());
    else if (a == "--no-peers") peers = false;
    else {
      std::fprintf(stderr, "bench_reach: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (n < 100 || d < 1 || M < 2 || efc < 1 || batch < 1 || (metric_name != "ip" && metric_name != "l2")) {
    std::fprintf(stderr, "bench_reach: bad options\n");
    return 2;
  }
  // The store's debug messages (how many elements the relinking linked, and its seconds).
  set_log_level(LogLevel::debug);
  set_log_sink([](LogLevel, std::string_view m) {
    if (m.find("linked") != std::string_view::npos) std::printf("  (%.*s)\n", int(m.size()), m.data());
  });
  const bool ip = metric_name == "ip";
  const Metric metric = ip ? Metric::inner_product : Metric::l2;

  // The vectors: rows 1..n of bench_store's clustered item table, or N(0, I).
  std::vector<float> x(size_t(n) * size_t(d));
  detail::Rng rng(20261206);
  if (gauss) {
    for (auto& v : x) v = float(rng.normal());
  } else {
    ModelConfig c;
    c.item_count = n + 1;
    c.embedding_dim = d;
    c.hidden_size = d;
    MindWeights w;
    w.item_emb.assign(size_t(n + 1) * size_t(d), 0.f);
    w.bilinear.assign(size_t(d) * size_t(d), 0.f);
    bench::make_clustered_items(w, c, noise, rng);
    std::memcpy(x.data(), w.item_emb.data() + d, x.size() * sizeof(float));
  }
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = i + 1;
  std::printf("items %lld x %d (%s), %s, M=%d, ef_construction=%d, %d threads\n", static_cast<long long>(n), d,
              gauss ? "N(0, I)" : ("clustered, noise " + std::to_string(noise)).c_str(), metric_name.c_str(), M, efc,
              omp_get_max_threads());
  std::printf("| system | build s | items unreached on level 0 | share |\n|---|---:|---:|---:|\n");

  const std::string params = "hnsw:M=" + std::to_string(M) + ",ef_construction=" + std::to_string(efc);
  const std::string file = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : std::string("/tmp")) +
                           "/bench_reach." + std::to_string(::getpid()) + ".idx";
  const auto saved_unreached = [&](const VectorStore& s) {
    s.save(file);
    const int64_t missing = unreached_in_file(file);
    std::remove(file.c_str());
    return missing;
  };
  int64_t missing_mindrec = 0, missing_off = 0, missing_hnswlib = -1, missing_faiss = -1, in_place = 0, in_place_off = 0;
  for (const bool relink : {true, false}) {
    const std::string spec = params + (relink ? "" : ",relink=0");
    auto s = make_vector_store(spec, d, metric);
    const auto t0 = std::chrono::steady_clock::now();
    s->add(n, x.data(), ids.data());
    const double t = seconds_since(t0);
    (relink ? missing_mindrec : missing_off) = saved_unreached(*s);
    row("mindrec " + spec, t, n, relink ? missing_mindrec : missing_off);
  }
  if (peers) {
    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    if (ip) space = std::make_unique<hnswlib::InnerProductSpace>(size_t(d));
    else space = std::make_unique<hnswlib::L2Space>(size_t(d));
    hnswlib::HierarchicalNSW<float> h(space.get(), size_t(n), size_t(M), size_t(efc), 100);
    const auto t0 = std::chrono::steady_clock::now();
    h.addPoint(x.data(), 1);
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 1; i < n; ++i) h.addPoint(x.data() + size_t(i) * size_t(d), hnswlib::labeltype(i + 1));
    const double t = seconds_since(t0);
    missing_hnswlib = unreached(size_t(n), h.enterpoint_node_, [&](size_t e, std::vector<size_t>& out) {
      hnswlib::linklistsizeint* ll = h.get_linklist0(hnswlib::tableint(e));
      const auto* links = reinterpret_cast<const hnswlib::tableint*>(ll + 1);
      out.assign(links, links + h.getListCount(ll));
    });
    row("hnswlib 0.6.2 (Debian) M=" + std::to_string(M) + " ef_construction=" + std::to_string(efc), t, n, missing_hnswlib);
  }
  if (peers) {
    faiss::IndexHNSWFlat f(d, M, ip ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2);
    f.hnsw.efConstruction = efc;
    const auto t0 = std::chrono::steady_clock::now();
    f.add(faiss::Index::idx_t(n), x.data());
    const double t = seconds_since(t0);
    missing_faiss = unreached(size_t(n), size_t(f.hnsw.entry_point), [&](size_t e, std::vector<size_t>& out) {
      size_t begin = 0, end = 0;
      f.hnsw.neighbor_range(faiss::Index::idx_t(e), 0, &begin, &end);
      out.clear();
      for (size_t j = begin; j < end && f.hnsw.neighbors[j] >= 0; ++j) out.push_back(size_t(f.hnsw.neighbors[j]));
    });
    row("faiss-cpu 1.7.3 (Debian) HNSW" + std::to_string(M) + " efConstruction=" + std::to_string(efc), t, n, missing_faiss);
  }
  for (const bool relink : {true, false}) {
    const std::string spec = params + (relink ? "" : ",relink=0");
    auto s = make_vector_store(spec, d, metric);
    const int64_t first = n - n / 10;
    const auto t0 = std::chrono::steady_clock::now();
    s->add(first, x.data(), ids.data());
    for (int64_t at = first; at < n; at += batch) {
      const int64_t m = std::min(batch, n - at);
      s->add(m, x.data() + size_t(at) * size_t(d), ids.data() + at);
    }
    const double t = seconds_since(t0);
    int64_t& missing = relink ? in_place : in_place_off;
    missing = saved_unreached(*s);
    row("mindrec " + spec + ", the last tenth in place in batches of " + std::to_string(batch), t, n, missing);
  }
  std::printf("unreached: mindrec=%lld mindrec_relink0=%lld hnswlib=%lld faiss=%lld in_place=%lld in_place_relink0=%lld\n",
              static_cast<long long>(missing_mindrec), static_cast<long long>(missing_off),
              static_cast<long long>(missing_hnswlib), static_cast<long long>(missing_faiss),
              static_cast<long long>(in_place), static_cast<long long>(in_place_off));
  return 0;
}
