#!/usr/bin/env python3
"""Bulk recall on Ray against one process (issue 30): users/s of the nightly job, every user's
top-50 from a store, for one process calling mindrec.recall_items in batches and for
mindrec.ray.recall with 1 and 2 workers, each reading the same Parquet histories and writing
Parquet (same files, same batch size, model and store loaded inside the timed span; the local
Ray cluster is started before it, as a real cluster is up before the night's job).

    python benchmarks/bench_ray.py [--users 1000000] [--items 367983] [--stores flat,ivf,hnsw]
        [--batch-size 1024] [--files 16] [--build DIR] [--dir D] [--quick] [--memory-only]
        [--write-compare] [--runs single_1,ray_1,single_2,ray_2,procs_2x1,ray_1x2]

Model: bench_scale gen-weights (the ann_target data: clustered, diffuse item vectors, noise 1.5)
of --items x 64 (the Books shape); users: histories of 5-30 ids drawn uniformly, written as
--files Parquet files (Ray distributes a dataset by blocks: one per file here). Stores: flat,
faiss:IVF<4 sqrt(N)>,Flat?nprobe=64, hnsw:M=32,ef_construction=64?ef=80, saved files loaded
by every worker.

Runs, per store, in turn: one process on 1 thread, the Ray job with 1 worker of 1 CPU, one
process on 2 threads, the Ray job with 2 workers of 1 CPU; then what bounds two workers: two
processes of one thread at once, each on half the files (two workers without Ray, each with its
own model and store), and the Ray job with one worker of 2 CPUs (one copy, two threads); then
the memory one actor holds
(mindrec.ray's actor class with the job's arguments in a fresh interpreter: resident after the
imports, after loading the model and the store, and the peak after one batch). Targets: Ray >=
0.90x the process at equal cores; 2 workers >= 1.7x 1 worker. Last line per store:
  store=S single_1=A ray_1=B single_2=C ray_2=D procs_2x1=E ray_1x2=F ray_vs_single_1=B/A
  ray_vs_single_2=D/C scaling=D/B
(--runs takes a subset, e.g. single_2,ray_1x2 at 1M users: a run absent from it, and every
ratio that needs it, is left out of the last line; the outputs are compared with the single
process's, so a subset with a Ray or two-process run names single_1 or single_2 too.)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import mindrec

ROOT = Path(__file__).resolve().parents[1]


def make_users(path: Path, users: int, item_count: int, files: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    per = (users + files - 1) // files
    for f in range(files):
        lo, hi = f * per, min(users, (f + 1) * per)
        if lo >= hi:
            break
        lens = rng.integers(5, 31, size=hi - lo)
        offsets = np.zeros(hi - lo + 1, np.int32)
        np.cumsum(lens, out=offsets[1:])
        ids = rng.integers(1, item_count, size=int(offsets[-1]))
        hist = pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids, pa.int64()))
        pq.write_table(pa.table({"user": pa.array(np.arange(lo, hi, dtype=np.int64)), "hist": hist}),
                       path / f"part-{f:04d}.parquet")


def single_process(weights: str, index: str, users: Path, out: Path, threads: int, batch: int, topn: int,
                   shard: int = 0, shards: int = 1) -> float:
    """One process: read the files, recall_items per batch, write Parquet. Returns seconds.
    With shards > 1, only files shard, shard + shards, ... into an existing `out`."""
    if shards == 1:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    t0 = time.perf_counter()
    model = mindrec.MindModel(weights)
    store = mindrec.load_vector_store(index)
    for i, f in enumerate(sorted(users.glob("*.parquet"))):
        if i % shards != shard:
            continue
        writer = None
        for rb in pq.ParquetFile(f).iter_batches(batch_size=batch):
            hist = rb.column(1).to_pylist()
            r = mindrec.recall_items(model, store, hist, topn=topn, threads=threads)
            ids, sc = np.asarray(r.ids), np.asarray(r.scores)
            keep = ids >= 0
            counts = keep.sum(axis=1)
            offsets = np.zeros(len(counts) + 1, np.int32)
            np.cumsum(counts, out=offsets[1:])
            t = pa.table({"user": rb.column(0),
                          "candidates": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids[keep])),
                          "scores": pa.ListArray.from_arrays(pa.array(offsets), pa.array(sc[keep]))})
            if writer is None:
                writer = pq.ParquetWriter(out / f"part-{i:04d}.parquet", t.schema)
            writer.write_table(t)
        if writer is not None:
            writer.close()
    return time.perf_counter() - t0


def single_run(weights: str, index: str, users: Path, out: Path, threads: int, batch: int, topn: int) -> float:
    """single_process in a process of its own with OMP_NUM_THREADS = threads (as Ray gives its
    workers: OpenMP inside Faiss uses no more cores than the run is given)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, __file__, "--single-process", weights, index, str(users), str(out),
                        str(threads), str(batch), str(topn)], env=env, check=True, capture_output=True, text=True)
    return float(r.stdout.strip().splitlines()[-1])


