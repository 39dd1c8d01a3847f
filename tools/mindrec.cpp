// `mindrec`: the command-line front end of the library.
//   mindrec init  --config C.yaml --out W.safetensors [--seed S]
//   mindrec infer --config C.yaml --weights W.safetensors --data VALID --out U.npy
//   mindrec train --config C.yaml [--out DIR] [--resume CKPT] [--no-eval]
//   mindrec eval  --config C.yaml --weights W.safetensors --data VALID [--topk 20,50] [--json F]
//   mindrec prepare --input RAW --out DIR [--min-count 5] [--seed S] [--columns user=1,item=2,time=4]
//                   [--catalogue PREV.csv] [--numeric-ids]
//   mindrec import-paddlerec --params rec.pdparams --config PADDLEREC.yaml --out W.safetensors
//   mindrec index --config C.yaml --weights W.safetensors --store SPEC --out ITEMS.idx
//   mindrec recall --config C.yaml --weights W.safetensors --index ITEMS.idx --hist 43,23,65 ...
// Every error ends the program with one line "mindrec: error: ..." and a status that says its
// kind: 2 usage, 3 configuration, 4 input, 5 I/O, 6 remote refusal, 7 unsupported, 1 other.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "mindrec/file_io.hpp"
#include "cli_checks.hpp"
#include "mindrec/mindrec.hpp"

namespace {

// Exit statuses (README "Command line"): what kind of failure, for scripts.
constexpr int kExitUsage = 2;  // unknown option, missing or bad argument

int exit_status(const std::exception& e) {
  if (dynamic_cast<const mindrec::ConfigError*>(&e)) return 3;  // a config, or weights and index that do not pair
  if (dynamic_cast<const mindrec::FormatError*>(&e) || dynamic_cast<const mindrec::InvalidArgument*>(&e))
    return 4;  // the input: a malformed file, a bad id or value
  if (dynamic_cast<const mindrec::IoError*>(&e)) return 5;  // a file or a server that cannot be read, written or reached
  if (dynamic_cast<const mindrec::RemoteError*>(&e)) return 6;  // a remote store refused the request
  if (dynamic_cast<const mindrec::Unsupported*>(&e) || dynamic_cast<const mindrec::CudaError*>(&e))
    return 7;  // not in this build, backend or device
  return 1;  // anything else (out of memory, a bug)
}

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

struct TrainArgs {
  std::string config, out, resume, catalogue, init_from;
  bool no_eval = false;
};

struct EvalArgs {
  std::string config, weights, data, json, store, index, catalogue;
  std::vector<int> topk = {20, 50};
  bool compat = false, allow_mismatched_index = false, no_baseline = false;
  int threads = -1, rerank = 0;
  std::string filter;
};

// The store `eval` and `recall` retrieve through: --index FILE (loaded, paired with the
// weights), or --store SPEC: a remote store (milvus://) is attached read-only, never written
// (a live collection is evaluated as it is, whatever model filled it: the pairing check warns
// when it cannot tell); an in-process spec is built now from the model's item vectors. Null
// for neither (exact search).
std::unique_ptr<mindrec::VectorStore> open_store(const mindrec::MindModel& model, const std::string& index,
                                                 const std::string& spec, bool allow_mismatched_index) {
  std::unique_ptr<mindrec::VectorStore> store;
  if (!index.empty()) {
    store = mindrec::load_vector_store(index);
    mindrec::check_store_pairing(model, *store, index, allow_mismatched_index);
  } else if (!spec.empty() && mindrec::is_remote_store(spec)) {
    store = mindrec::attach_vector_store(spec, model.config().hidden_size);
    mindrec::check_store_pairing(model, *store, spec.substr(0, spec.find('?')), allow_mismatched_index);
  } else if (!spec.empty()) {
    store = mindrec::build_item_store(model, spec);
  }
  return store;
}

mindrec::EvalOptions eval_options(const mindrec::Config& cfg, std::vector<int> topk, bool compat,
                                  int threads) {
  mindrec::EvalOptions o;
  o.topk = std::move(topk);
  o.paddlerec_compat = compat;
  o.batch_size = cfg.runner.infer_batch_size;
  o.threads = threads >= 0 ? threads : cfg.runner.threads;
  return o;
}

void progress_line(const mindrec::TrainProgress& p, bool tty, int print_interval) {
  if (tty) {
    const int width = 30;
    const int done = static_cast<int>(width * p.batch / std::max<int64_t>(1, p.batches));
    std::string bar(done, '=');
    if (done < width) bar += '>' + std::string(width - done - 1, ' ');
    std::fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld | %.0f samples/s | loss %.4f | ETA epoch %.0fs, run %.0fs   ",
                 p.epoch, p.epochs, bar.c_str(), static_cast<long long>(p.batch),
                 static_cast<long long>(p.batches), p.samples_per_s, p.loss, p.eta_s, p.run_eta_s);
    if (p.batch == p.batches) std::fprintf(stderr, "\n");
  } else if (p.batch % print_interval == 0 || p.batch == p.batches) {
    std::fprintf(stderr, "epoch %d/%d batch %lld/%lld loss %.4f samples/s %.0f eta %.0fs run_eta %.0fs\n",
                 p.epoch, p.epochs, static_cast<long long>(p.batch),
                 static_cast<long long>(p.batches), p.loss, p.samples_per_s, p.eta_s, p.run_eta_s);
  }
}

