"""Weights and MindModel from Python against the NumPy reference (tools/reference), the C++
CLI and hand-checked properties (views, dtypes, errors)."""
import gc
import sys
import tracemalloc

import numpy as np
import pytest

import mindrec
import mind_reference as ref
from conftest import FIXTURES, pack, random_histories, reference_params, ticks_during, write_eval_file


def small_model(small_paths):
    return mindrec.MindModel(mindrec.load_weights(small_paths[1]))


def test_weights_dict_views_and_shapes(small_paths):
    w = mindrec.load_weights(small_paths[1])
    d = mindrec.weights_to_dict(w)
    params, cfg = reference_params(small_paths[1])
    assert set(d) == set(params)
    for k, v in d.items():
        assert v.dtype == np.float32
        assert v.shape == params[k].shape, k
        np.testing.assert_array_equal(v, params[k].astype(np.float32))
    # views of the C++ tensors: no copy, and they keep the weights alive
    a, b = w.item_emb, w.item_emb
    assert np.shares_memory(a, b) and not a.flags.owndata
    before = a.copy()
    owner = a.base
    del w, b
    gc.collect()
    # the view holds the C++ weights itself (its base), so they outlive `w`: memory freed and
    # reused would not still read as the values copied before (the junk below reuses it)
    junk = [np.full((1000, 16), -7.0, np.float32) for _ in range(8)]
    assert a.base is owner and sys.getrefcount(owner) >= 2
    np.testing.assert_array_equal(a, before)
    del junk


def test_weights_round_trip_through_dict_and_file(tmp_path, small_paths, cli, rng):
    w = mindrec.load_weights(small_paths[1])
    hists = [h for h in random_histories(rng, 30, 1000, 20) if h]
    valid = write_eval_file(tmp_path / "valid.txt", hists)
    d = {k: np.array(v) for k, v in mindrec.weights_to_dict(w).items()}
    d["capsule.bilinear"][0, 0] = 0.25
    out = tmp_path / "edited.safetensors"
    mindrec.save_weights(out, d, config=w.config)
    back = mindrec.load_weights(out)
    assert back.bilinear[0, 0] == np.float32(0.25)
    np.testing.assert_array_equal(back.item_emb, w.item_emb)
    # the CLI reads what Python wrote (interests of one user, checked below against Python)
    cli("infer", "--config", small_paths[0], "--weights", out, "--data", valid, "--out", tmp_path / "u.npy")
    got, _ = mindrec.MindModel(back).extract_interests(hists)
    # same function; the last bits may differ when the package and the CLI were compiled with
    # other instruction sets (MINDREC_NATIVE)
    np.testing.assert_allclose(np.load(tmp_path / "u.npy"), got, rtol=1e-5, atol=1e-7)


def test_init_weights_equal_the_cli(tmp_path, small_paths, cli):
    cfg = mindrec.load_config(small_paths[0])
    w = mindrec.init_weights(cfg.hyper_parameters, 17)
    cli("init", "--config", small_paths[0], "--seed", 17, "--out", tmp_path / "w.safetensors")
    c = mindrec.load_weights(tmp_path / "w.safetensors")
    for k, v in mindrec.weights_to_dict(w).items():
        np.testing.assert_array_equal(v, mindrec.weights_to_dict(c)[k], err_msg=k)
    assert w.fingerprint() == c.fingerprint()


def test_weights_from_dict_errors(small_paths):
    cfg = mindrec.load_weights(small_paths[1]).config
    with pytest.raises(mindrec.InvalidArgument, match="missing"):
        mindrec.weights_from_dict(cfg, {})
    with pytest.raises(mindrec.InvalidArgument, match="unknown tensor"):
        mindrec.weights_from_dict(cfg, {"nope": np.zeros(3)})
    d = mindrec.weights_to_dict(mindrec.load_weights(small_paths[1]))
    d = dict(d, **{"capsule.bilinear": np.zeros((3, 3), np.float32)})
    with pytest.raises(mindrec.InvalidArgument, match="bilinear"):
        mindrec.weights_from_dict(cfg, d)


