"""mindrec.ray on a local Ray cluster (2 worker actors on 2 CPUs): recall and interests give
exactly what mindrec.recall_items / MindModel.extract_interests give in one process (the
oracle), with dense and raw ids, for flat, hnsw and IVF stores; bad rows are reported, never
fatal; the command writes Parquet and a rejects file and replaces its output atomically.

Run by tests/ray/run.sh (a fresh venv with Ray), which skips with 77 where Ray cannot be
installed."""
import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

import mindrec
import mindrec.ray as mray

ROOT = Path(__file__).resolve().parents[2]
BEAUTY = ROOT / "data" / "amazon-beauty" / "clicks.csv"
CONFIG = """
runner: {train_data_dir: data/train, test_data_dir: data/valid, epochs: 1, batches_per_epoch: 20, seed: 3}
hyper_parameters: {item_count: auto, embedding_dim: 16, hidden_size: 16, neg_samples: 50, maxlen: 10}
"""
USERS = 600


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A MIND trained on the Beauty log (raw ids: a catalogue beside the weights) and its
    stores saved as files."""
    base = tmp_path_factory.mktemp("ray")
    mindrec.prepare(BEAUTY, base / "data")
    mindrec.train(mindrec.parse_config(CONFIG, str(base), "c.yaml"), base / "model", progress=False)
    model = mindrec.MindModel(base / "model" / "last.safetensors")
    cat = mindrec.load_catalogue(base / "model" / "catalogue.csv")
    specs = {"flat": "flat", "hnsw": "hnsw:M=8,ef_construction=40?ef=32"}
    if has_faiss():
        specs["ivf"] = "faiss:IVF16,Flat?nprobe=4"
    for name, spec in specs.items():
        mindrec.build_item_store(model, spec).save(base / f"{name}.idx")  # dense ids, every item
        mindrec.build_item_store(model, spec, catalogue=cat).save(base / f"{name}-active.idx")
    return base, sorted(specs)


def has_faiss():
    try:
        mindrec.VectorStore("faiss:Flat", 4)
        return True
    except mindrec.Error:
        return False


def histories(cat, users, seed=7):
    """Lists of 1..15 known raw ids (as the catalogue spells them)."""
    rng = np.random.default_rng(seed)
    return [cat.to_raw(rng.integers(1, cat.item_count, size=int(rng.integers(1, 16)))) for _ in range(users)]


def dataset(column, blocks=4):
    """A Ray Dataset of users u0, u1, ... in `blocks` blocks (Ray hands work out by block)."""
    t = pa.table({"user": pa.array([f"u{i}" for i in range(len(column))]), "hist": column})
    step = (t.num_rows + blocks - 1) // blocks
    return ray.data.from_arrow([t.slice(i, step) for i in range(0, t.num_rows, step)])


def collected(ds):
    """The dataset's rows as a dict user -> row (Ray does not keep the input's order)."""
    return {r["user"]: r for r in ds.take_all()}


def test_actor_threads_follow_its_reservation(cluster):
    two = ray.remote(num_cpus=2)(mray._assigned_cpus)
    one = ray.remote(num_cpus=1)(mray._assigned_cpus)
    assert ray.get([two.remote(), one.remote()]) == [2, 1]


@pytest.mark.parametrize("ids", ["dense", "raw"])
def test_recall_equals_recall_items(cluster, model_dir, ids):
    base, stores = model_dir
    weights = str(base / "model" / "last.safetensors")
    model = mindrec.MindModel(weights)
    cat = mindrec.load_catalogue(base / "model" / "catalogue.csv")
    raw = histories(cat, USERS)
    hist = [[int(x) for x in cat.to_dense(h)] for h in raw] if ids == "dense" else raw
    col = pa.array(hist, pa.list_(pa.int64() if ids == "dense" else pa.string()))
    for name in stores:
        idx = base / (f"{name}.idx" if ids == "dense" else f"{name}-active.idx")
        store = mindrec.load_vector_store(idx)
        want = mindrec.recall_items(model, store, hist, topn=20, exclude_history=True, threads=2,
                                    catalogue=cat if ids == "raw" else None)
        got = collected(mray.recall(dataset(col), weights, index=str(idx), topn=20, exclude_history=True, batch_size=64,
                                    workers=2, dense_ids=ids == "dense"))
        assert len(got) == USERS
        for u in range(USERS):
            row = got[f"u{u}"]
            assert row["error"] is None
            if ids == "dense":
                keep = want.ids[u] >= 0
                assert row["candidates"] == want.ids[u][keep].tolist(), (name, u)
                assert np.array_equal(np.asarray(row["scores"], np.float32), want.scores[u][keep]), (name, u)
            else:
                assert row["candidates"] == want.ids[u], (name, u)
                assert np.array_equal(np.asarray(row["scores"], np.float32), want.scores[u]), (name, u)
            assert len(row["candidates"]) == 20


def test_interests_equal_extract_interests(cluster, model_dir):
    base, _ = model_dir
    weights = str(base / "model" / "last.safetensors")
    model = mindrec.MindModel(weights)
    cat = mindrec.load_catalogue(base / "model" / "catalogue.csv")
    raw = histories(cat, 300, seed=11)
    vecs, counts = model.extract_interests(raw, catalogue=cat)
    got = collected(mray.interests(dataset(pa.array(raw)), weights, batch_size=50,
                                   workers=2))
    assert counts.min() >= 1 and vecs.shape[2] == 16
    for u in range(300):
        have = np.asarray(got[f"u{u}"]["interests"], np.float32)
        assert have.shape == (counts[u], 16)
        assert np.array_equal(have, vecs[u, :counts[u]]), u


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mindrec.ray", *map(str, args)], capture_output=True, text=True)


def read_output(folder):
    t = pq.read_table(folder)
    return {r["user"]: r for r in t.to_pylist()}


def test_command(cluster, model_dir, tmp_path):
    base, _ = model_dir
    weights = base / "model" / "last.safetensors"
    model = mindrec.MindModel(weights)
    cat = mindrec.load_catalogue(base / "model" / "catalogue.csv")
    raw = histories(cat, 200, seed=5)
    bad = {"b0": [], "b1": ["no-such-sku"], "b2": None}
    users = [f"u{i}" for i in range(len(raw))] + list(bad)
    col = pa.array(raw + list(bad.values()), pa.list_(pa.string()))
    pq.write_table(pa.table({"user": users, "hist": col}), tmp_path / "hist.parquet")
    out = tmp_path / "out"
    common = ["--weights", weights, "--index", base / "flat-active.idx", "--input", tmp_path / "hist.parquet",
              "--output", out, "--address", cluster, "--workers", 2, "--batch-size", 32]
    r = run_cli("recall", *common, "--topn", 10)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = dict(kv.split("=", 1) for kv in r.stdout.strip().splitlines()[-1].split())
    assert (summary["users"], summary["written"], summary["failures"]) == ("203", "200", "3")
    store = mindrec.load_vector_store(base / "flat-active.idx")
    want = mindrec.recall_items(model, store, raw, topn=10, catalogue=cat)
    got = read_output(out)
    assert sorted(got) == sorted(users[:200])
    for i in range(200):
        assert got[f"u{i}"]["candidates"] == want.ids[i]
        assert np.array_equal(np.asarray(got[f"u{i}"]["scores"], np.float32), want.scores[i])
    with open(f"{out}.rejects.csv") as f:
        rejects = {row["user"]: row for row in csv.DictReader(f)}
    assert sorted(rejects) == ["b0", "b1", "b2"]
    assert rejects["b0"]["reason"] == "empty history"
    assert rejects["b1"]["reason"] == "unknown item id 'no-such-sku' at position 0: not in the catalogue"
    assert rejects["b1"]["hist"] == "no-such-sku"
    assert rejects["b2"]["reason"] == "no history (null)"

    # a re-run replaces the output as a whole (and the rejects); nothing is left beside it
    r = run_cli("recall", *common, "--topn", 3)
    assert r.returncode == 0, r.stdout + r.stderr
    got = read_output(out)
    assert all(len(got[f"u{i}"]["candidates"]) == 3 for i in range(200))
    assert sorted(os.listdir(tmp_path)) == ["hist.parquet", "out", "out.rejects.csv"]

    # a job that fails (the index is not a store) leaves the previous output as it was
    (tmp_path / "broken.idx").write_bytes(b"not a store")
    r = run_cli("recall", *common[:2], "--index", tmp_path / "broken.idx", *common[4:])
    assert r.returncode == 1 and "unchanged" in r.stderr, r.stdout + r.stderr
    assert read_output(out) == got
    assert sorted(os.listdir(tmp_path)) == ["broken.idx", "hist.parquet", "out", "out.rejects.csv"]

    # CSV input, ids separated by spaces; interests
    with open(tmp_path / "hist.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "hist"])
        for i, h in enumerate(raw[:50]):
            w.writerow([f"u{i}", " ".join(h)])
    r = run_cli("interests", "--weights", weights, "--input", tmp_path / "hist.csv", "--output", tmp_path / "iv",
                "--address", cluster, "--workers", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    vecs, counts = model.extract_interests(raw[:50], catalogue=cat)
    got = read_output(tmp_path / "iv")
    for i in range(50):
        assert np.array_equal(np.asarray(got[f"u{i}"]["interests"], np.float32), vecs[i, :counts[i]])

    # bad arguments: exit 2 with the reason
    r = run_cli("recall", "--weights", tmp_path / "none.safetensors", "--index", base / "flat.idx", "--input",
                tmp_path / "hist.parquet", "--output", out)
    assert r.returncode == 2 and "none.safetensors: no such file" in r.stderr
    r = run_cli("recall", *common, "--hist-column", "clicks")
    assert r.returncode == 2 and "has no column 'clicks'" in r.stderr
    r = run_cli("recall", *common, "--topn", 0)
    assert r.returncode == 2 and "--topn 0: out of range" in r.stderr


def test_bad_rows_are_reported_not_fatal(cluster, model_dir):
    base, _ = model_dir
    weights = str(base / "model" / "last.safetensors")
    model = mindrec.MindModel(weights)
    n = model.config.item_count
    rows = [[1, 2, 3], [], None, [4, n], [5, 0], [6, 7], [8, "x9"]]
    reasons = [None, "empty history", "no history (null)",
               f"unknown item id {n} at position 1: outside the model's [1, item_count={n})",
               "unknown item id 0 at position 1", None, "position 1: 'x9' is not an integer item id"]
    table = pa.table({"user": list(range(len(rows))), "hist": pa.array([None if r is None else [str(x) for x in r]
                                                                         for r in rows], pa.list_(pa.string()))})
    ds = ray.data.from_arrow(table)
    got = {r["user"]: r for r in mray.recall(ds, weights, index=str(base / "flat.idx"), topn=5, dense_ids=True,
                                             workers=1, batch_size=3).take_all()}
    store = mindrec.load_vector_store(base / "flat.idx")
    for u, why in enumerate(reasons):
        if why is None:
            assert got[u]["error"] is None
            assert got[u]["candidates"] == mindrec.recall_items(model, store, [rows[u]], topn=5).ids[0].tolist()
        else:
            assert got[u]["candidates"] is None and got[u]["scores"] is None
            assert got[u]["error"].startswith(why), (u, got[u]["error"])
    dropped = mray.recall(ds, weights, index=str(base / "flat.idx"), topn=5, dense_ids=True, workers=1,
                          errors="drop").take_all()
    assert sorted(r["user"] for r in dropped) == [0, 5] and "error" not in dropped[0]
    with pytest.raises(mindrec.InvalidArgument, match="errors must be one of"):
        mray.recall(ds, weights, index=str(base / "flat.idx"), errors="ignore")
    with pytest.raises(mindrec.InvalidArgument, match="index= .* or store="):
        mray.recall(ds, weights)
    # last: Ray Data keeps the actor of a failed run (and its CPU) for a while
    with pytest.raises(Exception, match="user 1: empty history"):
        mray.recall(ds, weights, index=str(base / "flat.idx"), dense_ids=True, workers=1, errors="raise").take_all()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_no_deprecated_ray_arguments(cluster, model_dir, tmp_path):
    """The job asks Ray for its pools with ``compute=`` (Ray 2.51 deprecates map_batches'
    ``concurrency`` and logs a warning for each call that passes it): nothing Ray Data logs
    while the job is built, run and written (mindrec.ray.write_parquet) says "deprecated"."""
    base, _ = model_dir
    pq.write_table(pa.table({"user": ["a", "b"], "hist": pa.array([[1, 2], [3]], pa.list_(pa.int64()))}),
                   tmp_path / "h.parquet")
    records = _Records()
    log = logging.getLogger("ray.data")
    log.addHandler(records)
    try:
        ds = mray.read_histories(str(tmp_path / "h.parquet"))
        rows = mray.recall(ds, str(base / "model" / "last.safetensors"), index=str(base / "flat.idx"), topn=5,
                           workers=1, dense_ids=True).take_all()
        mray.write_parquet(mray.interests(ds, str(base / "model" / "last.safetensors"), workers=1, dense_ids=True),
                           str(tmp_path / "iv"), workers=1)
    finally:
        log.removeHandler(records)
    assert sorted(r["user"] for r in rows) == ["a", "b"]
    written = pq.read_table(tmp_path / "iv")  # mindrec.ray.write_parquet: the rows, as Parquet
    assert sorted(written.column("user").to_pylist()) == ["a", "b"]
    assert written.column("error").null_count == 2
    assert not [m for m in records.messages if "deprecat" in m.lower()], records.messages
