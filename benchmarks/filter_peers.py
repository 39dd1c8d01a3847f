"""Filtered search: mindrec's stores and the peers that filter inside their search, every system
timed by this one harness on the data of bench_store --export (benchmarks/filter_peers.sh runs
both), issue 27.

  data         DIR/items.npy [n, d] (row r = item r+1), interests.npy [users, K, d], counts.npy
  attributes   one int64 column per item, `bucket`, uniform in [0, 10000) (seed 7): the filter
               `bucket < S * 10000` allows a fraction S of the items; S = 50%, 10%, 1%, 0.1%,
               0.01%, and no filter
  truth        each user's exact merged top-50 among the allowed items (NumPy, computed here)
  one user     its live interests searched in one call from Python (top-50 each, one thread),
               the filter given with the call, timed alone: p50/p99 over the users. The spec's
               merge is outside the timed span for everyone.
  mindrec      VectorStore.search(q, 50, filter="bucket < T", params={"ef": v}): the expression
               is parsed and evaluated by the store (its plan cache keeps the evaluated filter
               while the store does not change; `--uncached` makes every call's text unique, so
               every call evaluates it)
  faiss-cpu    IDSelectorBitmap (built once per selectivity, outside the timed span) in
               SearchParametersIVF / SearchParametersHNSW
  hnswlib      knn_query(filter=callable): a Python predicate per candidate (its API)
  usearch      its predicate is C++ only (index_dense_gt::filtered_search; its Python package
               has none): benchmarks/peers/usearch_filter.cpp, built against the headers of the
               installed version's sdist as its setup.py builds (benchmarks/lib.sh), called through
               ctypes with a bitmap over the keys; its unfiltered rows beside the Python
               package's own unfiltered search show what the wrapper costs
  grid         ef / efSearch 64, 128, 256; nprobe 16..128, the same for every system

  python filter_peers.py DIR [--users 500] [--systems mindrec,faiss,hnswlib,usearch] [--quick] [--nlist 4096]
                         [--usearch-lib PATH]   (usearch: the wrapper's shared library)
"""
import argparse
import os
import sys
import time

import numpy as np

SELECTIVITIES = [None, 0.5, 0.1, 0.01, 0.001, 0.0001]
EF_GRID = [64, 128, 256]
NPROBE_GRID = [16, 32, 64, 128]


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ann_peers import merge  # noqa: E402  (the spec's merge, one copy for both harnesses)


def truth(items, interests, counts, allowed_ids, users):
    """Each user's exact merged top-50 among the allowed items (ids = row + 1)."""
    a = items[allowed_ids - 1]
    out = []
    for u0 in range(0, users, 64):
        u1 = min(users, u0 + 64)
        q = interests[u0:u1].reshape(-1, items.shape[1])
        s = q @ a.T
        k = min(50, a.shape[0])
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < a.shape[0] else np.tile(np.arange(a.shape[0]), (len(q), 1))
        ts = np.take_along_axis(s, top, axis=1).reshape(u1 - u0, interests.shape[1], -1)
        ti = allowed_ids[top].reshape(u1 - u0, interests.shape[1], -1)
        out += [merge(ti[u], ts[u], counts[u0 + u]) for u in range(u1 - u0)]
    return out


MAX_USER_MS = 500.0  # a row whose users average more than this (after 5 of them) is stopped


def measure(name, search, interests, counts, want, users):
    lat, hits, total = [], 0, 0
    for u in range(users):
        if u >= 5 and sum(lat) / len(lat) > MAX_USER_MS:
            print(f"| {name} | stopped | {sum(lat) / len(lat):.1f} ms a user over {u} users | - |", flush=True)
            return
        q = np.ascontiguousarray(interests[u, : counts[u]])
        t0 = time.perf_counter()
        i, s = search(q, u)
        lat.append((time.perf_counter() - t0) * 1e3)
        got = merge(np.asarray(i), np.asarray(s), counts[u])
        hits += len(set(got) & set(want[u]))
        total += len(want[u])
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    recall = hits / total if total else 1.0
    print(f"| {name} | {recall:.3f} | {p50:.3f} | {p99:.3f} |", flush=True)


def label(sel):
    return "none" if sel is None else f"{sel * 100:g}%"