int run_train(const TrainArgs& a) {
  const mindrec::Config cfg = mindrec::load_config(a.config);
  const auto& hp = cfg.hyper_parameters;
  mindrec::TrainRunOptions o;
  o.out_dir = a.out;
  o.resume = a.resume;
  o.catalogue = a.catalogue;
  o.init_from = a.init_from;
  o.on_warm_start = [&](const mindrec::WarmStartReport& w) {
    std::printf("warm start from %s: %lld item rows copied by raw id, %lld new items initialised\n", a.init_from.c_str(),
                static_cast<long long>(w.copied), static_cast<long long>(w.initialised));
  };
  o.evaluate = !a.no_eval;
  o.title = "mindrec train: " + a.config;
  o.on_start = [&](const mindrec::TrainStart& st) {
    std::printf("training on %lld clicks of %lld users (%s); %d epochs x %d batches of %d, "
                "%d negatives, lr %g, %s Adam, %d thread(s)\n",
                static_cast<long long>(st.clicks), static_cast<long long>(st.users),
                cfg.runner.train_data_dir.c_str(), cfg.runner.epochs, cfg.runner.batches_per_epoch,
                cfg.runner.train_batch_size, hp.neg_samples, hp.optimizer.learning_rate,
                hp.optimizer.lazy ? "lazy" : "dense", st.threads);
    if (!a.resume.empty())
      std::printf("resumed from %s after epoch %d (step %lld)\n", a.resume.c_str(), st.epochs_done,
                  static_cast<long long>(st.steps_done));
    std::fflush(stdout);
  };
  const bool tty = ::isatty(2) != 0;
  o.on_progress = [&](const mindrec::TrainProgress& p) { progress_line(p, tty, cfg.runner.print_interval); };
  bool evaluated = false;
  o.on_epoch = [&](const mindrec::EpochRecord& r) {
    std::printf("epoch %d: loss %f, %lld samples/s, %f s", r.epoch, r.loss,
                static_cast<long long>(r.samples_per_s), r.seconds);
    if (r.has_eval) {
      evaluated = true;
      std::printf("; valid Recall@50 %.4f%% NDCG@50 %.4f%% HitRate@50 %.4f%% (popularity %.4f%%: %.2fx)%s",
                  100 * r.recall50, 100 * r.ndcg50, 100 * r.hitrate50, 100 * r.pop_recall50,
                  r.pop_recall50 > 0 ? r.recall50 / r.pop_recall50 : 0.0, r.best ? " (best so far)" : "");
    }
    std::printf("\n");
    std::fflush(stdout);
  };
  const auto rows = mindrec::run_training(cfg, o);
  if (!rows.empty() && rows.back().epoch < cfg.runner.epochs)
    std::printf("early stop: %d evaluated epochs without a better validation Recall@50 (runner.patience)\n",
                cfg.runner.patience);
  std::printf("wrote %s/{last,checkpoint%s}.safetensors, metrics.csv, metrics.svg\n",
              (a.out.empty() ? cfg.runner.model_save_path : a.out).c_str(), evaluated ? ",best" : "");
  return 0;
}

