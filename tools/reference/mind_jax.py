#!/usr/bin/env python3
"""JAX port of MIND's training as ../shared/docs/mind-spec.md states it: the reference for
mindrec's gradients (automatic differentiation, independent of mindrec's hand-written
backward pass) and the peer that benchmarks/compare_training.py measures mindrec against.

Written from the spec, batched the way a Python framework would do it: full [B, K, L]
routing with the spec's mask value, stop_gradient on the routing loop and the read-out
weights, sampled softmax with log-q correction and accidental-hit masking, Adam with dense
moments (PaddlePaddle's form).

Commands:
  golden-train OUT.safetensors
      A small random model and batch; loss and gradients (float64) for several switch
      combinations -> tests/fixtures/mind_golden_train.safetensors.
  train --train DIR --config-json '{...}' --batches N --seed S --out W.safetensors
      Trains with the spec's sampler (NumPy) and a jit-compiled step; writes mindrec weights.

Needs jax (pip install "jax[cpu]"); never needed by mindrec's build or unit tests.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mind_reference import read_safetensors, write_safetensors  # noqa: E402

MASK = -(2.0 ** 32) + 1


def make_model(jnp, jax, cfg):
    cap = cfg["capsule"]
    K, L, iters = cap["max_k"], cfg["maxlen"], cap["iters"]
    axis, relu, dynk = cap["softmax_axis"], cap["relu_layer"], cap["dynamic_k"]
    pow_p, readout = int(cfg["pow_p"]), cfg["readout"]

    def squash(z):
        n2 = jnp.sum(z * z, axis=-1, keepdims=True)
        return z * (n2 / (1.0 + n2)) / jnp.sqrt(n2 + 1e-8)

    def interests(p, hist, lens):
        emb = p["item_emb.weight"]
        E = emb[hist] * (hist != 0)[..., None]                        # padding row reads 0
        U = E @ p["capsule.bilinear"]                                  # [B, L, H]
        pos = jnp.arange(L)[None, :] < lens[:, None]                   # [B, L]
        if dynk:
            n = jnp.maximum(lens, 1)
            kk = jnp.clip(jnp.floor(jnp.log2(n.astype(U.dtype))).astype(jnp.int32), 1, K)
        else:
            kk = jnp.full(lens.shape, K, jnp.int32)
        kvalid = jnp.arange(K)[None, :] < kk[:, None]                  # [B, K]
        b = jnp.broadcast_to(p["capsule.routing_logits"][0], (hist.shape[0], K, L))
        Us = jax.lax.stop_gradient(U)

        def weights(b, over_k):
            x = jnp.where(pos[:, None, :], b, MASK)
            # capsules beyond K'_u do not exist: weight exactly 0 in a softmax over k
            x = jnp.where(kvalid[:, :, None], x, -1e30 if over_k else x)
            return jax.nn.softmax(x, axis=1 if over_k else 2)

        for it in range(iters - 1):
            over_k = axis == "interests"
            w = weights(b, over_k)
            v = squash(jnp.einsum("bkl,blh->bkh", w, Us))
            delta = jnp.einsum("bkh,blh->bkl", v, Us)
            if axis == "behaviors":
                delta = delta / jnp.maximum(jnp.linalg.norm(delta, axis=2, keepdims=True), 1.0)
            b = b + delta
        w = jax.lax.stop_gradient(weights(b, axis in ("interests", "hybrid")))
        v = squash(jnp.einsum("bkl,blh->bkh", w, U))
        out = jnp.maximum(v @ p["capsule.relu.weight"] + p["capsule.relu.bias"], 0.0) if relu else v
        return out * kvalid[..., None], kvalid

    def loss_fn(p, hist, lens, targets, negs, lq_neg, lq_t):
        out, kvalid = interests(p, hist, lens)
        emb = p["item_emb.weight"]
        q = emb[targets]                                               # [B, H]
        c = jnp.einsum("bkh,bh->bk", out, q)
        a = c ** pow_p
        if readout == "hard":
            idx = jnp.argmax(jnp.where(kvalid, a, -jnp.inf), axis=1)
            user = jnp.take_along_axis(out, idx[:, None, None], axis=1)[:, 0]
        else:
            alpha = jax.nn.softmax(jnp.where(kvalid, a, -jnp.inf), axis=1)
            user = jnp.einsum("bk,bkh->bh", alpha, out)
        lt = jnp.sum(user * q, axis=1) - lq_t
        ln = user @ emb[negs].T - lq_neg[None, :]
        ln = jnp.where(negs[None, :] == targets[:, None], -1e30, ln)  # accidental hits
        logits = jnp.concatenate([lt[:, None], ln], axis=1)
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - lt)

    return interests, loss_fn


VARIANTS = [  # name, softmax_axis, relu_layer, dynamic_k, readout, pow_p
    ("interests_relu_soft", "interests", True, False, "soft", 1),
    ("behaviors_norelu_soft_p2", "behaviors", False, False, "soft", 2),
    ("hybrid_relu_dynk_soft", "hybrid", True, True, "soft", 1),
    ("interests_relu_hard", "interests", True, False, "hard", 1),
]


def golden_train(out_path):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    rng = np.random.default_rng(7)
    N, D, K, L, B, NN = 60, 6, 3, 7, 8, 10
    p = {
        "item_emb.weight": rng.uniform(-1, 1, (N, D)),
        "capsule.bilinear": rng.normal(0, 0.6, (D, D)),
        "capsule.routing_logits": rng.normal(0, 1, (1, K, L)),
        "capsule.relu.weight": rng.uniform(-0.8, 0.8, (D, D)),
        "capsule.relu.bias": rng.normal(0, 0.1, (D,)),
    }
    p["item_emb.weight"][0] = 0.0
    p = {k: v.astype(np.float32) for k, v in p.items()}
    lens = np.array([7, 5, 1, 3, 4, 7, 2, 6], dtype=np.int32)
    hist = np.zeros((B, L), dtype=np.int64)
    for i, n in enumerate(lens):
        hist[i, :n] = rng.integers(1, N, n)
    negs = rng.choice(np.arange(1, N), NN, replace=False).astype(np.int64)
    targets = rng.integers(1, N, B).astype(np.int64)
    targets[2] = negs[3]  # an accidental hit
    lq_neg = rng.uniform(-6, -1, NN).astype(np.float32)
    lq_t = rng.uniform(-6, -1, B).astype(np.float32)
    tensors = dict(p)
    tensors.update({"input.hist": hist, "input.lengths": lens, "input.targets": targets,
                    "input.negatives": negs, "input.log_q_negatives": lq_neg,
                    "input.log_q_targets": lq_t})
    for name, axis, relu, dynk, readout, pw in VARIANTS:
        cfg = {"maxlen": L, "pow_p": pw, "readout": readout,
               "capsule": {"iters": 3, "max_k": K, "softmax_axis": axis,
                           "relu_layer": relu, "dynamic_k": dynk}}
        _, loss_fn = make_model(jnp, jax, cfg)
        p64 = {k: jnp.asarray(v, jnp.float64) for k, v in p.items()}
        loss, g = jax.value_and_grad(loss_fn)(
            p64, jnp.asarray(hist), jnp.asarray(lens), jnp.asarray(targets), jnp.asarray(negs),
            jnp.asarray(lq_neg, jnp.float64), jnp.asarray(lq_t, jnp.float64))
        tensors[f"{name}.loss"] = np.array([float(loss)], dtype=np.float64)
        for k in ("item_emb.weight", "capsule.bilinear") + (
                ("capsule.relu.weight", "capsule.relu.bias") if relu else ()):
            tensors[f"{name}.grad.{k}"] = np.asarray(g[k], dtype=np.float64)
        print(f"{name}: loss {float(loss):.10f}")
    write_safetensors(out_path, tensors, {"generator": "tools/reference/mind_jax.py golden-train",
                                          "variants": json.dumps([v[0] for v in VARIANTS])})
    print(f"wrote {out_path}")


# ------------------------------------------------------------------------ training (peer)
def read_train(path):
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(path, n) for n in os.listdir(path) if not n.startswith("."))
    data = np.concatenate([np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2) for f in files])
    order = np.lexsort((data[:, 2], data[:, 0]))
    data = data[order]
    users, starts = np.unique(data[:, 0], return_index=True)
    offsets = np.append(starts, len(data))
    return data[:, 1], offsets


def train(args):
    import jax
    import jax.numpy as jnp
    cfg = json.loads(args.config_json)
    N, D, L = cfg["item_count"], cfg["embedding_dim"], cfg["maxlen"]
    K, NN, B = cfg["capsule"]["max_k"], cfg["neg_samples"], args.batch_size
    items, offsets = read_train(args.train)
    lengths = np.diff(offsets)
    eligible = np.nonzero(lengths > 4)[0]
    rng = np.random.default_rng(args.seed)
    # Initialisation as the spec's table.
    a = np.sqrt(6.0 / (N + D))
    p = {"item_emb.weight": rng.uniform(-a, a, (N, D)).astype(np.float32),
         "capsule.bilinear": rng.normal(0, 1, (D, D)).astype(np.float32),
         "capsule.routing_logits": rng.normal(0, cfg["capsule"]["init_std"], (1, K, L)).astype(np.float32)}
    p["item_emb.weight"][0] = 0
    if cfg["capsule"]["relu_layer"]:
        ar = np.sqrt(6.0 / (2 * D))
        p["capsule.relu.weight"] = rng.uniform(-ar, ar, (D, D)).astype(np.float32)
        p["capsule.relu.bias"] = np.zeros(D, np.float32)
    trainable = [k for k in p if k != "capsule.routing_logits"]
    _, loss_fn = make_model(jnp, jax, cfg)
    lr, b1, b2, eps = cfg["optimizer"]["learning_rate"], 0.9, 0.999, 1e-8

    def step(p, m, v, t, hist, lens, targets, negs, lq_neg, lq_t):
        loss, g = jax.value_and_grad(loss_fn)(p, hist, lens, targets, negs, lq_neg, lq_t)
        g["item_emb.weight"] = g["item_emb.weight"].at[0].set(0.0)
        c2 = jnp.sqrt(1 - b2 ** t)
        lr_t = lr * c2 / (1 - b1 ** t)
        np_, nm, nv = dict(p), {}, {}
        for k in trainable:   # dense moments: every row decays every step
            nm[k] = b1 * m[k] + (1 - b1) * g[k]
            nv[k] = b2 * v[k] + (1 - b2) * g[k] * g[k]
            np_[k] = p[k] - lr_t * nm[k] / (jnp.sqrt(nv[k]) + eps * c2)
        np_["item_emb.weight"] = np_["item_emb.weight"].at[0].set(0.0)
        return np_, nm, nv, loss

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    log_n1 = np.log(N + 1.0)

    def probability(ids):
        return np.log1p(1.0 / (ids + 1.0)) / log_n1

    def log_q(ids):
        return np.log(-np.expm1(-2.0 * NN * np.log1p(probability(ids)))).astype(np.float32)

    def batch():
        users = eligible[rng.choice(len(eligible), B, replace=False)]
        hist = np.zeros((B, L), np.int64)
        lens = np.zeros(B, np.int32)
        targets = np.zeros(B, np.int64)
        for i, u in enumerate(users):
            m = lengths[u]
            k = rng.integers(4, m)
            x = items[offsets[u]:offsets[u + 1]]
            h = x[max(0, k - L):k]
            hist[i, :len(h)] = h
            lens[i] = len(h)
            targets[i] = x[k]
        chosen = set()
        negs = []
        while len(negs) < NN:  # log-uniform, distinct
            for x in (np.floor(np.exp(rng.uniform(size=2 * NN) * log_n1)) - 1).astype(np.int64):
                if 1 <= x < N and x not in chosen:
                    chosen.add(x)
                    negs.append(x)
                    if len(negs) == NN:
                        break
        negs = np.array(negs, np.int64)
        return hist, lens, targets, negs, log_q(negs), log_q(targets)

    pj = {k: jnp.asarray(v) for k, v in p.items()}
    m = {k: jnp.zeros_like(pj[k]) for k in trainable}
    v = {k: jnp.zeros_like(pj[k]) for k in trainable}
    # Warm-up (compilation) is not timed.
    pj, m, v, loss = step(pj, m, v, 1.0, *batch())
    jax.block_until_ready(loss)
    t0 = time.time()
    losses = []
    for t in range(2, args.batches + 2):
        pj, m, v, loss = step(pj, m, v, float(t), *batch())
        losses.append(loss)
    jax.block_until_ready(losses[-1])
    secs = time.time() - t0
    losses = [float(x) for x in losses]
    out = {k: np.asarray(x, np.float32) for k, x in pj.items()}
    out["capsule.routing_logits"] = out["capsule.routing_logits"].reshape(1, K, L)
    meta_cfg = {"item_count": N, "embedding_dim": D, "hidden_size": cfg["hidden_size"],
                "maxlen": L, "neg_samples": NN, "pow_p": cfg["pow_p"], "readout": cfg["readout"],
                "capsule": cfg["capsule"]}
    write_safetensors(args.out, out, {"format": "mindrec-mind-weights-v1",
                                      "mindrec.model_config": json.dumps(meta_cfg)})
    res = {"batches": args.batches, "seconds": secs, "samples_per_s": args.batches * B / secs,
           "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:]))}
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden-train")
    g.add_argument("out")
    t = sub.add_parser("train")
    t.add_argument("--train", required=True)
    t.add_argument("--config-json", required=True)
    t.add_argument("--batches", type=int, required=True)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "golden-train":
        golden_train(a.out)
    else:
        train(a)


if __name__ == "__main__":
    main()
