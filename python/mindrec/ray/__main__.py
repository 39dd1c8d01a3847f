"""python -m mindrec.ray: the nightly bulk job on Ray (README "Bulk recall on Ray").

  python -m mindrec.ray recall --weights W (--index IDX | --store SPEC) --input HIST --output OUT
      [--rejects FILE] [--address ADDR] [--workers N] [--cpus-per-worker C] [--topn 50]
      [--batch-size 1024] [--exclude-history] [--catalogue FILE | --dense-ids] [--filter EXPR]
      [--rerank R] [--user-column user] [--hist-column hist]
  python -m mindrec.ray interests --weights W --input HIST --output OUT [the same options]

HIST: Parquet (a file or a folder of them) or CSV (``*.csv``), one row per user: ``user`` and
``hist`` (a list of item ids, oldest first; in CSV a string of ids separated by spaces or
commas). OUT: a folder of Parquet files, replaced as a whole when the job succeeds (the
previous output stays complete until then, and stays if the job fails). Rows that cannot be
computed are counted, left out and written to the rejects file (CSV: user, reason, hist;
default OUT.rejects.csv). The last line is a summary:
  users=N written=W failures=F seconds=S users_per_s=R output=OUT rejects=FILE
Exit status: 0 when the job ran (rejects or not), 1 when it failed, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import logging
import os
import shutil
import sys
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mindrec

from . import _input_files, _RejectSink, interests, read_histories, recall, write_parquet


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mindrec.ray", description=(__doc__ or "").split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, what in (("recall", "each user's top-n items"), ("interests", "each user's interest vectors")):
        p = sub.add_parser(name, help=what)
        p.add_argument("--weights", required=True, help="weights file (readable on every node)")
        if name == "recall":
            g = p.add_mutually_exclusive_group(required=True)
            g.add_argument("--index", help="a store saved by 'mindrec index' (readable on every node)")
            g.add_argument("--store", help="a milvus:// store, or an in-process spec each worker builds")
            p.add_argument("--topn", type=int, default=50, help="candidates per user (default 50)")
            p.add_argument("--exclude-history", action="store_true", help="never return the user's own clicks")
            p.add_argument("--filter", default="", help="only items this expression over the store's attributes allows")
            p.add_argument("--rerank", type=int, default=0, help="re-score N x topn candidates exactly (8-bit stores)")
            p.add_argument("--allow-mismatched-index", action="store_true",
                           help="use an index or a catalogue made for other weights (refused otherwise)")
        p.add_argument("--input", required=True, help="histories: Parquet (file or folder) or CSV (*.csv)")
        p.add_argument("--output", required=True, help="output folder (Parquet), replaced when the job succeeds")
        p.add_argument("--rejects", help="rejected rows, CSV (default OUTPUT.rejects.csv)")
        p.add_argument("--address", help="a running Ray cluster (default: start a local one)")
        p.add_argument("--workers", type=int, help="actors (default: the cluster's CPUs / --cpus-per-worker)")
        p.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs each actor reserves and computes on")
        p.add_argument("--batch-size", type=int, default=1024, help="users per batch (default 1024)")
        g2 = p.add_mutually_exclusive_group()
        g2.add_argument("--catalogue", help="the weights' catalogue (default: catalogue.csv beside the weights)")
        g2.add_argument("--dense-ids", action="store_true", help="histories and answers in dense ids")
        p.add_argument("--user-column", default="user")
        p.add_argument("--hist-column", default="hist")
    return ap


def _columns(path: str) -> List[str]:
    """The column names of an input file (a Parquet schema, a CSV header)."""
    import pyarrow.fs as pafs  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]

    fs, rel = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
    if path.endswith(".csv"):
        with fs.open_input_stream(rel) as f:
            header = f.read(1 << 16).decode("utf-8", "replace").splitlines()[:1]
        return next(csv.reader(header), []) if header else []
    return list(pq.read_schema(rel, filesystem=fs).names)


def _exchange(a: str, b: str) -> bool:
    """Swaps two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return bool(fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _publish(tmp: str, out: str) -> None:
    """Puts the finished folder `tmp` at `out`: atomically where the kernel can swap the two
    (readers see the old output or the new one, whole), else by two renames."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        _remove(tmp)  # now the previous output
    else:
        old = f"{out}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(tmp, out)
        _remove(old)


def _write_rejects(path: str, rows: Sequence[Tuple[Any, str, str]]) -> str:
    """Writes the rejects beside `path` under a temporary name, returned (renamed into place
    once the output is)."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user", "reason", "hist"])
            for user, hist, why in rows:
                w.writerow([user, why, hist])
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _rows_in(folder: str) -> int:
    import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]

    n = 0
    for root, _, files in os.walk(folder):
        for f in files:
            if f.endswith(".parquet"):
                n += pq.read_metadata(os.path.join(root, f)).num_rows
    return n


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    for what, p in (("--weights", args.weights), ("--input", args.input),
                    ("--index", getattr(args, "index", None)), ("--catalogue", args.catalogue)):
        if p is not None and "://" not in p and not os.path.exists(p):
            print(f"python -m mindrec.ray: {what} {p}: no such file or folder", file=sys.stderr)
            return 2
    for what, v, ok in (("--batch-size", args.batch_size, args.batch_size >= 1),
                        ("--workers", args.workers, args.workers is None or args.workers >= 1),
                        ("--cpus-per-worker", args.cpus_per_worker, args.cpus_per_worker > 0),
                        ("--topn", getattr(args, "topn", 1), getattr(args, "topn", 1) >= 1),
                        ("--rerank", getattr(args, "rerank", 0), getattr(args, "rerank", 0) >= 0)):
        if not ok:
            print(f"python -m mindrec.ray: {what} {v}: out of range", file=sys.stderr)
            return 2
    out = os.path.abspath(args.output.rstrip("/"))
    rejects_path = os.path.abspath(args.rejects or f"{out}.rejects.csv")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        print(f"python -m mindrec.ray: --output {args.output}: folder {parent} does not exist", file=sys.stderr)
        return 2

    try:
        files = _input_files([args.input])
        names = _columns(files[0])
    except (mindrec.Error, OSError) as e:
        print(f"python -m mindrec.ray: --input {args.input}: {e}", file=sys.stderr)
        return 2
    for c in (args.user_column, args.hist_column):
        if c not in names:
            print(f"python -m mindrec.ray: {files[0]} has no column '{c}' (its columns: {names}); "
                  "use --user-column/--hist-column", file=sys.stderr)
            return 2

    import ray  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import ray.data  # type: ignore[import-not-found, import-untyped, unused-ignore]

    tmp = os.path.join(parent, f".{os.path.basename(out)}.tmp-{uuid.uuid4().hex[:8]}")
    rejects_tmp = ""
    try:
        ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=True)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = sys.stderr.isatty()
        ds = read_histories(files, args.hist_column)
        sink = ray.remote(num_cpus=0)(_RejectSink).remote()
        common: Dict[str, Any] = dict(weights=args.weights, batch_size=args.batch_size, workers=args.workers,
                      cpus_per_worker=args.cpus_per_worker, catalogue=args.catalogue, dense_ids=args.dense_ids,
                      user_column=args.user_column, hist_column=args.hist_column, _rejects=sink)
        t0 = time.perf_counter()
        if args.command == "recall":
            result = recall(ds, index=args.index, store=args.store, topn=args.topn,
                            exclude_history=args.exclude_history, filter=args.filter, rerank=args.rerank,
                            allow_mismatch=args.allow_mismatched_index, **common)
        else:
            result = interests(ds, **common)
        # the workers hold the CPUs: the writes reserve none, one at a time per 16 workers
        write_parquet(result, tmp, workers=args.workers, cpus_per_worker=args.cpus_per_worker)
        seconds = time.perf_counter() - t0
        bad = list(dict.fromkeys(tuple(r) for r in ray.get(sink.rows.remote())))  # a retried batch sends twice
        written = _rows_in(tmp) if os.path.isdir(tmp) else 0
        if not os.path.isdir(tmp):
            os.makedirs(tmp)  # every row rejected: an empty output, still replacing the previous one
        rejects_tmp = _write_rejects(rejects_path, bad)
        _publish(tmp, out)
        os.replace(rejects_tmp, rejects_path)
    except mindrec.Error as e:
        _remove(tmp)
        if rejects_tmp:
            _remove(rejects_tmp)
        print(f"python -m mindrec.ray: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # Ray wraps the workers' errors; the output is untouched
        _remove(tmp)
        if rejects_tmp:
            _remove(rejects_tmp)
        print(f"python -m mindrec.ray: the job failed, {args.output} is unchanged: {type(e).__name__}: {e}",
              file=sys.stderr)
        return 1
    users = written + len(bad)
    print(f"users={users} written={written} failures={len(bad)} seconds={seconds:.2f} "
          f"users_per_s={users / seconds if seconds > 0 else 0:.0f} output={out} rejects={rejects_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
