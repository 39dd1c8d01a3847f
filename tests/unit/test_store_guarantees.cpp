// Vector-store guarantees under failure and concurrency (issue 11, items 4 and 5):
//  - a failed add, upsert or load changes nothing: std::bad_alloc is injected mid-operation at
//    the backends' fault points (src/detail/fault.hpp), then size, every stored vector's score
//    against probe queries (k = everything) and the search results must be exactly the old ones;
//  - what a write prepares at length (a load, a save, the flat store's larger buffer, Faiss
//    compaction and MIPS re-augmentation of 1M vectors) leaves searches answering: a hook at
//    the preparation's fault point runs searches on another thread and waits for them, with a
//    generous deadline that only a blocked search could miss (a deadlock detector, not a timing
//    threshold).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/random_data.hpp"
#include "common/store_contract.hpp"
#include "detail/fault.hpp"
#include "detail/hash.hpp"
#include "mindrec/device.hpp"
#include "mindrec/file_io.hpp"
#include "mindrec/log.hpp"
#include "mindrec/error.hpp"
#include "mindrec/vector_store.hpp"
#include "mindrec/version.hpp"
#include "store/store_io.hpp"
#if MINDREC_HAS_HNSW
#include "store/visited_set.hpp"
#endif
#include "test_util.hpp"

using namespace mindrec;
using test::random_vectors;

namespace {

struct Snapshot {
  int64_t size = 0;
  std::vector<int64_t> ids;
  std::vector<float> scores;
  // Same size, same ids in the same order, same scores (to float rounding: a vector put back
  // after a failure may sit elsewhere in an IVF list, scored by another lane of the GEMV).
  bool operator==(const Snapshot& o) const {
    if (size != o.size || ids != o.ids || scores.size() != o.scores.size()) return false;
    for (size_t i = 0; i < scores.size(); ++i)
      if (!(scores[i] == o.scores[i] || std::abs(scores[i] - o.scores[i]) <= 1e-6f * std::max(1.f, std::abs(scores[i]))))
        return false;
    return true;
  }
};

// Every stored vector's score against 12 probe queries: equal snapshots mean equal contents
// and equal search results.
Snapshot snapshot(const VectorStore& s) {
  Snapshot r;
  r.size = s.size();
  const int k = int(r.size) + 5;
  const auto q = random_vectors(12, s.dim(), 99);
  r.ids.resize(size_t(12) * k);
  r.scores.resize(size_t(12) * k);
  s.search(12, q.data(), k, r.ids.data(), r.scores.data());
  return r;
}

std::vector<int64_t> range_ids(int64_t first, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = first + i;
  return v;
}

// A saved store file split into its header and payload (the format of store_io.hpp), and put
// together again with another payload (its length and checksum written anew) and version.
struct StoreFile {
  std::string bytes;
  store::StoreHeader h;
  size_t header_bytes = 0;
  explicit StoreFile(const std::string& path) : bytes(read_file(path)) {
    std::ifstream in(path, std::ios::binary);
    h = store::read_store_header(in, path);
    header_bytes = size_t(in.tellg());
  }
  std::string payload() const { return bytes.substr(header_bytes, h.payload_size); }
  std::string with(const std::string& payload, uint32_t version) const {
    detail::WordHash hash;
    hash.update(payload.data(), payload.size());
    const uint64_t size = payload.size(), sum = hash.digest();
    std::string out = bytes.substr(0, header_bytes) + payload + bytes.substr(header_bytes + h.payload_size);
    std::memcpy(out.data() + 8, &version, 4);
    const size_t sizes_at = 8 + 4 + 4 + h.backend.size() + 4 + 4 + 8 + 8;  // payload length, checksum
    std::memcpy(out.data() + sizes_at, &size, 8);
    std::memcpy(out.data() + sizes_at + 8, &sum, 8);
    return out;
  }
};

struct Guard {  // disarms whatever a failed CHECK left armed
  ~Guard() { detail::disarm_fault(); }
};

// Arms `site` (n-th pass), runs `op`, which must throw std::bad_alloc there, and checks the
// store is as it was.
void expect_unchanged(VectorStore& s, const std::string& site, int nth, const std::function<void()>& op) {
  CAPTURE(site);
  CAPTURE(nth);
  Guard g;
  const Snapshot before = snapshot(s);
  detail::arm_fault(site, nth);
  CHECK_THROWS_AS(op(), std::bad_alloc);
  const int passes = detail::disarm_fault();
  CHECK(passes >= nth);  // the site is on this backend's path
  CHECK(snapshot(s) == before);
}

struct Case {
  const char* spec;
  std::vector<std::pair<const char*, int>> add_sites, upsert_sites;
  bool mips_rebuild;  // HNSW under inner product: a longer vector rebuilds the index
  bool ip_only = false;
};

std::vector<Case> cases() {
  std::vector<Case> c = {{"flat", {{"flat.add.grow", 1}, {"flat.add.map", 20}}, {{"flat.add.grow", 1}, {"flat.add.map", 5}}, false}};
#if MINDREC_HAS_FAISS
  c.push_back({"faiss:Flat", {{"faiss.add.index", 1}, {"faiss.add.map", 20}},
               {{"faiss.add.index", 1}, {"faiss.add.map", 20}}, false});
  c.push_back({"faiss:IVF8,Flat?nprobe=8", {{"faiss.add.index", 1}, {"faiss.ivf.lists", 1}, {"faiss.ivf.map", 20}},
               {{"faiss.add.index", 1}, {"faiss.ivf.lists", 1}, {"faiss.ivf.map", 7}}, false});
  c.push_back({"faiss:IVF8,SQ8?nprobe=8", {{"faiss.add.index", 1}, {"faiss.ivf.map", 20}},
               {{"faiss.ivf.lists", 1}, {"faiss.ivf.map", 7}}, false, true});
  // A pre-transform around the IVF (its count follows the lists').
  c.push_back({"faiss:RR8,IVF8,PQ4x4fs?nprobe=8", {{"faiss.add.index", 1}, {"faiss.ivf.map", 20}},
               {{"faiss.ivf.lists", 1}, {"faiss.ivf.map", 7}}, false, true});
  // Fast-scan lists: a failed add is undone by mindrec's own removal (Faiss 1.7.3 cannot remove
  // from them). Inner product only: its search is mindrec's 4-bit scan (ties to the smaller
  // id); L2 takes Faiss's own fast-scan search, whose rounded distances tie often and whose
  // tie order follows the position in the list, which a vector put back changes.
  c.push_back({"faiss:IVF8,PQ8x4fs?nprobe=8", {{"faiss.add.index", 1}, {"faiss.ivf.lists", 1}, {"faiss.ivf.map", 20}},
               {{"faiss.add.index", 1}, {"faiss.ivf.lists", 1}, {"faiss.ivf.map", 7}}, false, true});
  // efSearch above the count: the graph search visits everything, results are exact.
  c.push_back({"faiss:HNSW16?ef=3000", {{"faiss.add.index", 1}, {"faiss.add.map", 20}},
               {{"faiss.add.index", 1}, {"faiss.add.map", 7}}, true});
#endif
#if MINDREC_HAS_HNSW
  // ef above the count: exhaustive, results exact.
  c.push_back({"hnsw:M=16?ef=3000", {{"hnsw.add.point", 1}, {"hnsw.add.point", 20}},
               {{"hnsw.add.point", 1}, {"hnsw.add.point", 7}}, false});
#endif
  if (cuda_device_count() > 0) {
    c.push_back({"cuda:flat", {{"flat.add.grow", 1}, {"flat.add.map", 20}}, {{"flat.add.map", 5}}, false});
#if MINDREC_HAS_FAISS_GPU
    c.push_back({"faiss-gpu:Flat", {{"faiss_gpu.add.map", 20}}, {{"store.upsert.add", 1}, {"faiss_gpu.add.map", 20}}, false});
#endif
  }
  return c;
}

}  // namespace

