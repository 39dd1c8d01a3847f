// Multi-interest recall through a store: the same merged lists as the exact evaluation path,
// history exclusion, and evaluate() through a store.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "mindrec/eval.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/version.hpp"
#include "mindrec/topk.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/catalogue.hpp"
#include "mindrec/recommender.hpp"
#include "common/store_contract.hpp"
#include "small_model.hpp"
#include "test_util.hpp"

using namespace mindrec;

namespace {
MindModel small_model() { return MindModel(test::small_weights()); }
}  // namespace

TEST_CASE("recall through a flat store equals exact search of items 1..N-1 plus the merge") {
  const MindModel m = small_model();
  auto store = build_item_store(m, "flat");
  CHECK(store->size() == 299);
  const int64_t hist[12] = {5, 17, 250, 9, 0, 0, 33, 34, 35, 36, 37, 38};
  const int32_t lens[2] = {4, 6};
  const int N = 7;
  std::vector<int64_t> ids(2 * N);
  std::vector<float> sc(2 * N);
  RecallOptions o;
  o.topn = N;
  recall_items(m, *store, hist, lens, 2, o, ids.data(), sc.data());
  // Independent path: interests, exact top-N over rows 1..N-1, merge.
  std::vector<float> in(2 * 3 * 8);
  std::vector<int32_t> counts(2);
  m.extract_interests(hist, lens, 2, in.data(), counts.data());
  const auto& emb = m.weights().item_emb;
  for (int b = 0; b < 2; ++b) {
    std::vector<int64_t> pid(3 * N);
    std::vector<float> psc(3 * N);
    exact_topk(emb.data() + 8, 299, 8, in.data() + b * 24, counts[b], N, pid.data(), psc.data());
    for (auto& id : pid) id += 1;  // row r of the slice is item r + 1
    std::vector<int64_t> want(N);
    const int n = merge_interests(pid.data(), psc.data(), counts[b], N, N, want.data());
    REQUIRE(n == N);
    CHECK(std::vector<int64_t>(ids.begin() + b * N, ids.begin() + (b + 1) * N) == want);
    for (int j = 1; j < N; ++j) CHECK(sc[b * N + j - 1] >= sc[b * N + j]);
  }
  // Excluding the history: none of the user's items come back, and the list stays full.
  o.exclude_history = true;
  recall_items(m, *store, hist, lens, 2, o, ids.data(), sc.data());
  for (int j = 0; j < N; ++j) {
    CHECK(std::find(hist, hist + 4, ids[j]) == hist + 4);
    CHECK(std::find(hist + 6, hist + 12, ids[N + j]) == hist + 12);
    CHECK(ids[j] > 0);
  }
}

#if MINDREC_HAS_FAISS
TEST_CASE("exclude_history leaves out every id of a history longer than maxlen - the model still reads the last maxlen") {
  const MindModel m = small_model();
  auto store = build_item_store(m, "flat");
  const std::vector<int64_t> last = {5, 17, 250, 9, 33, 34};  // maxlen 6: what the model reads
  RecallOptions o;
  o.topn = 80;
  const RecallResult all = recall_histories(m, *store, {last}, o);
  // The history: 30 of the user's best-ranked items first, then the 6 the model reads.
  std::vector<int64_t> hist;
  for (int j = 0; j < 80 && hist.size() < 30; ++j)
    if (std::find(last.begin(), last.end(), all.ids[size_t(j)]) == last.end()) hist.push_back(all.ids[size_t(j)]);
  REQUIRE(hist.size() == 30);
  hist.insert(hist.end(), last.begin(), last.end());
  o.topn = 20;
  const RecallResult same = recall_histories(m, *store, {hist}, o);  // the same interests: the same list
  CHECK(same.ids == std::vector<int64_t>(all.ids.begin(), all.ids.begin() + 20));
  o.exclude_history = true;
  const RecallResult r = recall_histories(m, *store, {hist}, o);
  // Oracle: the full ranking without the 36 history ids, first 20.
  std::vector<int64_t> want;
  for (const int64_t id : all.ids)
    if (want.size() < 20 && std::find(hist.begin(), hist.end(), id) == hist.end()) want.push_back(id);
  REQUIRE(want.size() == 20);
  CHECK(r.ids == want);
  CHECK(r.fallback == std::vector<uint8_t>{0});
}

