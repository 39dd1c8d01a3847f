#!/usr/bin/env python3
"""mindrec against the JAX port of the spec (tools/reference/mind_jax.py), in one run on
this machine: the same config (Amazon Books shape: 367,983 items, D = H = 64, K = 4, L = 20,
1280 negatives, batches of 128, dense Adam) trained for the same number of batches by both,
then both models (and a popularity baseline) evaluated by the same evaluator on held-out
users of a synthetic data set with planted multi-interest structure.

Synthetic data: items 1..N-1 belong to T topics (item i to topic i mod T, popularity
Zipf(0.8) in its rank i div T, so ids fall in popularity as in ComiRec's numbering); each
user has 2-4 topics with Dirichlet weights and clicks in short sessions within one topic.

  python3 benchmarks/compare_training.py [--batches 1000] [--users 60000] [--work DIR]
Needs: build/ (scripts/setup.sh), numpy and jax[cpu] from PyPI.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_ITEMS = 367983


def generate(work, users, valid_users, topics, seed):
    rng = np.random.default_rng(seed)
    per_topic = (N_ITEMS - 1 + topics - 1) // topics
    ranks = np.arange(per_topic)
    pop = 1.0 / (ranks + 1.0) ** 0.8
    cdf = np.cumsum(pop) / pop.sum()

    def items_of(topic, n):
        r = np.searchsorted(cdf, rng.uniform(size=n))
        ids = r * topics + topic + 1
        return np.where(ids < N_ITEMS, ids, topic + 1)

    def sequence():
        k = rng.integers(2, 5)
        ts = rng.choice(topics, k, replace=False)
        w = rng.dirichlet(np.ones(k))
        m = int(rng.integers(15, 61))
        seq = []
        while len(seq) < m:
            t = ts[rng.choice(k, p=w)]
            seq.extend(items_of(t, int(rng.integers(1, 6))))
        return np.array(seq[:m], np.int64)

    os.makedirs(f"{work}/train", exist_ok=True)
    os.makedirs(f"{work}/valid", exist_ok=True)
    with open(f"{work}/train/data.txt", "w") as f:
        for u in range(users):
            s = sequence()
            f.write("".join(f"{u},{i},{o}\n" for o, i in enumerate(s)))
    with open(f"{work}/valid/data.txt", "w") as f:
        for u in range(users, users + valid_users):
            s = sequence()
            k = int(len(s) * 0.8)
            f.write(f"user_id:{u} target_item:0 " + " ".join(f"hist_item:{i}" for i in s[:k]) +
                    " " + " ".join(f"eval_item:{i}" for i in s[k:]) + "\n")


def popularity_baseline(work, topn=50):
    train = np.loadtxt(f"{work}/train/data.txt", delimiter=",", dtype=np.int64)
    top = np.argsort(-np.bincount(train[:, 1], minlength=N_ITEMS), kind="stable")[:topn]
    recall = hit = 0.0
    n = 0
    with open(f"{work}/valid/data.txt") as f:
        for line in f:
            gt = [int(t.split(":")[1]) for t in line.split() if t.startswith("eval_item:")]
            hits = len(set(top.tolist()) & set(gt))
            recall += hits / len(gt)
            hit += hits > 0
            n += 1
    return {"recall@50": recall / n, "hitrate@50": hit / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--users", type=int, default=60000)
    ap.add_argument("--valid-users", type=int, default=3000)
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--work", default=os.path.join(ROOT, "output", "bench-training"))
    ap.add_argument("--skip-reference", action="store_true")
    a = ap.parse_args()
    cli = os.path.join(ROOT, "build", "tools", "mindrec")
    work = a.work
    os.makedirs(work, exist_ok=True)
    if not os.path.exists(f"{work}/valid/data.txt"):
        t = time.time()
        generate(work, a.users, a.valid_users, a.topics, seed=11)
        print(f"generated {a.users} training and {a.valid_users} held-out users in {time.time()-t:.0f} s")
    capsule = {"iters": 3, "max_k": 4, "init_std": 1.0, "softmax_axis": "interests",
               "relu_layer": True, "dynamic_k": False}
    cfg = {"item_count": N_ITEMS, "embedding_dim": 64, "hidden_size": 64, "maxlen": 20,
           "neg_samples": 1280, "pow_p": 1.0, "readout": "soft",
           "optimizer": {"class": "Adam", "learning_rate": a.lr, "lazy": False}, "capsule": capsule}
    yaml = f"""runner:
  train_data_dir: "train"
  test_data_dir: "valid"
  train_batch_size: 128
  epochs: 1
  batches_per_epoch: {a.batches}
  print_interval: {max(1, a.batches // 5)}
  seed: 1
  threads: 0
hyper_parameters:
  item_count: {N_ITEMS}
  neg_samples: 1280
  optimizer: {{class: Adam, learning_rate: {a.lr}, lazy: false}}
"""
    with open(f"{work}/config.yaml", "w") as f:
        f.write(yaml)

    def run(cmd):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    out = run([cli, "train", "--config", f"{work}/config.yaml", "--out", f"{work}/mindrec", "--no-eval"])
    line = [l for l in out.splitlines() if l.startswith("epoch 1:")][0]
    m_secs = float(line.split("samples/s, ")[1].split(" s")[0])
    m_sps = a.batches * 128 / m_secs
    results = {"mindrec": {"seconds": m_secs, "samples_per_s": m_sps}}
    if not a.skip_reference:
        env = dict(os.environ)
        ref = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reference", "mind_jax.py"), "train",
                              "--train", f"{work}/train", "--config-json", json.dumps(cfg),
                              "--batches", str(a.batches), "--out", f"{work}/jax.safetensors"],
                             capture_output=True, text=True, env=env)
        if ref.returncode != 0:
            sys.exit("reference failed:\n" + ref.stderr[-3000:])
        results["jax"] = json.loads(ref.stdout.strip().splitlines()[-1])
    def evaluate(weights):
        run([cli, "eval", "--config", f"{work}/config.yaml", "--weights", weights,
             "--data", f"{work}/valid", "--topk", "50", "--json", f"{work}/eval.json"])
        return json.load(open(f"{work}/eval.json"))
    results["mindrec"].update(evaluate(f"{work}/mindrec/last.safetensors"))
    if "jax" in results:
        results["jax"].update(evaluate(f"{work}/jax.safetensors"))
    results["popularity"] = popularity_baseline(work)
    print(json.dumps(results, indent=2))
    print()
    print(f"| system | batches | seconds | samples/s | Recall@50 | HitRate@50 |")
    print(f"|---|---:|---:|---:|---:|---:|")
    for name in ("mindrec", "jax"):
        if name in results:
            r = results[name]
            print(f"| {name} | {a.batches} | {r['seconds']:.1f} | {r['samples_per_s']:,.0f} | "
                  f"{100*r['recall@50']:.2f}% | {100*r['hitrate@50']:.2f}% |")
    p = results["popularity"]
    print(f"| popularity | - | - | - | {100*p['recall@50']:.2f}% | {100*p['hitrate@50']:.2f}% |")
    if "jax" in results:
        print(f"\nmindrec / JAX samples/s: {m_sps / results['jax']['samples_per_s']:.1f}x")


if __name__ == "__main__":
    main()