def two_processes(weights: str, index: str, users: Path, out: Path, batch: int, topn: int) -> float:
    """Two single_process runs of one thread at once, each on half the files (what two Ray
    workers of one CPU do, without Ray: each loads its own model and store). Seconds: the longer
    of the two children's own times (each from the end of its imports, as single_run's)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, __file__, "--single-process", weights, index, str(users), str(out),
                               "1", str(batch), str(topn), str(k), "2"], env=env, stdout=subprocess.PIPE, text=True)
             for k in range(2)]
    outs = [p.communicate()[0] for p in procs]  # both waited for, even when one fails
    if any(p.returncode != 0 for p in procs):
        raise RuntimeError(f"bench_ray: a --single-process shard failed ({[p.returncode for p in procs]})")
    return max(float(o.strip().splitlines()[-1]) for o in outs)


def cpu_seconds() -> dict:
    """CPU seconds used so far by every process on the machine, by its name (Ray's processes
    name themselves ray::MapWorker(...), raylet, gcs_server, ...): where a run's time went."""
    out: dict = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        name = os.path.basename(cmd[0].decode(errors="replace")) if cmd and cmd[0] else "?"
        if name.startswith("python") and len(cmd) > 1:
            name = "python " + os.path.basename(cmd[1].decode(errors="replace"))
        name = name.split(".submit")[0][:40]
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    t = os.times()  # the single-process runs, once they have exited
    out["single process"] = t.children_user + t.children_system
    return out


