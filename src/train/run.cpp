// run_training (train.hpp): the epoch loop of `mindrec train` and of the Python package's
// train(): data, Trainer, per-epoch evaluation, checkpoint and report files.
#include <algorithm>
#include <filesystem>
#include <memory>

#include "mindrec/catalogue.hpp"
#include "mindrec/data.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/eval.hpp"
#include "mindrec/model.hpp"
#include "mindrec/train.hpp"
#include "train/report.hpp"

namespace mindrec {

std::vector<EpochRecord> run_training(const Config& cfg, const TrainRunOptions& options) {
  namespace fs = std::filesystem;
  const auto& hp = cfg.hyper_parameters;
  const std::string source = cfg.source.empty() ? "the config" : cfg.source;
  if (cfg.runner.train_data_dir.empty())
    throw ConfigError(source + ": runner.train_data_dir is not set");
  const std::string out = options.out_dir.empty() ? cfg.runner.model_save_path : options.out_dir;
  if (out.empty()) throw ConfigError(source + ": no output folder (runner.model_save_path is empty)");
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw IoError(out + ": cannot create the output folder: " + ec.message());

  // The data's catalogue: given, or the one mindrec prepare wrote above the training data.
  std::shared_ptr<Catalogue> catalogue;
  std::string catalogue_path = options.catalogue;
  if (catalogue_path.empty()) {
    fs::path dir = fs::path(cfg.runner.train_data_dir).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();  // "data/train/"
    const fs::path beside = dir.parent_path() / "catalogue.csv";
    if (fs::is_regular_file(beside, ec)) catalogue_path = beside.string();
  }
  if (!catalogue_path.empty()) {
    catalogue = std::make_shared<Catalogue>(Catalogue::load(catalogue_path));
    if (catalogue->item_count() != hp.item_count)
      throw ConfigError(source + ": hyper_parameters.item_count is " + std::to_string(hp.item_count) + " but the catalogue " +
                        catalogue_path + " has ids up to " + std::to_string(catalogue->item_count() - 1) +
                        ": set item_count to " + std::to_string(catalogue->item_count()) +
                        " (dataset.json's item_count, or item_count: auto)");
  }
  const uint64_t catalogue_fp = catalogue ? catalogue->fingerprint(hp.item_count) : 0;
  // Warm start: the previous model and its catalogue, before any file is written.
  std::unique_ptr<MindWeights> warm;
  if (!options.init_from.empty() && options.resume.empty()) {
    if (!catalogue)
      throw ConfigError(source + ": a warm start (init_from " + options.init_from +
                        ") matches item rows by raw id and needs the data's catalogue: none beside " +
                        cfg.runner.train_data_dir + " (run mindrec prepare, or pass --catalogue)");
    const MindWeights prev = load_weights(options.init_from);
    const auto prev_cat = load_weights_catalogue(options.init_from, prev, options.init_from_catalogue, false, true);
    WarmStartReport wr;
    warm = std::make_unique<MindWeights>(warm_start_weights(hp, cfg.runner.seed, prev, *prev_cat, *catalogue,
                                                            options.init_from, &wr));
    mindrec::log(LogLevel::info, "warm start from " + options.init_from + ": " + std::to_string(wr.copied) +
                                     " item rows copied by raw id, " + std::to_string(wr.initialised) + " new");
    if (options.on_warm_start) options.on_warm_start(wr);
  }
  if (catalogue) {
    const std::string copy = (fs::path(out) / "catalogue.csv").string();
    if (!fs::exists(copy, ec) || !fs::equivalent(copy, catalogue_path, ec)) catalogue->save(copy);
  }

  const ClickLog log = read_train_data(cfg.runner.train_data_dir, hp.item_count);
  std::unique_ptr<EvalSet> valid;
  if (options.evaluate && !cfg.runner.test_data_dir.empty())
    valid = std::make_unique<EvalSet>(read_eval_data(cfg.runner.test_data_dir, hp.item_count));

  std::unique_ptr<Trainer> trainer;
  std::vector<EpochRecord> rows;
  const std::string csv = out + "/metrics.csv";
  if (!options.resume.empty()) {
    trainer = Trainer::resume(options.resume, cfg, log);
    rows = train::read_csv(csv, trainer->epochs_done());
  } else {
    trainer = std::make_unique<Trainer>(cfg, log, warm ? std::move(*warm) : init_weights(hp, cfg.runner.seed));
  }
  if (options.on_start) {
    TrainStart st;
    st.clicks = log.num_clicks();
    st.users = log.num_users();
    st.eval_users = valid ? valid->num_users() : 0;
    st.epochs_done = trainer->epochs_done();
    st.steps_done = trainer->steps_done();
    st.threads = resolve_threads(cfg.runner.threads);
    options.on_start(st);
  }
  // The best validation Recall@50 so far and the evaluated epochs since it (early stopping); a
  // resumed run counts the rows of its CSV the way the run that wrote them did.
  double best = -1;
  int since_best = 0;
  for (const auto& r : rows) {
    if (!r.has_eval) continue;
    if (r.recall50 > best) best = r.recall50, since_best = 0;
    else ++since_best;
  }
  const std::string title = options.title.empty() ? "mindrec train: " + cfg.source : options.title;

  EvalOptions eo;
  eo.topk = {20, 50};
  eo.batch_size = cfg.runner.infer_batch_size;
  eo.threads = cfg.runner.threads;
  // The baseline every epoch is shown beside: popularity from the training log, same users.
  std::vector<Metrics> pop;
  if (valid) pop = evaluate_popularity(log, *valid, eo).metrics;
  // Recorded in every weights file written: the fallback for users without clicks, and the
  // epoch's evaluation (what mindrec-serve's /metrics shows of the served model).
  const std::vector<int64_t> popular = most_popular(log, 1000);
  const int64_t largest = log.items.empty() ? 0 : *std::max_element(log.items.begin(), log.items.end());
  // item_count far above the data's ids: rows that are never trained, indexed and recalled
  // at random unless item_count is fixed (mindrec index refuses them unless asked).
  if (const int64_t never = never_trained_items(hp.item_count, largest); never > 0)
    mindrec::log(LogLevel::warn, "hyper_parameters.item_count is " + std::to_string(hp.item_count) +
                                     " but the training data's largest item id is " + std::to_string(largest) + ": " +
                                     std::to_string(never) +
                                     " item vectors will never be trained (set item_count to the data's: "
                                     "dataset.json's item_count after mindrec prepare)");
  std::map<std::string, double> evaluation;
  while (trainer->epochs_done() < cfg.runner.epochs &&
         (cfg.runner.patience == 0 || since_best < cfg.runner.patience)) {
    const EpochStats st = trainer->train_epoch(options.on_progress);
    EpochRecord row;
    row.epoch = st.epoch;
    row.loss = st.loss;
    row.seconds = st.seconds;
    row.samples_per_s = st.samples_per_s;
    trainer->save_checkpoint(out + "/checkpoint.safetensors");
    evaluation = {{"epoch", double(st.epoch)}};
    if (valid) {
      const MindModel model(trainer->weights());
      const EvalReport rep = evaluate(model, *valid, eo);
      row.has_eval = true;
      row.recall20 = rep.metrics[0].recall;
      row.ndcg20 = rep.metrics[0].ndcg;
      row.hitrate20 = rep.metrics[0].hitrate;
      row.recall50 = rep.metrics[1].recall;
      row.ndcg50 = rep.metrics[1].ndcg;
      row.hitrate50 = rep.metrics[1].hitrate;
      row.pop_recall20 = pop[0].recall;
      row.pop_ndcg20 = pop[0].ndcg;
      row.pop_hitrate20 = pop[0].hitrate;
      row.pop_recall50 = pop[1].recall;
      row.pop_ndcg50 = pop[1].ndcg;
      row.pop_hitrate50 = pop[1].hitrate;
      evaluation.insert({{"recall@20", row.recall20}, {"ndcg@20", row.ndcg20}, {"hitrate@20", row.hitrate20},
                         {"recall@50", row.recall50}, {"ndcg@50", row.ndcg50}, {"hitrate@50", row.hitrate50},
                         {"popularity_recall@20", row.pop_recall20}, {"popularity_recall@50", row.pop_recall50},
                         {"eval_users", double(valid->num_users())}});
    }
    save_weights(out + "/last.safetensors", trainer->weights(), popular, evaluation, largest, catalogue_fp);
    if (valid) {
      if (row.recall50 > best) {
        best = row.recall50;
        row.best = true;
        since_best = 0;
        save_weights(out + "/best.safetensors", trainer->weights(), popular, evaluation, largest, catalogue_fp);
      } else {
        ++since_best;
      }
    }
    rows.push_back(row);
    train::write_csv(csv, rows);
    train::write_svg(out + "/metrics.svg", rows, title);
    if (options.on_epoch) options.on_epoch(row);
  }
  if (trainer->epochs_done() < cfg.runner.epochs)
    mindrec::log(LogLevel::info, "early stop after epoch " + std::to_string(trainer->epochs_done()) + ": " +
                            std::to_string(since_best) + " evaluated epochs without a better validation Recall@50 "
                            "(runner.patience " + std::to_string(cfg.runner.patience) + ")");
  return rows;
}

}  // namespace mindrec
