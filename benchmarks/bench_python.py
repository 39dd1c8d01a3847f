#!/usr/bin/env python3
"""What the Python package adds to mindrec's calls (issue 15): single-user recall through the
binding against the same call timed in C++ (benchmarks/bench_calls, same files, same process
conditions), and batched interest extraction throughput, both measured in this run.

    python benchmarks/bench_python.py [--items N] [--users U] [--single N] [--build DIR] [--quick]

Targets: <= 10 us added per single-user call; batched extraction within 5% of C++. The package
must be built the way the C++ build was (README: both -march=native) for the throughput to be
comparable."""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mindrec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--single", type=int, default=20_000, help="single-user calls timed")
    ap.add_argument("--repeats", type=int, default=5, help="batched extraction: best of")
    # exact search on one thread: every call costs the same (no probe-dependent work, no
    # OpenMP team to wake), so the difference between the two sides is the binding's
    ap.add_argument("--store", default="flat?threads=1")
    ap.add_argument("--rounds", type=int, default=3,
                    help="C++ and Python measured in turn this many times; each side's best round counts "
                         "(this machine's speed drifts by tens of percent between runs)")
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--quick", action="store_true", help="CI size: 5,000 users, 2,000 calls")
    args = ap.parse_args()
    if args.quick:
        args.users, args.single, args.repeats, args.rounds = 5_000, 2_000, 2, 1
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        mc = mindrec.ModelConfig()
        mc.item_count = args.items
        mc.validate()
        weights = mindrec.init_weights(mc, 2021)
        mindrec.save_weights(d / "w.safetensors", weights)
        model = mindrec.MindModel(weights)
        store = mindrec.build_item_store(model, args.store)
        store.save(d / "items.idx")
        L = mc.maxlen
        lens = rng.integers(1, L + 1, size=args.users).astype(np.int32)
        hist = np.zeros((args.users, L), np.int64)
        with open(d / "users.txt", "w") as f:
            for u in range(args.users):
                h = rng.integers(1, args.items, size=lens[u])
                hist[u, :lens[u]] = h
                f.write(f"user_id:{u + 1} target_item:0 " + " ".join(f"hist_item:{i}" for i in h) +
                        " eval_item:1\n")

        loaded = mindrec.load_vector_store(d / "items.idx")
        py_model = mindrec.MindModel(d / "w.safetensors")
        rows = [(hist[u:u + 1], lens[u:u + 1]) for u in range(args.users)]
        lists = [[hist[u, :lens[u]].tolist()] for u in range(args.users)]

        def time_calls(call):  # per-call seconds, users in turn, after a warm-up
            for i in range(min(args.single, 200)):
                call(i % args.users)
            t = np.empty(args.single)
            for i in range(args.single):
                t0 = time.perf_counter()
                call(i % args.users)
                t[i] = time.perf_counter() - t0
            return t

        def best_rate(call):
            best = 1e300
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                call()
                best = min(best, time.perf_counter() - t0)
            return args.users / best

        K, H = mc.capsule.max_k, mc.hidden_size
        buffers = (np.empty((args.users, K, H), np.float32), np.empty(args.users, np.int32))
        cpp = {"single_us_p50": 1e300, "single_us_mean": 1e300, "extract_users_per_s": 0.0,
               "extract_new_users_per_s": 0.0}
        py = {"arr_p50": 1e300, "arr_mean": 1e300, "list_p50": 1e300, "out": 0.0, "new": 0.0}
        for _ in range(args.rounds):
            c = json.loads(subprocess.run(
                [str(Path(args.build) / "benchmarks" / "bench_calls"), "--weights", str(d / "w.safetensors"),
                 "--index", str(d / "items.idx"), "--users", str(d / "users.txt"), "--single", str(args.single),
                 "--repeats", str(args.repeats)], check=True, capture_output=True, text=True).stdout)
            cpp["single_us_p50"] = min(cpp["single_us_p50"], c["single_us_p50"])
            cpp["single_us_mean"] = min(cpp["single_us_mean"], c["single_us_mean"])
            cpp["extract_users_per_s"] = max(cpp["extract_users_per_s"], c["extract_users_per_s"])
            cpp["extract_new_users_per_s"] = max(cpp["extract_new_users_per_s"], c["extract_new_users_per_s"])
            t_arr = time_calls(lambda u: mindrec.recall_items(py_model, loaded, rows[u][0], rows[u][1], topn=50,
                                                              threads=1)) * 1e6
            t_list = time_calls(lambda u: mindrec.recall_items(py_model, loaded, lists[u], topn=50, threads=1)) * 1e6
            py["arr_p50"] = min(py["arr_p50"], float(np.median(t_arr)))
            py["arr_mean"] = min(py["arr_mean"], float(t_arr.mean()))
            py["list_p50"] = min(py["list_p50"], float(np.median(t_list)))
            py["out"] = max(py["out"], best_rate(lambda: py_model.extract_interests(hist, lens, out=buffers)))
            py["new"] = max(py["new"], best_rate(lambda: py_model.extract_interests(hist, lens)))

    print(f"bench_python: {args.items} items, store {args.store}, {args.users} users, {args.single} single calls; "
          f"mindrec {mindrec.__version__}, Python {sys.version.split()[0]}, numpy {np.__version__}")
    print(f"each side's best of {args.rounds} round(s), measured in turn")
    print("| call | C++ | Python | added / ratio |")
    print("|---|---:|---:|---:|")
    for name, key, ref in (("recall_items, 1 user, [1, L] int64 array (p50 us)", "arr_p50", "single_us_p50"),
                           ("recall_items, 1 user, list of lists (p50 us)", "list_p50", "single_us_p50"),
                           ("recall_items, 1 user, array (mean us)", "arr_mean", "single_us_mean")):
        print(f"| {name} | {cpp[ref]:.1f} | {py[key]:.1f} | +{py[key] - cpp[ref]:.1f} us |")
    for name, key, ref in (("one buffer reused (Python: out=)", "out", "extract_users_per_s"),
                           ("a new output buffer per call", "new", "extract_new_users_per_s")):
        print(f"| extract_interests, {args.users} users, all cores, {name} (users/s) | "
              f"{cpp[ref]:,.0f} | {py[key]:,.0f} | {py[key] / cpp[ref]:.3f}x |")
    added = py["arr_p50"] - cpp["single_us_p50"]
    ratio = py["out"] / cpp["extract_users_per_s"]
    ratio_new = py["new"] / cpp["extract_new_users_per_s"]
    print(f"python_added_us={added:.2f} (target <= 10) extract_ratio={ratio:.3f} extract_ratio_new={ratio_new:.3f} "
          "(target >= 0.95)")


if __name__ == "__main__":
    main()