TEST_CASE("a user with no clicks gets the popular items, flagged - id 0 is refused with its position") {
  MindWeights w = test::small_weights();
  w.popular_items = {7, 3, 250, 42, 5};
  const MindModel m(std::move(w));
  auto store = build_item_store(m, "flat");
  RecallOptions o;
  o.topn = 4;
  const std::vector<std::vector<int64_t>> users = {{}, {5, 17}, {}};
  const RecallResult r = recall_histories(m, *store, users, o);
  CHECK(r.fallback == std::vector<uint8_t>{1, 0, 1});
  CHECK(std::vector<int64_t>(r.ids.begin(), r.ids.begin() + 4) == std::vector<int64_t>{7, 3, 250, 42});
  CHECK(std::vector<int64_t>(r.ids.begin() + 8, r.ids.end()) == std::vector<int64_t>{7, 3, 250, 42});
  for (int j = 0; j < 4; ++j) CHECK(r.scores[size_t(j)] == 0.0f);
  // the user with clicks: as recalled alone
  const RecallResult alone = recall_histories(m, *store, {{5, 17}}, o);
  CHECK(std::vector<int64_t>(r.ids.begin() + 4, r.ids.begin() + 8) == alone.ids);
  CHECK(std::vector<float>(r.scores.begin() + 4, r.scores.begin() + 8) == alone.scores);
  // more asked than the list holds: padded with -1
  o.topn = 7;
  const RecallResult more = recall_histories(m, *store, {{}}, o);
  CHECK(more.ids == std::vector<int64_t>{7, 3, 250, 42, 5, -1, -1});
  // the packed form: lengths 0 likewise, flags written
  const int64_t hist[12] = {0, 0, 0, 0, 0, 0, 5, 17, 0, 0, 0, 0};
  const int32_t lens[2] = {0, 2};
  std::vector<int64_t> ids(14);
  std::vector<float> sc(14);
  uint8_t flags[2] = {9, 9};
  recall_items(m, *store, hist, lens, 2, o, ids.data(), sc.data(), flags);
  CHECK(flags[0] == 1);
  CHECK(flags[1] == 0);
  CHECK(std::vector<int64_t>(ids.begin(), ids.begin() + 7) == more.ids);
  // id 0 inside a length, anywhere in a list: refused, naming user and position
  auto message = [&](const std::vector<std::vector<int64_t>>& h) {
    try {
      recall_histories(m, *store, h, o);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message({{5}, {5, 0, 17}}) == "recall_histories: user 1, position 1: item id 0 is the padding id, not an item");
  CHECK(message({{5, 300}}).find("user 0, position 1: item id 300 is outside the model's [1, item_count=300)") != std::string::npos);
  // 0 far before the last maxlen ids: refused too (every id is an exclusion candidate)
  std::vector<int64_t> long_hist(20, 5);
  long_hist[2] = 0;
  CHECK(message({long_hist}).find("user 0, position 2: item id 0") != std::string::npos);
  const int64_t bad[6] = {5, 0, 0, 0, 0, 0};
  const int32_t bad_len[1] = {2};
  CHECK_THROWS_WITH_AS(recall_items(m, *store, bad, bad_len, 1, o, ids.data(), sc.data()),
                       "recall_items: user 0, position 1: item id 0 is the padding id, not an item", InvalidArgument);
  // weights without popular items: a user with no clicks is refused, saying why
  const MindModel bare(test::small_weights());
  CHECK_THROWS_AS(recall_histories(bare, *store, {{}}, o), InvalidArgument);
}

TEST_CASE("popular items and the evaluation travel in the weights file's metadata") {
  test::TempDir tmp;
  MindWeights w = test::small_weights();
  w.popular_items = {9, 1, 299};
  w.evaluation = {{"recall@50", 0.125}, {"popularity_recall@50", 0.0625}};
  save_weights(tmp.file("w.safetensors"), w);
  const MindWeights back = load_weights(tmp.file("w.safetensors"));
  CHECK(back.popular_items == w.popular_items);
  CHECK(back.evaluation == w.evaluation);
  CHECK(item_fingerprint(back) == item_fingerprint(w));  // the vectors' fingerprint only
  w.popular_items = {9, 300};
  CHECK_THROWS_WITH_AS(save_weights(tmp.file("x.safetensors"), w),
                       "MindWeights: popular_items[1] = 300 is not an item id in [1, item_count=300)", InvalidArgument);
  CHECK_FALSE(std::filesystem::exists(tmp.file("x.safetensors")));
  CHECK_THROWS_AS(save_weights(tmp.file("x.safetensors"), test::small_weights(), {0}, {}), InvalidArgument);
}

TEST_CASE("rerank: an 8-bit store's candidates scored exactly - the result and scores of exact search") {
  const MindModel m = small_model();
  auto flat = build_item_store(m, "flat");
  auto sq8 = build_item_store(m, "faiss:IVF4,SQ8?nprobe=4");
  const int64_t hist[12] = {5, 17, 250, 9, 0, 0, 33, 34, 35, 36, 37, 38};
  const int32_t lens[2] = {4, 6};
  const int N = 7;
  std::vector<int64_t> want(2 * N), plain(2 * N), reranked(2 * N);
  std::vector<float> want_sc(2 * N), plain_sc(2 * N), reranked_sc(2 * N);
  RecallOptions o;
  o.topn = N;
  recall_items(m, *flat, hist, lens, 2, o, want.data(), want_sc.data());
  recall_items(m, *sq8, hist, lens, 2, o, plain.data(), plain_sc.data());
  o.rerank = 4;
  recall_items(m, *sq8, hist, lens, 2, o, reranked.data(), reranked_sc.data());
  CHECK(reranked == want);
  for (int i = 0; i < 2 * N; ++i) CHECK(reranked_sc[size_t(i)] == doctest::Approx(want_sc[size_t(i)]).epsilon(1e-5));
  // Without re-ranking the scores are the 8-bit codes' (not exact).
  int off = 0;
  for (int i = 0; i < 2 * N; ++i) off += std::abs(plain_sc[size_t(i)] - want_sc[size_t(i)]) > 1e-5f;
  CHECK(off > 0);
  o.rerank = 101;
  CHECK_THROWS_AS(recall_items(m, *sq8, hist, lens, 2, o, reranked.data(), reranked_sc.data()), InvalidArgument);
}

TEST_CASE("rerank keeps the store's score for vectors written after the model - ids it has none for and store_scored ids") {
  // A vector written into the store later (mindrec-serve's /rec/items) is not the model's:
  // re-scoring it with the model's row would rank it by a vector it no longer has. Oracle: a
  // flat store holding the same vectors, searched exactly.
  const MindModel m = small_model();
  auto store = build_item_store(m, "flat");
  const int H = m.config().hidden_size, K = m.config().capsule.max_k;
  int64_t hist[6] = {5, 17, 250, 9, 0, 0};
  const int32_t len = 4;
  std::vector<float> interests(size_t(K) * H);
  int32_t count = 0;
  m.extract_interests(hist, &len, 1, interests.data(), &count);
  std::vector<float> big(interests.begin(), interests.begin() + H);  // along the first interest, long
  for (auto& v : big) v *= 50.f;
  const int64_t replaced = 40, added = 5000;  // 5000 >= item_count: no model row
  store->upsert(1, big.data(), &replaced);
  store->add(1, big.data(), &added);
  RecallOptions o;
  o.topn = 5;
  std::vector<int64_t> exact(5), reranked(5);
  std::vector<float> exact_sc(5), reranked_sc(5);
  recall_items(m, *store, hist, &len, 1, o, exact.data(), exact_sc.data());
  REQUIRE(std::find(exact.begin(), exact.end(), replaced) != exact.end());
  REQUIRE(std::find(exact.begin(), exact.end(), added) != exact.end());
  const std::vector<int64_t> later = {replaced};
  o.rerank = 3;
  o.store_scored = &later;
  recall_items(m, *store, hist, &len, 1, o, reranked.data(), reranked_sc.data());
  CHECK(reranked == exact);
  for (int i = 0; i < 5; ++i) CHECK(reranked_sc[size_t(i)] == doctest::Approx(exact_sc[size_t(i)]).epsilon(1e-5));
  o.store_scored = nullptr;  // without it the replaced item is scored with the model's old row
  recall_items(m, *store, hist, &len, 1, o, reranked.data(), reranked_sc.data());
  CHECK(std::find(reranked.begin(), reranked.end(), added) != reranked.end());  // no model row: store score
  CHECK(reranked != exact);
}

TEST_CASE("evaluate with rerank through an 8-bit store gives the exact path's metrics") {
  const MindModel m = small_model();
  auto sq8 = build_item_store(m, "faiss:IVF4,SQ8?nprobe=4");
  auto flat = build_item_store(m, "flat");
  EvalSet set;
  set.hist_offsets = {0};
  set.eval_offsets = {0};
  for (int64_t u = 0; u < 40; ++u) {
    for (int j = 0; j < 5; ++j) set.hist_items.push_back(1 + (u * 7 + j * 13) % 298);
    set.hist_offsets.push_back(int64_t(set.hist_items.size()));
    for (int j = 0; j < 3; ++j) set.eval_items.push_back(1 + (u * 11 + j * 5) % 298);
    set.eval_offsets.push_back(int64_t(set.eval_items.size()));
    set.user_ids.push_back(u);
    set.target_items.push_back(0);
  }
  EvalOptions o;
  o.topk = {5, 20};
  o.store = flat.get();
  const auto want = evaluate(m, set, o);
  o.store = sq8.get();
  o.rerank = 4;
  const auto got = evaluate(m, set, o);
  for (size_t t = 0; t < o.topk.size(); ++t) {
    CHECK(got.metrics[t].recall == doctest::Approx(want.metrics[t].recall));
    CHECK(got.metrics[t].ndcg == doctest::Approx(want.metrics[t].ndcg));
    CHECK(got.metrics[t].hitrate == doctest::Approx(want.metrics[t].hitrate));
  }
  o.rerank = 101;
  CHECK_THROWS_AS(evaluate(m, set, o), InvalidArgument);
}
#endif

TEST_CASE("evaluate through a store: flat matches the exact path when row 0 plays no part") {
  const MindModel m = small_model();
  auto flat = build_item_store(m, "flat");
  EvalSet set;
  set.hist_offsets = {0};
  set.eval_offsets = {0};
  for (int u = 0; u < 40; ++u) {
    set.user_ids.push_back(u);
    set.target_items.push_back(0);
    for (int i = 0; i < 5; ++i) set.hist_items.push_back(1 + (u * 13 + i * 7) % 299);
    for (int i = 0; i < 3; ++i) set.eval_items.push_back(1 + (u * 5 + i * 11) % 299);
    set.hist_offsets.push_back(int64_t(set.hist_items.size()));
    set.eval_offsets.push_back(int64_t(set.eval_items.size()));
  }
  EvalOptions o;
  o.topk = {10, 50};
  const EvalReport exact = evaluate(m, set, o);
  o.store = flat.get();
  const EvalReport via_flat = evaluate(m, set, o);
#if MINDREC_HAS_FAISS
  auto hnsw = build_item_store(m, "faiss:HNSW16?ef=200");
  o.store = hnsw.get();
  const EvalReport via_hnsw = evaluate(m, set, o);
#endif
  // Row 0 scores 0; with these spread-out items it is never within a top-50, so the exact
  // path and the store (which holds items 1..N-1 only) retrieve the same lists.
  for (int t = 0; t < 2; ++t) {
    CHECK(via_flat.metrics[t].recall == doctest::Approx(exact.metrics[t].recall));
    CHECK(via_flat.metrics[t].ndcg == doctest::Approx(exact.metrics[t].ndcg));
#if MINDREC_HAS_FAISS
    CHECK(via_hnsw.metrics[t].recall >= 0.8 * exact.metrics[t].recall);
#endif
  }
}

TEST_CASE("item fingerprints pair a store with the weights it came from") {
  MindWeights w = test::small_weights();
  const uint64_t f = item_fingerprint(w);
  CHECK(f != 0);
  CHECK(item_fingerprint(test::small_weights()) == f);  // same weights, same fingerprint
  MindWeights other = w;
  other.item_emb[123] += 1e-6f;  // one element of the table
  CHECK(item_fingerprint(other) != f);
  MindWeights relu_changed = w;  // only item_emb (and its shape) counts
  relu_changed.bilinear[0] += 1.0f;
  CHECK(item_fingerprint(relu_changed) == f);
  CHECK(fingerprint_hex(0x00ab) == "00000000000000ab");

  const MindModel a(w), b(other);
  CHECK(a.item_fingerprint() == f);
  auto store = build_item_store(a, "flat");
  CHECK(store->source_fingerprint() == f);
  check_store_pairing(a, *store, "items.idx");  // the pair: no error

  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::warn) warnings.emplace_back(m);
  });
  const std::string e = test::error_of([&] { check_store_pairing(b, *store, "items.idx"); });
  CHECK(e.find("items.idx: the store holds the item vectors of weights " + fingerprint_hex(f) +
               ", not of the loaded weights " + fingerprint_hex(b.item_fingerprint())) != std::string::npos);
  CHECK(e.find("--allow-mismatched-index") != std::string::npos);
  CHECK_THROWS_AS(check_store_pairing(b, *store, "items.idx"), ConfigError);
  check_store_pairing(b, *store, "items.idx", true);  // allowed: a warning
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("allowed by request") != std::string::npos);
  store->set_source_fingerprint(0);  // unknown (an old file): a warning, no error
  check_store_pairing(b, *store, "old.idx");
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[1].find("old.idx: the store does not record which weights") != std::string::npos);
  set_log_sink(nullptr);
}