int run_eval(const EvalArgs& a) {
  const mindrec::Config cfg = mindrec::load_config(a.config);
  const auto& mc = cfg.hyper_parameters;
  mindrec::MindModel model(mindrec::load_weights(a.weights, mc));
  // the catalogue is checked against the weights (the data's ids are dense)
  (void)mindrec::load_weights_catalogue(a.weights, model.weights(), a.catalogue, a.allow_mismatched_index);
  const mindrec::EvalSet set = mindrec::read_eval_data(a.data, mc.item_count);
  auto opts = eval_options(cfg, a.topk, a.compat, a.threads);
  auto store = open_store(model, a.index, a.store, a.allow_mismatched_index);
  opts.store = store.get();
  opts.rerank = a.rerank;
  opts.filter = a.filter;
  // The popularity baseline from the config's training data, on the same users and cut-offs.
  std::unique_ptr<mindrec::ClickLog> train;
  if (!a.no_baseline && !cfg.runner.train_data_dir.empty()) {
    train = std::make_unique<mindrec::ClickLog>(mindrec::read_train_data(cfg.runner.train_data_dir, mc.item_count));
    opts.popularity_from = train.get();
  }
  // The store's spec with the search parameters in effect ("hnsw:M=32?ef=200").
  const std::string shown = store ? store->spec() : "";
  if (store) std::printf("retrieval through the '%s' store (%lld items)\n", shown.c_str(),
                         static_cast<long long>(store->size()));
  const auto rep = mindrec::evaluate(model, set, opts);
  std::printf("%s%s", a.compat ? "(PaddleRec-compatible counting)\n" : "", rep.table().c_str());
  if (train)
    std::printf("popularity: the %d items clicked most in %s (runner.train_data_dir)\n",
                *std::max_element(a.topk.begin(), a.topk.end()), cfg.runner.train_data_dir.c_str());
  if (store)
    std::printf("evaluated in %.2f s (through the '%s' store)\n", rep.seconds, shown.c_str());
  else
    std::printf("evaluated in %.2f s (exact search over %lld items)\n", rep.seconds,
                static_cast<long long>(mc.item_count));
  if (!a.json.empty()) {
    mindrec::write_file_atomic(a.json, [&](std::ostream& o) { o << rep.to_json() << "\n"; });
    std::printf("wrote %s\n", a.json.c_str());
  }
  return 0;
}

struct ImportArgs {
  std::string params, config, out;
};

int run_import_paddlerec(const ImportArgs& a) {
  // Only the hyper_parameters count: a PaddleRec config's runner has keys mindrec does not know.
  const mindrec::MindWeights w = mindrec::import_paddlerec(a.params, mindrec::load_model_config(a.config));
  mindrec::save_weights(a.out, w);
  const auto& m = w.config;
  std::printf("wrote %s: PaddleRec's MIND from %s: %lld items x %d dims, hidden %d, K=%d, L=%d, %d routing "
              "iterations, softmax over %s (fingerprint %s)\n",
              a.out.c_str(), a.params.c_str(), static_cast<long long>(m.item_count), m.embedding_dim,
              m.hidden_size, m.capsule.max_k, m.maxlen, m.capsule.iters, mindrec::to_string(m.capsule.softmax_axis),
              mindrec::fingerprint_hex(mindrec::item_fingerprint(w)).c_str());
  return 0;
}

struct PrepareArgs {
  std::string input, out;
  mindrec::PrepareOptions options;
};

