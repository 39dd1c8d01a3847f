#!/usr/bin/env bash
# Builds and installs the Python package `mindrec` into a virtual environment (default .venv/):
# the build tools (scikit-build-core, nanobind) and the test tools (pytest, mypy) from PyPI, then
# `pip install .` of this repository, compiled for this machine's CPU like build/
# (MINDREC_NATIVE=ON). scripts/setup.sh runs it; run it again after changing C++ code.
#
#   scripts/python-package.sh [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "scikit-build-core>=0.10" "nanobind>=2.4" numpy pytest mypy
# --no-build-isolation: the tools above build it (no second download); the build directory
# build-python/ is kept, so a rebuild compiles only what changed.
"$venv/bin/python" -m pip install -q --no-build-isolation -Ccmake.define.MINDREC_NATIVE=ON .
"$venv/bin/python" -c "import mindrec; print(f'installed mindrec {mindrec.__version__} into $venv')"
