"""Bulk recall and interest extraction on Ray Data: the optional extra ``mindrec[ray]``
(``pip install ".[ray]"``; importing :mod:`mindrec` itself never needs Ray).

:func:`recall` maps a Ray Dataset of users (a user column and a history column: each row's
item ids, oldest first) to one with each user's ``candidates`` and ``scores``; :func:`interests`
to each user's interest vectors. Each actor loads the model and the store once (files every
node can read, or a ``milvus://`` store), computes whole batches in C++ with the GIL released,
on as many threads as the CPUs the actor reserved (``cpus_per_worker``), not the machine's
count. The same code runs on a laptop (a local Ray started on first use), a local multi-process
cluster and a real one (``ray.init(address=...)`` before the call).

The answers are :func:`mindrec.recall_items`'s for the same users, id for id and score for
score, without the ``-1`` padding. Rows that cannot be recalled (no history, an id the model or
the catalogue does not know, a value of the wrong type) never stop the job: ``errors="column"``
(the default) keeps them with null answers and the reason in an ``error`` column,
``"drop"`` leaves them out, ``"raise"`` raises :class:`mindrec.InvalidArgument` naming the
user. Unlike :func:`mindrec.recall_items`, a user without clicks is such a row (a bulk job's
empty history is a data error, not a visitor to give the popular items to), and so is a
history with an unknown raw id.

The command ``python -m mindrec.ray recall ...`` reads Parquet or CSV and writes Parquet and a
rejects file (README "Bulk recall on Ray").
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

try:
    import pyarrow as pa  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import ray  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import ray.data  # type: ignore[import-not-found, import-untyped, unused-ignore]
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError(f"mindrec.ray needs Ray Data and PyArrow ({e}): pip install \"mindrec[ray]\" "
                      "(from a checkout: pip install \".[ray]\")") from e

import mindrec
from mindrec import _core

__all__ = ["recall", "interests", "read_histories", "write_parquet", "ERRORS"]

#: The values of ``errors=``.
ERRORS = ("column", "drop", "raise")

_SEPARATORS = re.compile(r"[\s,]+")


class _BadRow(Exception):
    """A row that cannot be computed; the message is its reason."""


def _assigned_cpus() -> int:
    """The CPUs Ray reserved for this actor (1 outside an actor)."""
    try:
        n = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    except Exception:  # outside Ray
        n = 0
    return max(1, int(n))


def _history(v: Any) -> List[Any]:
    """One row's history as a list: a list/array as it is, a string split at commas and white
    space (CSV input), one integer as a one-item history."""
    if v is None:
        raise _BadRow("no history (null)")
    if isinstance(v, str):
        items: List[Any] = [t for t in _SEPARATORS.split(v.strip()) if t]
    elif isinstance(v, (list, tuple, np.ndarray)):
        items = list(v)
    elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        items = [int(v)]
    else:
        raise _BadRow(f"history is a {type(v).__name__}, not a list of item ids")
    if not items:
        raise _BadRow("empty history")
    return items


def _dense_history(v: Any, item_count: int) -> List[int]:
    """A row of dense ids, checked: integers (or their decimal text) in [1, item_count)."""
    items = _history(v)
    if all(type(x) is int for x in items):
        ids = items
    else:
        ids = []
        for pos, x in enumerate(items):
            if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
                ids.append(int(x))
            elif isinstance(x, str) and x.lstrip("-").isdecimal():
                ids.append(int(x))
            else:
                raise _BadRow(f"position {pos}: {x!r} is not an integer item id (raw ids need the weights' "
                              "catalogue)")
    if min(ids) < 1 or max(ids) >= item_count:
        pos = next(p for p, x in enumerate(ids) if not 1 <= x < item_count)
        raise _BadRow(f"unknown item id {ids[pos]} at position {pos}: outside the model's [1, item_count={item_count})")
    return ids


def _raw_history(v: Any, catalogue: mindrec.Catalogue) -> List[str]:
    """A row of raw ids (str; integers as their decimal text), every one known to the catalogue."""
    items = _history(v)
    raw: List[str] = []
    for pos, x in enumerate(items):
        if isinstance(x, str):
            raw.append(x)
        elif isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            raw.append(str(int(x)))
        else:
            raise _BadRow(f"position {pos}: {x!r} is not an item id")
    dense = np.asarray(catalogue.to_dense(raw))
    if not dense.all():
        pos = int(np.argmin(dense != 0))
        raise _BadRow(f"unknown item id {raw[pos]!r} at position {pos}: not in the catalogue")
    return raw


class _Worker:
    """One actor: the model, its catalogue and the store, loaded once."""

    def __init__(self, weights: str, index: Optional[str], store: Optional[str], catalogue: Optional[str],
                 dense_ids: bool, allow_mismatch: bool, threads: int, user_column: str, hist_column: str,
                 errors: str, rejects: Any) -> None:
        self.model = mindrec.MindModel(weights)
        self.catalogue: Optional[mindrec.Catalogue] = None
        if not dense_ids:
            self.catalogue = _core.load_weights_catalogue(weights, self.model.weights, catalogue or "",
                                                          allow_mismatch, catalogue is not None)
        self.store: Optional[mindrec.VectorStore] = None
        if index:
            self.store = mindrec.load_vector_store(index)
        elif store:
            if store.startswith("milvus://"):
                self.store = mindrec.attach_vector_store(store, self.model.config.hidden_size)
            else:  # an in-process spec: built here from the weights (each actor its own)
                self.store = mindrec.build_item_store(self.model, store, catalogue=self.catalogue)
        self.threads = threads or _assigned_cpus()
        self.user_column, self.hist_column = user_column, hist_column
        self.errors, self.rejects = errors, rejects
        self.item_count = self.model.config.item_count

    def _rows(self, batch: pa.Table) -> Tuple[List[int], List[Any], List[Tuple[int, str]]]:
        """The batch's histories: (indices of the good rows, their histories, (index, reason) of
        the bad ones)."""
        for c in (self.user_column, self.hist_column):
            if c not in batch.column_names:
                raise mindrec.InvalidArgument(f"mindrec.ray: the dataset has no column '{c}' (its columns: "
                                              f"{batch.column_names}); pass user_column=/hist_column=")
        good: List[int] = []
        hists: List[Any] = []
        bad: List[Tuple[int, str]] = []
        for i, v in enumerate(batch.column(self.hist_column).to_pylist()):
            try:
                hists.append(_raw_history(v, self.catalogue) if self.catalogue is not None
                             else _dense_history(v, self.item_count))
                good.append(i)
            except _BadRow as e:
                bad.append((i, str(e)))
        if bad:
            users = batch.column(self.user_column)
            if self.errors == "raise":
                i, why = bad[0]
                raise mindrec.InvalidArgument(f"mindrec.ray: user {users[i].as_py()!r}: {why}")
            if self.rejects is not None:
                hist = batch.column(self.hist_column)
                rows = [(users[i].as_py(), _history_text(hist[i].as_py()), why) for i, why in bad]
                ray.get(self.rejects.add.remote(rows))
        return good, hists, bad

    def _finish(self, batch: pa.Table, good: List[int], bad: List[Tuple[int, str]],
                columns: Dict[str, Tuple[pa.Array, pa.DataType]]) -> pa.Table:
        """The output table: the user column and `columns` (given for the good rows, in order),
        with nulls and the `error` column for bad rows, or without them."""
        users = batch.column(self.user_column)
        if not bad or self.errors != "column":
            if bad:
                users = users.take(pa.array(good, pa.int64()))
            out = {self.user_column: users}
            out.update({k: v for k, (v, _) in columns.items()})
            if self.errors == "column":
                out["error"] = pa.nulls(len(users), pa.string())
            return pa.table(out)
        # spread the good rows' values over the whole batch, nulls at the bad rows
        n = batch.num_rows
        where = np.full(n, -1, np.int64)
        where[np.asarray(good, np.int64)] = np.arange(len(good))
        idx = pa.array(where, mask=where < 0)
        out = {self.user_column: users}
        for k, (v, t) in columns.items():
            out[k] = v.take(idx) if len(v) else pa.nulls(n, t)
        err: List[Optional[str]] = [None] * n
        for i, why in bad:
            err[i] = why
        out["error"] = pa.array(err, pa.string())
        return pa.table(out)


def _history_text(v: Any) -> str:
    """A history as the rejects file writes it: ids joined by spaces, or the value's repr."""
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return "" if v is None else str(v)