def cpu_delta(before: dict, after: dict, wall: float) -> str:
    """The processes that used the most CPU between two cpu_seconds() readings, in cores."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    top = sorted(((v, k) for k, v in d.items() if v > 0.005 * wall), reverse=True)[:6]
    return ", ".join(f"{k} {v / wall:.2f}" for v, k in top)


def ray_job(weights: str, index: str, users: Path, out: Path, workers: int, batch: int, topn: int,
            cpus: int = 1) -> float:
    import mindrec.ray as mray

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    ds = mray.read_histories(str(users))  # reads and writes reserve no CPU: the workers hold them
    result = mray.recall(ds, weights, index=index, topn=topn, batch_size=batch, workers=workers,
                         cpus_per_worker=cpus, dense_ids=True)
    mray.write_parquet(result, str(out), workers=workers, cpus_per_worker=cpus)  # as the command writes
    return time.perf_counter() - t0


def write_compare(weights: str, index: str, users: Path, n_users: int, out: Path, batch: int, topn: int,
                  rounds: int) -> None:
    """--write-compare: the 2-worker job three ways, alternated: written by two zero-CPU write
    tasks at a time, by one (mindrec.ray.write_parquet's choice below 32 workers), and
    materialised first then written (what the recall costs without a write beside it)."""
    import mindrec.ray as mray

    for rnd in range(rounds):
        for variant in ("write2", "write1", "materialize"):
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            r = mray.recall(mray.read_histories(str(users)), weights, index=index, topn=topn, batch_size=batch,
                            workers=2, cpus_per_worker=1, dense_ids=True)
            recall_op = ""
            if variant == "materialize":
                r = r.materialize()
                m = time.perf_counter() - t0
                recall_op = f" (materialised in {m:.1f} s; {recall_operator_stats(r.stats())})"
            r.write_parquet(str(out), ray_remote_args={"num_cpus": 0}, concurrency=1 if variant == "write1" else 2)
            s = time.perf_counter() - t0
            print(f"  write_compare round {rnd} {variant:11s} {s:7.1f} s {n_users / s:8.0f} users/s{recall_op}",
                  flush=True)


def recall_operator_stats(stats: str) -> str:
    """From Ray Data's statistics of a materialised job (ray/data/_internal/stats.py's text), the
    recall operator's (MapBatches(_Recaller)): its tasks, its wall time, and how many workers its
    tasks kept busy on average (the sum of its tasks' wall times over the operator's)."""
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[unit]

    blocks = [b for b in re.split(r"\n(?=Operator \d+ )", stats)
              if b.startswith("Operator ") and "MapBatches" in b.splitlines()[0]]
    # mindrec.ray's actor class is _Recaller (reading the files is a MapBatches of its own)
    blocks = [b for b in blocks if "_Recaller" in b.splitlines()[0]] or blocks[-1:]
    for block in blocks:
        head = block.splitlines()[0]
        name = head.split(":")[0]
        tasks = re.search(r"(\d+) tasks executed", head)
        wall = re.search(r"blocks produced in ([0-9.]+)s", head)
        total = re.search(r"\* Remote wall time: .*? ([0-9.]+)(us|ms|s) total", block)
        parts = [name] + ([f"{tasks.group(1)} tasks"] if tasks else [])
        if wall and total and float(wall.group(1)) > 0:
            op, busy = float(wall.group(1)), seconds(total.group(1), total.group(2))
            parts.append(f"{busy:.1f} s of task wall time in {op:.1f} s: {busy / op:.2f} workers busy")
        return ", ".join(parts)
    return "no MapBatches operator in the statistics"


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: the peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def actor_memory_process(weights: str, index: str, users: Path, batch: int, topn: int) -> None:
    """What one Ray actor of the job holds, measured in a process of its own: the interpreter
    with Ray, PyArrow and mindrec imported, then mindrec.ray's own actor class built with the
    job's arguments (the model and the store loaded) and called on one batch. Prints three
    numbers in KiB: resident after the imports, after loading, and the peak after the batch."""
    import ray  # noqa: F401 (imported as in a Ray worker)
    import mindrec.ray as mray
    base = status_kib("VmRSS")
    actor = mray._Recaller(weights=weights, index=index, store=None, catalogue=None, dense_ids=True,
                           allow_mismatch=False, threads=1, user_column="user", hist_column="hist",
                           errors="column", rejects=None, topn=topn, exclude_history=False, rerank=0,
                           filter="", params=None)
    loaded = status_kib("VmRSS")
    first = sorted(users.glob("*.parquet"))[0]
    rb = next(pq.ParquetFile(first).iter_batches(batch_size=batch))
    out = actor(pa.Table.from_batches([rb]))
    assert out.num_rows == rb.num_rows
    print(base, loaded, status_kib("VmHWM"))


def actor_memory(weights: str, index: str, users: Path, batch: int, topn: int) -> str:
    """actor_memory_process in a fresh interpreter (one thread), as text."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, __file__, "--actor-memory", weights, index, str(users), str(batch), str(topn)],
                       env=env, check=True, capture_output=True, text=True)
    base, loaded, peak = (int(x) / 1024 for x in r.stdout.strip().splitlines()[-1].split())
    files = (os.path.getsize(weights) + os.path.getsize(index)) / 2**20
    return (f"memory per actor: peak {peak:.0f} MiB resident = {base:.0f} MiB the interpreter with Ray, PyArrow "
            f"and mindrec imported + {loaded - base:.0f} MiB the model and the store loaded (files: {files:.0f} MiB) "
            f"+ {peak - loaded:.0f} MiB a batch of {batch} users")