def run_mindrec(items, bucket, interests, counts, truths, users, args):
    import mindrec
    n, d = items.shape
    ids = np.arange(1, n + 1, dtype=np.int64)
    specs = [("hnsw:M=32,ef_construction=200", "ef", [128] if args.quick else EF_GRID),
             (f"faiss:IVF{args.nlist},Flat", "nprobe", [64] if args.quick else NPROBE_GRID),
             ("flat", None, [None])]
    for spec, param, values in specs:
        t0 = time.perf_counter()
        st = mindrec.VectorStore(spec, d)
        st.add(items, ids)
        st.declare_attributes({"bucket": "int64"})
        st.set_attributes(ids, {"bucket": bucket})
        print(f"mindrec {spec}: build {time.perf_counter() - t0:.1f} s", flush=True)
        for sel in SELECTIVITIES:
            base = "" if sel is None else f"bucket < {int(sel * 10000)}"
            for v in values:
                params = {param: v} if param else ({"threads": 1} if spec == "flat" else {})

                def one(q, u, st=st, base=base, params=params):
                    f = base if not (args.uncached and base) else f"{base} and bucket > -{u + 2}"
                    return st.search(q, 50, filter=f, params=params)

                measure(f"mindrec {spec} {label(sel)}" + (f" {param}={v}" if param else ""), one, interests, counts,
                        truths[sel], users)
        del st


def bitmap_selector(faiss, allowed_mask):
    """IDSelectorBitmap over ids 0..n (bit i of byte i // 8, little-endian bit order)."""
    bits = np.packbits(allowed_mask.astype(np.uint8), bitorder="little")
    return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits


def run_faiss(items, bucket, interests, counts, truths, users, args):
    import faiss
    faiss.omp_set_num_threads(1)
    n, d = items.shape
    ids = np.arange(1, n + 1, dtype=np.int64)
    print(f"faiss-cpu {faiss.__version__}")
    for factory, param, values in [(f"IVF{args.nlist},Flat", "nprobe", [64] if args.quick else NPROBE_GRID),
                                   ("HNSW32", "efSearch", [128] if args.quick else EF_GRID)]:
        faiss.omp_set_num_threads(os.cpu_count())
        t0 = time.perf_counter()
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(items)
        if "HNSW" in factory:
            index.add(items)  # labels are rows: id = row + 1 (the selector speaks rows)
        else:
            index.add_with_ids(items, ids)
        faiss.omp_set_num_threads(1)
        print(f"faiss {factory}: build {time.perf_counter() - t0:.1f} s", flush=True)
        hnsw = "HNSW" in factory
        for sel in SELECTIVITIES:
            keep = None
            sp = faiss.SearchParametersHNSW() if hnsw else faiss.SearchParametersIVF()
            if sel is not None:
                mask = np.zeros(n + 1, dtype=bool)
                mask[1:] = bucket < int(sel * 10000)
                if hnsw:
                    mask = mask[1:]  # rows
                selector, keep = bitmap_selector(faiss, mask)
                sp.sel = selector
            for v in values:
                setattr(sp, param, v)

                def one(q, u, index=index, sp=sp, hnsw=hnsw):
                    s, i = index.search(q, 50, params=sp)
                    return (np.where(i >= 0, i + 1, -1) if hnsw else i), s

                measure(f"faiss-cpu {factory} {label(sel)} {param}={v}", one, interests, counts, truths[sel], users)
            del keep
        del index


def run_hnswlib(items, bucket, interests, counts, truths, users, args):
    import hnswlib
    n, d = items.shape
    t0 = time.perf_counter()
    p = hnswlib.Index(space="ip", dim=d)
    p.init_index(max_elements=n, M=32, ef_construction=200)
    p.add_items(items, np.arange(1, n + 1), num_threads=os.cpu_count())
    print(f"hnswlib M=32: build {time.perf_counter() - t0:.1f} s", flush=True)
    for sel in SELECTIVITIES:
        allowed = None if sel is None else np.concatenate([[False], bucket < int(sel * 10000)])
        ok = None if allowed is None else allowed.tolist()  # a list: the fastest lookup from Python
        n_ok = n if allowed is None else int(allowed.sum())
        for v in ([128] if args.quick else EF_GRID):
            p.set_ef(v)

            def one(q, u, ok=ok, n_ok=n_ok):
                f = None if ok is None else ok.__getitem__
                try:
                    i, dist = p.knn_query(q, k=50, num_threads=1, filter=f)
                except RuntimeError:  # fewer than k found: hnswlib refuses; ask for what exists
                    k = max(1, min(50, n_ok))
                    try:
                        i, dist = p.knn_query(q, k=k, num_threads=1, filter=f)
                    except RuntimeError:
                        return np.full((len(q), 1), -1, dtype=np.int64), np.zeros((len(q), 1), dtype=np.float32)
                return i.astype(np.int64), 1.0 - dist

            measure(f"hnswlib M=32 {label(sel)} ef={v}", one, interests, counts, truths[sel], users)


