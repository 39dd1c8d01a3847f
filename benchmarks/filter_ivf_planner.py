"""The IVF planner's threshold (issue 27): at selectivities 5-30%, mindrec's faiss:IVF4096,Flat
scanning its lists with the filter (exact_below 0) against scoring the allowed items exactly
(exact_below 1) and the default (the threshold s^1.5 <= 3 nprobe / nlist), nprobe 16/64/128, on
the data of filter_peers.sh (bench_store --noise 1.5 --export DIR), one user per call, the
harness of filter_peers.py.

  PYTHONPATH=<mindrec package> python benchmarks/filter_ivf_planner.py DIR [--users 300]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import filter_peers as fp  # noqa: E402  (the same truth, merge and timing as filter_peers.py)


def main():
    import mindrec
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--users", type=int, default=300)
    args = ap.parse_args()
    d = args.dir
    items = np.ascontiguousarray(np.load(f"{d}/items.npy"), dtype=np.float32)
    interests = np.load(f"{d}/interests.npy").astype(np.float32)
    counts = np.load(f"{d}/counts.npy").astype(np.int64)
    users = args.users
    n = items.shape[0]
    bucket = np.random.default_rng(7).integers(0, 10000, size=n).astype(np.int64)
    ids = np.arange(1, n + 1, dtype=np.int64)
    sels = [0.05, 0.1, 0.2, 0.3]
    truths = {}
    for sel in sels:
        truths[sel] = fp.truth(items, interests, counts, ids[bucket < int(sel * 10000)], users)
    st = mindrec.VectorStore("faiss:IVF4096,Flat", items.shape[1])
    t0 = time.time()
    st.add(items, ids)
    print("build", time.time() - t0, flush=True)
    st.declare_attributes({"bucket": "int64"})
    st.set_attributes(ids, {"bucket": bucket})
    for sel in sels:
        base = f"bucket < {int(sel * 10000)}"
        for npb in (16, 64, 128):
            for mode, extra in (("scan", {"exact_below": 0.0}), ("exact", {"exact_below": 1.0}), ("default", {})):
                if mode == "exact" and npb != 16:
                    continue  # the exact path does not depend on nprobe: measured once
                p = {"nprobe": npb, **extra}
                fp.measure(f"{fp.label(sel)} nprobe={npb} {mode}", lambda q, u: st.search(q, 50, filter=base, params=p),
                           interests, counts, truths[sel], users)


if __name__ == "__main__":
    sys.exit(main())