def check_same(a: Path, b: Path) -> str:
    """The two outputs hold the same users, candidates and scores, bit for bit (else
    AssertionError): every store's search gives a user the same answer alone and in any batch
    (the flat store's scan included, since its batch-invariant row kernel)."""
    ta = pq.read_table(a).sort_by("user")
    tb = pq.read_table(b).sort_by("user")
    assert ta.num_rows == tb.num_rows, (ta.num_rows, tb.num_rows)
    for c in ("user", "candidates", "scores"):
        assert ta.column(c).combine_chunks().equals(tb.column(c).combine_chunks()), f"column {c} differs"
    return f"ids and scores identical ({ta.num_rows} users)"


#: The timed runs, in the order they run (--runs picks a subset), and what each is.
RUNS = ("single_1", "ray_1", "single_2", "ray_2", "procs_2x1", "ray_1x2")
RUN_NAMES = {"ray_1": "Ray, 1 core", "ray_2": "Ray, 2 cores", "procs_2x1": "two processes",
             "ray_1x2": "one worker of 2 CPUs"}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--single-process":
        w, i, u, o, th, b, n = sys.argv[2:9]
        shard, shards = (int(sys.argv[9]), int(sys.argv[10])) if len(sys.argv) > 10 else (0, 1)
        print(single_process(w, i, Path(u), Path(o), int(th), int(b), int(n), shard, shards))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--actor-memory":
        w, i, u, b, n = sys.argv[2:7]
        actor_memory_process(w, i, Path(u), int(b), int(n))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=367_983)
    ap.add_argument("--stores", default="flat,ivf,hnsw")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--topn", type=int, default=50)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    ap.add_argument("--quick", action="store_true", help="CI size: 20,000 items, 4,000 users")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the memory one actor holds, per store (no timed runs; a busy machine does not change it)")
    ap.add_argument("--write-compare", action="store_true",
                    help="only the 2-worker job written three ways (two write tasks, one, materialised first), "
                         "two rounds alternated; the materialised one prints Ray Data's statistics of the "
                         "recall operator (its tasks' wall time over its own: how many workers it kept busy)")
    ap.add_argument("--runs", default=",".join(RUNS),
                    help="the timed runs, a subset of " + ",".join(RUNS) + " (default: all, in that order)")
    args = ap.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    if not runs or any(r not in RUNS for r in runs):
        ap.error(f"--runs: a comma-separated subset of {','.join(RUNS)}, got {args.runs!r}")
    if not {"single_1", "single_2"} & set(runs):
        ap.error("--runs: name single_1 or single_2 too (the other runs' outputs are compared with its)")
    if args.quick:
        args.items, args.users, args.files = 20_000, 4_000, 4
    try:
        import ray
    except ImportError:
        print("bench_ray: Ray is not installed (pip install \".[ray]\"): skipped", file=sys.stderr)
        sys.exit(77)
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mindrec-ray."))
    work.mkdir(parents=True, exist_ok=True)
    gen = Path(args.build) / "benchmarks" / "bench_scale"
    weights = work / f"w-{args.items}.safetensors"
    if not weights.exists():
        subprocess.run([str(gen), "gen-weights", "--items", str(args.items), "--noise", "1.5", "--out", str(weights),
                        "--config-out", str(work / "c.yaml")], check=True, stdout=subprocess.DEVNULL)
    users = work / f"users-{args.users}-{args.files}"
    if not users.exists():
        make_users(users, args.users, args.items, args.files)
    nlist = 1 << int(round(np.log2(4 * np.sqrt(args.items))))
    specs = {"flat": "flat", "ivf": f"faiss:IVF{nlist},Flat?nprobe=64", "hnsw": "hnsw:M=32,ef_construction=64?ef=80"}
    model = mindrec.MindModel(str(weights))
    print(f"bench_ray: {args.users} users (5-30 clicks each, {args.files} Parquet files), {args.items} items x 64, "
          f"top {args.topn}, batches of {args.batch_size}, {os.cpu_count()} cores; mindrec {mindrec.__version__}, "
          f"ray {ray.__version__}")
    if not args.memory_only:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    lines = []
    for name in args.stores.split(","):
        index = work / f"{name}-{args.items}.idx"
        if not index.exists():
            mindrec.build_item_store(model, specs[name]).save(index)
        if args.memory_only:
            print(f"  {name}: {actor_memory(str(weights), str(index), users, args.batch_size, args.topn)}", flush=True)
            continue
        if args.write_compare:
            print(f"  {name}: two workers, the write three ways")
            write_compare(str(weights), str(index), users, args.users, work / "out-write", args.batch_size, args.topn,
                          2)
            continue
        t = {}
        cpu = {}

        def timed(key, fn, *a):
            c0 = cpu_seconds()
            t[key] = fn(*a)
            cpu[key] = cpu_delta(c0, cpu_seconds(), t[key])

        # The runs in order; what bounds two workers comes last: the same two halves without Ray
        # (two processes, each its own model and store), and Ray with one worker holding both
        # CPUs (one copy, 2 threads). Each output is compared with the last single process's.
        plan = {
            "single_1": (single_run, (str(weights), str(index), users, work / "out-single", 1, args.batch_size,
                                      args.topn), None),
            "ray_1": (ray_job, (str(weights), str(index), users, work / "out-ray", 1, args.batch_size, args.topn),
                      work / "out-ray"),
            "single_2": (single_run, (str(weights), str(index), users, work / "out-single", 2, args.batch_size,
                                      args.topn), None),
            "ray_2": (ray_job, (str(weights), str(index), users, work / "out-ray", 2, args.batch_size, args.topn),
                      work / "out-ray"),
            "procs_2x1": (two_processes, (str(weights), str(index), users, work / "out-procs", args.batch_size,
                                          args.topn), work / "out-procs"),
            "ray_1x2": (ray_job, (str(weights), str(index), users, work / "out-ray", 1, args.batch_size, args.topn,
                                  2), work / "out-ray"),
        }
        ordered = [r for r in RUNS if r in runs]
        if ordered[0] not in ("single_1", "single_2"):  # the reference output first
            first = "single_1" if "single_1" in runs else "single_2"
            ordered.remove(first)
            ordered.insert(0, first)
        same = {}
        for key in ordered:
            fn, fargs, out = plan[key]
            timed(key, fn, *fargs)
            if out is not None:
                same[key] = check_same(work / "out-single", out)
        print(f"  {name}: outputs against the process: " +
              "; ".join(f"{RUN_NAMES[k]}: {v}" for k, v in same.items()))
        print(f"  {name}: {actor_memory(str(weights), str(index), users, args.batch_size, args.topn)}", flush=True)
        rate = {k: args.users / v for k, v in t.items()}
        for k in ordered:
            print(f"  {name:5s} {k:9s} {t[k]:8.1f} s  {rate[k]:9.0f} users/s   cores busy: {cpu[k]}")
        ratios = [("ray_vs_single_1", "ray_1", "single_1", "Ray/process, 1 core (target >= 0.90)"),
                  ("ray_vs_single_2", "ray_2", "single_2", "Ray/process, 2 cores (target >= 0.90)"),
                  ("scaling", "ray_2", "ray_1", "2 workers / 1 (target >= 1.7)"),
                  ("procs_vs_single_1", "procs_2x1", "single_1", "without Ray, two processes / one"),
                  ("ray_1x2_vs_single_2", "ray_1x2", "single_2",
                   "Ray, one worker of 2 CPUs / the process on 2 threads (target >= 0.90)")]
        have = [(key, a, b, what) for key, a, b, what in ratios if a in rate and b in rate]
        lines.append(f"store={name} " + " ".join(f"{k}={rate[k]:.0f}" for k in RUNS if k in rate) +
                     "".join(f" {key}={rate[a] / rate[b]:.3f}" for key, a, b, _ in have))
        if have:
            print(f"  {name}: " + "; ".join(f"{what}: {rate[a] / rate[b]:.2f}x" for _, a, b, what in have), flush=True)
    if not args.memory_only:
        ray.shutdown()
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
