"""mindrec's stores and the ANN libraries a user could pick instead, every system timed by this
one harness on the data of bench_store --export (benchmarks/ann_peers.sh runs both in one go):

  data      DIR/items.npy [n, d] (row r = item r+1), interests.npy [users, K, d], counts.npy
            [users] (live interests), exact.npy [users, 50] (the exact merged top-50), as written
            by bench_store --export DIR
  one user  its live interests searched in one call from Python (top-50 each, one thread), timed
            alone: p50/p99 over the first 1,000 users. The spec's merge is not in the timed span
            for anyone (it runs afterwards, for the recall): every system pays the same Python
            call overhead and no merge. mindrec is timed here through its Python package (the
            same call as the others), besides bench_store's C++ numbers.
  batch     every user's interests in one call on all cores, then the merges: users/s
  recall    share of the exact merged top-50 that the merged top-50 holds
  grid      one grid for all: graph search breadth (ef, efSearch, expansion) 32..512 with 48, 80
            and 96 in it; IVF nprobe 16..256
  build     seconds to add every item; memory = growth of the process's RSS

  python ann_peers.py DIR [--systems mindrec,faiss,faiss-pq,hnswlib,usearch] [--quick]
    [--mindrec-specs "hnsw:M=32,ef_construction=200;faiss:IVF4096,Flat"]

Prints one markdown row per (system, setting), then the system's build line.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def merge(ids, scores, count, n=50):
    """The spec's merge of one user's [K, 50] results (larger score first, smaller id on ties)."""
    ids, scores = ids[:count].ravel(), scores[:count].ravel()
    order = np.lexsort((ids, -scores))
    out, seen = [], set()
    for i in order:
        x = int(ids[i])
        if x <= 0 or x in seen:
            continue
        seen.add(x)
        out.append(x)
        if len(out) == n:
            break
    return out


EF_GRID = [32, 48, 64, 80, 96, 128, 256, 512]
EF_QUICK = [64, 128]
NPROBE_GRID = [16, 32, 64, 128, 256]
NPROBE_QUICK = [16, 64]


def evaluate(name, search, interests, counts, exact, batch_search):
    users, K, d = interests.shape
    # batch: all users' interests in one call, all cores
    q = interests.reshape(users * K, d)
    t0 = time.perf_counter()
    bi, bs = batch_search(q)
    bi, bs = bi.reshape(users, K, -1), bs.reshape(users, K, -1)
    merged = [merge(bi[u], bs[u], counts[u]) for u in range(users)]
    batch_s = time.perf_counter() - t0
    hits = sum(len(set(m) & set(exact[u].tolist())) for u, m in enumerate(merged))
    recall = hits / (users * exact.shape[1])
    # one user at a time, one thread: the search call alone (the merge, the same for all, outside)
    lat = []
    for u in range(min(users, 1000)):
        q1 = np.ascontiguousarray(interests[u, : counts[u]])
        t0 = time.perf_counter()
        i, s = search(q1)
        lat.append((time.perf_counter() - t0) * 1e3)
        merge(i, s, counts[u])
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"| {name} | {recall:.3f} | {users / batch_s:.0f} | {p50:.3f} | {p99:.3f} |", flush=True)
    return recall, p50, p99


def run_mindrec(items, interests, counts, exact, quick, nlist, specs):
    """mindrec's stores through its Python package (VectorStore.search, the GIL released, one
    scan thread for one user: threads=1 on the flat store; the others search a user's interests
    on the calling thread), on the same grid as the peers."""
    import mindrec
    n, d = items.shape
    ids = np.arange(1, n + 1, dtype=np.int64)
    print(f"mindrec {mindrec.__version__ if hasattr(mindrec, '__version__') else ''} from {os.path.dirname(mindrec.__file__)}")
    for spec in specs:
        m0, t0 = rss_mib(), time.perf_counter()
        st = mindrec.VectorStore(spec, d)
        st.add(items, ids)
        build, mem = time.perf_counter() - t0, rss_mib() - m0
        print(f"mindrec {spec}: build {build:.1f} s ({n / build:.0f} items/s), memory {mem:.0f} MiB", flush=True)
        if spec.startswith("hnsw"):
            param, values = "ef", EF_QUICK if quick else EF_GRID
        elif spec.startswith("faiss:IVF"):
            param, values = "nprobe", NPROBE_QUICK if quick else NPROBE_GRID
        else:
            param, values = None, [None]
        for v in values:
            if param:
                st.set_search_param(param, v)

            def one(q, st=st):
                return st.search(q, 50)

            evaluate(f"mindrec {spec}" + (f" {param}={v}" if param else ""), one, interests, counts, exact, one)
        del st


def faiss_searches(faiss, index):
    """A faiss-cpu index's two timed calls: one user on one thread, and a batch on all cores."""
    def one(q):
        faiss.omp_set_num_threads(1)
        s, i = index.search(q, 50)
        return i, s

    def batch(q):
        faiss.omp_set_num_threads(os.cpu_count())
        s, i = index.search(q, 50)
        return i, s

    return one, batch


