"""Attributes and filters from Python: search(filter=, params=) against brute-force NumPy over
the allowed items, attribute writes (alone and with vectors), and recall_items(filter=)."""
import numpy as np
import pytest

import mindrec
from conftest import random_histories


def test_search_with_a_filter_is_brute_force_over_the_allowed_items(rng):
    n, d = 3000, 8
    items = rng.normal(size=(n, d)).astype(np.float32)
    ids = np.arange(1, n + 1, dtype=np.int64)
    price = rng.uniform(0, 100, size=n)
    category = rng.choice(["shoes", "bags", "hats"], size=n)
    stock = rng.random(n) < 0.5
    s = mindrec.VectorStore("flat", d)
    s.add(items, ids)
    s.declare_attributes({"price": "float64", "category": "string", "in_stock": "bool"})
    assert s.attributes == [("price", "float64"), ("category", "string"), ("in_stock", "bool")]
    s.set_attributes(ids, {"price": price, "category": list(category), "in_stock": stock})
    q = rng.normal(size=(5, d)).astype(np.float32)
    expr = 'category in ["shoes", "bags"] and price < 50 and in_stock'
    got, sc = s.search(q, 10, filter=expr)
    ok = np.isin(category, ["shoes", "bags"]) & (price < 50) & stock
    scores = q @ items[ok].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(got, ids[ok][order])
    np.testing.assert_allclose(sc, np.take_along_axis(scores, order, axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(s.filter_allows(expr, ids), ok)
    # An in-stock flag flips: the next search no longer returns the item.
    first = got[0, 0]
    s.set_attributes([first], {"in_stock": [False]})
    assert first not in s.search(q[:1], 10, filter=expr)[0]
    # Vectors and attributes in one write.
    assert s.set_attributes([9999], {"in_stock": [True], "category": ["bags"], "price": [1.0]},
                            vectors=q[:1] * 100) == 0
    assert s.search(q[:1], 1, filter=expr)[0][0, 0] == 9999
    # Errors: position and token; a column of another type; an unknown column.
    with pytest.raises(mindrec.InvalidArgument, match="position 8: 'price' is float64: expected a number"):
        s.search(q, 3, filter="price < 'x'")
    with pytest.raises(mindrec.InvalidArgument, match="no attribute 'colour'"):
        s.set_attributes([1], {"colour": ["red"]})
    with pytest.raises(mindrec.InvalidArgument, match="not a per-call search parameter here"):
        s.search(q, 3, params={"ef": 10})
    got2, _ = s.search(q, 10, filter="price > 1000")
    assert (got2 == -1).all()


def test_attributes_survive_save_and_load(tmp_path, rng):
    s = mindrec.VectorStore("hnsw:M=8,ef_construction=40", 4)
    s.add(rng.normal(size=(200, 4)).astype(np.float32), np.arange(200))
    s.declare_attributes({"year": "int64"})
    s.set_attributes(np.arange(200), {"year": np.arange(200) % 10 + 2000})
    s.save(tmp_path / "s.idx")
    t = mindrec.load_vector_store(tmp_path / "s.idx")
    assert t.attributes == [("year", "int64")]
    q = rng.normal(size=(3, 4)).astype(np.float32)
    ids, _ = t.search(q, 5, filter="year == 2003", params={"ef": 64})
    assert ((ids % 10) == 3).all()


def test_recall_items_with_a_filter(small_paths, rng):
    model = mindrec.MindModel(small_paths[1])
    store = mindrec.build_item_store(model, "flat")
    ids = np.arange(1, model.config.item_count, dtype=np.int64)
    store.declare_attributes({"shelf": "int64"})
    store.set_attributes(ids, {"shelf": ids % 7})
    hists = [h for h in random_histories(rng, 6, model.config.item_count, model.config.maxlen) if h]
    r = mindrec.recall_items(model, store, hists, topn=15, filter="shelf == 3", exclude_history=True)
    got = np.asarray(r[0])
    assert ((got % 7) == 3).all()
    for u, h in enumerate(hists):
        assert not set(got[u]) & set(h)
    # The filter equals recalling from a store holding only the allowed items.
    only = mindrec.VectorStore("flat", model.config.hidden_size)
    allowed = ids[ids % 7 == 3]
    vecs = np.asarray(mindrec.load_weights(small_paths[1]).item_emb)[allowed]
    only.add(vecs, allowed)
    want = mindrec.recall_items(model, only, hists, topn=15, exclude_history=True, allow_mismatch=True)
    np.testing.assert_array_equal(got, want[0])
