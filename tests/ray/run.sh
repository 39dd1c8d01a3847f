#!/usr/bin/env bash
# ctest's python.ray: mindrec.ray's tests (pytest tests/ray) on a local Ray cluster, in a fresh
# virtual environment with Ray Data and PyArrow from PyPI (pip's cache makes a re-run quick).
#   tests/ray/run.sh          the package of .venv (or MINDREC_VENV), as python.package tests it,
#                             linked into the fresh venv without rebuilding it
#   tests/ray/run.sh WHEEL    a built wheel, installed with its [ray] extra (CI's wheel stage)
# Where Ray cannot be installed (no PyPI, no wheel for this platform) it says so and exits 77;
# without the package, 77 too, unless MINDREC_PYTHON_REQUIRED=1 (CI): then it fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
venv="${MINDREC_RAY_VENV:-build/ray-venv}"
rm -rf "$venv"
python3 -m venv "$venv" || { echo "python.ray: cannot create a venv at $venv (python3 -m venv)"; exit 77; }
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
if [ $# -ge 1 ]; then
  "${pip[@]}" "$1[ray]" pytest ||
    { echo "python.ray: cannot install $1 with its [ray] extra (Ray from PyPI): skipped"; exit 77; }
else
  src="${MINDREC_VENV:-.venv}"
  pkg=$("$src/bin/python" -c "import mindrec, os; print(os.path.dirname(mindrec.__file__))" 2>/dev/null) || {
    echo "python.ray: no mindrec package in $src (run scripts/python-package.sh)"
    [ "${MINDREC_PYTHON_REQUIRED:-0}" = 1 ] && exit 1
    exit 77
  }
  "${pip[@]}" "ray[data]>=2.9" "pyarrow>=12" numpy pytest ||
    { echo "python.ray: cannot install Ray Data from PyPI: skipped"; exit 77; }
  mkdir -p "$venv/linked" && ln -s "$pkg" "$venv/linked/mindrec"
  purelib=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$(cd "$venv/linked" && pwd)" > "$purelib/mindrec-linked.pth"
fi
# Ray's own processes write their logs and sockets under a short temporary folder
export RAY_TMPDIR="${RAY_TMPDIR:-$(mktemp -d /tmp/ray.XXXXXX)}"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/ray
rc=$?
rm -rf "$RAY_TMPDIR"
exit $rc
