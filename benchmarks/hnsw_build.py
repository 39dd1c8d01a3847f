"""HNSW build speed at equal graph settings (issue 28): mindrec's `hnsw:` insertion beside
faiss-cpu's HNSW and hnswlib on the same vectors, in one run, every system timed by one harness
(ann_peers.py's evaluate: each user's interests in one call from Python, the merge outside the
timed span), on one ef grid.

  python hnsw_build.py DIR [--quick]

DIR holds bench_store --export's files (benchmarks/hnsw_build.sh makes them). Per system and
setting: the build (every item added, all cores: items/s, memory), then recall@50 against the
exact merged top-50 and single-user p50/p99 at each ef; last, each one's lowest p99 at recall
>= 0.95.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ann_peers import evaluate, faiss_searches, rss_mib  # noqa: E402  (one harness for every benchmark of stores)

EF_GRID = [64, 80, 100, 128, 160, 200]
EF_QUICK = [64, 128]


def built(name, n, seconds, mem):
    print(f"build | {name} | {seconds:.1f} s | {n / seconds:.0f} items/s | {mem:.0f} MiB", flush=True)


def record(rows, name, one, a, batch):
    recall, _, p99 = evaluate(name, one, a.interests, a.counts, a.exact, batch)
    rows.append((name, recall, p99))


def run_mindrec(items, grid, a, rows, M, efc):
    import mindrec
    n, d = items.shape
    spec = f"hnsw:M={M},ef_construction={efc}"
    m0, t0 = rss_mib(), time.perf_counter()
    st = mindrec.VectorStore(spec, d)
    st.add(items, np.arange(1, n + 1, dtype=np.int64))
    built(f"mindrec {spec}", n, time.perf_counter() - t0, rss_mib() - m0)
    for ef in grid:
        st.set_search_param("ef", ef)

        def one(q, st=st):
            return st.search(q, 50)

        record(rows, f"mindrec {spec} ef={ef}", one, a, one)
    del st


def run_faiss(items, grid, a, rows, M, efc):
    import faiss
    n, d = items.shape
    name = f"faiss-cpu {faiss.__version__} HNSW{M} efConstruction={efc}"
    faiss.omp_set_num_threads(os.cpu_count())
    m0, t0 = rss_mib(), time.perf_counter()
    inner = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = efc
    index = faiss.IndexIDMap(inner)
    index.add_with_ids(items, np.arange(1, n + 1, dtype=np.int64))
    built(name, n, time.perf_counter() - t0, rss_mib() - m0)
    for ef in grid:
        inner.hnsw.efSearch = ef

        one, batch = faiss_searches(faiss, index)
        record(rows, f"{name} ef={ef}", one, a, batch)
    del index


def run_hnswlib(items, grid, a, rows, M, efc):
    import hnswlib
    n, d = items.shape
    name = f"hnswlib M={M} ef_construction={efc}"
    m0, t0 = rss_mib(), time.perf_counter()
    p = hnswlib.Index(space="ip", dim=d)
    p.init_index(max_elements=n, M=M, ef_construction=efc, random_seed=100)
    p.set_num_threads(os.cpu_count())
    p.add_items(items, np.arange(1, n + 1))
    built(name, n, time.perf_counter() - t0, rss_mib() - m0)
    for ef in grid:
        p.set_ef(ef)

        def one(q, p=p):
            p.set_num_threads(1)
            i, s = p.knn_query(q, k=50)
            return i.astype(np.int64), 1 - s  # hnswlib's ip distance is 1 - q.x

        def batch(q, p=p):
            p.set_num_threads(os.cpu_count())
            i, s = p.knn_query(q, k=50)
            return i.astype(np.int64), 1 - s

        record(rows, f"{name} ef={ef}", one, a, batch)
    del p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--quick", action="store_true", help="CI's small version: two settings, ef 64 and 128")
    a = ap.parse_args()
    items = np.ascontiguousarray(np.load(f"{a.dir}/items.npy"), dtype=np.float32)
    a.interests = np.ascontiguousarray(np.load(f"{a.dir}/interests.npy"), dtype=np.float32)
    a.counts = np.load(f"{a.dir}/counts.npy").astype(np.int64)
    a.exact = np.load(f"{a.dir}/exact.npy").astype(np.int64)
    grid = EF_QUICK if a.quick else EF_GRID
    print(f"items {items.shape[0]} x {items.shape[1]}, users {a.interests.shape[0]}, {os.cpu_count()} cores")
    print("| system, setting | recall@50 | batch users/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    rows = []
    runs = [(run_mindrec, 32, 64), (run_faiss, 32, 40), (run_faiss, 32, 64)]
    if not a.quick:
        runs += [(run_mindrec, 32, 200), (run_faiss, 32, 200), (run_hnswlib, 32, 64)]
    for run, M, efc in runs:
        run(items, grid, a, rows, M, efc)
    print("lowest p99 at recall@50 >= 0.95, per setting:")
    best = {}
    for name, recall, p99 in rows:
        setting = name.rsplit(" ef=", 1)[0]
        if recall >= 0.95 and (setting not in best or p99 < best[setting][1]):
            best[setting] = (name, p99, recall)
    for setting in dict.fromkeys(n.rsplit(" ef=", 1)[0] for n, _, _ in rows):
        b = best.get(setting)
        print(f"  {setting}: " + (f"p99 {b[1]:.3f} ms at recall {b[2]:.3f} ({b[0]})" if b else "no setting reached 0.95"))


if __name__ == "__main__":
    main()
