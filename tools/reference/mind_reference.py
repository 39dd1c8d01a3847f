#!/usr/bin/env python3
"""Independent NumPy port of MIND's forward pass as ../shared/docs/mind-spec.md states it.

It is written from the spec, not from mindrec's C++: it works on the full [K, L] routing
matrix with the spec's mask value -(2^32)+1 (mindrec skips masked positions instead), in
float64, with plain loops where that reads closer to the formulas.

Commands:
  golden OUT.safetensors
      Builds a small random model and histories, runs every switch combination and writes
      the weights, inputs and expected outputs as one safetensors file (tests/fixtures/).
  golden-sa OUT.safetensors
      The same for the self-attentive extractor (extractor: self_attention, ComiRec-SA, Cen
      et al. KDD 2020), written from the paper and ComiRec's published model: the full [L]
      history with the mask value -(2^32)+1 on padded positions, as ComiRec does.
  check-infer --weights W.safetensors --data VALID --npy U.npy [--rtol 1e-4]
      Recomputes `mindrec infer`'s interests for every user of VALID and compares.

Only NumPy is needed (pip install numpy); mindrec's build and unit tests never run Python.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

MASK = -(2.0 ** 32) + 1


# ---------------------------------------------------------------- safetensors (own code)
DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(v): k for k, v in DTYPES.items()}[arr.dtype]
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e],
                                  dtype=np.dtype(DTYPES[t["dtype"]]).newbyteorder("<")
                                  ).reshape(t["shape"])
    return out, meta


# ---------------------------------------------------------------- the model (spec)
def squash(z):
    n2 = float(np.dot(z, z))
    return z * (n2 / (1.0 + n2)) / np.sqrt(n2 + 1e-8)


def dynamic_k(n, K):
    # K'_u = max(1, min(K, floor(log2(n)))); n = 0 counts as 1 behaviour
    return max(1, min(K, int(np.floor(np.log2(max(n, 1))))))


def softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def gather(p, hist, n, L):
    """E [L, D]: the embeddings of the first n ids (id 0 reads as zeros), zeros after."""
    emb = p["item_emb.weight"]
    E = np.zeros((L, emb.shape[1]))
    for l in range(L):
        if l < n and hist[l] != 0:
            E[l] = emb[hist[l]]
    return E


def output_layer(p, cap, v, kk, out):
    """out[k] = ReLU(v_k W + b) with capsule.relu_layer, else v_k, for the kk interests."""
    for k in range(kk):
        if cap["relu_layer"]:
            out[k] = np.maximum(v[k] @ p["capsule.relu.weight"] + p["capsule.relu.bias"], 0.0)
        else:
            out[k] = v[k]
    return out


def extract_interests(p, cfg, hist, n):
    """p: parameter dict (float64); hist: [L] ids right-padded; n: seq_len. Returns [K, H]."""
    cap = cfg["capsule"]
    K, L, H = cap["max_k"], cfg["maxlen"], cfg["hidden_size"]
    kk = dynamic_k(n, K) if cap["dynamic_k"] else K
    E = gather(p, hist, n, L)
    u_hat = E @ p["capsule.bilinear"]                     # [L, H]
    b = p["capsule.routing_logits"][0][:kk].copy()        # [kk, L]
    mask = np.array([[l < n for l in range(L)] for _ in range(kk)])
    axis = cap["softmax_axis"]
    v = np.zeros((kk, H))
    for it in range(cap["iters"]):
        last = it == cap["iters"] - 1
        over_k = axis == "interests" or (axis == "hybrid" and last)
        masked = np.where(mask, b, MASK)
        w = softmax(masked, axis=0 if over_k else 1)
        for k in range(kk):
            z = np.zeros(H)
            for l in range(L):
                z += w[k, l] * u_hat[l]
            v[k] = squash(z)
        if last:
            break
        delta = np.array([[np.dot(u_hat[l], v[k]) for l in range(L)] for k in range(kk)])
        if axis == "behaviors":
            for k in range(kk):
                delta[k] /= max(np.linalg.norm(delta[k]), 1.0)
        b = b + delta
    out = np.zeros((K, H))
    return output_layer(p, cap, v, kk, out), kk


def extract_interests_sa(p, cfg, hist, n):
    """ComiRec-SA: H_att = tanh((E + P) W1 + b1) [L, A]; scores = H_att W2 [L, K]; masked
    positions (l >= n) get -(2^32)+1; A = softmax over the L positions of scores^T [K, L];
    interests = A E (embeddings without the positions). Then the optional ReLU layer."""
    cap = cfg["capsule"]
    K, L, H = cap["max_k"], cfg["maxlen"], cfg["hidden_size"]
    kk = dynamic_k(n, K) if cap["dynamic_k"] else K
    E = gather(p, hist, n, L)
    X = E + p["self_attention.position"]
    hidden = np.tanh(X @ p["self_attention.w1"] + p["self_attention.b1"])
    scores = (hidden @ p["self_attention.w2"]).T                 # [K, L]
    mask = np.array([[l < n for l in range(L)] for _ in range(K)])
    att = softmax(np.where(mask, scores, MASK), axis=1)
    out = np.zeros((K, H))
    if n == 0:  # nothing to attend to: zero interests (ComiRec never sees an empty history)
        v = np.zeros((kk, H))
    else:
        v = att[:kk] @ E
    return output_layer(p, cap, v, kk, out), kk


def interests_of(p, cfg, hist, n):
    """The interests for a model config of a weights file (either extractor)."""
    if cfg.get("extractor", "capsule") == "self_attention":
        return extract_interests_sa(p, cfg, hist, n)
    return extract_interests(p, cfg, hist, n)


def label_aware(interests, kk, q, pow_p, readout):
    a = np.array([np.dot(interests[k], q) ** pow_p for k in range(kk)])
    if readout == "hard":
        return interests[int(np.argmax(a))]
    alpha = softmax(a, axis=0)
    return sum(alpha[k] * interests[k] for k in range(kk))


# ---------------------------------------------------------------- golden fixture
VARIANTS = [  # (name, softmax_axis, relu_layer, dynamic_k)
    ("interests_relu", "interests", True, False),
    ("interests_norelu", "interests", False, False),
    ("behaviors_relu", "behaviors", True, False),
    ("behaviors_norelu", "behaviors", False, False),
    ("hybrid_relu", "hybrid", True, False),
    ("interests_relu_dynk", "interests", True, True),
    ("behaviors_norelu_dynk", "behaviors", False, True),
    ("hybrid_relu_dynk", "hybrid", True, True),
]


def fixture_inputs(rng, p, N, L):
    """The fixtures' parameters as float32 (and float64 for the computation, padding row zeroed)
    and ten histories of lengths 0..L, one with a padding id inside (a zero embedding)."""
    p["item_emb.weight"][0] = 0.0
    p = {k: v.astype(np.float32) for k, v in p.items()}
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    lens = np.array([7, 5, 1, 0, 3, 4, 2, 6, 7, 7], dtype=np.int32)
    hist = np.zeros((len(lens), L), dtype=np.int64)
    for i, n in enumerate(lens):
        hist[i, :n] = rng.integers(1, N, n)
    hist[8, 2] = 0
    return p, p64, lens, hist


def golden(out_path):
    rng = np.random.default_rng(20261127)
    N, D, K, L = 40, 6, 3, 7
    # Larger-than-init scales so that routing and ReLU do real work in the test.
    p = {
        "item_emb.weight": rng.uniform(-1, 1, (N, D)),
        "capsule.bilinear": rng.normal(0, 0.7, (D, D)),
        "capsule.routing_logits": rng.normal(0, 1, (1, K, L)),
        "capsule.relu.weight": rng.uniform(-0.8, 0.8, (D, D)),
        "capsule.relu.bias": rng.normal(0, 0.1, (D,)),
    }
    p, p64, lens, hist = fixture_inputs(rng, p, N, L)
    B = len(lens)
    targets = rng.integers(1, N, B).astype(np.int64)
    tensors = dict(p)
    tensors["input.hist"] = hist
    tensors["input.lengths"] = lens
    tensors["input.targets"] = targets
    for name, axis, relu, dyn in VARIANTS:
        cfg = {"maxlen": L, "hidden_size": D,
               "capsule": {"iters": 3, "max_k": K, "softmax_axis": axis,
                           "relu_layer": relu, "dynamic_k": dyn}}
        outs, counts = np.zeros((B, K, D)), np.zeros(B, dtype=np.int32)
        for i in range(B):
            outs[i], counts[i] = extract_interests(p64, cfg, hist[i], int(lens[i]))
        tensors[f"{name}.interests"] = outs.astype(np.float32)
        tensors[f"{name}.counts"] = counts
        for readout in ("soft", "hard"):
            for pw in (1, 2, 3):
                att = np.zeros((B, D))
                for i in range(B):
                    if counts[i] == 0:
                        continue
                    att[i] = label_aware(outs[i], counts[i], p64["item_emb.weight"][targets[i]],
                                         pw, readout)
                tensors[f"{name}.attention_{readout}_p{pw}"] = att.astype(np.float32)
    meta = {"generator": "tools/reference/mind_reference.py golden",
            "variants": json.dumps([v[0] for v in VARIANTS])}
    write_safetensors(out_path, tensors, meta)
    print(f"wrote {out_path}: {len(tensors)} tensors, {len(VARIANTS)} variants")


SA_VARIANTS = [  # (name, relu_layer, dynamic_k)
    ("sa_norelu", False, False),
    ("sa_relu", True, False),
    ("sa_norelu_dynk", False, True),
]


def golden_sa(out_path):
    rng = np.random.default_rng(20261205)
    N, D, K, L, A = 40, 6, 3, 7, 11
    p = {
        "item_emb.weight": rng.uniform(-1, 1, (N, D)),
        "self_attention.w1": rng.uniform(-0.9, 0.9, (D, A)),
        "self_attention.b1": rng.normal(0, 0.3, (A,)),
        "self_attention.w2": rng.uniform(-1.5, 1.5, (A, K)),
        "self_attention.position": rng.uniform(-0.5, 0.5, (L, D)),
        "capsule.relu.weight": rng.uniform(-0.8, 0.8, (D, D)),
        "capsule.relu.bias": rng.normal(0, 0.1, (D,)),
    }
    p, p64, lens, hist = fixture_inputs(rng, p, N, L)
    B = len(lens)
    tensors = dict(p)
    tensors["input.hist"] = hist
    tensors["input.lengths"] = lens
    for name, relu, dyn in SA_VARIANTS:
        cfg = {"maxlen": L, "hidden_size": D, "extractor": "self_attention",
               "capsule": {"max_k": K, "relu_layer": relu, "dynamic_k": dyn}}
        outs, counts = np.zeros((B, K, D)), np.zeros(B, dtype=np.int32)
        for i in range(B):
            outs[i], counts[i] = extract_interests_sa(p64, cfg, hist[i], int(lens[i]))
        tensors[f"{name}.interests"] = outs.astype(np.float32)
        tensors[f"{name}.counts"] = counts
    meta = {"generator": "tools/reference/mind_reference.py golden-sa",
            "variants": json.dumps([v[0] for v in SA_VARIANTS])}
    write_safetensors(out_path, tensors, meta)
    print(f"wrote {out_path}: {len(tensors)} tensors, {len(SA_VARIANTS)} variants")


# ---------------------------------------------------------------- check mindrec infer
def read_valid(path):
    """Histories of a validation file, or of every file of a folder in name order."""
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(path, n) for n in os.listdir(path) if not n.startswith("."))
    users = []
    for name in files:
        with open(name) as f:
            for line in f:
                if line.strip():
                    users.append([int(t.split(":")[1]) for t in line.split()
                                  if t.startswith("hist_item:")])
    return users


def check_infer(args):
    tensors, meta = read_safetensors(args.weights)
    cfg = json.loads(meta["mindrec.model_config"])
    p64 = {k: v.astype(np.float64) for k, v in tensors.items()}
    L = cfg["maxlen"]
    users = read_valid(args.data)
    got = np.load(args.npy)
    K, H = cfg["capsule"]["max_k"], cfg["hidden_size"]
    if got.shape != (len(users), K, H):
        sys.exit(f"shape {got.shape} != {(len(users), K, H)}")
    worst = 0.0
    for i, h in enumerate(users):
        h = h[-L:]
        padded = np.zeros(L, dtype=np.int64)
        padded[:len(h)] = h
        want, _ = interests_of(p64, cfg, padded, len(h))
        err = np.abs(got[i] - want).max() / max(np.abs(want).max(), 1e-30)
        worst = max(worst, err)
    print(f"check-infer: {len(users)} users, max relative error {worst:.3e} "
          f"(tolerance {args.rtol:g})")
    if not worst <= args.rtol:
        sys.exit("check-infer: FAILED")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden")
    g.add_argument("out")
    gs = sub.add_parser("golden-sa")
    gs.add_argument("out")
    c = sub.add_parser("check-infer")
    c.add_argument("--weights", required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--npy", required=True)
    c.add_argument("--rtol", type=float, default=1e-4)
    a = ap.parse_args()
    if a.cmd == "golden":
        golden(a.out)
    elif a.cmd == "golden-sa":
        golden_sa(a.out)
    else:
        check_infer(a)


if __name__ == "__main__":
    main()