def run_faiss(items, interests, counts, exact, quick, nlist):
    import faiss
    # Older wheels load one of swigfaiss_avx512_spr / _avx512 / _avx2; newer ones (1.12+) are one
    # library with run-time dispatch ("DD") over the SIMD levels it lists.
    modules = sorted(m.split(".")[-1] for m in sys.modules if m.startswith("faiss.swigfaiss"))
    loaded = f"compile options '{faiss.get_compile_options().strip()}', module {','.join(modules)}"
    print(f"faiss-cpu {faiss.__version__}, SIMD build loaded: {loaded}, OpenMP threads {faiss.omp_get_max_threads()}")
    n, d = items.shape
    ids = np.arange(1, n + 1, dtype=np.int64)
    configs = [(f"IVF{nlist},Flat", "nprobe", NPROBE_QUICK if quick else NPROBE_GRID),
               ("HNSW32", "efSearch", EF_QUICK if quick else EF_GRID)]
    for factory, param, values in configs:
        faiss.omp_set_num_threads(os.cpu_count())
        m0, t0 = rss_mib(), time.perf_counter()
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(items)
        index = faiss.IndexIDMap(index) if "HNSW" in factory else index
        index.add_with_ids(items, ids)
        build, mem = time.perf_counter() - t0, rss_mib() - m0
        print(f"faiss {factory}: build {build:.1f} s ({n / build:.0f} items/s), memory {mem:.0f} MiB", flush=True)
        inner = faiss.downcast_index(index.index) if "HNSW" in factory else index
        for v in values:
            if param == "nprobe":
                inner.nprobe = v
            else:
                inner.hnsw.efSearch = v

            one, batch = faiss_searches(faiss, index)
            evaluate(f"faiss-cpu {factory} {param}={v}", one, interests, counts, exact, batch)
        del index


def run_faiss_pq(items, interests, counts, exact, quick, nlist):
    """faiss-cpu's PQ fast-scan lists (4-bit codes scanned in SIMD registers, 16 bytes of codes
    per item at 64 dims), alone and with each interest's 4 x 50 best re-ranked exactly against
    the float vectors (IndexRefineFlat, k_factor 4): the peers of mindrec's IVF-SQ8 and IVF-PQ
    fast-scan stores (benchmarks/ann_peers.sh --pq). Not in the default set."""
    import faiss
    n, d = items.shape
    factory = f"IVF{nlist},PQ{d // 2}x4fs"
    for refine in (False, True):
        faiss.omp_set_num_threads(os.cpu_count())
        m0, t0 = rss_mib(), time.perf_counter()
        base = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexRefineFlat(base) if refine else base  # labels are row positions: item id = row + 1
        index.train(items)
        index.add(items)
        build, mem = time.perf_counter() - t0, rss_mib() - m0
        label = f"{factory}{' + RFlat' if refine else ''}"
        print(f"faiss {label}: build {build:.1f} s ({n / build:.0f} items/s), memory {mem:.0f} MiB", flush=True)
        if refine:
            index.k_factor = 4
        ivf = faiss.extract_index_ivf(base)
        for v in (NPROBE_QUICK[:1] if quick else NPROBE_GRID[:4]):
            ivf.nprobe = v

            def one(q, index=index):
                faiss.omp_set_num_threads(1)
                s, i = index.search(q, 50)
                return np.where(i >= 0, i + 1, -1), s

            def batch(q, index=index):
                faiss.omp_set_num_threads(os.cpu_count())
                s, i = index.search(q, 50)
                return np.where(i >= 0, i + 1, -1), s

            evaluate(f"faiss-cpu {factory} nprobe={v}" + (" + exact re-rank of 4 x 50" if refine else ""),
                     one, interests, counts, exact, batch)
        del index


