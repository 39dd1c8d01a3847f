"""VectorStore and recall_items from Python against brute-force NumPy, the spec's merge written
here independently, and the C++ CLI (stores and weights passed both ways)."""
import json

import numpy as np
import pytest

import mindrec
from conftest import random_histories, ticks_during


def brute_force(items, ids, queries, k):
    scores = queries @ items.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(scores, order, axis=1)


def test_flat_store_matches_brute_force_and_edits(rng):
    items = rng.normal(size=(500, 8)).astype(np.float32)
    ids = rng.permutation(10_000)[:500].astype(np.int64) + 1
    s = mindrec.VectorStore("flat", 8)
    s.add(items, ids)
    assert len(s) == 500 and s.dim == 8 and s.metric == "ip" and s.backend == "flat"
    q = rng.normal(size=(7, 8))  # float64: converted once
    got_ids, got_scores = s.search(q, 10)
    want_ids, want_scores = brute_force(items.astype(np.float64), ids, q, 10)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)
    assert got_ids.dtype == np.int64 and got_scores.dtype == np.float32 and not got_ids.flags.owndata
    # upsert replaces, remove drops, padding past the stored vectors
    new = rng.normal(size=(2, 8)).astype(np.float32)
    assert s.upsert(new, [ids[0], 99_999]) == 1
    assert len(s) == 501
    assert s.remove([ids[0], 123_456_789]) == 1
    assert len(s) == 500
    top, _ = s.search(new[1:2] * 100, 1)
    assert top[0, 0] == 99_999
    small = mindrec.VectorStore("flat", 2)
    small.add([[1, 0]], [5])
    pid, psc = small.search([[1, 0]], 3)
    assert pid.tolist() == [[5, -1, -1]] and psc[0, 0] == 1 and np.isneginf(psc[0, 1:]).all()


def test_store_errors_are_typed(tmp_path, rng):
    s = mindrec.VectorStore("flat", 4)
    s.add(np.eye(4, dtype=np.float32), [1, 2, 3, 4])
    with pytest.raises(mindrec.InvalidArgument, match=r"\[n, 4\]"):
        s.add(np.zeros((1, 3), np.float32), [9])
    with pytest.raises(mindrec.InvalidArgument, match="already"):
        s.add(np.zeros((1, 4), np.float32), [2])
    with pytest.raises(mindrec.InvalidArgument, match="integer ids"):
        s.remove(np.array([1.5]))
    with pytest.raises(mindrec.InvalidArgument):
        mindrec.VectorStore("nope", 4)
    with pytest.raises(mindrec.InvalidArgument, match="metric"):
        mindrec.VectorStore("flat", 4, metric="cosine")
    assert len(s) == 4  # the failed calls changed nothing
    with pytest.raises(mindrec.IoError) as e:
        mindrec.load_vector_store(tmp_path / "missing.idx")
    assert isinstance(e.value, OSError)
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"not a store at all" * 10)
    with pytest.raises(mindrec.FormatError) as e:
        mindrec.load_vector_store(bad)
    assert isinstance(e.value, ValueError) and "bad.idx" in str(e.value)


