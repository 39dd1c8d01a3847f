#!/usr/bin/env python3
"""Old build against new build, same machine, one run: interest extraction (bench_interests),
vector stores (bench_store: flat and IVF), training (mindrec train on the bundled sample).
Runs alternate between the two builds (round-robin) to spread machine drift over both, and
each row prints old, new and old/new for time (new/old for throughput): > 1 means the new
build is faster. Training also checks that both builds print the same losses.

    python3 benchmarks/compare_builds.py --old /tmp/old-build --new build [--rounds 3]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import time

ap = argparse.ArgumentParser()
ap.add_argument("--old", required=True, help="old build folder (benchmarks/, tools/)")
ap.add_argument("--new", required=True, help="new build folder")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--store-items", type=int, default=367983)
ap.add_argument("--skip-store", action="store_true")
a = ap.parse_args()
builds = {"old": a.old, "new": a.new}
env = dict(os.environ)


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def interests(build):
    out = run([f"{build}/benchmarks/bench_interests", "--benchmark_format=json",
               "--benchmark_min_time=0.5", "--benchmark_filter=BM_extract_interests"])
    res = {}
    for r in json.loads(out)["benchmarks"]:
        parts = dict(p.split(":") for p in r["name"].split("/")[1:] if ":" in p)
        res[f"extract users/s, batch {parts['batch']}, {parts['threads']} thr"] = r["users/s"]
    return res


def store(build):
    out = run([f"{build}/benchmarks/bench_store", "--items", str(a.store_items), "--users", "1000",
               "--noise", "0.6", "--backends", "flat,faiss:IVF4096,Flat?nprobe=8"])
    res = {}
    for line in out.splitlines():
        cells = [c.strip(" *") for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] in ("flat", "faiss:IVF4096,Flat?nprobe=8"):
            name = cells[0].split("?")[0]
            res[f"{name}: batch users/s"] = float(cells[4])
            res[f"{name}: p50 ms"] = -float(cells[5])  # negative: lower is better
            res[f"{name}: recall@50"] = float(cells[3])
    return res


def train(build):
    t0 = time.perf_counter()
    out = run([f"{build}/tools/mindrec", "train", "--config", "configs/amazonbook-sample.yaml",
               "--out", f"/tmp/compare-builds-{os.path.basename(build.rstrip('/'))}", "--no-eval"])
    secs = time.perf_counter() - t0
    losses = re.findall(r"epoch \d+: loss ([0-9.]+)", out)
    return {"train 5x100 batches, s": -secs}, losses


results = {k: {} for k in builds}
losses = {}
for rnd in range(a.rounds):
    for name, b in builds.items():
        for key, v in interests(b).items():
            results[name].setdefault(key, []).append(v)
        t, l = train(b)
        losses[name] = l
        for key, v in t.items():
            results[name].setdefault(key, []).append(v)
    print(f"round {rnd + 1}/{a.rounds} done", flush=True)
if not a.skip_store:
    for name, b in builds.items():
        for key, v in store(b).items():
            results[name].setdefault(key, []).append(v)

print("| measure | old | new | speed ratio (>1: new faster) |")
print("|---|---:|---:|---:|")
for key in results["old"]:
    o = statistics.median(results["old"][key])
    n = statistics.median(results["new"][key])
    if key.endswith("recall@50"):
        print(f"| {key} | {o:.3f} | {n:.3f} | (equal: {'yes' if o == n else 'NO'}) |")
        continue
    lower_better = o < 0
    o, n = abs(o), abs(n)
    ratio = o / n if lower_better else n / o
    print(f"| {key} | {o:,.2f} | {n:,.2f} | {ratio:.2f} |")
same = losses["old"] == losses["new"]
print(f"training losses identical in both builds: {'yes' if same else 'NO'} ({', '.join(losses['new'])})")
