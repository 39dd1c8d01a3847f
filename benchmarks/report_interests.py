#!/usr/bin/env python3
"""Runs bench_interests and prints users/s, GFLOP/s and their fraction of (a) Eigen's
single-thread SGEMM measured in the same run (x threads) and (b) the nominal FP32 peak
given by --peak-gflops-per-core (cores x GHz x FLOP/cycle; AVX-512 with two FMA units at
2.1 GHz = 134.4 GFLOP/s per core)."""
import argparse
import json
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("--bench", default="build/benchmarks/bench_interests")
ap.add_argument("--peak-gflops-per-core", type=float, default=134.4)
ap.add_argument("--min-time", default="0.5")
a = ap.parse_args()
out = subprocess.run([a.bench, "--benchmark_format=json", f"--benchmark_min_time={a.min_time}"],
                     check=True, capture_output=True, text=True).stdout
runs = json.loads(out)["benchmarks"]
sgemm = max(r["GFLOP/s"] for r in runs if r["name"].startswith("BM_eigen_sgemm"))
print(f"Eigen SGEMM, 1 thread (best of n=64, 512): {sgemm:.1f} GFLOP/s")
print(f"| batch | threads | users/s | GFLOP/s | % of SGEMM x threads | % of nominal peak |")
print(f"|---:|---:|---:|---:|---:|---:|")
for r in runs:
    if not r["name"].startswith("BM_extract_interests"):
        continue
    parts = dict(p.split(":") for p in r["name"].split("/")[1:] if ":" in p)
    b, t = int(parts["batch"]), int(parts["threads"])
    g = r["GFLOP/s"]
    print(f"| {b} | {t} | {r['users/s']:,.0f} | {g:.1f} | {100*g/(sgemm*t):.0f}% | "
          f"{100*g/(a.peak_gflops_per_core*t):.0f}% |")