VARIANTS = {name: (axis, relu, dyn) for name, axis, relu, dyn in ref.VARIANTS}


def golden_model(variant):
    """The golden fixture's weights (made by mind_reference.py golden) with one variant's switches."""
    axis, relu, dyn = VARIANTS[variant]
    tensors, _ = ref.read_safetensors(str(FIXTURES / "mind_golden.safetensors"))
    N, D = tensors["item_emb.weight"].shape
    K, L = tensors["capsule.routing_logits"].shape[1:]
    mc = mindrec.ModelConfig()
    mc.item_count, mc.embedding_dim, mc.hidden_size, mc.maxlen = N, D, D, L
    mc.capsule.max_k, mc.capsule.relu_layer, mc.capsule.dynamic_k = K, relu, dyn
    mc.capsule.softmax_axis = getattr(mindrec.SoftmaxAxis, axis)
    mc.neg_samples = 5
    mc.validate()
    cfg = {"maxlen": L, "hidden_size": D,
           "capsule": {"iters": 3, "max_k": K, "softmax_axis": axis, "relu_layer": relu, "dynamic_k": dyn}}
    w = mindrec.weights_from_dict(mc, {k: v for k, v in tensors.items() if k.split(".")[0] in ("item_emb", "capsule")
                                       and (relu or not k.startswith("capsule.relu."))})
    return mindrec.MindModel(w), cfg, tensors


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_interests_match_the_numpy_reference(variant, rng):
    model, cfg, tensors = golden_model(variant)
    mc = model.config
    p64 = {k: v.astype(np.float64) for k, v in tensors.items() if k.split(".")[0] in ("item_emb", "capsule")}
    # the fixture's own inputs against its golden outputs: the users Python takes (the C++
    # tests cover the others: padding inside a history, no clicks, which Python refuses)
    fh, fl = tensors["input.hist"], tensors["input.lengths"]
    usable = np.array([fl[b] > 0 and (fh[b, :fl[b]] != 0).all() for b in range(len(fl))])
    assert usable.sum() >= len(fl) // 2 and not usable.all()
    got, counts = model.extract_interests(fh[usable], fl[usable])
    np.testing.assert_array_equal(counts, tensors[variant + ".counts"][usable])
    np.testing.assert_allclose(got, tensors[variant + ".interests"][usable], rtol=1e-4, atol=1e-5)
    bad = int(np.flatnonzero(~usable)[0])
    with pytest.raises(mindrec.InvalidArgument, match=f"user {bad}"):
        model.extract_interests(fh, fl)
    for readout in ("soft", "hard"):
        if readout == "hard" or mc.pow_p != 1:
            continue  # the model's read-out is its config's (soft, p = 1); the others are C++ tests
        att = model.label_aware_attention(got, counts, tensors["input.targets"][usable])
        live = counts > 0
        want_att = tensors[variant + ".attention_soft_p1"][usable]
        np.testing.assert_allclose(att[live], want_att[live], rtol=1e-4, atol=1e-5)
    # fresh random histories (longer than maxlen) against the reference run here
    hists = [h for h in random_histories(rng, 31, mc.item_count, mc.maxlen) if h]
    got, counts = model.extract_interests(hists)
    assert got.shape == (30, mc.capsule.max_k, mc.hidden_size) and got.dtype == np.float32
    hist, lens = pack(hists, mc.maxlen)
    for i in range(30):
        want, kk = ref.extract_interests(p64, cfg, hist[i], int(lens[i]))
        assert counts[i] == kk
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)