def run_hnswlib(items, interests, counts, exact, quick, nlist):
    import hnswlib
    n, d = items.shape
    ids = np.arange(1, n + 1)
    for M in ([16, 32] if not quick else [16]):
        m0, t0 = rss_mib(), time.perf_counter()
        p = hnswlib.Index(space="ip", dim=d)
        p.init_index(max_elements=n, M=M, ef_construction=200, random_seed=100)
        p.add_items(items, ids, num_threads=os.cpu_count())
        build, mem = time.perf_counter() - t0, rss_mib() - m0
        print(f"hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else ''} M={M},ef_construction=200: "
              f"build {build:.1f} s ({n / build:.0f} items/s), memory {mem:.0f} MiB", flush=True)
        for ef in (EF_QUICK if quick else EF_GRID):
            p.set_ef(ef)

            def one(q, p=p):
                labels, dist = p.knn_query(q, k=50, num_threads=1)
                return labels.astype(np.int64), 1 - dist  # hnswlib's ip distance is 1 - q.x

            def batch(q, p=p):
                labels, dist = p.knn_query(q, k=50, num_threads=os.cpu_count())
                return labels.astype(np.int64), 1 - dist

            evaluate(f"hnswlib M={M} ef={ef}", one, interests, counts, exact, batch)
        del p


def run_usearch(items, interests, counts, exact, quick, nlist):
    import usearch
    from usearch.index import Index
    n, d = items.shape
    keys = np.arange(1, n + 1, dtype=np.uint64)
    for conn in ([16, 32] if not quick else [16]):
        m0, t0 = rss_mib(), time.perf_counter()
        index = Index(ndim=d, metric="ip", dtype="f32", connectivity=conn, expansion_add=128)
        index.add(keys, items, threads=os.cpu_count())
        build, mem = time.perf_counter() - t0, rss_mib() - m0
        print(f"usearch {usearch.__version__} connectivity={conn}, expansion_add=128 ({index.hardware_acceleration}): "
              f"build {build:.1f} s ({n / build:.0f} items/s), memory {mem:.0f} MiB", flush=True)
        for ex in (EF_QUICK if quick else EF_GRID):
            index.expansion_search = ex

            def one(q, index=index):
                m = index.search(q, 50, threads=1)
                return m.keys.astype(np.int64), 1 - m.distances

            def batch(q, index=index):
                m = index.search(q, 50, threads=os.cpu_count())
                return m.keys.astype(np.int64), 1 - m.distances

            evaluate(f"usearch connectivity={conn} expansion={ex}", one, interests, counts, exact, batch)
        del index


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--systems", default="mindrec,faiss,hnswlib,usearch")
    ap.add_argument("--mindrec-specs", default="hnsw:M=16,ef_construction=200;hnsw:M=32,ef_construction=200;faiss:IVF{nlist},Flat",
                    help="mindrec stores timed here (';'-separated; {nlist} is --nlist)")
    ap.add_argument("--quick", action="store_true", help="fewer settings (CI's small version)")
    ap.add_argument("--nlist", type=int, default=4096, help="IVF lists (as mindrec's faiss:IVF<nlist>,Flat)")
    a = ap.parse_args()
    items = np.ascontiguousarray(np.load(f"{a.dir}/items.npy"), dtype=np.float32)
    interests = np.ascontiguousarray(np.load(f"{a.dir}/interests.npy"), dtype=np.float32)
    counts = np.load(f"{a.dir}/counts.npy").astype(np.int64)
    exact = np.load(f"{a.dir}/exact.npy").astype(np.int64)
    print(f"items {items.shape}, users {interests.shape[0]} x K={interests.shape[1]}, {os.cpu_count()} cores")
    print("| system and setting | recall@50 vs exact | batch users/s | p50 ms (1 thread) | p99 ms (1 thread) |")
    print("|---|---:|---:|---:|---:|")
    specs = [x.format(nlist=a.nlist) for x in a.mindrec_specs.split(";") if x]
    for s in a.systems.split(","):
        if s == "mindrec":
            run_mindrec(items, interests, counts, exact, a.quick, a.nlist, specs)
            continue
        {"faiss": run_faiss, "faiss-pq": run_faiss_pq, "hnswlib": run_hnswlib, "usearch": run_usearch}[s](items, interests, counts, exact, a.quick, a.nlist)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
