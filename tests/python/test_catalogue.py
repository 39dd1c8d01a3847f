"""Raw item ids from Python: the Catalogue, prepare with yesterday's catalogue, train beside it
and warm-started, recall and interests in raw ids; checked against the dense-id calls."""
import numpy as np
import pytest

import mindrec
from conftest import ROOT

BEAUTY = ROOT / "data" / "amazon-beauty" / "clicks.csv"
CONFIG = """
runner: {train_data_dir: data/train, test_data_dir: data/valid, epochs: 1, batches_per_epoch: 5, seed: 3}
hyper_parameters: {item_count: auto, embedding_dim: 16, hidden_size: 16, neg_samples: 50, maxlen: 10}
"""


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    base = tmp_path_factory.mktemp("catalogue")
    report = mindrec.prepare(BEAUTY, base / "data")
    cfg = mindrec.parse_config(CONFIG, str(base), "day1.yaml")
    mindrec.train(cfg, base / "model", progress=False)
    return base, report


def test_catalogue_object(day):
    base, report = day
    cat = mindrec.load_catalogue(base / "data" / "catalogue.csv")
    assert len(cat) == report["items"] and cat.item_count == report["item_count"]
    assert "301" in cat and "no such item" not in cat  # the log's most clicked item; digits stay strings
    assert cat.to_dense("301") == 1 and cat.to_dense(301) == 1 and cat.to_raw(1) == "301"
    ids = cat.to_dense(["301", "775", "nope"])
    assert ids.dtype == np.int64 and list(ids) == [1, 2, 0]
    assert cat.to_raw(np.array([2, 1])) == ["775", "301"]
    with pytest.raises(mindrec.InvalidArgument, match="not in the catalogue"):
        cat.to_raw(cat.item_count)
    # train copied it beside the weights, which record its fingerprint
    beside = mindrec.load_catalogue(base / "model" / "catalogue.csv")
    assert beside.fingerprint() == cat.fingerprint()
    assert "Catalogue(" in repr(cat)


def test_recall_and_interests_in_raw_ids(day):
    base, _ = day
    cat = mindrec.load_catalogue(base / "model" / "catalogue.csv")
    model = mindrec.MindModel(base / "model" / "last.safetensors")
    store = mindrec.build_item_store(model, "flat", catalogue=cat)
    raw = [["301", "775", 279, "nope"], ["nope"], []]
    got = mindrec.recall_items(model, store, raw, topn=10, catalogue=cat)
    dense = [list(cat.to_dense([str(x) for x in h if str(x) in cat])) for h in raw]
    want = mindrec.recall_items(model, store, dense, topn=10)
    assert got.ids[0] == cat.to_raw(want.ids[0][want.ids[0] >= 0])
    np.testing.assert_allclose(got.scores[0], want.scores[0][want.ids[0] >= 0])
    assert got.unknown == [["nope"], ["nope"], []]
    assert list(got.fallback) == [False, True, True]
    assert got.ids[1] == got.ids[2] == cat.to_raw(want.ids[1])  # the popular items
    ids, scores = got  # still a pair
    assert ids is got.ids
    with pytest.raises(mindrec.InvalidArgument, match=r"histories\[0\]\[0\]: '301' is a raw item id: pass catalogue="):
        mindrec.recall_items(model, store, [["301"]])
    # interests from raw ids equal those of the dense ids; an unknown raw id is named
    a, ca = model.extract_interests([["301", "775", "279"]], catalogue=cat)
    b, cb = model.extract_interests([list(cat.to_dense(["301", "775", "279"]))])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(mindrec.InvalidArgument, match=r"hist\[0\]\[1\]: raw id 'nope'"):
        model.extract_interests([["301", "nope"]], catalogue=cat)


def test_next_day_keeps_ids_and_warm_starts(day, tmp_path):
    base, _ = day
    lines = BEAUTY.read_text().splitlines()
    # tomorrow: the log without its most clicked item (retired) and with a new item
    today = [l for l in lines[1:] if l.split(",")[1] != "301"]
    today += [f"{u},NEW-SKU,{1000 + i}" for i, u in enumerate(["1", "2", "3", "4", "5", "6"])]
    (tmp_path / "today.csv").write_text("\n".join([lines[0]] + today) + "\n")
    rep = mindrec.prepare(tmp_path / "today.csv", tmp_path / "data", catalogue=base / "data" / "catalogue.csv")
    assert rep["new"] == 1 and rep["retired"] == 1 and rep["kept"] == rep["items"] - 1
    cat = mindrec.load_catalogue(tmp_path / "data" / "catalogue.csv")
    old = mindrec.load_catalogue(base / "data" / "catalogue.csv")
    assert cat.to_dense("NEW-SKU") == old.item_count  # after the largest id
    assert cat.status(1) == "retired" and cat.to_raw(1) == "301"
    assert cat.to_dense("775") == old.to_dense("775")
    cfg = mindrec.parse_config(CONFIG, str(tmp_path), "day2.yaml")
    rows = mindrec.train(cfg, tmp_path / "model", progress=False, init_from=base / "model" / "last.safetensors")
    assert len(rows) == 1
    w_old = mindrec.load_weights(base / "model" / "last.safetensors")
    w_new = mindrec.MindModel(tmp_path / "model" / "last.safetensors")
    # the retired item's row starts from yesterday's (copied by raw id): 5 Adam steps of lr 0.001
    # move it at most 0.005; a fresh row would be drawn from U(-0.022, 0.022)
    np.testing.assert_allclose(w_new.weights.item_emb[1], w_old.item_emb[1], atol=0.0051)