TEST_CASE("a failed add - upsert or load changes nothing: failures injected mid-operation - every backend") {
  test::TempDir tmp;
  const int d = 8;
  for (const Case& c : cases()) {
    const std::string spec = c.spec;
    CAPTURE(spec);
    for (const Metric metric : {Metric::inner_product, Metric::l2}) {
      if (c.ip_only && metric != Metric::inner_product) continue;
      const std::string metric_name = to_string(metric);
    CAPTURE(metric_name);
      auto s = make_vector_store(c.spec, d, metric);
      const auto x = random_vectors(300, d, 1);
      const auto ids = range_ids(1, 300);
      s->add(300, x.data(), ids.data());
      s->remove(3, ids.data() + 10);  // some tombstones / moved rows to start from

      // add: 50 new vectors (half of them with hashed ids far beyond the dense range)
      const auto nx = random_vectors(50, d, 2);
      std::vector<int64_t> nids = range_ids(1001, 50);
      for (size_t i = 0; i < 25; ++i) nids[i] = 1000000000000 + int64_t(i);
      for (const auto& [site, nth] : c.add_sites)
        expect_unchanged(*s, site, nth, [&] { s->add(50, nx.data(), nids.data()); });
      if (c.mips_rebuild && metric == Metric::inner_product) {  // longer vectors: rebuild path
        std::vector<float> longer(nx);
        for (auto& v : longer) v *= 4.f;
        for (const auto& [site, nth] : std::vector<std::pair<const char*, int>>{{"faiss.rebuild", 1}, {"faiss.add.index", 1}})
          expect_unchanged(*s, site, nth, [&] { s->add(50, longer.data(), nids.data()); });
      }

      // upsert: 20 stored ids and 10 new ones
      const auto ux = random_vectors(30, d, 3);
      std::vector<int64_t> uids = range_ids(100, 20);
      for (int64_t i = 0; i < 10; ++i) uids.push_back(5000000000 + i);
      for (const auto& [site, nth] : c.upsert_sites)
        expect_unchanged(*s, site, nth, [&] { s->upsert(30, ux.data(), uids.data()); });

      // load: another saved store, failing part-way through its payload
      auto other = make_vector_store(c.spec, d, metric);
      other->add(200, x.data(), ids.data());
      other->save(tmp.file("other.idx"));
      for (int nth : {1, 2, 3})
        expect_unchanged(*s, "store.load.read", nth, [&] { s->load(tmp.file("other.idx")); });

      // Unarmed, each call applies whole.
      const int64_t n0 = s->size();
      s->add(50, nx.data(), nids.data());
      CHECK(s->size() == n0 + 50);
      CHECK(s->upsert(30, ux.data(), uids.data()) == 20);
      CHECK(s->size() == n0 + 60);
      s->load(tmp.file("other.idx"));
      CHECK(snapshot(*s) == snapshot(*other));
    }
  }
}