def _lists(values: Any, counts: npt.NDArray[Any]) -> Any:
    """A list array of `counts[i]` consecutive entries of the Arrow array `values` per row."""
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


class _Recaller(_Worker):
    def __init__(self, topn: int, exclude_history: bool, rerank: int, filter: str,
                 params: Optional[Dict[str, float]], allow_mismatch: bool, **kw: Any) -> None:
        super().__init__(allow_mismatch=allow_mismatch, **kw)
        if self.store is None:
            raise mindrec.InvalidArgument("mindrec.ray.recall: give index= (a saved store) or store= (a spec)")
        self.topn, self.exclude_history, self.rerank = topn, exclude_history, rerank
        self.filter, self.params, self.allow_mismatch = filter, params, allow_mismatch

    def __call__(self, batch: pa.Table) -> pa.Table:
        good, hists, bad = self._rows(batch)
        raw = self.catalogue is not None
        id_type = pa.string() if raw else pa.int64()
        cand_t, score_t = pa.list_(id_type), pa.list_(pa.float32())
        if not hists:
            empty = {"candidates": (pa.array([], cand_t), cand_t), "scores": (pa.array([], score_t), score_t)}
            return self._finish(batch, good, bad, empty)
        assert self.store is not None
        r = mindrec.recall_items(self.model, self.store, hists, topn=self.topn,
                                 exclude_history=self.exclude_history, rerank=self.rerank, threads=self.threads,
                                 allow_mismatch=self.allow_mismatch, catalogue=self.catalogue,
                                 filter=self.filter, params=self.params)
        if raw:
            cands = pa.array(r.ids, cand_t)
            scores = pa.array([np.asarray(s, np.float32) for s in r.scores], score_t)
        else:
            ids, sc = np.asarray(r.ids), np.asarray(r.scores)
            keep = ids >= 0  # the -1 padding trails each row
            counts = keep.sum(axis=1)
            cands = _lists(pa.array(ids[keep], pa.int64()), counts)
            scores = _lists(pa.array(sc[keep], pa.float32()), counts)
        return self._finish(batch, good, bad, {"candidates": (cands, cand_t), "scores": (scores, score_t)})