def test_input_forms_and_dtypes_agree(rng):
    model, _, _ = golden_model("interests_relu")
    L = model.config.maxlen
    hists = [h for h in random_histories(rng, 25, model.config.item_count, L) if h]
    from_lists, c1 = model.extract_interests(hists)
    hist, lens = pack(hists, L)
    for form in (hist, hist.astype(np.int32), hist.astype(np.uint16), np.asfortranarray(hist), hist.tolist()):
        got, c2 = model.extract_interests(form, lens)
        np.testing.assert_array_equal(got, from_lists)
        np.testing.assert_array_equal(c2, c1)
    full = model.extract_interests(hist[1:2].repeat(3, 0))  # no lengths: every row is full
    want = model.extract_interests([hist[1].tolist()] * 3)
    np.testing.assert_array_equal(full[0], want[0])


def test_bad_inputs_raise_typed_errors(rng):
    model, _, _ = golden_model("interests_relu")
    L, N = model.config.maxlen, model.config.item_count
    with pytest.raises(mindrec.InvalidArgument, match="integer ids") as e:
        model.extract_interests(np.ones((2, L)), np.ones(2))
    assert isinstance(e.value, ValueError) and isinstance(e.value, mindrec.Error)
    with pytest.raises(mindrec.InvalidArgument, match=r"maxlen"):
        model.extract_interests(np.ones((2, L + 1), np.int64), np.full(2, L))
    with pytest.raises(mindrec.InvalidArgument, match="lengths"):
        model.extract_interests(np.ones((2, L), np.int64), np.full(3, L))
    with pytest.raises(mindrec.InvalidArgument, match=str(N)):  # the C++ check names the bad id
        model.extract_interests([[1, 2, N]])
    with pytest.raises(mindrec.InvalidArgument, match="device"):
        mindrec.MindModel(model.weights, device="tpu")
    with pytest.raises(mindrec.IoError) as e:
        mindrec.load_weights("/nonexistent/w.safetensors")
    assert isinstance(e.value, OSError) and "/nonexistent/w.safetensors" in str(e.value)
    if not mindrec.built_with_cuda():
        with pytest.raises(mindrec.Unsupported) as e:
            mindrec.MindModel(model.weights, device="cuda")
        assert isinstance(e.value, NotImplementedError) and "MINDREC_WITH_CUDA" in str(e.value)


def test_outputs_own_cpp_buffers_and_inputs_are_read_in_place(rng):
    """Zero copy: results are NumPy arrays over the C++ buffers (no NumPy allocation of their
    size) and a C-contiguous int64 input is not copied (tracemalloc sees NumPy's allocations)."""
    model, _, _ = golden_model("interests_relu")
    L, N = model.config.maxlen, model.config.item_count
    B = 200_000
    hist = rng.integers(1, N, size=(B, L)).astype(np.int64)
    lens = np.full(B, L, np.int32)
    tracemalloc.start()
    try:
        interests, counts = model.extract_interests(hist, lens)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert interests.nbytes > 10_000_000
    assert peak < hist.nbytes // 4, f"{peak} bytes traced: the input or the output was copied"
    assert not interests.flags.owndata and interests.base is not None
    assert interests.flags.c_contiguous and interests.flags.writeable
    # the converting path does allocate (the check above can see a copy)
    tracemalloc.start()
    try:
        model.extract_interests(hist.astype(np.int32), lens)
        _, peak32 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak32 >= hist.nbytes


def test_extraction_releases_the_gil(rng):
    """While a long extraction runs in a thread, Python code keeps running in this one."""
    model, _, _ = golden_model("interests_relu")
    L, N = model.config.maxlen, model.config.item_count
    hist = rng.integers(1, N, size=(400_000, L)).astype(np.int64)
    lens = np.full(len(hist), L, np.int32)
    inside, seconds = ticks_during(lambda: model.extract_interests(hist, lens, threads=1))
    assert seconds > 0.05, "the call was too short to tell"
    assert inside > 1000, f"{inside} loop iterations here during a {seconds:.3f} s call"