#if MINDREC_HAS_HNSW
TEST_CASE("hnsw: batches inserted in place and graphs rebuilt aside change nothing when they fail - and match brute force when they succeed") {
  const int d = 8;
  for (const Metric metric : {Metric::inner_product, Metric::l2}) {
    const std::string metric_name = to_string(metric);
    CAPTURE(metric_name);
    // ef above the count: exhaustive, results exact.
    auto s = make_vector_store("hnsw:M=16?ef=3000", d, metric);
    const auto x = random_vectors(900, d, 11);
    const auto ids = range_ids(1, 900);
    s->add(300, x.data(), ids.data());
    s->remove(20, ids.data());  // removed elements; ids 1..20 come back below
    // 600 items into the graph in place, in chunks, hidden until all are in. The failures:
    // growing the graph's arrays, growing the codes (an allocation failure while encoding
    // would be one: the codes are made room for before anything is inserted, F6), an
    // insertion, between chunks, saving a neighbour's links midway through an insertion (the
    // lists the batch re-pruned are put back: an old element whose last in-link was dropped
    // would otherwise be missing from the exhaustive search).
    std::vector<int64_t> batch(ids.begin() + 300, ids.end());
    std::copy(ids.begin(), ids.begin() + 20, batch.begin());  // re-added ids
    std::vector<float> bx(x.begin() + 300 * d, x.end());
    for (const auto& [site, nth] : std::vector<std::pair<const char*, int>>{
             {"hnsw.grow", 1}, {"hnsw.codes.grow", 1}, {"hnsw.add.point", 1}, {"hnsw.add.point", 300},
             {"hnsw.add.link", 400}, {"hnsw.add.chunk", 2}})
      expect_unchanged(*s, site, nth, [&] { s->add(600, bx.data(), batch.data()); });
    {  // the room is there now: no allocation while encoding, so the site is never reached
      Guard g;
      detail::arm_fault("hnsw.encode", 1);
      s->add(600, bx.data(), batch.data());
      CHECK(detail::disarm_fault() == 0);
    }
    CHECK(s->size() == 880);
    // Oracle: brute force over what is stored now (ids 21..300 and the batch).
    std::vector<int64_t> all_ids(ids.begin() + 20, ids.begin() + 300);
    std::vector<float> all_x(x.begin() + 20 * d, x.begin() + 300 * d);
    all_ids.insert(all_ids.end(), batch.begin(), batch.end());
    all_x.insert(all_x.end(), bx.begin(), bx.end());
    test::check_against_brute(*s, all_x, all_ids, true);

    // upsert of 300 ids, 100 of them stored (at most half the live items): in place, the
    // replaced elements removed when the batch is shown; then of every live id and 20 new
    // ones: a new graph of the kept items and the batch, built aside (an allocation failure
    // while encoding it included). Failures change nothing.
    auto upsert_case = [&](std::vector<int64_t> uids, int64_t want_replaced,
                           const std::vector<std::pair<const char*, int>>& sites) {
      CAPTURE(want_replaced);
      const auto ux = random_vectors(int64_t(uids.size()), d, 12 + int(uids.size()));
      const int64_t m = int64_t(uids.size());
      for (const auto& [site, nth] : sites)
        expect_unchanged(*s, site, nth, [&] { s->upsert(m, ux.data(), uids.data()); });
      CHECK(s->upsert(m, ux.data(), uids.data()) == want_replaced);
      // Oracle: the stored (id, vector) pairs, replaced ones updated.
      for (int64_t i = 0; i < m; ++i) {
        const auto at = std::find(all_ids.begin(), all_ids.end(), uids[size_t(i)]);
        if (at == all_ids.end()) {
          all_ids.push_back(uids[size_t(i)]);
          all_x.insert(all_x.end(), ux.begin() + i * d, ux.begin() + (i + 1) * d);
        } else {
          std::copy(ux.begin() + i * d, ux.begin() + (i + 1) * d, all_x.begin() + (at - all_ids.begin()) * d);
        }
      }
      CHECK(s->size() == int64_t(all_ids.size()));
      test::check_against_brute(*s, all_x, all_ids, true);
    };
    std::vector<int64_t> some(all_ids.begin(), all_ids.begin() + 100);
    for (int64_t i = 0; i < 200; ++i) some.push_back(5000 + i);
    upsert_case(some, 100, {{"hnsw.add.point", 1}, {"hnsw.add.point", 250}, {"hnsw.add.link", 200}, {"hnsw.add.chunk", 1}, {"hnsw.relink", 1}});
    std::vector<int64_t> every(all_ids);
    for (int64_t i = 0; i < 20; ++i) every.push_back(9000 + i);
    upsert_case(every, int64_t(all_ids.size()),
                {{"hnsw.rebuild", 1}, {"hnsw.add.point", 1}, {"hnsw.add.point", 250}, {"hnsw.encode", 1}, {"hnsw.relink", 1}, {"hnsw.rebuilt", 1}});
  }
}

TEST_CASE("hnsw: a failed batch puts back the links its insertions re-pruned (no old element becomes unreachable)") {
  // M=2: every list is full after a few insertions, so each insertion re-prunes its
  // neighbours' lists and drops old links; low dimension makes the heuristic drop more. An
  // exhaustive search (ef above the count) finds every element reachable from the entry point:
  // marking the failed batch's elements removed without putting the lists back loses old ones.
  const int d = 3;
  for (const Metric metric : {Metric::l2, Metric::inner_product}) {
    const std::string metric_name = to_string(metric);
    CAPTURE(metric_name);
    auto s = make_vector_store("hnsw:M=2,ef_construction=20?ef=5000", d, metric);
    const auto x = random_vectors(3000, d, 21);
    const auto ids = range_ids(1, 3000);
    s->add(600, x.data(), ids.data());
    s->add(600, x.data() + 600 * d, ids.data() + 600);  // in place: a graph with upper levels
    for (int round = 0; round < 4; ++round) {
      const int64_t from = 1200 + round * 450;
      for (const int nth : {3, 30, 120})
        expect_unchanged(*s, "hnsw.add.link", nth, [&] { s->add(450, x.data() + from * d, ids.data() + from); });
      expect_unchanged(*s, "hnsw.add.point", 200, [&] { s->add(450, x.data() + from * d, ids.data() + from); });
      // the batch whole, then the links of the elements it orphaned fail: those put back too
      expect_unchanged(*s, "hnsw.relink", 1, [&] { s->add(450, x.data() + from * d, ids.data() + from); });
      s->add(450, x.data() + from * d, ids.data() + from);
    }
    CHECK(s->size() == 3000);
    // Under L2 every element is reachable again (Graph::plan_relinks: the lists M=2 re-prunes
    // leave many without a path), so brute force is the oracle. (Under inner product they are
    // reachable from the entry point, but at M=2 not from every element the search's descent
    // can end on: the graph's links run towards the largest norms.)
    if (metric == Metric::l2) test::check_against_brute(*s, x, ids, true);
  }
}

TEST_CASE("hnsw: every element is reachable - graphs built aside and batches in place link those the insertion left with no path (hnswlib 0.6.2's leaves some)") {
  // Gaussian vectors in 256 dimensions under L2: the neighbour heuristic's re-prunings drop the
  // last in-link of 10-20 of these 3,000 in every build (hnswlib 0.6.2's Python build of the
  // same data leaves as many unreachable: RESULTS "Elements no search reaches"), and batches in
  // place orphan more. Oracles: the exhaustive search (ef above the count) returns every
  // element reachable from the entry point; brute force for its scores; the debug log says the
  // repair ran (so the case exercises it).
  const int d = 256;
  const int64_t n = 3000, small = 50, batches = 12, last = 300, total = n + small * batches + last;
  const auto x = random_vectors(total, d, 7);
  const auto ids = range_ids(1, total);
  std::vector<std::string> said;
  set_log_level(LogLevel::debug);
  set_log_sink([&](LogLevel, std::string_view m) { said.emplace_back(m); });
  const auto count_said = [&](const char* what) {
    return std::count_if(said.begin(), said.end(), [&](const std::string& m) { return m.find(what) != std::string::npos; });
  };
  auto s = make_vector_store("hnsw:M=16,ef_construction=100?ef=5000", d, Metric::l2);
  s->add(n, x.data(), ids.data());  // built aside, walked whole
  CHECK(count_said("that no search reached (a walk of the graph)") == 1);
  const std::vector<float> first(x.begin(), x.begin() + n * d);
  const std::vector<int64_t> first_ids(ids.begin(), ids.begin() + n);
  test::check_against_brute(*s, first, first_ids, true);
  // Small batches in place: each links what it orphaned (in-link counts), and once they add a
  // sixteenth of the graph the whole graph is walked.
  for (int64_t b = 0; b < batches; ++b) s->add(small, x.data() + (n + b * small) * d, ids.data() + n + b * small);
  CHECK(count_said("the batch left with no in-link") >= 1);
  s->add(last, x.data() + (total - last) * d, ids.data() + total - last);  // a sixteenth: walked
  set_log_sink(nullptr);
  set_log_level(LogLevel::warn);
  const auto q = random_vectors(1, d, 8);
  std::vector<int64_t> got(size_t(total) + 10);
  std::vector<float> sc(got.size());
  s->search(1, q.data(), int(got.size()), got.data(), sc.data());
  std::set<int64_t> found(got.begin(), got.end());
  found.erase(-1);
  CHECK(found.size() == size_t(total));
  test::check_against_brute(*s, x, ids, true);
}

