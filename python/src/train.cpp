// Training (run_training), evaluation and dataset preparation. Long calls release the GIL;
// callbacks re-acquire it, and every training step checks for signals, so Ctrl-C stops a run
// from Python (KeyboardInterrupt) with the files of the finished epochs in place.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <Python.h>

#include <string>
#include <vector>

#include "core.hpp"
#include "mindrec/data.hpp"
#include "mindrec/eval.hpp"
#include "mindrec/prepare.hpp"
#include "mindrec/train.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::py {

namespace {

nb::dict epoch_dict(const EpochRecord& r) {
  nb::dict d;
  d["epoch"] = r.epoch;
  d["loss"] = r.loss;
  d["seconds"] = r.seconds;
  d["samples_per_s"] = r.samples_per_s;
  if (r.has_eval) {
    d["recall@20"] = r.recall20;
    d["ndcg@20"] = r.ndcg20;
    d["hitrate@20"] = r.hitrate20;
    d["recall@50"] = r.recall50;
    d["ndcg@50"] = r.ndcg50;
    d["hitrate@50"] = r.hitrate50;
    d["popularity_recall@20"] = r.pop_recall20;
    d["popularity_ndcg@20"] = r.pop_ndcg20;
    d["popularity_hitrate@20"] = r.pop_hitrate20;
    d["popularity_recall@50"] = r.pop_recall50;
    d["popularity_ndcg@50"] = r.pop_ndcg50;
    d["popularity_hitrate@50"] = r.pop_hitrate50;
    d["best"] = r.best;
  }
  return d;
}

}  // namespace

void bind_train(nb::module_& m) {
  nb::class_<EvalSet>(m, "EvalSet", "Validation/test users: histories and ground truth (PaddleRec's slot format).")
      .def_prop_ro("num_users", &EvalSet::num_users);
  m.def("read_eval_data", [](const std::string& path, int64_t item_count) {
    nb::gil_scoped_release unlocked;
    return read_eval_data(path, item_count);
  }, nb::arg("path"), nb::arg("item_count") = 0);

  nb::class_<ClickLog>(m, "ClickLog", "A training click log (user, item, order), per user in order.")
      .def_prop_ro("num_users", &ClickLog::num_users)
      .def_prop_ro("num_clicks", &ClickLog::num_clicks);
  m.def("read_train_data", [](const std::string& path, int64_t item_count) {
    nb::gil_scoped_release unlocked;
    return read_train_data(path, item_count);
  }, nb::arg("path"), nb::arg("item_count") = 0,
     "Reads `user_id,item_id,order` lines (a file or a folder of files); item_count > 0 also refuses larger ids.");
  m.def("_evaluate_popularity", [](const ClickLog& train, const EvalSet& set, const std::vector<int>& topk,
                                   bool paddlerec_compat, int batch_size) {
    EvalOptions o;
    o.topk = topk;
    o.paddlerec_compat = paddlerec_compat;
    o.batch_size = batch_size;
    nb::gil_scoped_release unlocked;
    return evaluate_popularity(train, set, o).to_json();
  }, nb::arg("train"), nb::arg("eval_set"), nb::arg("topk"), nb::arg("paddlerec_compat"), nb::arg("batch_size"));
  m.def("_evaluate", [](const MindModel& model, const EvalSet& set, const std::vector<int>& topk,
                        const VectorStore* store, const ClickLog* train, bool paddlerec_compat, int batch_size,
                        int threads) {
    EvalOptions o;
    o.popularity_from = train;
    o.topk = topk;
    o.store = store;
    o.paddlerec_compat = paddlerec_compat;
    o.batch_size = batch_size;
    o.threads = threads;
    nb::gil_scoped_release unlocked;
    return evaluate(model, set, o).to_json();
  }, nb::arg("model"), nb::arg("eval_set"), nb::arg("topk"), nb::arg("store").none(), nb::arg("train").none(),
     nb::arg("paddlerec_compat"),
     nb::arg("batch_size"), nb::arg("threads"));

  m.def("_prepare", [](const std::string& input, const std::string& out_dir, int min_count, uint64_t seed,
                       const std::string& columns, const std::string& catalogue, bool numeric_ids) {
    PrepareOptions o;
    o.min_count = min_count;
    o.seed = seed;
    o.columns = columns;
    o.catalogue = catalogue;
    o.numeric_ids = numeric_ids;
    PrepareReport r;
    {
      nb::gil_scoped_release unlocked;
      r = prepare_dataset(input, out_dir, o);
    }
    nb::dict d;
    d["lines"] = r.lines;
    d["clicks_kept"] = r.clicks_kept;
    d["items"] = r.items;
    d["item_count"] = r.item_count;
    d["users"] = r.users;
    d["train_users"] = r.train_users;
    d["valid_users"] = r.valid_users;
    d["test_users"] = r.test_users;
    d["kept"] = r.kept;
    d["new"] = r.added;
    d["retired"] = r.retired;
    return nb::borrow<nb::typed<nb::dict, nb::str, int>>(d);
  }, nb::arg("input"), nb::arg("out_dir"), nb::arg("min_count"), nb::arg("seed"), nb::arg("columns") = "",
     nb::arg("catalogue") = "", nb::arg("numeric_ids") = false);

  m.def("_train", [](const Config& config, const std::string& out_dir, const std::string& resume, bool evaluate,
                     nb::object on_start, nb::object on_progress, nb::object on_epoch, const std::string& init_from,
                     const std::string& catalogue) {
    TrainRunOptions o;
    o.out_dir = out_dir;
    o.resume = resume;
    o.init_from = init_from;
    o.catalogue = catalogue;
    o.evaluate = evaluate;
    if (!on_start.is_none())
      o.on_start = [&](const TrainStart& s) {
        nb::gil_scoped_acquire locked;
        nb::dict d;
        d["clicks"] = s.clicks;
        d["users"] = s.users;
        d["eval_users"] = s.eval_users;
        d["epochs_done"] = s.epochs_done;
        d["steps_done"] = s.steps_done;
        d["threads"] = s.threads;
        on_start(d);
      };
    o.on_progress = [&](const TrainProgress& p) {
      nb::gil_scoped_acquire locked;
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
      if (on_progress.is_none()) return;
      nb::dict d;
      d["epoch"] = p.epoch;
      d["epochs"] = p.epochs;
      d["batch"] = p.batch;
      d["batches"] = p.batches;
      d["loss"] = p.loss;
      d["samples_per_s"] = p.samples_per_s;
      d["eta_s"] = p.eta_s;
      d["run_eta_s"] = p.run_eta_s;
      on_progress(d);
    };
    if (!on_epoch.is_none())
      o.on_epoch = [&](const EpochRecord& r) {
        nb::gil_scoped_acquire locked;
        on_epoch(epoch_dict(r));
      };
    std::vector<EpochRecord> rows;
    {
      nb::gil_scoped_release unlocked;
      rows = run_training(config, o);
    }
    nb::list out;
    for (const auto& r : rows) out.append(epoch_dict(r));
    return nb::borrow<nb::typed<nb::list, nb::typed<nb::dict, nb::str, nb::any>>>(out);
  }, nb::arg("config"), nb::arg("out_dir"), nb::arg("resume"), nb::arg("evaluate"), nb::arg("on_start").none(),
     nb::arg("on_progress").none(), nb::arg("on_epoch").none(), nb::arg("init_from") = "", nb::arg("catalogue") = "");
}

}  // namespace mindrec::py