TEST_CASE("Recommender: swap replaces the snapshot - holders of the old one keep it - load_snapshot pairs files") {
  auto model_a = std::make_shared<const MindModel>(test::small_weights());
  auto store_a = std::shared_ptr<VectorStore>(build_item_store(*model_a, "flat"));
  Recommender rec(make_snapshot(model_a, store_a));
  CHECK(rec.generation() == 0);
  const auto held = rec.current();  // a request in flight
  MindWeights wb = test::small_weights();
  wb.item_emb[100] += 1.0f;
  auto model_b = std::make_shared<const MindModel>(wb);
  const auto old = rec.swap(make_snapshot(model_b, std::shared_ptr<VectorStore>(build_item_store(*model_b, "flat"))));
  CHECK(old == held);
  CHECK(rec.generation() == 1);
  CHECK(rec.current()->model == model_b);
  CHECK(held->model == model_a);  // still whole for its holder
  CHECK(held->store->size() == 299);
  CHECK_THROWS_AS(rec.swap(nullptr), InvalidArgument);
  CHECK_THROWS_AS(make_snapshot(model_a, std::shared_ptr<VectorStore>(make_vector_store("flat", 5))), InvalidArgument);
#if MINDREC_HAS_YAML
  test::TempDir tmp;
  tmp.write("c.yaml", "runner:\n  train_data_dir: x\n  test_data_dir: y\nhyper_parameters:\n  item_count: 300\n"
                      "  embedding_dim: 8\n  hidden_size: 8\n  maxlen: 6\n  neg_samples: 10\n  capsule:\n    max_k: 3\n");
  save_weights(tmp.file("a.safetensors"), test::small_weights());
  save_weights(tmp.file("b.safetensors"), wb);
  store_a->save(tmp.file("a.idx"));
  SnapshotSource src;
  src.config = tmp.file("c.yaml");
  src.weights = tmp.file("a.safetensors");
  src.index = tmp.file("a.idx");
  const auto s = load_snapshot(src);
  CHECK(s->index_path == tmp.file("a.idx"));
  CHECK(s->store->size() == 299);
  CHECK(s->load_seconds > 0);
  src.weights = tmp.file("b.safetensors");  // the index of other weights: refused
  CHECK_THROWS_AS(load_snapshot(src), ConfigError);
  // ... naming the likely cause when the index is newer than the weights (a server serving a's
  // weights saved it after b's were deployed), and only then
  namespace fs = std::filesystem;
  fs::last_write_time(tmp.file("b.safetensors"), fs::last_write_time(tmp.file("a.idx")) - std::chrono::hours(1));
  CHECK_THROWS_WITH_AS(load_snapshot(src), doctest::Contains("The index file is newer than the weights (3600 s)"),
                       ConfigError);
  fs::last_write_time(tmp.file("b.safetensors"), fs::last_write_time(tmp.file("a.idx")) + std::chrono::hours(1));
  CHECK(test::error_of([&] { load_snapshot(src); }).find("newer") == std::string::npos);
  src.allow_mismatched_index = true;
  CHECK(load_snapshot(src)->store->source_fingerprint() == model_a->item_fingerprint());
  src.index = tmp.file("none.idx");  // a missing index file: refused, naming it
  CHECK_THROWS_WITH_AS(load_snapshot(src), doctest::Contains("none.idx' does not exist"), IoError);
  src.create_index = true;  // unless asked for: built from the weights, for that file
  const auto built = load_snapshot(src);
  CHECK(built->index_path == tmp.file("none.idx"));
  CHECK(built->index_created);
  CHECK(built->store_spec == "flat");
  CHECK(built->store->source_fingerprint() == model_b->item_fingerprint());
  CHECK(!FileStamp::of(tmp.file("none.idx")).exists);  // the host saves it
  src.index.clear();  // no index at all: built from the weights too
  src.create_index = false;
  CHECK(load_snapshot(src)->store->size() == 299);
#endif
}