TEST_CASE("hnsw: every element of a graph built on all cores is linked (an exhaustive search returns each one)") {
  // Insertions run in parallel (a first fill aside, then a batch in place, in chunks): an
  // element must be linked from others only once all its own lists are written, or a
  // concurrent insertion's link to it is lost when they are (an element with no in-link is
  // never found; with links written level by level, 3 to 13 of these 4,000 were lost in each
  // of 10 runs). Points in a plane under L2: the neighbour heuristic's graph then links every
  // element (in 8 or 32 dimensions, and under inner product, the heuristic itself leaves a few
  // without an in-link, hnswlib's insertion too), so a missing one is the insertion's fault.
  // relink=0: the store's relinking would otherwise link a lost element again and hide the fault.
  // Oracle: a search with k = ef = more than the count returns every element reachable from
  // the entry point.
  const int d = 2, n = 4000;
  auto s = make_vector_store("hnsw:M=16,ef_construction=40,relink=0?ef=8000", d, Metric::l2);
  const auto x = random_vectors(n, d, 31);
  const auto ids = range_ids(1, n);
  s->add(n / 2, x.data(), ids.data());
  s->add(n / 2, x.data() + size_t(n / 2) * d, ids.data() + n / 2);
  const auto q = random_vectors(1, d, 32);
  std::vector<int64_t> got(n + 10);
  std::vector<float> sc(n + 10);
  s->search(1, q.data(), n + 10, got.data(), sc.data());
  std::set<int64_t> found;
  for (const int64_t id : got)
    if (id != -1) found.insert(id);
  CHECK(found.size() == size_t(n));
  CHECK(*found.begin() == 1);
  CHECK(*found.rbegin() == n);
  CHECK(got[size_t(n)] == -1);  // padded beyond the count
}

TEST_CASE("hnsw: a buffer handed over becomes the graph's table (no second copy) - a failed build gives it back - files of both layouts load") {
  // Oracles: brute force (ef above the count: the search is exhaustive; scores exact), the
  // fault site where rows are copied into a table (not reached when the buffer is kept), and
  // the saved payload parsed here by the layout hnsw_file.hpp documents, and a file in the
  // layout before version 6 made from it by that description.
  test::TempDir tmp;
  const int d = 256;
  const int64_t n = 3000, more = 1500;
  const auto x = random_vectors(n + more, d, 21);
  std::vector<int64_t> ids(size_t(n + more));
  for (int64_t i = 0; i < n + more; ++i) ids[size_t(i)] = i % 3 == 0 ? (int64_t(1) << 40) + i : i + 1;  // dense and sparse
  const std::vector<float> first(x.begin(), x.begin() + n * d);
  const std::vector<int64_t> first_ids(ids.begin(), ids.begin() + n);
  for (const Metric metric : {Metric::inner_product, Metric::l2}) {
    const std::string metric_name = to_string(metric);
    CAPTURE(metric_name);
    auto s = make_vector_store("hnsw:M=16,ef_construction=100?ef=5000", d, metric);
    for (const auto& [site, nth] : std::vector<std::pair<const char*, int>>{{"hnsw.add.point", 700}, {"hnsw.rebuilt", 1}}) {
      const std::string where = site;  // (a structured binding cannot be captured in C++17)
      CAPTURE(where);
      Guard g;
      AlignedVector<float> buf(first.begin(), first.end());
      detail::arm_fault(site, nth);
      CHECK_THROWS_AS(s->add(n, std::move(buf), first_ids.data()), std::bad_alloc);
      CHECK(detail::disarm_fault() >= nth);
      CHECK(s->size() == 0);
      CHECK(std::vector<float>(buf.begin(), buf.end()) == first);  // given back as it was
    }
    {
      Guard g;
      AlignedVector<float> buf(first.begin(), first.end());
      detail::arm_fault("hnsw.table.copy", 1);  // where rows are copied into the table: never reached
      s->add(n, std::move(buf), first_ids.data());
      CHECK(detail::disarm_fault() == 0);
      CHECK(buf.empty());
    }
    test::check_against_brute(*s, first, first_ids, true);
    {  // a store filled by add() of a pointer copies the rows (the site is reached)
      Guard g;
      auto copied = make_vector_store("hnsw:M=16,ef_construction=100?ef=5000", d, metric);
      detail::arm_fault("hnsw.table.copy", 1);
      CHECK_THROWS_AS(copied->add(n, first.data(), first_ids.data()), std::bad_alloc);
      CHECK(copied->size() == 0);
    }
    // More than the table holds, inserted in place: the adopted rows are copied into a block of
    // the graph's own, aside.
    s->add(more, x.data() + n * d, ids.data() + n);
    test::check_against_brute(*s, x, ids, true);
    s->save(tmp.file("h.idx"));
    auto back = load_vector_store(tmp.file("h.idx"));
    test::check_against_brute(*back, x, ids, true);

    // The payload by the layout hnsw_file.hpp documents: u64 5; M, ef_construction, ef,
    // elements, layout 1; u64 2; max level, entry point; the level-0 block (links, label per
    // element); the vectors; the upper levels.
    const StoreFile file(tmp.file("h.idx"));
    const std::string payload = file.payload();
    uint64_t head[6];
    std::memcpy(head, payload.data(), sizeof head);
    CHECK(head[0] == 5);
    CHECK(head[1] == 16);
    CHECK(head[4] == uint64_t(n + more));
    CHECK(head[5] == 1);
    const size_t total = size_t(n + more), links = (2 * 16 + 1) * 4, rec = links + 8, vec = size_t(d) * 4;
    const size_t level0_at = 6 * 8 + 3 * 8, vectors_at = level0_at + total * rec, upper_at = vectors_at + total * vec;
    REQUIRE(upper_at <= payload.size());
    std::map<int64_t, int64_t> at;
    for (int64_t i = 0; i < n + more; ++i) at[ids[size_t(i)]] = i;
    for (size_t e = 0; e < total; ++e) {
      int64_t label = 0;
      std::memcpy(&label, payload.data() + level0_at + e * rec + links, 8);
      REQUIRE(at.count(label) == 1);
      CHECK(std::memcmp(payload.data() + vectors_at + e * vec, x.data() + at[label] * d, vec) == 0);
      at.erase(label);
    }
    CHECK(at.empty());  // every id once

    // The same graph in the layout of store files before version 6 (a head of 4 values; per
    // element links, vector, label), written here from that description: it loads and answers
    // as the new file does.
    std::string old = payload.substr(0, 8);
    const uint64_t four = 4;
    std::memcpy(old.data(), &four, 8);
    old += payload.substr(8, 4 * 8) + payload.substr(6 * 8, 3 * 8);
    for (size_t e = 0; e < total; ++e)
      old += payload.substr(level0_at + e * rec, links) + payload.substr(vectors_at + e * vec, vec) +
             payload.substr(level0_at + e * rec + links, 8);
    old += payload.substr(upper_at);
    std::ofstream(tmp.file("v5.idx"), std::ios::binary) << file.with(old, 5);
    auto from_v5 = load_vector_store(tmp.file("v5.idx"));
    test::check_against_brute(*from_v5, x, ids, true);
    const auto q = random_vectors(20, d, 5);
    test::check_same_answers(*back, *from_v5, 20, q.data(), 10);
  }
}

