#!/usr/bin/env bash
# ctest's python.package: the Python package's tests (pytest tests/python) with the package as
# scripts/python-package.sh installed it into .venv (or MINDREC_VENV). Without that package the
# test is skipped (exit 77) with the reason, unless MINDREC_PYTHON_REQUIRED=1 (CI): then it fails.
#   tests/python/run.sh CLI_PATH
set -uo pipefail
cd "$(dirname "$0")/../.."
venv="${MINDREC_VENV:-.venv}"
if ! "$venv/bin/python" -c "import mindrec" 2>/dev/null; then
  echo "python.package: no mindrec package in $venv (run scripts/python-package.sh)"
  [ "${MINDREC_PYTHON_REQUIRED:-0}" = 1 ] && exit 1
  exit 77
fi
MINDREC_CLI="$1" exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python
