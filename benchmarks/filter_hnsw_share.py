"""hnsw filtered search at chosen selectivities beside the unfiltered rows, in one process, the
graph built once and kept (for A/B runs of the planner's hnsw paths: RESULTS "Filters inside
the search"). Data: bench_store --export DIR (as filter_peers.sh makes it); attribute `bucket`,
filter and truth exactly as benchmarks/filter_peers.py (its functions).

  python filter_hnsw_share.py DIR [USERS [SELECTIVITIES]]   e.g. DIR 300 none,0.5,0.2,0.1
  (the graph is cached in DIR/hnsw32.idx; delete it after a change to the graph's build)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filter_peers import measure, truth  # noqa: E402

import mindrec  # noqa: E402


def main():
    d_ = sys.argv[1]
    users = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    sels = [None if x == "none" else float(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "none,0.5,0.2").split(",")]
    items = np.ascontiguousarray(np.load(f"{d_}/items.npy"), dtype=np.float32)
    interests = np.load(f"{d_}/interests.npy").astype(np.float32)
    counts = np.load(f"{d_}/counts.npy").astype(np.int64)
    users = min(users, len(counts))
    n, d = items.shape
    ids = np.arange(1, n + 1, dtype=np.int64)
    bucket = np.random.default_rng(7).integers(0, 10000, size=n).astype(np.int64)
    path = os.path.join(d_, "hnsw32.idx")
    if os.path.exists(path):
        st = mindrec.load_vector_store(path)
    else:
        st = mindrec.VectorStore("hnsw:M=32,ef_construction=200", d)
        st.add(items, ids)
        st.save(path)
    st.declare_attributes({"bucket": "int64"})
    st.set_attributes(ids, {"bucket": bucket})
    for sel in sels:
        allowed = ids if sel is None else ids[bucket < int(sel * 10000)]
        want = truth(items, interests, counts, allowed, users)
        f = "" if sel is None else f"bucket < {int(sel * 10000)}"
        for ef in [64, 128]:
            measure(f"hnsw {'none' if sel is None else sel} ef={ef}",
                    lambda q, u, ef=ef: st.search(q, 50, filter=f, params={"ef": ef}), interests, counts, want, users)


if __name__ == "__main__":
    main()
