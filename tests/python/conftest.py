"""Shared fixtures of the Python package's tests (pytest tests/python).

The package must be installed (`pip install .`, README "Python"). The CLI comparisons use the
C++ build's `mindrec` (build/tools/mindrec, or MINDREC_CLI); the NumPy reference is
tools/reference/mind_reference.py."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "data" / "amazonbook-sample"
sys.path.insert(0, str(ROOT / "tools" / "reference"))


@pytest.fixture(scope="session")
def cli():
    """Runs the C++ CLI; its absence fails (the README's build makes it), never skips."""
    path = Path(os.environ.get("MINDREC_CLI", ROOT / "build" / "tools" / "mindrec"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build the C++ project first (scripts/setup.sh) or set MINDREC_CLI")

    def run(*args, expect_fail=False):
        """The CLI's stdout; with expect_fail, its stderr, and it must have failed."""
        r = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True)
        if expect_fail:
            assert r.returncode != 0, f"mindrec {' '.join(map(str, args))} succeeded:\n{r.stdout}"
            return r.stderr
        assert r.returncode == 0, f"mindrec {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout
    return run


@pytest.fixture(scope="session")
def small_paths():
    return FIXTURES / "small-model.yaml", FIXTURES / "small-model.safetensors"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_histories(rng, users, item_count, maxlen):
    """Lists of 0..maxlen+5 ids in [1, item_count) (some longer than maxlen, one empty)."""
    out = [[int(x) for x in rng.integers(1, item_count, size=int(rng.integers(1, maxlen + 6)))]
           for _ in range(users)]
    out[0] = []
    return out


def pack(histories, maxlen):
    """Right-padded [B, maxlen] int64 of each list's last maxlen ids, and the lengths."""
    hist = np.zeros((len(histories), maxlen), np.int64)
    lens = np.zeros(len(histories), np.int32)
    for i, h in enumerate(histories):
        h = h[-maxlen:]
        hist[i, :len(h)] = h
        lens[i] = len(h)
    return hist, lens


def reference_params(weights_path):
    """The weights file read by the reference's own safetensors reader, in float64."""
    import mind_reference as ref
    tensors, meta = ref.read_safetensors(str(weights_path))
    import json
    return {k: v.astype(np.float64) for k, v in tensors.items()}, json.loads(meta["mindrec.model_config"])


def write_eval_file(path, histories, targets=None):
    """PaddleRec's slot format: one user per line, histories and (default: the last id again)
    ground truth."""
    with open(path, "w") as f:
        for u, h in enumerate(histories):
            gt = targets[u] if targets is not None else h[-1:] or [1]
            f.write(" ".join([f"user_id:{u + 1}", "target_item:0"] + [f"hist_item:{i}" for i in h] +
                             [f"eval_item:{i}" for i in gt]) + "\n")
    return path


def ticks_during(call):
    """Runs `call` in a thread while this thread counts loop iterations (Python bytecode it
    runs); returns (iterations while the call was running, the call's seconds). A call that held
    the GIL throughout would leave no iterations inside its span."""
    import threading
    import time
    span = {}

    def work():
        span["start"] = time.perf_counter()
        call()
        span["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    ticks = []
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
    t.join()
    return sum(span["start"] < x < span["end"] for x in ticks), span["end"] - span["start"]
