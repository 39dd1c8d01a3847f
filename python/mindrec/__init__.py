"""mindrec: MIND multi-interest candidate generation with a C++ core.

Train MIND on click logs, evaluate Recall/NDCG/HitRate, extract each user's K interest vectors
and retrieve the top-k items from an in-process vector index, with NumPy arrays in and out.
Everything computes in the C++ library (``mindrec._core``); this module converts arguments.

Conventions (as in C++): item ids are int64 with 0 = padding; vectors are float32, row-major;
search results are padded with id -1. Long calls release the GIL. Errors are the
:class:`Error` subclasses below (each also a ``ValueError``, ``OSError``, ... where that fits).

Quick start: ``examples/python/quickstart.py``.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np
import numpy.typing as npt

from . import _core
from ._core import (
    CapsuleConfig,
    Catalogue,
    ItemStatus,
    ClickLog,
    Config,
    ConfigError,
    CudaError,
    Error,
    EvalSet,
    Extractor,
    FormatError,
    InvalidArgument,
    IoError,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    Readout,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RunnerConfig,
    SelfAttentionConfig,
    SoftmaxAxis,
    Unsupported,
    Weights,
    built_with_cuda,
    cuda_device_count,
    default_threads,
    init_weights,
    parse_config,
    read_eval_data,
    read_train_data,
    set_log_level,
)

__version__: str = _core.VERSION

__all__ = [
    "CapsuleConfig", "Catalogue", "ItemStatus", "load_catalogue", "ClickLog", "Config", "ConfigError", "CudaError", "Error", "EvalSet", "Extractor", "FormatError",
    "InvalidArgument", "IoError", "LossConfig", "MindModel", "ModelConfig", "OptimizerConfig", "Readout",
    "RemoteAuthError", "RemoteError", "RemoteNotFound", "RunnerConfig", "SelfAttentionConfig", "SoftmaxAxis",
    "Unsupported", "VectorStore", "Weights", "attach_vector_store", "build_item_store", "built_with_cuda",
    "cuda_device_count", "default_threads", "evaluate", "init_weights", "load_config",
    "evaluate_popularity", "import_paddlerec", "load_vector_store", "load_weights", "parse_config", "prepare",
    "read_eval_data", "read_train_data",
    "RecallResult", "recall_items", "save_weights", "set_log_level", "train", "weights_from_dict",
    "weights_to_dict",
]

PathLike = Union[str, "os.PathLike[str]"]
Histories = Union[npt.ArrayLike, Sequence[Sequence[int]]]
FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

_TENSORS = ("item_emb", "bilinear", "routing_logits", "relu_weight", "relu_bias")


_INT64 = np.dtype(np.int64)
_INT32 = np.dtype(np.int32)
_FLOAT32 = np.dtype(np.float32)


def _ints(a: Any, name: str, ndim: int, dtype: "np.dtype[Any]" = _INT64) -> Any:
    """`a` as a C-contiguous array of `dtype` (int64 ids, int32 lengths): returned as it is when
    it already is one (the common case costs a few attribute reads), else converted once."""
    if type(a) is np.ndarray and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous:
        return a
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise InvalidArgument(f"{name}: expected a {ndim}-d array of integer ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidArgument(f"{name}: expected integer ids, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _floats(a: Any, name: str, ndim: int) -> FloatArray:
    """`a` as a C-contiguous float32 array (no copy when it already is one)."""
    if type(a) is np.ndarray and a.dtype == _FLOAT32 and a.ndim == ndim and a.flags.c_contiguous:
        return a
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise InvalidArgument(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if arr.size and not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidArgument(f"{name}: expected numbers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _is_ragged(hist: Any) -> bool:
    """True for a list (or tuple) of per-user id lists, which may differ in length."""
    return isinstance(hist, (list, tuple)) and (len(hist) == 0 or not np.isscalar(hist[0]))


def _lengths_of(h: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    """Each right-padded row's length: its clicks before the trailing zeros (0 is the padding
    id, never an item), not maxlen (which would route over the padding item)."""
    nonzero = h != 0
    last = h.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0).astype(np.int32)


def _path(p: PathLike) -> str:
    return os.fspath(p)


def load_config(path: PathLike) -> Config:
    """Reads a YAML config (PaddleRec's shape: ``runner``, ``hyper_parameters``). Unknown keys
    and wrong types raise :class:`ConfigError` naming the key path; relative paths in ``runner``
    are resolved against the file's folder."""
    return _core.load_config(_path(path))


# ---- weights ------------------------------------------------------------------------------

def load_weights(path: PathLike, expected: Optional[ModelConfig] = None) -> Weights:
    """Reads a safetensors weights file (validated: names, dtypes, shapes).

    With ``expected``, raises :class:`ConfigError` if the file holds another model.
    """
    if expected is None:
        return _core.load_weights(_path(path))
    return _core.load_weights(_path(path), expected)


def import_paddlerec(pdparams: PathLike, config: Union[Config, ModelConfig, PathLike]) -> Weights:
    """Weights from a MIND checkpoint trained by PaddleRec (``rec.pdparams``, read without
    PaddlePaddle and without running pickled code) and the PaddleRec config it was trained with
    (a path, a :class:`Config` or its ``hyper_parameters``); as ``mindrec import-paddlerec``."""
    if isinstance(config, ModelConfig):
        mc = config
    elif isinstance(config, Config):
        mc = config.hyper_parameters
    else:  # only the hyper_parameters are read: a PaddleRec runner has keys of its own
        mc = _core.load_model_config(_path(config))
    return _core.import_paddlerec(_path(pdparams), mc)


def weights_to_dict(weights: Weights) -> Dict[str, FloatArray]:
    """The tensors as a dict of NumPy arrays, keyed as in the weights file
    (``item_emb.weight``, ``capsule.bilinear``, ...; ``self_attention.*`` in place of the
    routing tensors with ``extractor: self_attention``). The arrays are views of ``weights``
    (no copy): writing to them changes the weights."""
    names = {
        "item_emb": "item_emb.weight",
        "bilinear": "capsule.bilinear",
        "routing_logits": "capsule.routing_logits",
        "relu_weight": "capsule.relu.weight",
        "relu_bias": "capsule.relu.bias",
    }
    out = {names[t]: getattr(weights, t) for t in _TENSORS if getattr(weights, t).size}
    flat = weights.attention
    for name, shape, offset in weights.attention_parts():
        out[name] = flat[offset:offset + int(np.prod(shape))].reshape(shape)
    return out


def weights_from_dict(config: ModelConfig, tensors: Mapping[str, npt.ArrayLike]) -> Weights:
    """Weights from a dict of arrays keyed as :func:`weights_to_dict` writes them (copied and
    validated against ``config``; ``capsule.relu.*`` may be absent without ``relu_layer``, the
    routing tensors with ``extractor: self_attention``, which needs ``self_attention.w1``,
    ``.b1``, ``.w2`` and ``.position`` instead)."""
    sa = config.extractor == Extractor.self_attention
    sa_keys = ("self_attention.w1", "self_attention.b1", "self_attention.w2", "self_attention.position")
    keys = ("item_emb.weight", "capsule.bilinear", "capsule.routing_logits", "capsule.relu.weight",
            "capsule.relu.bias")
    expected = ("item_emb.weight", "capsule.relu.weight", "capsule.relu.bias") + sa_keys if sa else keys
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise InvalidArgument(f"weights_from_dict: unknown tensor(s) {unknown}; expected {list(expected)}")
    arrays = []
    for k in keys + sa_keys:
        if k not in tensors:
            if (k.startswith("capsule.relu.") and not config.capsule.relu_layer) or (k in keys[1:3] and sa) or (
                    k in sa_keys and not sa):
                arrays.append(np.zeros(0, np.float32))
                continue
            raise InvalidArgument(f"weights_from_dict: tensor '{k}' is missing")
        arrays.append(np.ascontiguousarray(np.asarray(tensors[k], dtype=np.float32)))
    attention = np.concatenate([a.reshape(-1) for a in arrays[len(keys):]]) if sa else None
    emb, bil, logits, relu_w, relu_b = arrays[:len(keys)]
    return Weights.from_arrays(config, emb, bil, logits, relu_w, relu_b, attention)


def save_weights(path: PathLike, weights: Union[Weights, Mapping[str, npt.ArrayLike]],
                 config: Optional[ModelConfig] = None) -> None:
    """Writes weights as safetensors (the model config in ``__metadata__``), atomically.

    ``weights`` is a :class:`Weights` or a dict of arrays (then ``config`` is required)."""
    if not isinstance(weights, Weights):
        if config is None:
            raise InvalidArgument("save_weights: a dict of arrays needs config= (the ModelConfig)")
        weights = weights_from_dict(config, weights)
    _core.save_weights(_path(path), weights)


# ---- the catalogue: raw item ids -------------------------------------------------------------

def load_catalogue(path: PathLike) -> Catalogue:
    """Reads a catalogue file (``catalogue.csv``: ``id,raw_id,status,clicks``, written by
    :func:`prepare` and copied beside the weights by :func:`train`). ``Catalogue.to_dense`` takes
    a raw id (0 if unknown) or a list of them (an int64 array); ``Catalogue.to_raw`` a dense id
    or an array/list of them; ``len(c)``, ``raw in c``, ``c.status(id)``, ``c.item_count``."""
    return Catalogue.load(_path(path))


def _raw_lists(histories: Any, name: str) -> List[List[str]]:
    """Histories of raw ids as lists of str (integers read as their decimal text)."""
    out: List[List[str]] = []
    for b, h in enumerate(histories):
        if isinstance(h, (str, bytes)) or not hasattr(h, "__iter__"):
            raise InvalidArgument(f"{name}[{b}]: expected a list of raw item ids, got {type(h).__name__} {h!r}")
        row = []
        for pos, v in enumerate(h):
            if isinstance(v, bool) or not isinstance(v, (str, int, np.integer)):
                raise InvalidArgument(f"{name}[{b}][{pos}]: expected a raw item id (str or int), got "
                                      f"{type(v).__name__} {v!r}")
            row.append(str(v))
        out.append(row)
    return out


# ---- the model ----------------------------------------------------------------------------

class MindModel:
    """MIND's forward pass (interest extraction, label-aware attention) on ``"cpu"`` or
    ``"cuda"``. Immutable; its methods may be called from many threads at once."""

    def __init__(self, weights: Union[Weights, PathLike], device: str = "cpu",
                 max_projection_bytes: int = 1 << 30) -> None:
        """``weights``: a :class:`Weights` or the path of a weights file.
        ``max_projection_bytes``: the CPU model precomputes item_emb @ S up to this size."""
        if isinstance(weights, Weights):
            self._m = _core.MindModel(weights, device, max_projection_bytes)
        else:  # read straight into the model: one copy of the weights at peak
            self._m = _core.MindModel._from_file(_path(weights), device, max_projection_bytes)

    @property
    def config(self) -> ModelConfig:
        """The model config (a copy)."""
        return self._m.config

    @property
    def weights(self) -> Weights:
        """A copy of the weights."""
        return self._m.weights

    @property
    def device(self) -> str:
        return self._m.device

    def item_fingerprint(self) -> int:
        """The fingerprint of item_emb that stores built from this model record."""
        return self._m.item_fingerprint()

    def interest_count(self, n: int) -> int:
        """Interests computed for a user with ``n`` behaviours (K, or K'_u with dynamic_k)."""
        return self._m.interest_count(n)

    def extract_interests(self, hist: Histories, lengths: Optional[npt.ArrayLike] = None,
                          threads: int = 0,
                          out: Optional[Tuple[FloatArray, npt.NDArray[np.int32]]] = None,
                          catalogue: Optional[Catalogue] = None,
                          ) -> Tuple[FloatArray, npt.NDArray[np.int32]]:
        """Each user's interest vectors.

        ``hist`` is either a list of per-user id lists (oldest first; the last ``maxlen`` are
        used) or a ``[B, maxlen]`` integer array of right-padded histories with ``lengths``
        ``[B]`` (default: each row's clicks before its trailing zeros; 0 is the padding id). A
        user with no clicks, an id 0 inside a length or an id outside ``[1, item_count)`` raises
        :class:`InvalidArgument` naming the user and position. Returns ``(interests [B, K, H] float32, counts [B]
        int32)``; interests past a user's count are zero rows. Releases the GIL; an int64
        C-contiguous array is read in place. ``threads`` 0 = all cores. ``out``: a pair of
        preallocated arrays (float32 ``[B, K, H]``, int32 ``[B]``, C-contiguous) written in place
        and returned, for loops that reuse their buffers.

        With ``catalogue`` (the weights' :class:`Catalogue`), ``hist`` is a list of per-user
        lists of raw item ids (str; integers read as their decimal text): a raw id it does not
        know raises :class:`InvalidArgument` naming the user and position (recall_items skips
        and lists them instead)."""
        if catalogue is not None:
            raws = _raw_lists(hist, "hist")
            dense, unknown = _core._to_dense_histories(catalogue, raws, self.config.item_count)
            for b, u in enumerate(unknown):
                if u:
                    pos = raws[b].index(u[0])
                    raise InvalidArgument(f"extract_interests: hist[{b}][{pos}]: raw id {u[0]!r} is not in the "
                                          f"catalogue (or is no row of this model)")
            hist = dense
        if lengths is None and _is_ragged(hist):
            if out is not None:
                raise InvalidArgument("extract_interests: out= needs histories as a [B, maxlen] array with lengths")
            try:
                return self._m._extract_lists(cast(Sequence[Sequence[int]], hist), threads)
            except TypeError:
                raise _id_lists_error(hist, "hist") from None
        h = _ints(hist, "hist", 2)
        lens = _lengths_of(h) if lengths is None else _ints(lengths, "lengths", 1, _INT32)
        if out is None:
            return self._m._extract(h, lens, threads)
        self._m._extract_into(h, lens, out[0], out[1], threads)
        return out

    def label_aware_attention(self, interests: npt.ArrayLike, counts: npt.ArrayLike,
                              targets: npt.ArrayLike) -> FloatArray:
        """Label-aware attention (training's read-out): ``interests [B, K, H]`` and ``counts
        [B]`` as :meth:`extract_interests` returns them, ``targets [B]`` item ids -> ``[B, H]``."""
        return self._m._attention(_floats(interests, "interests", 3), _ints(counts, "counts", 1, _INT32),
                                  _ints(targets, "targets", 1))


# ---- vector stores and recall -------------------------------------------------------------

class VectorStore:
    """An in-process vector index of item vectors with int64 ids (see the store list in
    ``include/mindrec/vector_store.hpp``): ``"flat"``, ``"hnsw:M=32?ef=128"``,
    ``"faiss:IVF4096,Flat?nprobe=64"``, ``"milvus://host:port/collection"``, ...

    Any number of concurrent searches with one writer (threads); every call that searches,
    writes, waits or connects releases the GIL. A failed call changes nothing."""

    _pairing_warned: bool = False  # recall_items warned once that it serves this store unpaired

    def __init__(self, spec: str, dim: int, metric: str = "ip") -> None:
        """An empty store; ``metric`` is ``"ip"`` (inner product) or ``"l2"``."""
        self._s = _core.make_vector_store(spec, dim, metric)

    @classmethod
    def _wrap(cls, s: "_core.VectorStore") -> "VectorStore":
        obj = cls.__new__(cls)
        obj._s = s
        return obj

    @property
    def dim(self) -> int:
        return self._s.dim

    @property
    def metric(self) -> str:
        return self._s.metric

    @property
    def backend(self) -> str:
        """The backend string it was made from (without search parameters)."""
        return self._s.backend

    @property
    def source_fingerprint(self) -> int:
        """The item fingerprint of the weights it was filled from (0 = unknown)."""
        return self._s.source_fingerprint

    @property
    def changes(self) -> int:
        """Writes that changed the store since it was made (add, upsert, a remove that removed
        something, clear, load): save when it differs from the value at your last save."""
        return self._s.changes

    def __len__(self) -> int:
        return self._s.size()

    def __repr__(self) -> str:
        return f"VectorStore({self.backend!r}, dim={self.dim}, metric={self.metric!r}, size={len(self)})"

    def add(self, vectors: npt.ArrayLike, ids: npt.ArrayLike) -> None:
        """Adds ``vectors [n, dim]`` with ``ids [n]``; refuses negative, stored or repeated ids."""
        self._s.add(_floats(vectors, "vectors", 2), _ints(ids, "ids", 1))

    def upsert(self, vectors: npt.ArrayLike, ids: npt.ArrayLike) -> int:
        """Adds or replaces; returns how many ids were replaced."""
        return self._s.upsert(_floats(vectors, "vectors", 2), _ints(ids, "ids", 1))

    def remove(self, ids: npt.ArrayLike) -> int:
        """Removes the given ids (unknown ones are ignored); returns how many were removed."""
        return self._s.remove(_ints(ids, "ids", 1))

    def search(self, queries: npt.ArrayLike, k: int, filter: str = "",
               params: Optional[Dict[str, float]] = None) -> Tuple[IdArray, FloatArray]:
        """The ``k`` best items of each query ``[nq, dim]``: ``(ids [nq, k] int64, scores [nq, k]
        float32)``, best first, padded with id -1 (score -inf for "ip", +inf for "l2").

        ``filter``: a Milvus-style boolean expression over the store's attributes
        (``'category in ["shoes", "bags"] and price < 50 and in_stock'``), applied inside the
        search (``flat``: the exact top-k among allowed items). ``params``: search parameters for
        this call only (``{"ef": 256}``, ``{"nprobe": 32}``)."""
        return self._s.search(_floats(queries, "queries", 2), k, filter, dict(params or {}))

    @property
    def attributes(self) -> List[Tuple[str, str]]:
        """The declared attribute columns: ``[(name, type)]``, type one of ``int64``,
        ``float64``, ``bool``, ``string``."""
        return list(self._s.attributes())

    @property
    def supports_filter(self) -> bool:
        """False for ``cuda:flat`` and ``faiss-gpu:``, which refuse filters."""
        return bool(self._s.supports_filter)

    def declare_attributes(self, columns: Union[Dict[str, str], Sequence[Tuple[str, str]]]) -> None:
        """Declares attribute columns: ``{"price": "float64", "category": "string",
        "in_stock": "bool", "year": "int64"}``. A name already declared with the same type is
        kept."""
        items = list(columns.items()) if isinstance(columns, dict) else [tuple(c) for c in columns]
        self._s.declare_attributes([(str(n), str(t)) for n, t in items])

    def set_attributes(self, ids: npt.ArrayLike, values: Dict[str, Any],
                       vectors: Optional[npt.ArrayLike] = None) -> int:
        """Sets attribute values of ``ids`` without touching vectors: ``values`` maps a declared
        column to one value per id (arrays or lists). With ``vectors`` ``[n, dim]`` the vectors
        are upserted in the same write; returns how many ids were replaced (0 without)."""
        i = _ints(ids, "ids", 1)
        types = dict(self._s.attributes())
        ints: Dict[str, Any] = {}
        floats: Dict[str, Any] = {}
        bools: Dict[str, Any] = {}
        strings: Dict[str, List[str]] = {}
        for name, v in values.items():
            t = types.get(name)
            if t is None:
                raise InvalidArgument(f"set_attributes: no attribute {name!r} (declared: "
                                      f"{', '.join(types) or 'none'})")
            if t == "int64":
                ints[name] = np.ascontiguousarray(np.asarray(v), dtype=np.int64)
            elif t == "float64":
                floats[name] = np.ascontiguousarray(np.asarray(v), dtype=np.float64)
            elif t == "bool":
                bools[name] = np.ascontiguousarray(np.asarray(v), dtype=bool).view(np.uint8)
            else:
                strings[name] = [str(x) for x in v]
        vec = None if vectors is None else _floats(vectors, "vectors", 2)
        return int(self._s.set_attributes(i, ints, floats, bools, strings, vec))

    def filter_allows(self, filter: str, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """For each id, whether ``filter`` allows it (ids need not be stored)."""
        return self._s.filter_allows(filter, _ints(ids, "ids", 1)).astype(bool)

    def clear(self) -> None:
        self._s.clear()

    def save(self, path: PathLike) -> None:
        """Writes the store file (header, checksum, payload) atomically; ``mindrec`` CLI and C++
        read it with ``load_vector_store``."""
        self._s.save(_path(path))

    def load(self, path: PathLike) -> None:
        """Replaces the contents with a saved store of the same backend, dim and metric."""
        self._s.load(_path(path))

    def set_search_param(self, name: str, value: float) -> None:
        """A search-time parameter (``nprobe``, ``ef``, ``threads``, ``fetch``)."""
        self._s.set_search_param(name, value)


def load_vector_store(path: PathLike, spec: str = "") -> VectorStore:
    """Loads a saved store (backend, dim and metric from its header). A non-empty ``spec``
    must name the backend as saved and may set search parameters (``"hnsw:M=32?ef=256"``)."""
    return VectorStore._wrap(_core.load_vector_store(_path(path), spec))


def attach_vector_store(spec: str, dim: int, metric: str = "ip") -> VectorStore:
    """An existing remote store (``"milvus://host:port/collection"``), attached read-only: its
    collection must exist, and every write raises :class:`Unsupported` (for evaluating or
    querying a live catalogue without touching it)."""
    return VectorStore._wrap(_core.attach_vector_store(spec, dim, metric))


def build_item_store(model: MindModel, spec: str = "flat", metric: str = "ip",
                     catalogue: Optional[Catalogue] = None) -> VectorStore:
    """A store of every item vector of ``model`` (ids 1..N-1), recording its fingerprint; with
    ``catalogue``, of its active items only (retired items are never recalled)."""
    return VectorStore._wrap(_core.build_item_store(model._m, spec, metric, catalogue))


class RecallResult(tuple):  # type: ignore[type-arg]
    """What :func:`recall_items` returns: the pair ``(ids, scores)`` (so ``ids, scores =
    recall_items(...)`` works), plus ``fallback``, a bool array ``[B]``: True where the user had
    no clicks and got the model's popular items (the training log's most clicked, recorded in
    the weights by ``mindrec train``; scores 0) instead of a recall. With a catalogue
    (``recall_items(..., catalogue=)``), ``ids`` is a list of per-user lists of raw ids (str),
    ``scores`` a list of float32 arrays, ``fallback`` True where no id of the history was known,
    and ``unknown`` the raw ids of each history the catalogue does not know (skipped)."""

    ids: Any
    scores: Any
    fallback: npt.NDArray[np.bool_]
    unknown: Optional[List[List[str]]]

    def __new__(cls, ids: Any, scores: Any, fallback: npt.NDArray[np.bool_],
                unknown: Optional[List[List[str]]] = None) -> "RecallResult":
        obj = super().__new__(cls, (ids, scores))
        obj.ids, obj.scores, obj.fallback, obj.unknown = ids, scores, fallback, unknown
        return obj


def _id_lists_error(histories: Any, name: str) -> InvalidArgument:
    """The InvalidArgument for a list of id lists that the binding refused (TypeError): the first
    entry that is not a list of integers, by position."""
    for b, h in enumerate(histories):
        if np.isscalar(h) or not hasattr(h, "__len__"):
            return InvalidArgument(f"{name}[{b}]: expected a list of item ids, got {type(h).__name__} {h!r}")
        for pos, v in enumerate(h):
            if isinstance(v, str):
                return InvalidArgument(f"{name}[{b}][{pos}]: {v!r} is a raw item id: pass catalogue= (the "
                                       f"weights' Catalogue, mindrec.load_catalogue) to use raw ids")
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                return InvalidArgument(f"{name}[{b}][{pos}]: expected an integer item id, got "
                                       f"{type(v).__name__} {v!r}")
            if not -(2 ** 63) <= int(v) < 2 ** 63:
                return InvalidArgument(f"{name}[{b}][{pos}]: item id {v} does not fit in int64")
    return InvalidArgument(f"{name}: expected a list of lists of integer item ids")


def _check_pairing(model: MindModel, store: VectorStore, allow_mismatch: bool) -> None:
    """:func:`check_store_pairing` as the CLI and the server apply it, before every recall
    through a store: a store filled from other weights is refused (ConfigError) unless
    ``allow_mismatch``; one that records no weights is served with one warning per store."""
    have = store._s.source_fingerprint
    if have == model._m.item_fingerprint():
        return
    if have == 0 or allow_mismatch:
        if store._pairing_warned:
            return
        store._pairing_warned = True
    _core.check_store_pairing(model._m, store._s, f"store '{store.backend}'", allow_mismatch)


def recall_items(model: MindModel, store: VectorStore, histories: Histories,
                 lengths: Optional[npt.ArrayLike] = None, topn: int = 50,
                 exclude_history: bool = False, rerank: int = 0,
                 threads: int = 0, allow_mismatch: bool = False,
                 catalogue: Optional[Catalogue] = None, filter: str = "",
                 params: Optional[Dict[str, float]] = None) -> RecallResult:
    """Multi-interest candidate generation: each user's interests, each interest's nearest
    items in ``store``, merged as the spec says (by score, duplicates and id 0 dropped).

    ``histories`` as in :meth:`MindModel.extract_interests`. Returns a :class:`RecallResult`:
    ``(ids [B, topn] int64, scores [B, topn] float32)``, best first, padded with -1, and
    ``.fallback [B]``. The rules of the CLI and the server: a user with no clicks gets the
    popular items (``fallback`` True); id 0 (the padding id) or an id outside
    ``[1, item_count)`` raises :class:`InvalidArgument` naming the user and position;
    ``exclude_history`` drops every item of the user's history (a list: all of it, not only
    the last ``maxlen`` the model reads); a store filled from other weights raises
    :class:`ConfigError` unless ``allow_mismatch``. ``rerank`` > 0 re-scores ``rerank x topn``
    candidates per interest exactly (for 8-bit stores).

    With ``catalogue`` (the weights' :class:`Catalogue`: ``load_catalogue(".../catalogue.csv")``),
    ``histories`` are lists of raw item ids and the result is in raw ids (see
    :class:`RecallResult`): unknown raw ids are skipped and listed, a history with no known id
    gets the popular items (``fallback``), retired items are never returned.

    ``filter`` (see :meth:`VectorStore.search`) keeps only the items it allows, inside the
    store's search, ``exclude_history`` likewise; users without clicks get the allowed popular
    items. ``params``: search parameters for this call (``{"ef": 256}``)."""
    _check_pairing(model, store, allow_mismatch)
    p = dict(params or {})
    if catalogue is not None:
        if lengths is not None:
            raise InvalidArgument("recall_items: raw ids (catalogue=) come as lists of ids, not with lengths")
        ids_r, scores_r, fb_r, unknown = _core._recall_raw(model._m, store._s, catalogue,
                                                           _raw_lists(histories, "histories"), topn,
                                                           exclude_history, rerank, threads, filter, p)
        return RecallResult(ids_r, scores_r, fb_r.astype(bool), unknown)
    if lengths is None and _is_ragged(histories):
        try:
            ids, scores, fb = _core._recall_lists(model._m, store._s, cast(Sequence[Sequence[int]], histories),
                                                  topn, exclude_history, rerank, threads, filter, p)
        except TypeError:
            raise _id_lists_error(histories, "histories") from None
    else:
        h = _ints(histories, "histories", 2)
        lens = _lengths_of(h) if lengths is None else _ints(lengths, "lengths", 1, _INT32)
        ids, scores, fb = _core._recall(model._m, store._s, h, lens, topn, exclude_history, rerank, threads,
                                        filter, p)
    return RecallResult(ids, scores, fb.astype(bool))


# ---- evaluation, preparation, training ----------------------------------------------------

def evaluate(model: MindModel, data: Union[EvalSet, PathLike], topk: Sequence[int] = (20, 50),
             store: Optional[VectorStore] = None, train: Union[ClickLog, PathLike, None] = None,
             paddlerec_compat: bool = False, batch_size: int = 128, threads: int = 0,
             allow_mismatch: bool = False) -> Dict[str, Any]:
    """Recall/NDCG/HitRate@N of the merged multi-interest retrieval on validation/test users
    (a folder or file in PaddleRec's slot format, or an :class:`EvalSet`). Exact search over all
    items unless ``store`` is given (a store filled from other weights raises
    :class:`ConfigError` unless ``allow_mismatch``, as in :func:`recall_items`). With ``train`` (the training click log, a path or a
    :class:`ClickLog`) also the popularity baseline on the same users and the model's ratio to
    it. Returns the keys of ``mindrec eval --json``: ``users``, ``recall@N``, ``ndcg@N``,
    ``hitrate@N`` and, with ``train``, ``popularity_recall@N``, ... and ``ratio_recall@N``, ...
    (None where the baseline scores 0)."""
    if store is not None:
        _check_pairing(model, store, allow_mismatch)
    if not isinstance(data, EvalSet):
        data = read_eval_data(_path(data), model.config.item_count)
    if train is not None and not isinstance(train, ClickLog):
        train = read_train_data(_path(train), model.config.item_count)
    text = _core._evaluate(model._m, data, list(topk), None if store is None else store._s, train,
                           paddlerec_compat, batch_size, threads)
    result: Dict[str, Any] = json.loads(text)
    return result


def evaluate_popularity(train: Union[ClickLog, PathLike], data: Union[EvalSet, PathLike],
                        topk: Sequence[int] = (20, 50), paddlerec_compat: bool = False,
                        batch_size: int = 128) -> Dict[str, float]:
    """The popularity baseline with :func:`evaluate`'s metrics and keys: every user gets the
    items clicked most often in ``train`` (a click log path or a :class:`ClickLog`)."""
    if not isinstance(train, ClickLog):
        train = read_train_data(_path(train))
    if not isinstance(data, EvalSet):
        data = read_eval_data(_path(data))
    result: Dict[str, float] = json.loads(
        _core._evaluate_popularity(train, data, list(topk), paddlerec_compat, batch_size))
    return result


def prepare(input: PathLike, out_dir: PathLike, min_count: int = 5, seed: int = 2021,
            columns: str = "", catalogue: Optional[PathLike] = None, numeric_ids: bool = False) -> Dict[str, int]:
    """ComiRec's preparation of a raw click log (``mindrec prepare``): CSV (RFC 4180 quoting) or
    whitespace-separated, times in epoch seconds or ISO-8601; ``columns`` names the user, item
    and time fields (``"user=1,item=2,time=4"``, 1-based, or the header's names) when the lines
    are not just ``user,item,timestamp``. Filters, renumbers, splits users 80/10/10 and writes
    train/, valid/, test/, catalogue.csv, the id maps and dataset.json into ``out_dir``. Returns
    the counts (``item_count`` goes in the config).

    ``catalogue``: the previous day's catalogue.csv: known items keep their ids, new ones get
    the next ids (by popularity), items without clicks are retired (they keep their ids);
    ``kept``, ``new`` and ``retired`` count them. ``numeric_ids``: raw item ids are int64
    numbers ("007" is 7)."""
    result: Dict[str, int] = _core._prepare(_path(input), _path(out_dir), min_count, seed, columns,
                                            "" if catalogue is None else _path(catalogue), numeric_ids)
    return result


def _print_progress(p: Mapping[str, Any]) -> None:
    if p["batch"] == p["batches"] or sys.stderr.isatty():
        end = "\n" if p["batch"] == p["batches"] else ""
        sys.stderr.write(f"\repoch {p['epoch']}/{p['epochs']} batch {p['batch']}/{p['batches']} "
                         f"loss {p['loss']:.4f} | {p['samples_per_s']:.0f} samples/s | "
                         f"ETA epoch {p['eta_s']:.0f}s, run {p['run_eta_s']:.0f}s   {end}")
        sys.stderr.flush()


def train(config: Union[Config, PathLike], out_dir: Optional[PathLike] = None,
          resume: Optional[PathLike] = None,
          progress: Union[bool, Callable[[Dict[str, Any]], None]] = True,
          on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
          evaluate: bool = True, init_from: Optional[PathLike] = None,
          catalogue: Optional[PathLike] = None) -> List[Dict[str, Any]]:
    """Trains MIND as ``mindrec train`` does (same files, same numbers for the same seed and
    threads): checkpoint.safetensors, last.safetensors, best.safetensors (best validation
    Recall@50), metrics.csv and metrics.svg in ``out_dir`` (default runner.model_save_path).

    ``config``: a :class:`Config` or a YAML path. ``resume``: a checkpoint to continue from.
    ``progress``: True prints a progress line to stderr, a callable receives a dict per step
    (epoch, batch, loss, samples_per_s, eta_s, run_eta_s: the rest of the run), False is silent. ``on_epoch`` receives each
    epoch's dict (epoch, loss, seconds, samples_per_s and, when evaluated, recall@20 ... hitrate@50
    and best). Returns every epoch's dict. Ctrl-C stops the run (KeyboardInterrupt) with the
    finished epochs' files in place.

    ``init_from``: warm start from a previous model's weights file (its catalogue.csv beside
    it): item rows copied by raw id through both catalogues, new items initialised as a fresh
    model's, every other tensor copied (shapes other than item_count must match).
    ``catalogue``: the data's catalogue (default: the catalogue.csv :func:`prepare` wrote above
    runner.train_data_dir); it is copied beside the weights and its fingerprint recorded."""
    cfg = config if isinstance(config, Config) else load_config(_path(config))
    if progress is True:
        on_progress: Optional[Callable[[Dict[str, Any]], None]] = _print_progress
    elif progress is False:
        on_progress = None
    else:
        on_progress = progress
    rows: List[Dict[str, Any]] = _core._train(cfg, "" if out_dir is None else _path(out_dir),
                                              "" if resume is None else _path(resume), evaluate,
                                              None, on_progress, on_epoch,
                                              "" if init_from is None else _path(init_from),
                                              "" if catalogue is None else _path(catalogue))
    return rows