class _Extractor(_Worker):
    def __call__(self, batch: pa.Table) -> pa.Table:
        good, hists, bad = self._rows(batch)
        H = self.model.config.hidden_size
        t = pa.list_(pa.list_(pa.float32(), H))
        if not hists:
            return self._finish(batch, good, bad, {"interests": (pa.array([], t), t)})
        vecs, counts = self.model.extract_interests(hists, threads=self.threads, catalogue=self.catalogue)
        K = vecs.shape[1]
        keep = np.arange(K)[None, :] < counts[:, None]
        inner = pa.FixedSizeListArray.from_arrays(pa.array(vecs[keep].reshape(-1), pa.float32()), H)
        return self._finish(batch, good, bad, {"interests": (_lists(inner, counts), t)})


def _workers(workers: Optional[int], cpus_per_worker: float) -> int:
    if workers is not None:
        if workers < 1:
            raise mindrec.InvalidArgument(f"mindrec.ray: workers must be >= 1, got {workers}")
        return workers
    if not ray.is_initialized():
        ray.init()
    return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))


def _check_common(weights: Any, batch_size: int, cpus_per_worker: float, errors: str) -> str:
    if errors not in ERRORS:
        raise mindrec.InvalidArgument(f"mindrec.ray: errors must be one of {ERRORS}, got {errors!r}")
    if batch_size < 1:
        raise mindrec.InvalidArgument(f"mindrec.ray: batch_size must be >= 1, got {batch_size}")
    if cpus_per_worker <= 0:
        raise mindrec.InvalidArgument(f"mindrec.ray: cpus_per_worker must be > 0, got {cpus_per_worker}")
    path = os.fspath(weights)
    if not isinstance(path, str):
        raise mindrec.InvalidArgument("mindrec.ray: weights= is the path of a weights file")
    return path


def _map(dataset: "ray.data.Dataset", cls: Any, kwargs: Dict[str, Any], batch_size: int,
         workers: Optional[int], cpus_per_worker: float) -> "ray.data.Dataset":
    if kwargs["rejects"] is not None:  # the command's rejects sink: bad rows go there, not out
        kwargs["errors"] = "drop"
    # a fixed pool of actors, each loading the model and the store once (``compute=``: Ray 2.51
    # deprecates map_batches' ``concurrency``; ActorPoolStrategy(size=) is in every Ray >= 2.9)
    pool = ray.data.ActorPoolStrategy(size=_workers(workers, cpus_per_worker))
    return dataset.map_batches(cls, fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="pyarrow",
                               compute=pool, num_cpus=cpus_per_worker)