int run_prepare(const PrepareArgs& a) {
  const auto r = mindrec::prepare_dataset(a.input, a.out, a.options);
  std::printf("read %lld clicks; kept %lld after the %d-core filter: %lld items, %lld users\n",
              static_cast<long long>(r.lines), static_cast<long long>(r.clicks_kept),
              a.options.min_count, static_cast<long long>(r.items), static_cast<long long>(r.users));
  std::printf("users split (seed %llu): %lld train, %lld valid, %lld test\n",
              static_cast<unsigned long long>(a.options.seed), static_cast<long long>(r.train_users),
              static_cast<long long>(r.valid_users), static_cast<long long>(r.test_users));
  if (!a.options.catalogue.empty())
    std::printf("catalogue from %s: %lld items kept their ids, %lld new (ids after the largest), %lld retired\n",
                a.options.catalogue.c_str(), static_cast<long long>(r.kept), static_cast<long long>(r.added),
                static_cast<long long>(r.retired));
  std::printf("wrote %s/{train,valid,test}/data.txt, catalogue.csv, item_map.csv, user_map.csv, dataset.json\n",
              a.out.c_str());
  std::printf("set in your config:  hyper_parameters.item_count: %lld\n",
              static_cast<long long>(r.item_count));
  return 0;
}

struct IndexArgs {
  std::string config, weights, store, out, catalogue, attributes;
  bool allow_untrained = false, allow_mismatched = false;
};

int run_index(const IndexArgs& a) {
  const mindrec::Config cfg = mindrec::load_config(a.config);
  // Indexing reads item_emb only (no model: its precomputed projection would be another
  // table), and hands the table over to the store, which keeps it where it can (hnsw:).
  mindrec::MindWeights weights = mindrec::load_weights(a.weights, cfg.hyper_parameters);
  const int64_t trained = weights.largest_trained_item, n = cfg.hyper_parameters.item_count;
  if (mindrec::never_trained_items(n, trained) > 0) {
    const std::string what = a.weights + ": item_count is " + std::to_string(n) + " but training saw item ids up to " +
                             std::to_string(trained) + ": " + std::to_string(n - 1 - trained) +
                             " item vectors were never trained";
    if (!a.allow_untrained)
      throw mindrec::ConfigError(what + " and would be indexed and recalled; set item_count to the data's (dataset.json) "
                                        "and retrain, or pass --allow-untrained-items");
    mindrec::log(mindrec::LogLevel::warn, what + "; indexed anyway (--allow-untrained-items)");
  }
  const auto catalogue = mindrec::load_weights_catalogue(a.weights, weights, a.catalogue, a.allow_mismatched);
  const auto t0 = std::chrono::steady_clock::now();
  // With a catalogue, its retired items stay out of the store: they are never recalled.
  auto store = catalogue ? mindrec::build_item_store(std::move(weights), a.store, *catalogue)
                         : mindrec::build_item_store(std::move(weights), a.store);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.attributes.empty()) {
    // Item attributes for filters, keyed by dense id, or by raw id through the catalogue.
    const mindrec::AttributeFile f = mindrec::read_attributes_csv(a.attributes, catalogue.get());
    store->declare_attributes(f.columns);
    store->set_attributes(int64_t(f.ids.size()), f.ids.data(), f.values);
    std::string cols;
    for (const auto& c : f.columns) cols += (cols.empty() ? "" : ", ") + c.name + ":" + mindrec::to_string(c.type);
    std::printf("attributes of %lld items from %s (%s)%s\n", static_cast<long long>(f.ids.size()), a.attributes.c_str(),
                cols.c_str(),
                f.unknown_raw_ids ? (", " + std::to_string(f.unknown_raw_ids) + " rows of raw ids the catalogue does not hold skipped").c_str()
                                  : "");
  }
  store->save(a.out);
  if (catalogue)
    std::printf("indexed %lld item vectors (the active items of %s; %lld retired left out; dim %d) with '%s' in %.2f s -> %s\n",
                static_cast<long long>(store->size()), catalogue->source().c_str(),
                static_cast<long long>(catalogue->size() - catalogue->active_count()), store->dim(), store->spec().c_str(),
                secs, a.out.c_str());
  else
    std::printf("indexed %lld item vectors (ids 1..%lld, dim %d) with '%s' in %.2f s -> %s\n",
                static_cast<long long>(store->size()), static_cast<long long>(store->size()),
                store->dim(), store->spec().c_str(), secs, a.out.c_str());
  return 0;
}

struct RecallArgs {
  std::string config, weights, index, store, catalogue;
  std::vector<std::string> hist;
  int topk = 50, rerank = 0;
  bool json = false, exclude_history = false, allow_mismatched_index = false, dense_ids = false;
  std::string filter;
};

