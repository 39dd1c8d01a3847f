#!/usr/bin/env python3
"""Runs bench_interests and prints users/s, GFLOP/s and their fraction of Eigen's
single-thread SGEMM measured in the same run (x threads): the FP32 ceiling this machine
actually reaches (its nominal peak depends on a turbo clock a VM does not report)."""
import argparse
import json
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("--bench", default="build/benchmarks/bench_interests")
ap.add_argument("--min-time", default="0.5")
a = ap.parse_args()
out = subprocess.run([a.bench, "--benchmark_format=json", f"--benchmark_min_time={a.min_time}"],
                     check=True, capture_output=True, text=True).stdout
runs = json.loads(out)["benchmarks"]
sgemm = max(r["GFLOP/s"] for r in runs if r["name"].startswith("BM_eigen_sgemm"))
print(f"Eigen SGEMM, 1 thread (best of n=64, 512): {sgemm:.1f} GFLOP/s")
print("| batch | threads | users/s | GFLOP/s | % of SGEMM x threads |")
print("|---:|---:|---:|---:|---:|")
for r in runs:
    if not r["name"].startswith("BM_extract_interests"):
        continue
    parts = dict(p.split(":") for p in r["name"].split("/")[1:] if ":" in p)
    b, t = int(parts["batch"]), int(parts["threads"])
    g = r["GFLOP/s"]
    print(f"| {b} | {t} | {r['users/s']:,.0f} | {g:.1f} | {100*g/(sgemm*t):.0f}% |")