def test_hnsw_store_save_load_round_trip(tmp_path, rng):
    items = rng.normal(size=(2000, 16)).astype(np.float32)
    ids = np.arange(1, 2001, dtype=np.int64)
    s = mindrec.VectorStore("hnsw:M=16,ef_construction=100?ef=64", 16)
    s.add(items, ids)
    q = rng.normal(size=(50, 16)).astype(np.float32)
    got, _ = s.search(q, 10)
    want, _ = brute_force(items, ids, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
    assert recall > 0.9
    s.save(tmp_path / "h.idx")
    back = mindrec.load_vector_store(tmp_path / "h.idx", "hnsw:M=16,ef_construction=100?ef=64")
    np.testing.assert_array_equal(back.search(q, 10)[0], got)


def spec_merge(ids, scores, topn, exclude=()):
    """mind-spec.md's merge, written here: pool, sort by score (ties: smaller id), drop ids <= 0
    and duplicates (and the excluded history), keep topn."""
    pool = sorted(zip(ids.ravel().tolist(), scores.ravel().tolist()), key=lambda p: (-p[1], p[0]))
    out, seen = [], set(exclude)
    for i, sc in pool:
        if i > 0 and i not in seen:
            seen.add(i)
            out.append((i, sc))
    return out[:topn]


def test_recall_items_is_interests_then_search_then_merge(small_paths, rng):
    model = mindrec.MindModel(small_paths[1])
    store = mindrec.build_item_store(model, "flat")
    assert len(store) == model.config.item_count - 1 and store.source_fingerprint == model.item_fingerprint()
    hists = [h for h in random_histories(rng, 12, model.config.item_count, model.config.maxlen) if h]
    ids, scores = mindrec.recall_items(model, store, hists, topn=20)
    ids_x, _ = mindrec.recall_items(model, store, hists, topn=20, exclude_history=True)
    interests, counts = model.extract_interests(hists)
    for u, h in enumerate(hists):
        q = interests[u, :counts[u]]
        # fetch enough per interest that the merge is exact, then merge independently
        fi, fs = store.search(q, 20 + len(h))
        want = spec_merge(fi, fs, 20)
        assert ids[u].tolist() == [i for i, _ in want]
        np.testing.assert_allclose(scores[u], [s for _, s in want], rtol=1e-5)
        want_x = spec_merge(fi, fs, 20, exclude=h)
        assert ids_x[u].tolist() == [i for i, _ in want_x]
    # array form with lengths gives the same
    L = model.config.maxlen
    hist = np.zeros((len(hists), L), np.int32)
    lens = np.array([min(len(h), L) for h in hists])
    for i, h in enumerate(hists):
        hist[i, :lens[i]] = h[-L:]
    np.testing.assert_array_equal(mindrec.recall_items(model, store, hist, lens, topn=20)[0], ids)


def test_stores_and_weights_round_trip_with_the_cli(tmp_path, small_paths, cli):
    cfg, weights = small_paths
    model = mindrec.MindModel(weights)
    # Python builds and saves the store; the CLI recalls through it
    store = mindrec.build_item_store(model, "flat")
    store.save(tmp_path / "py.idx")
    out = cli("recall", "--config", cfg, "--weights", weights, "--index", tmp_path / "py.idx",
              "--hist", "43,23,65", "--hist", "675,345", "--topk", 10, "--json")
    users = json.loads(out)["users"]
    ids, scores = mindrec.recall_items(model, store, [[43, 23, 65], [675, 345]], topn=10)
    assert [u["items"] for u in users] == ids.tolist()
    np.testing.assert_allclose([u["scores"] for u in users], scores, rtol=1e-5)
    # the CLI builds an hnsw index; Python loads it and finds the same items as its own exact search
    cli("index", "--config", cfg, "--weights", weights, "--store", "hnsw:M=16", "--out", tmp_path / "cli.idx")
    loaded = mindrec.load_vector_store(tmp_path / "cli.idx", "hnsw:M=16?ef=200")
    assert loaded.backend.startswith("hnsw") and len(loaded) == 999
    assert loaded.source_fingerprint == model.item_fingerprint()
    q, _ = model.extract_interests([[43, 23, 65]])
    np.testing.assert_array_equal(loaded.search(q[0], 5)[0], store.search(q[0], 5)[0])


def test_concurrent_searches_run_in_parallel_threads(rng):
    """Searches release the GIL: Python code runs in this thread while one is in flight."""
    items = rng.normal(size=(200_000, 64)).astype(np.float32)
    s = mindrec.VectorStore("flat?threads=1", 64)
    s.add(items, np.arange(1, len(items) + 1))
    q = rng.normal(size=(200, 64)).astype(np.float32)
    inside, seconds = ticks_during(lambda: s.search(q, 50))
    assert seconds > 0.02 and inside > 500, (inside, seconds)


def test_waiting_calls_release_the_gil(rng):
    """set_search_param waits for the writers' lock: while another thread's large write holds
    it, Python code keeps running in this thread (review F23)."""
    import threading
    s = mindrec.VectorStore("hnsw:M=16,ef_construction=200", 32)
    s.add(rng.normal(size=(2000, 32)).astype(np.float32), np.arange(1, 2001))
    more = rng.normal(size=(20_000, 32)).astype(np.float32)
    writer = threading.Thread(target=lambda: s.add(more, np.arange(10_001, 30_001)))
    writer.start()
    import time
    time.sleep(0.05)  # the write holds the writers' lock now
    inside, seconds = ticks_during(lambda: s.set_search_param("ef", 64))
    writer.join()
    assert seconds > 0.02, f"the write was over before the call ({seconds:.3f} s)"
    assert inside > 100, (inside, seconds)
    assert len(s) == 22_000


def test_recall_rules_agree_with_the_cli_and_the_server(tmp_path, small_paths, cli):
    """One rule everywhere (issue 31): no clicks -> the popular items, flagged; id 0 refused
    naming the position; exclude_history drops the whole list; ids that are not integers
    raise InvalidArgument naming the position, not a binding TypeError."""
    cfg, weights = small_paths
    w = mindrec.load_weights(weights)
    w.popular_items = [17, 4, 256, 99]
    mindrec.save_weights(tmp_path / "w.safetensors", w)
    assert mindrec.load_weights(tmp_path / "w.safetensors").popular_items == [17, 4, 256, 99]
    model = mindrec.MindModel(tmp_path / "w.safetensors")
    store = mindrec.build_item_store(model, "flat")
    r = mindrec.recall_items(model, store, [[], [43, 23, 65]], topn=3)
    ids, scores = r  # still unpacks as the pair
    assert r.fallback.tolist() == [True, False] and r.ids is ids
    assert ids[0].tolist() == [17, 4, 256] and scores[0].tolist() == [0, 0, 0]
    out = json.loads(cli("recall", "--config", cfg, "--weights", tmp_path / "w.safetensors", "--store", "flat",
                         "--hist", "", "--hist", "43,23,65", "--topk", 3, "--json"))["users"]
    assert [u["items"] for u in out] == ids.tolist() and [u["fallback"] for u in out] == [True, False]
    # the array form: an all-padding row is a user with no clicks
    L = model.config.maxlen
    arr = np.zeros((2, L), np.int64)
    arr[1, :3] = [43, 23, 65]
    r2 = mindrec.recall_items(model, store, arr, topn=3)
    np.testing.assert_array_equal(r2.ids, ids)
    assert r2.fallback.tolist() == [True, False]
    # id 0 and ids out of range: refused with the position, in every form
    for bad, where in (([[5, 0, 7]], "user 0, position 1: item id 0"), ([[5], [7, 1000]], "user 1, position 1")):
        with pytest.raises(mindrec.InvalidArgument, match=where):
            mindrec.recall_items(model, store, bad)
    assert "position 1: item id 0 is the padding id" in cli("recall", "--config", cfg, "--weights", weights,
                                                           "--store", "flat", "--hist", "5,0", expect_fail=True)
    with pytest.raises(mindrec.InvalidArgument, match=r"histories\[1\]\[2\]: expected an integer item id, got float 4.5"):
        mindrec.recall_items(model, store, [[5], [7, 8, 4.5]])
    # a string where an id is expected: a raw id, which needs the weights' catalogue
    with pytest.raises(mindrec.InvalidArgument, match=r"hist\[0\]\[0\]: '43' is a raw item id: pass catalogue="):
        model.extract_interests([["43"]])
    with pytest.raises(mindrec.InvalidArgument, match="has no clicks"):
        model.extract_interests([[5], []])
    with pytest.raises(mindrec.InvalidArgument, match="pass lengths=, or pass a list of per-user id lists"):
        mindrec.recall_items(model, store, np.ones((2, 3), np.int64))
    # exclude_history: a history longer than maxlen loses all of it, not only the last maxlen.
    # The model reads the last L ids (`base`); 30 of their best-ranked items come before them.
    base = [int(i) for i in np.random.default_rng(3).choice(np.arange(1, model.config.item_count), L, replace=False)]
    ranked = mindrec.recall_items(model, store, [base], topn=L + 60).ids[0].tolist()
    hist = [i for i in ranked if i not in base][:30] + base
    got = mindrec.recall_items(model, store, [hist], topn=10, exclude_history=True).ids[0].tolist()
    assert got == [i for i in ranked if i not in hist][:10]


def test_recall_and_evaluate_check_the_pairing_like_the_cli(tmp_path, small_paths, rng):
    """A store filled from other weights is refused (ConfigError) unless allow_mismatch."""
    _, weights = small_paths
    model = mindrec.MindModel(weights)
    w = mindrec.load_weights(weights)
    w.item_emb[1:] = rng.standard_normal(w.item_emb[1:].shape).astype(np.float32)
    other = mindrec.MindModel(w)
    store = mindrec.build_item_store(other, "flat")  # other's vectors
    with pytest.raises(mindrec.ConfigError, match="not of the loaded weights"):
        mindrec.recall_items(model, store, [[43, 23, 65]])
    ids, _ = mindrec.recall_items(model, store, [[43, 23, 65]], allow_mismatch=True)
    assert (ids >= 1).all()
    with pytest.raises(mindrec.ConfigError, match="not of the loaded weights"):
        mindrec.evaluate(model, tmp_path / "not-read", store=store)  # refused before the data is read
    # a store that records no weights (vectors added by hand) is served (the CLI's rule: a warning)
    hand = mindrec.VectorStore("flat", model.config.hidden_size)
    hand.add(model.weights.item_emb[1:], np.arange(1, model.config.item_count))
    assert hand.source_fingerprint == 0
    mindrec.recall_items(model, hand, [[43, 23, 65]])


def test_index_refuses_item_vectors_that_were_never_trained(tmp_path, small_paths, cli):
    """item_count far above the training data's ids: `mindrec index` refuses the untrained rows
    unless --allow-untrained-items (the weights record the largest trained id)."""
    cfg, weights = small_paths
    w = mindrec.load_weights(weights)
    assert w.largest_trained_item == 0  # unknown: nothing to check
    w.largest_trained_item = 200
    mindrec.save_weights(tmp_path / "w.safetensors", w)
    assert mindrec.load_weights(tmp_path / "w.safetensors").largest_trained_item == 200
    err = cli("index", "--config", cfg, "--weights", tmp_path / "w.safetensors", "--store", "flat",
              "--out", tmp_path / "i.idx", expect_fail=True)
    assert "item_count is 1000 but training saw item ids up to 200: 799 item vectors were never trained" in err
    assert not (tmp_path / "i.idx").exists()
    cli("index", "--config", cfg, "--weights", tmp_path / "w.safetensors", "--store", "flat",
        "--out", tmp_path / "i.idx", "--allow-untrained-items")
    assert len(mindrec.load_vector_store(tmp_path / "i.idx")) == 999