// A JSON string (raw ids are UTF-8 without control characters; quotes and backslashes escaped).
std::string json_string(std::string_view s) {
  std::string q = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

int run_recall(const RecallArgs& a) {
  const mindrec::Config cfg = mindrec::load_config(a.config);
  const auto& mc = cfg.hyper_parameters;
  mindrec::MindModel model(mindrec::load_weights(a.weights, mc));
  if (a.index.empty() == a.store.empty())
    throw mindrec::InvalidArgument("recall: give --index FILE or --store SPEC (one of them)");
  // Raw ids in and out when the weights have a catalogue (beside them, or --catalogue).
  const auto catalogue = a.dense_ids && a.catalogue.empty()
                             ? nullptr
                             : mindrec::load_weights_catalogue(a.weights, model.weights(), a.catalogue,
                                                               a.allow_mismatched_index);
  const bool raw = catalogue && !a.dense_ids;
  std::unique_ptr<mindrec::VectorStore> store;
  if (raw && a.index.empty() && !mindrec::is_remote_store(a.store))
    store = mindrec::build_item_store(model, a.store, *catalogue);  // its active items only
  else
    store = open_store(model, a.index, a.store, a.allow_mismatched_index);
  // Each --hist is one user's clicks, oldest first: "43,23,65" (raw ids: "B001,B002").
  // An empty --hist "" is a user with no clicks: the popular items, marked as the fallback.
  std::vector<std::vector<int64_t>> users;
  std::vector<std::vector<std::string>> raw_users;
  for (const auto& h : a.hist) {
    auto& items = users.emplace_back();
    auto& raw_items = raw_users.emplace_back();
    std::stringstream ss(h);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
      if (raw) {
        raw_items.push_back(tok);
        continue;
      }
      char* end = nullptr;
      const long long id = std::strtoll(tok.c_str(), &end, 10);
      const std::string where = "--hist '" + h + "' (user " + std::to_string(users.size() - 1) + "), position " +
                                std::to_string(items.size()) + ": ";
      if (tok.empty() || *end != '\0')
        throw mindrec::InvalidArgument(where + "'" + tok + "' is not an item id" +
                                       (a.dense_ids ? std::string(" (--dense-ids takes dense ids; without it, raw ids)")
                                                    : " (raw ids need the weights' catalogue: none beside " + a.weights +
                                                          "; pass --catalogue FILE)"));
      if (id == 0) throw mindrec::InvalidArgument(where + "item id 0 is the padding id, not an item");
      if (id < 1 || id >= mc.item_count)
        throw mindrec::InvalidArgument(where + "item id " + tok + " is outside the model's [1, item_count=" +
                                       std::to_string(mc.item_count) + ")");
      items.push_back(id);
    }
  }
  const int64_t B = static_cast<int64_t>(users.size());
  mindrec::RecallOptions o;
  o.topn = a.topk;
  o.exclude_history = a.exclude_history;
  o.rerank = a.rerank;
  o.filter = a.filter;
  const auto t0 = std::chrono::steady_clock::now();
  mindrec::RawRecallResult rr;
  mindrec::RecallResult r;
  if (raw) rr = mindrec::recall_raw_histories(model, *store, *catalogue, raw_users, o);
  else r = mindrec::recall_histories(model, *store, users, o);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (raw) {
    if (a.json) {
      std::printf("{\"users\": [");
      for (int64_t b = 0; b < B; ++b) {
        auto list = [](const std::vector<std::string>& v) {
          std::string t;
          for (size_t j = 0; j < v.size(); ++j) t += (j ? ", " : "") + json_string(v[j]);
          return t;
        };
        std::printf("%s{\"hist\": [%s], \"items\": [%s], \"scores\": [", b ? ", " : "", list(raw_users[b]).c_str(),
                    list(rr.ids[b]).c_str());
        for (size_t j = 0; j < rr.scores[b].size(); ++j) std::printf("%s%.6g", j ? ", " : "", double(rr.scores[b][j]));
        std::printf("], \"unknown\": [%s], \"fallback\": %s}", list(rr.unknown[b]).c_str(),
                    rr.fallback[size_t(b)] ? "\"popularity\"" : "null");
      }
      std::printf("], \"ms\": %.3f}\n", ms);
    } else {
      for (int64_t b = 0; b < B; ++b) {
        std::string unknown;
        for (const auto& u : rr.unknown[b]) unknown += (unknown.empty() ? "" : ",") + u;
        std::printf("user %lld (hist %s)%s%s: ", static_cast<long long>(b), a.hist[b].c_str(),
                    unknown.empty() ? "" : (" [unknown, skipped: " + unknown + "]").c_str(),
                    rr.fallback[size_t(b)] ? " [fallback: no known clicks, the popular items]" : "");
        for (size_t j = 0; j < rr.ids[b].size(); ++j) std::printf("%s%s", j ? "," : "", rr.ids[b][j].c_str());
        std::printf("\n");
      }
    }
  } else if (a.json) {
    std::printf("{\"users\": [");
    for (int64_t b = 0; b < B; ++b) {
      std::printf("%s{\"hist\": [", b ? ", " : "");
      for (size_t j = 0; j < users[b].size(); ++j) std::printf("%s%lld", j ? ", " : "", static_cast<long long>(users[b][j]));
      std::printf("], \"items\": [");
      for (int j = 0; j < a.topk; ++j) std::printf("%s%lld", j ? ", " : "", static_cast<long long>(r.ids[b * a.topk + j]));
      std::printf("], \"scores\": [");
      for (int j = 0; j < a.topk; ++j)
        std::printf("%s%.6g", j ? ", " : "", r.ids[b * a.topk + j] < 0 ? 0.0 : r.scores[b * a.topk + j]);
      std::printf("], \"fallback\": %s}", r.fallback[size_t(b)] ? "true" : "false");
    }
    std::printf("], \"ms\": %.3f}\n", ms);
  } else {
    for (int64_t b = 0; b < B; ++b) {
      std::printf("user %lld (hist %s)%s: ", static_cast<long long>(b), a.hist[b].c_str(),
                  r.fallback[size_t(b)] ? " [fallback: no clicks, the popular items]" : "");
      for (int j = 0; j < a.topk && r.ids[b * a.topk + j] >= 0; ++j)
        std::printf("%s%lld", j ? "," : "", static_cast<long long>(r.ids[b * a.topk + j]));
      std::printf("\n");
    }
  }
  if (!a.json)
    std::printf("recalled top-%d for %lld user(s) from '%s' (%lld items%s) in %.3f ms\n", a.topk,
                static_cast<long long>(B), store->spec().c_str(), static_cast<long long>(store->size()),
                raw ? (", raw ids of " + catalogue->source()).c_str() : "", ms);
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
  int verbose = 0;
  app.add_flag("-v,--verbose", verbose, "log ignored config keys and skipped lines; -vv adds debug statistics "
                                       "(before or after the subcommand)");
  app.fallthrough();  // -v after the subcommand is the top level's flag too

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
  cf->add_option("--threads", infer.threads, "threads (default runner.threads; 0 = all cores)")->check(mindrec::tools::non_negative());

  TrainArgs train;
  auto* ct = app.add_subcommand("train", "train MIND on runner.train_data_dir (checkpoints each epoch)");
  ct->add_option("--config", train.config, "YAML config")->required()->check(CLI::ExistingFile);
  ct->add_option("--out", train.out, "output folder (default runner.model_save_path)");
  ct->add_option("--resume", train.resume, "continue from this checkpoint.safetensors")->check(CLI::ExistingFile);
  ct->add_flag("--no-eval", train.no_eval, "skip the per-epoch evaluation on runner.test_data_dir");
  ct->add_option("--catalogue", train.catalogue, "the data's catalogue (default: catalogue.csv in the folder above "
                                                "runner.train_data_dir, as mindrec prepare writes it)")->check(CLI::ExistingFile);
  ct->add_option("--init-from", train.init_from, "warm start from these weights (their catalogue beside them): item rows "
                                                "copied by raw id, new items initialised")->check(CLI::ExistingFile)->excludes("--resume");

  EvalArgs ev;
  auto* ce = app.add_subcommand("eval", "Recall/NDCG/HitRate with exact retrieval over all items");
  ce->add_option("--config", ev.config, "YAML config")->required()->check(CLI::ExistingFile);
  ce->add_option("--weights", ev.weights, "weights file (.safetensors)")->required()->check(CLI::ExistingFile);
  ce->add_option("--data", ev.data, "validation/test file or folder")->required()->check(CLI::ExistingPath);
  ce->add_option("--topk", ev.topk, "list sizes N, comma-separated")->delimiter(',')->check(mindrec::tools::positive());
  ce->add_flag("--paddlerec-compat", ev.compat, "count as PaddleRec's infer.py does (GT cut to 20, users+1, drop last batch)");
  ce->add_option("--json", ev.json, "also write the metrics as JSON here");
  ce->add_flag("--no-baseline", ev.no_baseline, "skip the popularity baseline (computed from runner.train_data_dir)");
  ce->add_option("--threads", ev.threads, "threads (default runner.threads; 0 = all cores)")->check(mindrec::tools::non_negative());
  auto* ev_store = ce->add_option("--store", ev.store, "retrieve through a store: an in-process spec is built now from the "
                                                      "weights (e.g. hnsw:M=32?ef=80), a milvus:// collection is attached "
                                                      "read-only, as it is (default: exact search)");
  ce->add_option("--index", ev.index, "retrieve through a store saved by 'mindrec index'")->check(CLI::ExistingFile)->excludes(ev_store);
  ce->add_flag("--allow-mismatched-index", ev.allow_mismatched_index, "use an --index or a catalogue made for other weights (refused otherwise)");
  ce->add_option("--catalogue", ev.catalogue, "the weights' catalogue (default: catalogue.csv beside the weights)")->check(CLI::ExistingFile);
  ce->add_option("--filter", ev.filter, "retrieve only items this expression over the --index's attributes allows, and "
                                        "count only allowed targets (users without one are not evaluated; the report says so)");
  ce->add_option("--rerank", ev.rerank, "fetch N x the list size per interest and score them exactly against the model's "
                                        "item vectors (stores with approximate scores: IVF-SQ8, PQ; 0 = off)")
      ->check(CLI::Range(0, 100));

  IndexArgs ix;
  auto* ci2 = app.add_subcommand("index", "build a vector store of all item vectors and save it");
  ci2->add_option("--config", ix.config, "YAML config")->required()->check(CLI::ExistingFile);
  ci2->add_option("--weights", ix.weights, "weights file (.safetensors)")->required()->check(CLI::ExistingFile);
  ci2->add_option("--store", ix.store, "backend and search parameters: flat | hnsw[:M=32,ef_construction=200][?ef=128] | "
                                      "faiss:<index_factory>[?nprobe=N|ef=N] | cuda:flat | faiss-gpu:<Flat|IVF<n>,Flat> | "
                                      "milvus://HOST:PORT/COLLECTION[?options] (writes the collection; saves a descriptor)")->required();
  ci2->add_option("--out", ix.out, "store file to write")->required();
  ci2->add_option("--catalogue", ix.catalogue, "the weights' catalogue (default: catalogue.csv beside the weights; its "
                                               "retired items are left out)")->check(CLI::ExistingFile);
  ci2->add_option("--attributes", ix.attributes, "item attributes for filters: a CSV with a header id,name[:type],... "
                                                "(dense ids) or raw_id,name[:type],... (through the catalogue); types int64, "
                                                "float64, bool, string (default: inferred)")->check(CLI::ExistingFile);
  ci2->add_flag("--allow-mismatched-index", ix.allow_mismatched, "use a catalogue made for other weights (refused otherwise)");
  ci2->add_flag("--allow-untrained-items", ix.allow_untrained, "index item vectors above the training data's largest "
                                                                 "id (refused otherwise: they were never trained)");

  RecallArgs rc;
  auto* cr = app.add_subcommand("recall", "candidate items for users' click histories");
  cr->add_option("--config", rc.config, "YAML config")->required()->check(CLI::ExistingFile);
  cr->add_option("--weights", rc.weights, "weights file (.safetensors)")->required()->check(CLI::ExistingFile);
  auto* rc_store = cr->add_option("--store", rc.store, "a store instead of --index: a milvus:// collection is attached "
                                                      "read-only; an in-process spec is built now from the weights");
  cr->add_option("--index", rc.index, "store saved by 'mindrec index'")->check(CLI::ExistingFile)->excludes(rc_store);
  cr->add_option("--rerank", rc.rerank, "fetch N x topk per interest and score them exactly against the model's item "
                                        "vectors (0 = off)")->check(CLI::Range(0, 100));
  cr->add_option("--hist", rc.hist, "one user's item ids, oldest first, comma-separated (repeat per user): raw ids "
                                    "when the weights have a catalogue, else dense ids")->required()->take_all();
  cr->add_option("--topk", rc.topk, "candidates per user")->check(mindrec::tools::positive(true, 100000));
  cr->add_flag("--json", rc.json, "print JSON");
  cr->add_flag("--allow-mismatched-index", rc.allow_mismatched_index, "use an --index or a catalogue made for other weights (refused otherwise)");
  cr->add_flag("--exclude-history", rc.exclude_history, "never return the user's own clicks");
  cr->add_option("--catalogue", rc.catalogue, "the weights' catalogue (default: catalogue.csv beside the weights): --hist "
                                             "and the answer are its raw ids")->check(CLI::ExistingFile);
  cr->add_option("--filter", rc.filter, "only items this expression over the store's attributes allows, e.g. "
                                        "'category in [\"shoes\"] and price < 50 and in_stock' (Milvus syntax; README, Filters)");
  cr->add_flag("--dense-ids", rc.dense_ids, "--hist and the answer are dense ids even when the weights have a catalogue");

  PrepareArgs prep;
  auto* cp = app.add_subcommand("prepare", "ComiRec preparation of a raw click log (CSV with RFC 4180 quoting, or whitespace; epoch or ISO-8601 times)");
  cp->add_option("--input", prep.input, "raw log (CSV or whitespace; any ids)")->required()->check(CLI::ExistingFile);
  cp->add_option("--out", prep.out, "output folder")->required();
  cp->add_option("--min-count", prep.options.min_count, "k of the k-core filter (default 5)")->check(mindrec::tools::positive());
  cp->add_option("--seed", prep.options.seed, "seed of the user shuffle before the 80/10/10 split");
  cp->add_option("--columns", prep.options.columns, "which fields are user, item and time: user=1,item=2,time=4 "
                                                    "(1-based) or the header's names (default: the 3 fields in that order)");
  cp->add_option("--catalogue", prep.options.catalogue, "the previous catalogue.csv: known items keep their ids, new ones "
                                                       "get the next, items without clicks today are retired")
      ->check(CLI::ExistingFile);
  cp->add_flag("--numeric-ids", prep.options.numeric_ids, "item ids are int64 numbers (\"007\" is 7); default: strings");

  ImportArgs imp;
  auto* cimp = app.add_subcommand("import-paddlerec", "convert a MIND checkpoint trained by PaddleRec into mindrec's weights");
  cimp->add_option("--params", imp.params, "PaddleRec's rec.pdparams (paddle.save of the model's state_dict)")
      ->required()->check(CLI::ExistingFile);
  cimp->add_option("--config", imp.config, "the PaddleRec config it was trained with (its hyper_parameters)")
      ->required()->check(CLI::ExistingFile);
  cimp->add_option("--out", imp.out, "mindrec weights file to write (safetensors)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  mindrec::set_log_level(verbose >= 2   ? mindrec::LogLevel::debug
                         : verbose == 1 ? mindrec::LogLevel::info
                                        : mindrec::LogLevel::warn);
  try {
    if (*ci) return run_init(init);
    if (*cf) return run_infer(infer);
    if (*ct) return run_train(train);
    if (*ce) return run_eval(ev);
    if (*cp) return run_prepare(prep);
    if (*cimp) return run_import_paddlerec(imp);
    if (*ci2) return run_index(ix);
    if (*cr) return run_recall(rc);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mindrec: error: %s\n", e.what());
    return exit_status(e);
  }
  return kExitUsage;
}