def recall(dataset: "ray.data.Dataset", weights: "str | os.PathLike[str]", index: Optional[str] = None,
           store: Optional[str] = None, topn: int = 50, exclude_history: bool = False, batch_size: int = 1024,
           workers: Optional[int] = None, cpus_per_worker: float = 1, catalogue: Optional[str] = None,
           dense_ids: bool = False, filter: str = "", rerank: int = 0, params: Optional[Dict[str, float]] = None,
           user_column: str = "user", hist_column: str = "hist", errors: str = "column",
           allow_mismatch: bool = False, threads: int = 0, _rejects: Any = None) -> "ray.data.Dataset":
    """Each user's top ``topn`` items, as :func:`mindrec.recall_items` computes them.

    ``dataset``: rows with ``user_column`` (kept as it is) and ``hist_column`` (a list of item
    ids, oldest first; or a string of ids separated by commas or spaces, as CSV gives them):
    raw ids when the weights have a catalogue (``catalogue.csv`` beside them, or
    ``catalogue=``; ``dense_ids=True`` reads dense ids anyway), else dense ids.
    ``weights``: the weights file; ``index``: a store saved by ``mindrec index``, or
    ``store``: a ``milvus://`` spec (or an in-process spec such as ``"flat"``, which each actor
    builds from the weights). Both paths must be readable on every node.

    Returns a lazy Dataset with the user column, ``candidates`` (list of int64, or of str for
    raw ids), ``scores`` (list of float32), best first, and with ``errors="column"`` an
    ``error`` column (null where the row was recalled). ``workers`` actors (default: the
    cluster's CPUs / ``cpus_per_worker``), each computing ``batch_size`` users at a time on
    ``threads`` threads (0: its ``cpus_per_worker``). ``exclude_history``, ``filter``,
    ``rerank``, ``params``, ``allow_mismatch``: as in :func:`mindrec.recall_items`."""
    path = _check_common(weights, batch_size, cpus_per_worker, errors)
    if (index is None) == (store is None):
        raise mindrec.InvalidArgument("mindrec.ray.recall: give index= (a saved store) or store= (a spec), one of them")
    if topn < 1:
        raise mindrec.InvalidArgument(f"mindrec.ray.recall: topn must be >= 1, got {topn}")
    kw = dict(weights=path, index=os.fspath(index) if index is not None else None, store=store, catalogue=catalogue,
              dense_ids=dense_ids, allow_mismatch=allow_mismatch, threads=threads, user_column=user_column,
              hist_column=hist_column, errors=errors, rejects=_rejects, topn=topn, exclude_history=exclude_history,
              rerank=rerank, filter=filter, params=dict(params) if params else None)
    return _map(dataset, _Recaller, kw, batch_size, workers, cpus_per_worker)


def interests(dataset: "ray.data.Dataset", weights: "str | os.PathLike[str]", batch_size: int = 1024,
              workers: Optional[int] = None, cpus_per_worker: float = 1, catalogue: Optional[str] = None,
              dense_ids: bool = False, user_column: str = "user", hist_column: str = "hist",
              errors: str = "column", threads: int = 0, _rejects: Any = None) -> "ray.data.Dataset":
    """Each user's interest vectors, as :meth:`mindrec.MindModel.extract_interests` computes
    them: an ``interests`` column, a list of the user's interests (their count: K, or K'_u with
    dynamic_k), each a list of ``hidden_size`` float32. The other arguments as :func:`recall`."""
    path = _check_common(weights, batch_size, cpus_per_worker, errors)
    kw = dict(weights=path, index=None, store=None, catalogue=catalogue, dense_ids=dense_ids, allow_mismatch=False,
              threads=threads, user_column=user_column, hist_column=hist_column, errors=errors, rejects=_rejects)
    return _map(dataset, _Extractor, kw, batch_size, workers, cpus_per_worker)