def run_usearch(items, bucket, interests, counts, truths, users, args):
    import ctypes
    from usearch.index import Index
    n, d = items.shape
    if not args.usearch_lib:
        print("usearch: not measured (no --usearch-lib: benchmarks/filter_peers.sh builds it)")
        return
    lib = ctypes.CDLL(args.usearch_lib)  # after `import usearch`: NumKong's symbols are loaded
    lib.ufx_new.restype = ctypes.c_void_p
    lib.ufx_new.argtypes = [ctypes.c_int] * 4
    lib.ufx_free.argtypes = [ctypes.c_void_p]
    lib.ufx_add.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.ufx_set_ef.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.ufx_search.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p,
                               ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    keys = np.arange(1, n + 1, dtype=np.uint64)
    # The Python package's own index, unfiltered (what the wrapper's unfiltered rows compare to).
    t0 = time.perf_counter()
    py = Index(ndim=d, metric="ip", dtype="f32", connectivity=32, expansion_add=200)
    py.add(keys, items, threads=os.cpu_count())
    print(f"usearch (Python package) M=32: build {time.perf_counter() - t0:.1f} s", flush=True)
    for v in ([128] if args.quick else EF_GRID):
        py.expansion_search = v

        def one_py(q, u):
            m = py.search(q, 50, threads=1)
            return m.keys.astype(np.int64), 1.0 - m.distances

        measure(f"usearch (Python package) M=32 none ef={v}", one_py, interests, counts, truths[None], users)
    del py
    t0 = time.perf_counter()
    h = lib.ufx_new(d, 32, 200, 64)
    if not h or lib.ufx_add(h, n, items.ctypes.data, keys.ctypes.data, os.cpu_count()) != 0:
        raise RuntimeError("usearch wrapper: the index could not be built")
    print(f"usearch (C++ predicate) M=32: build {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        for sel in SELECTIVITIES:
            bits = None
            if sel is not None:
                mask = np.zeros(n + 1, dtype=bool)
                mask[1:] = bucket < int(sel * 10000)
                bits = np.packbits(mask.astype(np.uint8), bitorder="little")
            for v in ([128] if args.quick else EF_GRID):
                lib.ufx_set_ef(h, v)

                def one(q, u, bits=bits):
                    out_i = np.empty((len(q), 50), dtype=np.int64)
                    out_s = np.empty((len(q), 50), dtype=np.float32)
                    lib.ufx_search(h, q.ctypes.data, len(q), 50, None if bits is None else bits.ctypes.data,
                                   0 if bits is None else n + 1, out_i.ctypes.data, out_s.ctypes.data)
                    return out_i, out_s

                measure(f"usearch (C++ predicate) M=32 {label(sel)} ef={v}", one, interests, counts, truths[sel], users)
    finally:
        lib.ufx_free(h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--systems", default="mindrec,faiss,hnswlib,usearch")
    ap.add_argument("--usearch-lib", default="")
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--uncached", action="store_true")
    args = ap.parse_args()
    items = np.ascontiguousarray(np.load(os.path.join(args.dir, "items.npy")), dtype=np.float32)
    interests = np.load(os.path.join(args.dir, "interests.npy")).astype(np.float32)
    counts = np.load(os.path.join(args.dir, "counts.npy")).astype(np.int64)
    users = min(args.users, len(counts))
    n = items.shape[0]
    bucket = np.random.default_rng(7).integers(0, 10000, size=n).astype(np.int64)
    ids = np.arange(1, n + 1, dtype=np.int64)
    truths = {}
    for sel in SELECTIVITIES:
        allowed = ids if sel is None else ids[bucket < int(sel * 10000)]
        truths[sel] = truth(items, interests, counts, allowed, users)
        print(f"selectivity {label(sel)}: {len(allowed)} allowed items", flush=True)
    print("| system, setting | recall@50 | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    runs = {"mindrec": run_mindrec, "faiss": run_faiss, "hnswlib": run_hnswlib, "usearch": run_usearch}
    for name in args.systems.split(","):
        runs[name](items, bucket, interests, counts, truths, users, args)


if __name__ == "__main__":
    sys.exit(main())