TEST_CASE("never_trained_items: rows above the training log's largest id, beyond a tenth (or 10) of it") {
  CHECK(never_trained_items(1000, 200) == 799);        // the case: a 200-item log, item_count far above
  CHECK(never_trained_items(367983, 367891) == 0);     // the Books sample: 91 rows above, within a tenth
  CHECK(never_trained_items(22, 10) == 11);            // 11 > max(10, 1)
  CHECK(never_trained_items(21, 10) == 0);             // 10 is not above 10
  CHECK(never_trained_items(1000, 0) == 0);            // unknown
  CHECK(never_trained_items(12102, 12101) == 0);       // exact
}

TEST_CASE("build_item_store of weights given up answers as the store built from the model - its rows moved in place, with and without a catalogue") {
  // Oracle: build_item_store of the model (a copy of each item's row), searched with every
  // item's own vector for all items (exact scores: flat, and hnsw with ef above the count).
  const MindWeights w = test::small_weights();
  const MindModel model(w);
  const int64_t N = w.config.item_count;
  const int D = w.config.embedding_dim;
  Catalogue catalogue;
  for (int64_t i = 1; i < N; ++i) catalogue.add("sku-" + std::to_string(i), i % 4 == 0 ? ItemStatus::retired : ItemStatus::active);
  auto same = [&](const VectorStore& a, const VectorStore& b) {
    REQUIRE(a.size() == b.size());
    test::check_same_answers(a, b, N - 1, w.item_emb.data() + D, int(a.size()));
  };
  std::vector<std::string> specs = {"flat"};
#if MINDREC_HAS_HNSW
  specs.push_back("hnsw:M=8,ef_construction=60?ef=1000");
#endif
  for (const auto& spec : specs) {
    CAPTURE(spec);
    MindWeights given = w;
    const auto from_weights = build_item_store(std::move(given), spec);
    CHECK(given.item_emb.empty());
    CHECK(given.bilinear == w.bilinear);  // the other tensors stay
    CHECK(from_weights->size() == N - 1);
    CHECK(from_weights->source_fingerprint() == item_fingerprint(w));
    same(*build_item_store(model, spec), *from_weights);

    MindWeights given2 = w;
    const auto active = build_item_store(std::move(given2), spec, catalogue);
    CHECK(active->size() == catalogue.active_count());
    CHECK(active->source_fingerprint() == item_fingerprint(w));
    same(*build_item_store(model, spec, catalogue), *active);
  }
}