def test_out_buffers_are_written_in_place(rng):
    model, _, _ = golden_model("hybrid_relu_dynk")
    L, N, K, H = model.config.maxlen, model.config.item_count, model.config.capsule.max_k, model.config.hidden_size
    hists = [h for h in random_histories(rng, 21, N, L) if h]
    hist, lens = pack(hists, L)
    want, wc = model.extract_interests(hist, lens)
    out = (np.full((20, K, H), np.nan, np.float32), np.full(20, -7, np.int32))
    got = model.extract_interests(hist, lens, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(out[0], want)  # every element written (no NaN left)
    np.testing.assert_array_equal(out[1], wc)
    with pytest.raises(mindrec.InvalidArgument, match=r"out: expected"):
        model.extract_interests(hist, lens, out=(np.empty((19, K, H), np.float32), out[1]))
    with pytest.raises(TypeError):  # a float64 buffer cannot be written in place: refused, not copied
        model.extract_interests(hist, lens, out=(np.empty((20, K, H)), out[1]))
    with pytest.raises(mindrec.InvalidArgument, match="out= needs"):
        model.extract_interests(hists, out=out)


def test_sample_users_match_the_reference(tmp_path):
    """The bundled Amazon Books sample's validation users (the spec's full shape: 367,983 items,
    D = H = 64, K = 4, L = 20) with weights the CLI's config defines, against the reference."""
    from conftest import ROOT, SAMPLE
    cfg = mindrec.load_config(ROOT / "configs" / "amazonbook-sample.yaml")
    weights = mindrec.init_weights(cfg.hyper_parameters, 11)
    model = mindrec.MindModel(weights)
    users = ref.read_valid(str(SAMPLE / "valid"))[:40]
    got, counts = model.extract_interests(users)
    p64 = {k: v.astype(np.float64) for k, v in mindrec.weights_to_dict(weights).items()}
    mc = {"maxlen": 20, "hidden_size": 64, "capsule": {"iters": cfg.hyper_parameters.capsule.iters, "max_k": 4,
          "softmax_axis": "interests", "relu_layer": True, "dynamic_k": False}}
    assert cfg.hyper_parameters.capsule.softmax_axis == mindrec.SoftmaxAxis.interests
    hist, lens = pack(users, 20)
    for i in range(len(users)):
        want, kk = ref.extract_interests(p64, mc, hist[i], int(lens[i]))
        assert counts[i] == kk
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_import_paddlerec_matches_paddlerec_and_the_cli(tmp_path, cli):
    """PaddleRec's own checkpoint and forward pass (tests/fixtures/paddlerec, made by
    tools/reference/paddlerec_fixture.py with PaddlePaddle): imported here and by the CLI."""
    d = FIXTURES / "paddlerec"
    w = mindrec.import_paddlerec(d / "mind.pdparams", d / "config.yaml")
    golden, _ = ref.read_safetensors(str(d / "golden.safetensors"))
    got, _ = mindrec.MindModel(w).extract_interests(golden["input.hist"], golden["input.lengths"])
    np.testing.assert_allclose(got, golden["paddlerec.interests"], atol=1e-4 * np.abs(golden["paddlerec.interests"]).max())
    cli("import-paddlerec", "--params", d / "mind.pdparams", "--config", d / "config.yaml", "--out", tmp_path / "w.safetensors")
    for k, v in mindrec.weights_to_dict(mindrec.load_weights(tmp_path / "w.safetensors")).items():
        np.testing.assert_array_equal(v, mindrec.weights_to_dict(w)[k], err_msg=k)
    with pytest.raises(mindrec.FormatError, match="pickle offset 0"):
        mindrec.import_paddlerec(d / "config.yaml", d / "config.yaml")


def test_weights_views_keep_their_owner_by_reference(small_paths):
    """The lifetime of a view is the weights object's, by reference (not by luck: a check of the
    values after `del` would also pass on freed memory nobody reused)."""
    import gc
    import sys
    w = mindrec.load_weights(small_paths[1])
    a = w.item_emb
    owner = a.base
    assert owner is not None and not a.flags.owndata
    refs_before = sys.getrefcount(w)
    b = w.item_emb  # another view: another reference to the same owner
    assert sys.getrefcount(w) == refs_before + 1
    del b
    gc.collect()
    assert sys.getrefcount(w) == refs_before
    del w
    gc.collect()
    assert a.base is owner  # the view's base still holds the weights
    assert a.shape == (1000, 16)


def test_loading_and_building_release_the_gil(tmp_path):
    """Reading weights, building a model (its projection) and writing weights run while Python
    code keeps running in this thread (review F23)."""
    cfg = mindrec.ModelConfig()
    cfg.item_count, cfg.embedding_dim, cfg.hidden_size = 400_000, 64, 64
    w = mindrec.init_weights(cfg, 3)
    path = tmp_path / "w.safetensors"
    for name, call in [("save_weights", lambda: mindrec.save_weights(path, w)),
                       ("load_weights", lambda: mindrec.load_weights(path)),
                       ("MindModel(path)", lambda: mindrec.MindModel(path)),
                       ("MindModel(weights)", lambda: mindrec.MindModel(w)),
                       ("init_weights", lambda: mindrec.init_weights(cfg, 4))]:
        inside, seconds = ticks_during(call)
        assert seconds > 0.02, f"{name}: too short to tell ({seconds:.3f} s)"
        assert inside > 100, f"{name}: {inside} loop iterations here during a {seconds:.3f} s call"


def test_default_lengths_count_clicks_not_padding(small_paths, rng):
    """A right-padded [B, maxlen] array without lengths= is read up to each row's trailing zeros
    (review F24): the same interests as the lists of clicks."""
    model = small_model(small_paths)
    L = model.config.maxlen
    hists = [[5, 9, 33], [7], list(range(1, L + 1)), [11, 0, 12]]  # a 0 inside a row is kept (the row ends later)
    padded = np.zeros((len(hists), L), np.int64)
    for i, h in enumerate(hists):
        padded[i, :len(h)] = h
    got, counts = model.extract_interests(padded[:3])
    want, want_counts = model.extract_interests(padded[:3], np.array([3, 1, L], np.int32))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(counts, want_counts)
    lists, _ = model.extract_interests([[5, 9, 33], [7]])
    np.testing.assert_array_equal(got[:2], lists)
    # ... and then refused: 0 is the padding id, never an item (the row's length is 3)
    with pytest.raises(mindrec.InvalidArgument, match="user 3, position 1: item id 0 is the padding id"):
        model.extract_interests(padded)


def test_errors_with_bytes_that_are_not_utf8_stay_mindrec_errors(tmp_path):
    """A message quoting a file's raw bytes (Latin-1 here) is still a FormatError with its file
    and line, the bad bytes replaced (review F25), not a UnicodeDecodeError."""
    bad = tmp_path / "clicks.txt"
    bad.write_bytes(b"1,5,1\n7,caf\xe9,1\n")
    with pytest.raises(mindrec.FormatError) as e:
        mindrec.read_train_data(str(bad))
    assert "clicks.txt" in str(e.value) and ":2" in str(e.value)
    assert "\ufffd" in str(e.value)


def test_self_attention_weights_from_python_match_the_numpy_reference(tmp_path, cli, rng):
    """extractor: self_attention (ComiRec-SA) from a dict of arrays: the NumPy port of
    tools/reference (full history, mask value) gives the same interests; the file round-trips
    and `mindrec infer` reads it."""
    cfg = mindrec.ModelConfig()
    cfg.item_count, cfg.embedding_dim, cfg.hidden_size, cfg.maxlen, cfg.neg_samples = 50, 8, 8, 6, 5
    cfg.extractor = mindrec.Extractor.self_attention
    cfg.self_attention.hidden = 10
    cfg.capsule.max_k = 3
    cfg.capsule.relu_layer = False
    d = {
        "item_emb.weight": rng.uniform(-1, 1, (50, 8)).astype(np.float32),
        "self_attention.w1": rng.uniform(-1, 1, (8, 10)).astype(np.float32),
        "self_attention.b1": rng.normal(0, 0.3, 10).astype(np.float32),
        "self_attention.w2": rng.uniform(-1.5, 1.5, (10, 3)).astype(np.float32),
        "self_attention.position": rng.uniform(-0.5, 0.5, (6, 8)).astype(np.float32),
    }
    d["item_emb.weight"][0] = 0
    w = mindrec.weights_from_dict(cfg, d)
    assert w.bilinear.size == 0 and w.routing_logits.size == 0
    back = mindrec.weights_to_dict(w)
    assert set(back) == set(d)
    for k in d:
        np.testing.assert_array_equal(back[k], d[k])
    with pytest.raises(mindrec.InvalidArgument, match="capsule.bilinear"):
        mindrec.weights_from_dict(cfg, {**d, "capsule.bilinear": np.zeros((8, 8), np.float32)})
    hists = [h for h in random_histories(rng, 20, 50, 6) if h]
    got, counts = mindrec.MindModel(w).extract_interests(hists)
    p64 = {k: v.astype(np.float64) for k, v in d.items()}
    rcfg = {"maxlen": 6, "hidden_size": 8, "extractor": "self_attention",
            "capsule": {"max_k": 3, "relu_layer": False, "dynamic_k": False}}
    for i, h in enumerate(hists):
        h = h[-6:]  # the last maxlen clicks, as extract_interests takes them
        padded = np.zeros(6, np.int64)
        padded[:len(h)] = h
        want, kk = ref.extract_interests_sa(p64, rcfg, padded, len(h))
        assert counts[i] == kk
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)
    out = tmp_path / "sa.safetensors"
    mindrec.save_weights(out, w)
    again = mindrec.load_weights(out)
    assert again.config.extractor == mindrec.Extractor.self_attention
    np.testing.assert_array_equal(again.attention, w.attention)
    # the CLI computes the same interests from the file (and the reference's check-infer agrees)
    valid = write_eval_file(tmp_path / "valid.txt", hists)
    cfg_file = tmp_path / "sa.yaml"
    cfg_file.write_text("hyper_parameters:\n  item_count: 50\n  embedding_dim: 8\n  hidden_size: 8\n  maxlen: 6\n"
                        "  neg_samples: 5\n  extractor: self_attention\n  self_attention: {hidden: 10}\n"
                        "  capsule: {max_k: 3, relu_layer: false}\n")
    cli("infer", "--config", cfg_file, "--weights", out, "--data", valid, "--out", tmp_path / "u.npy")
    np.testing.assert_allclose(np.load(tmp_path / "u.npy"), got, rtol=1e-5, atol=1e-7)


def test_from_arrays_keeps_its_six_argument_form_for_capsule_models(small_paths):
    """Weights.from_arrays gained `attention` (self-attention's tensors) as an optional last
    argument: code written before it, passing the five capsule tensors, still works."""
    w = mindrec.load_weights(small_paths[1])
    d = mindrec.weights_to_dict(w)
    back = mindrec.Weights.from_arrays(w.config, d["item_emb.weight"], d["capsule.bilinear"],
                                       d["capsule.routing_logits"], d["capsule.relu.weight"], d["capsule.relu.bias"])
    assert back.fingerprint() == w.fingerprint()
    assert back.attention.size == 0
    with pytest.raises(mindrec.InvalidArgument, match="self_attention"):  # a capsule model has none
        mindrec.Weights.from_arrays(w.config, d["item_emb.weight"], d["capsule.bilinear"], d["capsule.routing_logits"],
                                    d["capsule.relu.weight"], d["capsule.relu.bias"], np.ones(3, np.float32))