def _input_files(paths: Sequence[str]) -> List[str]:
    """Every Parquet or CSV file under `paths` (files, folders, or URIs pyarrow can list)."""
    import pyarrow.fs as pafs  # type: ignore[import-not-found, import-untyped, unused-ignore]

    out: List[str] = []
    for p in paths:
        fs, root = pafs.FileSystem.from_uri(p) if "://" in p else (pafs.LocalFileSystem(), os.path.abspath(p))
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise mindrec.IoError(f"mindrec.ray: {p}: no such file or folder")
        if info.type == pafs.FileType.File:
            found = [root]
        else:
            found = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
                           if i.type == pafs.FileType.File and i.path.endswith((".parquet", ".csv")))
        prefix = p.split("://", 1)[0] + "://" if "://" in p else ""
        out += [prefix + f if prefix and not f.startswith(prefix) else f for f in found]
    if not out:
        raise mindrec.IoError(f"mindrec.ray: no .parquet or .csv file in {list(paths)}")
    return out


def _read_files(batch: Any, hist_column: str, rows_per_block: int) -> Any:
    """Reads whole input files (a batch of paths) and yields their rows in blocks."""
    import pyarrow.csv as pacsv  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import pyarrow.fs as pafs  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]

    for path in batch.column("path").to_pylist():
        fs, rel = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
        if path.endswith(".csv"):  # the history stays text, however its ids look
            with fs.open_input_stream(rel) as f:
                t = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types={hist_column: pa.string()}))
        else:
            t = pq.read_table(rel, filesystem=fs)
        for start in range(0, t.num_rows, rows_per_block):
            yield t.slice(start, rows_per_block)


def read_histories(paths: "str | Sequence[str]", hist_column: str = "hist",
                   rows_per_block: int = 65536, tasks: int = 2) -> "ray.data.Dataset":
    """The users' histories as a Ray Dataset to pass to :func:`recall` or :func:`interests`:
    every ``.parquet`` and ``.csv`` file under ``paths`` (files, folders, or URIs such as
    ``s3://...``), in blocks of ``rows_per_block`` rows (Ray hands work out by block). In CSV,
    ``hist_column`` is read as text (ids separated by spaces or commas).

    Unlike ``ray.data.read_parquet``, its tasks reserve no CPU: when the workers of
    :func:`recall` reserve every CPU of the cluster (the default), a read that needs one would
    wait for them forever. At most ``tasks`` read at once (reading is far faster than recall;
    unbounded, Ray would start a process per file beside the workers). Write the result
    likewise: :func:`write_parquet`."""
    files = _input_files([paths] if isinstance(paths, str) else list(paths))
    ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
    return ds.map_batches(_read_files, fn_kwargs=dict(hist_column=hist_column, rows_per_block=rows_per_block),
                          batch_size=1, batch_format="pyarrow", num_cpus=0,
                          compute=ray.data.TaskPoolStrategy(size=max(1, min(tasks, len(files)))))


def write_parquet(dataset: "ray.data.Dataset", path: str, workers: Optional[int] = None,
                  cpus_per_worker: float = 1) -> None:
    """Writes the result of :func:`recall` or :func:`interests` as Parquet files under ``path``
    in tasks that reserve no CPU (the workers hold them), one write task at a time per 16
    workers (``workers`` as given to the job; None: as many as the cluster's CPUs allow).

    Writing runs beside the workers on their cores: measured on 2 cores, 2 workers, two write
    tasks at a time took 7% longer than one (RESULTS "Bulk recall on Ray"); a write task keeps
    up with about 40 workers' output, so 16 per writer leaves room. Files appear under ``path``
    as they are written (Ray's writer): to replace a previous output only when the job succeeds,
    write to a new folder and swap it in, as ``python -m mindrec.ray`` does."""
    n = _workers(workers, cpus_per_worker)
    dataset.write_parquet(path, ray_remote_args={"num_cpus": 0}, concurrency=max(1, n // 16))


class _RejectSink:
    """Where the command's workers send the rows they could not compute (few, by nature): an
    actor (``ray.remote(num_cpus=0)(_RejectSink).remote()``)."""

    def __init__(self) -> None:
        self._rows: List[Tuple[Any, str, str]] = []

    def add(self, rows: Sequence[Tuple[Any, str, str]]) -> int:
        self._rows.extend(rows)
        return len(self._rows)

    def rows(self) -> List[Tuple[Any, str, str]]:
        return self._rows