#endif

#if MINDREC_HAS_HNSW
TEST_CASE("hnsw: a damaged graph file (checksum made right) is refused naming the first bad element - in the file's order") {
  // Oracle: the layout hnsw_file.hpp documents; each file damaged at known elements, its
  // checksum recomputed (anyone can), must be refused naming the first of them in element
  // order, whichever thread of the parallel checks finds it.
  test::TempDir tmp;
  const int d = 4;
  const int64_t n = 20000;  // above the size the checks run on all cores
  const auto x = random_vectors(n, d, 31);
  const auto ids = range_ids(1, n);
  auto s = make_vector_store("hnsw:M=4,ef_construction=20", d);
  s->add(n, x.data(), ids.data());
  s->save(tmp.file("g.idx"));
  const StoreFile file(tmp.file("g.idx"));
  const std::string payload = file.payload();
  const size_t links = (2 * 4 + 1) * 4, rec = links + 8, vec = size_t(d) * 4;
  const size_t level0_at = 6 * 8 + 3 * 8, vectors_at = level0_at + size_t(n) * rec;
  auto refused = [&](const std::function<void(std::string&)>& damage) {
    std::string p = payload;
    damage(p);
    std::ofstream(tmp.file("bad.idx"), std::ios::binary) << file.with(p, 6);
    return test::error_of([&] { load_vector_store(tmp.file("bad.idx")); });
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto set_nan = [&](std::string& p, size_t e) { std::memcpy(p.data() + vectors_at + e * vec + 4, &nan, 4); };
  auto bad_link = [&](std::string& p, size_t e) {
    const uint32_t outside = uint32_t(n) + 5, one = 1;
    std::memcpy(p.data() + level0_at + e * rec, &one, 2);  // count 1
    std::memcpy(p.data() + level0_at + e * rec + 4, &outside, 4);
  };
  auto label = [&](std::string& p, size_t e, int64_t v) { std::memcpy(p.data() + level0_at + e * rec + links, &v, 8); };
  CHECK(refused([&](std::string& p) { set_nan(p, 15000); }).find("element 15000 holds NaN or Inf") != std::string::npos);
  CHECK(refused([&](std::string& p) { bad_link(p, 777); }).find("element 777 links outside the graph") != std::string::npos);
  CHECK(refused([&](std::string& p) { set_nan(p, 19999), bad_link(p, 3), set_nan(p, 12000); })
            .find("element 3 links outside the graph") != std::string::npos);
  CHECK(refused([&](std::string& p) { set_nan(p, 4001), bad_link(p, 4001); }).find("element 4001 holds NaN or Inf") !=
        std::string::npos);  // its vector is checked before its links
  CHECK(refused([&](std::string& p) { label(p, 9000, -3), set_nan(p, 8999); }).find("element 8999 holds NaN or Inf") !=
        std::string::npos);
  CHECK(refused([&](std::string& p) { label(p, 9000, -3), set_nan(p, 9001); }).find("element 9000 has a negative id") !=
        std::string::npos);
  int64_t first_label = 0;
  std::memcpy(&first_label, payload.data() + level0_at + links, 8);
  CHECK(refused([&](std::string& p) { label(p, 10, first_label), set_nan(p, 11); }).find("element 10 repeats a stored id") !=
        std::string::npos);
  CHECK(refused([&](std::string& p) { p += std::string(4, '\0'); }).find("4 bytes after the last element's upper levels") !=
        std::string::npos);
  CHECK(refused([&](std::string& p) { p.resize(p.size() - 1); }).find("bad upper-level block") != std::string::npos);
  // The undamaged payload, put back the same way, loads.
  std::ofstream(tmp.file("same.idx"), std::ios::binary) << file.with(payload, 6);
  CHECK(load_vector_store(tmp.file("same.idx"))->size() == n);
}
#endif

TEST_CASE("flat: a buffer handed over to an empty store becomes its table (the copy's site never reached) - a store with rows copies it") {
  // Oracles: brute force, and the fault site of the table's growth (where a copy is made).
  const int d = 8;
  const int64_t n = 500, more = 100;
  const auto x = random_vectors(n + more, d, 3);
  const auto ids = range_ids(1, n + more);
  const std::vector<float> first(x.begin(), x.begin() + n * d), second(x.begin() + n * d, x.end());
  for (const Metric metric : {Metric::inner_product, Metric::l2}) {
    const std::string metric_name = to_string(metric);
    CAPTURE(metric_name);
    auto s = make_vector_store("flat", d, metric);
    {
      Guard g;
      AlignedVector<float> buf(first.begin(), first.end());
      detail::arm_fault("flat.add.map", 200);
      CHECK_THROWS_AS(s->add(n, std::move(buf), ids.data()), std::bad_alloc);
      detail::disarm_fault();
      CHECK(s->size() == 0);
      CHECK(std::vector<float>(buf.begin(), buf.end()) == first);
    }
    {
      Guard g;
      AlignedVector<float> buf(first.begin(), first.end());
      detail::arm_fault("flat.add.grow", 1);
      s->add(n, std::move(buf), ids.data());
      CHECK(detail::disarm_fault() == 0);
      CHECK(buf.empty());
    }
    test::check_against_brute(*s, first, std::vector<int64_t>(ids.begin(), ids.begin() + n), true);
    {
      Guard g;
      AlignedVector<float> buf(second.begin(), second.end());
      detail::arm_fault("flat.add.grow", 1);
      CHECK_THROWS_AS(s->add(more, std::move(buf), ids.data() + n), std::bad_alloc);
      detail::disarm_fault();
      CHECK(buf.size() == second.size());
      s->add(more, std::move(buf), ids.data() + n);
    }
    test::check_against_brute(*s, x, ids, true);
  }
}

#if MINDREC_HAS_HNSW
TEST_CASE("hnsw: a search clears only the visited words it set (no pass over every element per query)") {
  // The walk's visited set at 20M elements is 2.5 MB of bits: clearing it whole per query
  // would cost more than the search (review F4). Oracle: the set's own bookkeeping against a
  // plain bitset of what was set.
  store::hnsw::VisitedSet v;
  v.reset(20000000);
  CHECK(v.words() == (20000000 + 63) / 64);
  const std::vector<uint32_t> first = {5, 6, 64, 19999999, 1234567};
  for (uint32_t id : first) v.set(id);
  CHECK(v.touched_words() == 4);  // 5 and 6 share a word
  for (uint32_t id : first) CHECK(v.test(id));
  CHECK_FALSE(v.test(7));
  v.reset(20000000);  // clears the 4 words, not 312,500
  CHECK(v.touched_words() == 0);
  for (uint32_t id : first) CHECK_FALSE(v.test(id));
  // A smaller graph afterwards: the bits stay (never shrink), all clear.
  v.set(3);
  v.reset(100);
  CHECK(v.words() == (20000000 + 63) / 64);
  CHECK_FALSE(v.test(3));
  // Over many random queries the set equals a plain bitset, every reset leaves nothing set.
  std::vector<uint8_t> oracle(1 << 20, 0);
  uint64_t r = 88172645463325252ull;
  for (int q = 0; q < 200; ++q) {
    v.reset(1 << 20);
    std::fill(oracle.begin(), oracle.end(), 0);
    for (int i = 0; i < 500; ++i) {
      r ^= r << 13, r ^= r >> 7, r ^= r << 17;
      const uint32_t id = uint32_t(r % (1 << 20));
      CHECK(v.test(id) == bool(oracle[id]));
      v.set(id);
      oracle[id] = 1;
    }
  }
}
#endif

#if MINDREC_HAS_FAISS
TEST_CASE("a Faiss compaction that fails leaves the removal applied (tombstones kept - retried later)") {
  const int d = 8;
  auto s = make_vector_store("faiss:Flat", d);
  auto want = make_vector_store("flat", d);
  const auto x = random_vectors(400, d, 4);
  const auto ids = range_ids(1, 400);
  s->add(400, x.data(), ids.data());
  want->add(400, x.data(), ids.data());
  Guard g;
  detail::arm_fault("faiss.rebuild", 1);
  CHECK(s->remove(150, ids.data()) == 150);  // > 1/4 removed: compaction tried, fails
  CHECK(detail::disarm_fault() == 1);
  want->remove(150, ids.data());
  const Snapshot a = snapshot(*s), b = snapshot(*want);
  CHECK(a.size == 250);
  CHECK(a.ids == b.ids);
  for (size_t i = 0; i < a.scores.size(); ++i)
    if (std::isfinite(b.scores[i])) CHECK(a.scores[i] == doctest::Approx(b.scores[i]).epsilon(1e-5));
    else CHECK(a.scores[i] == b.scores[i]);
}
#endif

#if MINDREC_HAS_HNSW
TEST_CASE("an hnsw compaction that fails leaves the removal applied (removed elements stay - compacted at a later write)") {
  // Review: the hnsw.compact fault point was never armed. The compaction runs once removed
  // elements outnumber live ones and 1,024; when it throws, the removal stands: no removed id
  // is returned, the size counts live items only, and the top-10 matches exact search (a
  // brute-force oracle) as before the removal; a later removal compacts.
  const int d = 8, k = 10, nq = 50;
  const int64_t n = 3000;
  auto s = make_vector_store("hnsw:M=16,ef_construction=100?ef=200", d, Metric::l2);
  auto want = make_vector_store("flat", d, Metric::l2);
  const auto x = random_vectors(n, d, 5);
  const auto q = random_vectors(nq, d, 6);
  const auto ids = range_ids(1, n);
  s->add(n, x.data(), ids.data());
  want->add(n, x.data(), ids.data());
  auto agreement = [&](int64_t first_live) {  // share of the exact top-10 found; no removed id
    std::vector<int64_t> a(size_t(nq) * k), b(size_t(nq) * k);
    std::vector<float> sa(a.size()), sb(b.size());
    s->search(nq, q.data(), k, a.data(), sa.data());
    want->search(nq, q.data(), k, b.data(), sb.data());
    int64_t found = 0;
    for (int i = 0; i < nq; ++i)
      for (int j = 0; j < k; ++j) {
        const int64_t id = a[size_t(i) * k + j];
        CHECK(id >= first_live);
        found += std::count(b.begin() + i * k, b.begin() + (i + 1) * k, id);
      }
    return double(found) / double(nq * k);
  };
  CHECK(agreement(1) >= 0.95);
  Guard g;
  detail::arm_fault("hnsw.compact", 1);
  CHECK(s->remove(1600, ids.data()) == 1600);  // 1,600 removed > 1,400 live: compaction tried, fails
  CHECK(detail::disarm_fault() == 1);
  want->remove(1600, ids.data());
  CHECK(s->size() == n - 1600);
  CHECK(agreement(1601) >= 0.95);
  // The next removal compacts (nothing armed): still only live items, as exact as before.
  CHECK(s->remove(10, ids.data() + 1600) == 10);
  want->remove(10, ids.data() + 1600);
  CHECK(s->size() == n - 1610);
  CHECK(agreement(1611) >= 0.95);
}
#endif

namespace {

// While a write is at `site`, a second thread runs 5 searches, which must all answer before a
// deadline only a blocked search would miss. What they return must equal a search before the
// write (`during_equals_before`, the write not applied yet) or after it (the removal that
// precedes a compaction is already visible; the compaction changes no result); with nullopt
// they are not compared (only that they answered).
void expect_searches_answer(VectorStore& s, const std::string& site, std::optional<bool> during_equals_before,
                            const std::function<void()>& write) {
  CAPTURE(site);
  const auto q = random_vectors(4, s.dim(), 5);
  auto search = [&] {
    std::pair<std::vector<int64_t>, std::vector<float>> r{std::vector<int64_t>(40), std::vector<float>(40)};
    s.search(4, q.data(), 10, r.first.data(), r.second.data());
    return r;
  };
  const auto before = search();
  std::vector<std::pair<std::vector<int64_t>, std::vector<float>>> during;
  int hooked = 0;
  std::future<void> pending;
  Guard g;
  detail::arm_hook(site, [&] {
    if (hooked++) return;  // the first pass: the preparation is under way
    pending = std::async(std::launch::async, [&] {
      for (int i = 0; i < 5; ++i) during.push_back(search());
    });
    // Not waited for past the deadline: a search blocked by this write can only finish
    // after the write, below.
    if (pending.wait_for(std::chrono::seconds(60)) != std::future_status::ready)
      FAIL_CHECK("searches did not answer during '" << site << "' (blocked by the write)");
  });
  write();
  detail::disarm_fault();
  if (pending.valid()) pending.wait();
  CHECK(hooked >= 1);
  REQUIRE(during.size() == 5);
  if (!during_equals_before) return;  // nullopt: only that they answered (a deterministic check of the lock)
  const auto want = *during_equals_before ? before : search();
  for (const auto& r : during) CHECK(r == want);
}

}  // namespace

TEST_CASE("searches keep answering while a write prepares: save - load - growth - compaction of 1M vectors") {
  test::TempDir tmp;
  const int d = 8;
  const int64_t n = 1000000;
  const auto x = random_vectors(n, d, 6);
  const auto ids = range_ids(1, n);
  auto flat = make_vector_store("flat", d);
  flat->add(n, x.data(), ids.data());
  expect_searches_answer(*flat, "store.save.write", true, [&] { flat->save(tmp.file("big.idx")); });
  auto loaded = make_vector_store("flat", d);
  loaded->add(10, x.data(), ids.data());
  expect_searches_answer(*loaded, "store.load.read", true, [&] { loaded->load(tmp.file("big.idx")); });
  CHECK(loaded->size() == n);
  // A full buffer: the next add copies the 1M rows into a larger one, aside.
  const auto more = random_vectors(1000, d, 7);
  const auto more_ids = range_ids(n + 1, 1000);
  auto grow = make_vector_store("flat", d);
  grow->add(n, x.data(), ids.data());
  expect_searches_answer(*grow, "flat.add.grow", true, [&] { grow->add(1000, more.data(), more_ids.data()); });
  CHECK(grow->size() == n + 1000);
#if MINDREC_HAS_HNSW
  // hnsw: a batch is inserted in place, chunk by chunk, hidden until it is all in: searches
  // answer between the chunks and see nothing of it (ef above the count: exact results, which
  // the hidden elements' routing cannot change). A rebuild (an upsert of most items) is made
  // aside: searches answer while it is complete but not swapped in.
  auto graph = make_vector_store("hnsw:M=16,ef_construction=40?ef=30000", d);
  graph->add(20000, x.data(), ids.data());
  expect_searches_answer(*graph, "hnsw.add.chunk", true, [&] { graph->add(1000, more.data(), more_ids.data()); });
  CHECK(graph->size() == 21000);
  expect_searches_answer(*graph, "hnsw.add.chunk", true, [&] { graph->upsert(1000, more.data(), ids.data()); });
  CHECK(graph->size() == 21000);
  expect_searches_answer(*graph, "hnsw.rebuilt", true, [&] { graph->upsert(20000, x.data() + 20000 * d, ids.data()); });
  CHECK(graph->size() == 21000);
#endif
#if MINDREC_HAS_FAISS
  // Removing over a quarter compacts the Faiss index: the rest is rebuilt aside.
  auto faiss_flat = make_vector_store("faiss:Flat", d);
  faiss_flat->add(n, x.data(), ids.data());
  expect_searches_answer(*faiss_flat, "faiss.rebuild", false, [&] { faiss_flat->remove(n / 3, ids.data() + n / 2); });
  CHECK(faiss_flat->size() == n - n / 3);
  // HNSW under inner product: a longer vector than the reduction's bound re-augments every
  // vector into a new graph, built aside (20,000 vectors: a 1M-vector HNSW build takes minutes).
  auto hnsw = make_vector_store("faiss:HNSW16", d);
  hnsw->add(20000, x.data(), ids.data());
  std::vector<float> longer(more.begin(), more.begin() + 10 * d);
  for (auto& v : longer) v *= 10.f;
  expect_searches_answer(*hnsw, "faiss.rebuild", true, [&] { hnsw->add(10, longer.data(), more_ids.data()); });
  CHECK(hnsw->size() == 20010);
#endif
}

namespace {

// A write run on this thread while another thread searches without pause: how long the write
// took, and the longest any single search took meanwhile (one query, k = 10).
struct Stall {
  double write_s = 0, worst_search_s = 0;
  int searches = 0;
};

Stall measure_stall(const VectorStore& s, const std::function<void()>& write) {
  const auto q = random_vectors(1, s.dim(), 17);
  std::atomic<bool> stop{false};
  std::atomic<int> done{0};
  double worst = 0;
  std::thread searcher([&] {
    std::vector<int64_t> ids(10);
    std::vector<float> sc(10);
    while (!stop.load()) {
      const auto t0 = std::chrono::steady_clock::now();
      s.search(1, q.data(), 10, ids.data(), sc.data());
      worst = std::max(worst, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      ++done;
    }
  });
  while (done.load() < 3) std::this_thread::yield();
  const int before = done.load();
  worst = 0;  // (a benign race with the searcher: the first searches' times are dropped)
  const auto t0 = std::chrono::steady_clock::now();
  write();
  Stall r;
  r.write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  searcher.join();
  r.worst_search_s = worst;
  r.searches = done.load() - before;
  return r;
}

// Sanitizer builds run several times slower: smaller stores, the same ratios.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int64_t kScale = 4;
constexpr double kMinWrite = 0.05;  // a quarter of it (12 ms) still exceeds a scheduler slice
#else
constexpr int64_t kScale = 1;
constexpr double kMinWrite = 0.1;
#endif

}  // namespace

TEST_CASE("writes never hold searches: every kind of write on a store where it takes long - the longest search stays a fraction of the write") {
  // Review F1-F3, F8: a write's expensive part (insertion, encoding, assignment, list surgery,
  // a rebuild) must not run under the lock searches wait for. First without a clock: the write
  // is paused at a fault point inside that part while another thread's searches must answer.
  // Then with one: a thread searches while each
  // write runs; the longest search must stay under a quarter of the write's time (a write
  // that held searches for its work would make one search wait for most of it). A relative
  // bound, not a timing threshold: both are measured in the same run on the same machine. The
  // writes are sized to take 0.3 s or more here (the searcher competes with the writer's
  // threads for 2 cores, so its own time includes the scheduler's slices, ~4-8 ms: a much
  // shorter write could not tell holding from scheduling).
  const int d = 16;
  struct Write {
    std::string what;
    std::function<std::unique_ptr<VectorStore>()> make;  // a filled store
    std::function<void(VectorStore&)> write;
    std::string site;  // a fault point inside the write's expensive part
  };
  // `huge` for the removes: removing half of 1M items from a fast-scan list took 0.09 s here
  // once (under the 0.1 s this test needs to tell holding from scheduling), so 2M.
  const int64_t big = 200000 / kScale, huge = 2000000 / kScale, graph = 20000 / kScale;
  const auto x = random_vectors(huge, d, 21);
  const auto y = random_vectors(big, d, 22);
  const auto ids = range_ids(1, huge), new_ids = range_ids(huge + 1, big);
  auto filled = [&](const std::string& spec, int64_t n) {
    return [&, spec, n] {
      auto s = make_vector_store(spec, d);
      s->add(n, x.data(), ids.data());
      return s;
    };
  };
  std::vector<Write> writes;
#if MINDREC_HAS_FAISS
  for (const std::string spec : {"faiss:IVF256,Flat?nprobe=8", "faiss:IVF256,SQ8?nprobe=8", "faiss:IVF256,PQ8x4fs?nprobe=8"}) {
    writes.push_back({spec + " add", filled(spec, big), [&](VectorStore& s) { s.add(big, y.data(), new_ids.data()); }, "faiss.add.index"});
    writes.push_back({spec + " upsert of every item", filled(spec, big), [&](VectorStore& s) { s.upsert(big, y.data(), ids.data()); }, "faiss.add.index"});
    writes.push_back({spec + " remove of half", filled(spec, huge), [&](VectorStore& s) { s.remove(huge / 2, ids.data()); }, "faiss.ivf.lists"});
  }
  const std::string fh = "faiss:HNSW16,Flat?ef=32";
  writes.push_back({fh + " (MIPS) upsert of every item", filled(fh, graph),
                    [&](VectorStore& s) { s.upsert(graph, y.data(), ids.data()); }, "faiss.add.index"});
  writes.push_back({fh + " (MIPS) a longer vector re-augments everything", filled(fh, graph), [&](VectorStore& s) {
                      std::vector<float> longer(y.begin(), y.begin() + d);
                      for (auto& v : longer) v *= 10.f;
                      s.add(1, longer.data(), new_ids.data());
                    }, "faiss.rebuild"});
  writes.push_back({fh + " (MIPS) add of 5,000 (a copy of the index)", filled(fh, graph * 5),
                    [&](VectorStore& s) { s.add(5000 / kScale, y.data(), new_ids.data()); }, "faiss.add.index"});
#endif
#if MINDREC_HAS_HNSW
  const std::string hs = "hnsw:M=16,ef_construction=64?ef=32";
  writes.push_back({hs + " add in place (a third of the graph)", filled(hs, graph),
                    [&](VectorStore& s) { s.add(graph / 3, y.data(), new_ids.data()); }, "hnsw.add.chunk"});
  writes.push_back({hs + " upsert in place (a third of the items)", filled(hs, graph),
                    [&](VectorStore& s) { s.upsert(graph / 3, y.data(), ids.data()); }, "hnsw.add.chunk"});
  writes.push_back({hs + " upsert of every item (rebuilt aside)", filled(hs, graph),
                    [&](VectorStore& s) { s.upsert(graph, y.data(), ids.data()); }, "hnsw.rebuilt"});
#endif
  for (const Write& w : writes) {
    CAPTURE(w.what);
    // Without a clock: searches answer while the write is inside its expensive part.
    {
      auto s = w.make();
      expect_searches_answer(*s, w.site, std::nullopt, [&] { w.write(*s); });
    }
    // With one: a write that held searches for its work makes one search wait for most of it in
    // every attempt; scheduling on 2 shared cores (a sanitizer's slower write) can make one
    // attempt's ratio miss by chance, so the best of three attempts is checked.
    Stall best;
    double best_ratio = 1e9;
    for (int attempt = 0; attempt < 3 && best_ratio >= 0.25; ++attempt) {
      auto s = w.make();
      const Stall st = measure_stall(*s, [&] { w.write(*s); });
      MESSAGE(w.what << ": write " << st.write_s << " s, longest search " << st.worst_search_s * 1e3 << " ms, "
                     << st.searches << " searches");
      const double ratio = st.write_s > 0 ? st.worst_search_s / st.write_s : 1e9;
      if (ratio < best_ratio) best_ratio = ratio, best = st;
    }
    CAPTURE(best.write_s);
    CAPTURE(best.worst_search_s);
    CAPTURE(best.searches);
    CHECK(best.write_s >= kMinWrite);  // long enough to tell (sizes above)
    CHECK(best.searches >= 1);
    CHECK(best_ratio < 0.25);
  }
}
