"""train / evaluate / prepare from Python against the CLI's own runs of the same commands."""
import csv
import filecmp
import json

import numpy as np
import pytest

import mindrec
from conftest import FIXTURES, SAMPLE

SHORT = FIXTURES / "sample-short.yaml"


def read_metrics(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli):
    """The same short run by the CLI and by Python (same config, seed and threads)."""
    base = tmp_path_factory.mktemp("train")
    cli("train", "--config", SHORT, "--out", base / "cli")
    steps, epochs = [], []
    rows = mindrec.train(SHORT, base / "py", progress=steps.append, on_epoch=epochs.append)
    return base, rows, steps, epochs


def test_train_matches_the_cli(trained):
    base, rows, steps, epochs = trained
    assert [r["epoch"] for r in rows] == [1, 2] and epochs == rows
    assert [s["batch"] for s in steps] == list(range(1, 11)) * 2
    assert steps[-1]["epoch"] == 2 and steps[-1]["batches"] == 10
    py, cl = read_metrics(base / "py" / "metrics.csv"), read_metrics(base / "cli" / "metrics.csv")
    assert len(py) == len(cl) == 2
    for a, b, r in zip(py, cl, rows):
        for key in ("loss", "recall@20", "ndcg@20", "hitrate@20", "recall@50", "ndcg@50", "hitrate@50",
                    "pop_recall@50", "pop_hitrate@20"):
            # same function and seed; the last bits may differ between differently compiled builds
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key
            assert r[key.replace("pop_", "popularity_")] == pytest.approx(float(a[key]), abs=1e-6)
    for name in ("last.safetensors", "best.safetensors", "checkpoint.safetensors", "metrics.svg"):
        assert (base / "py" / name).exists(), name
    w_py = mindrec.load_weights(base / "py" / "last.safetensors")
    w_cli = mindrec.load_weights(base / "cli" / "last.safetensors")
    np.testing.assert_allclose(w_py.bilinear, w_cli.bilinear, rtol=1e-3, atol=1e-5)


def test_evaluate_returns_the_cli_json(trained, cli):
    base, _, _, _ = trained
    weights = base / "cli" / "best.safetensors"
    cli("eval", "--config", SHORT, "--weights", weights, "--data", SAMPLE / "valid", "--json", base / "eval.json")
    want = json.loads((base / "eval.json").read_text())
    model = mindrec.MindModel(weights)
    got = mindrec.evaluate(model, SAMPLE / "valid", train=SAMPLE / "train")
    assert list(got) == list(want) and "popularity_recall@50" in got and "ratio_recall@50" in got
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9), k
    # the baseline equals evaluate_popularity's, and the ratios are the quotients
    pop = mindrec.evaluate_popularity(SAMPLE / "train", SAMPLE / "valid")
    assert got["popularity_recall@50"] == pytest.approx(pop["recall@50"])
    assert got["ratio_recall@50"] == pytest.approx(got["recall@50"] / pop["recall@50"])
    got = mindrec.evaluate(model, SAMPLE / "valid")
    # through a store, and on a pre-read set: same numbers (flat is exact)
    store = mindrec.build_item_store(model, "flat")
    eval_set = mindrec.read_eval_data(str(SAMPLE / "valid"), model.config.item_count)
    assert eval_set.num_users == want["users"]
    assert mindrec.evaluate(model, eval_set, store=store) == pytest.approx(got)
    compat = mindrec.evaluate(model, eval_set, topk=[50], paddlerec_compat=True)
    assert set(compat) == {"users", "recall@50", "ndcg@50", "hitrate@50"}


def test_callback_errors_stop_training_and_keep_finished_epochs(tmp_path):
    def stop(row):
        raise RuntimeError(f"stop after epoch {row['epoch']}")

    with pytest.raises(RuntimeError, match="stop after epoch 1"):
        mindrec.train(SHORT, tmp_path, progress=False, on_epoch=stop)
    assert len(read_metrics(tmp_path / "metrics.csv")) == 1
    # ... and the run resumes from that checkpoint to the end
    rows = mindrec.train(SHORT, tmp_path, resume=tmp_path / "checkpoint.safetensors", progress=False)
    assert [r["epoch"] for r in rows] == [1, 2]


def test_prepare_writes_what_the_cli_writes(tmp_path, cli):
    report = mindrec.prepare(FIXTURES / "raw-clicks.csv", tmp_path / "py", min_count=2, seed=5)
    cli("prepare", "--input", FIXTURES / "raw-clicks.csv", "--out", tmp_path / "cli", "--min-count", 2, "--seed", 5)
    want = json.loads((tmp_path / "cli" / "dataset.json").read_text())
    for k, v in report.items():
        if k in want:
            assert want[k] == v, k
    for f in ("train/data.txt", "valid/data.txt", "test/data.txt", "item_map.csv", "user_map.csv", "dataset.json"):
        assert filecmp.cmp(tmp_path / "py" / f, tmp_path / "cli" / f, shallow=False), f


def test_config_objects_and_errors(tmp_path):
    cfg = mindrec.load_config(SHORT)
    assert cfg.runner.epochs == 2 and cfg.hyper_parameters.neg_samples == 64
    assert cfg.runner.train_data_dir.endswith("data/amazonbook-sample/train")  # resolved against the file
    assert cfg.hyper_parameters.capsule.softmax_axis == mindrec.SoftmaxAxis.interests
    bad = tmp_path / "bad.yaml"
    bad.write_text("hyper_parameters:\n  capsule:\n    max_kk: 3\n")
    with pytest.raises(mindrec.ConfigError, match="hyper_parameters.capsule.max_kk") as e:
        mindrec.load_config(bad)
    assert isinstance(e.value, ValueError)
    cfg.hyper_parameters.maxlen = 0
    with pytest.raises(mindrec.ConfigError, match="maxlen"):
        cfg.validate()
    c2 = mindrec.parse_config("hyper_parameters:\n  item_count: 50\n  neg_samples: 5\n")
    assert c2.hyper_parameters.item_count == 50
    mc = mindrec.ModelConfig.from_json(c2.hyper_parameters.to_json())
    assert mc.item_count == 50
    no_data = mindrec.Config()
    no_data.runner.train_data_dir = ""
    with pytest.raises(mindrec.ConfigError, match="train_data_dir"):
        mindrec.train(no_data, tmp_path, progress=False)


def test_ctrl_c_stops_training(tmp_path):
    """A signal (SIGINT) during training raises KeyboardInterrupt from train() promptly."""
    import _thread
    import threading

    def interrupt_after_first_epoch(row):
        threading.Timer(0.01, _thread.interrupt_main).start()

    cfg = mindrec.load_config(SHORT)
    cfg.runner.epochs, cfg.runner.batches_per_epoch = 3, 300  # the signal lands inside epoch 2
    with pytest.raises(KeyboardInterrupt):
        mindrec.train(cfg, tmp_path, progress=False, on_epoch=interrupt_after_first_epoch, evaluate=False)
    assert len(read_metrics(tmp_path / "metrics.csv")) == 1
