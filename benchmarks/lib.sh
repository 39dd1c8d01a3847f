# Shared by the benchmark scripts (sourced): waiting for a mindrec-serve started in the
# background; the peers' venv.

# peers_venv: prints the venv of the ANN peers (faiss-cpu, hnswlib, usearch; ANN_PEERS_VENV or
# cached per machine), made first if it is missing or broken.
peers_venv() {
  local venv=${ANN_PEERS_VENV:-$HOME/.cache/mindrec-ci/ann-peers-venv}
  if ! "$venv/bin/python" -c "import faiss, hnswlib, usearch, numpy" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check numpy faiss-cpu hnswlib==0.8.0 usearch >&2
  fi
  echo "$venv"
}

# usearch_filter_lib VENV: prints the shared library of benchmarks/peers/usearch_filter.cpp (usearch's
# C++ filtered search for filter_peers.py), built once per machine and usearch version against
# the headers of the sdist of the version installed in VENV (cached beside the peers' venv).
usearch_filter_lib() {
  local venv=$1 ver cache src lib
  ver=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('usearch'))")
  cache=${USEARCH_FILTER_CACHE:-$HOME/.cache/mindrec-ci/usearch-filter}
  lib="$cache/usearch_filter-$ver-$(sha256sum benchmarks/peers/usearch_filter.cpp | cut -c1-12).so"
  if [ ! -f "$lib" ]; then
    mkdir -p "$cache"
    src="$cache/usearch-$ver"
    if [ ! -f "$src/include/usearch/index_dense.hpp" ]; then
      # The sdist alone (its metadata step needs setuptools, wheel, pybind11 and numpy).
      "$venv/bin/pip" install -q --disable-pip-version-check setuptools wheel pybind11 >&2
      "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary usearch --no-build-isolation \
        "usearch==$ver" -d "$cache" >&2
      tar xzf "$cache/usearch-$ver.tar.gz" -C "$cache"
    fi
    # Compiled as the package's setup.py compiles its module: NumKong's kernels (dynamic dispatch,
    # resolved at run time from the numkong package that `import usearch` loads globally), -O3
    # -ffast-math, and the NK_TARGET_* settings setup.py passes.
    local defs
    defs=$(grep -o '("NK_[A-Z0-9_]*", "0")' "$src/setup.py" | sed 's/("\(NK_[A-Z0-9_]*\)", "0")/-D\1=0/')
    # NK_NATIVE_BF16=0: on a CPU with AVX512-BF16 -march=native would make NumKong typedef
    # GCC 13's __bf16, which Debian 12's g++ 12 lacks (setup.py's generic build never sees the
    # macro and gets the same integer stand-in).
    # shellcheck disable=SC2086
    g++ -std=c++17 -O3 -ffast-math -march=native -shared -fPIC -DUSEARCH_USE_NUMKONG=1 -DNK_DYNAMIC_DISPATCH=1 -DNK_NATIVE_BF16=0 $defs \
      -I "$src/include" -I "$src/numkong/include" benchmarks/peers/usearch_filter.cpp -o "$lib.tmp" -lpthread &&
      mv "$lib.tmp" "$lib"
  fi
  echo "$lib"
}

# serve_url LOG PID [SECONDS]: prints http://127.0.0.1:PORT once the server that writes LOG
# (its stdout and stderr) listens and has loaded its model (/healthz no longer "loading");
# prints the log and returns 1 if it exits or takes longer than SECONDS (default 900).
serve_url() {
  local log=$1 pid=$2 limit=${3:-900} port="" start
  start=$(date +%s)
  while [ $(( $(date +%s) - start )) -lt "$limit" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "mindrec-serve exited" >&2; return 1; }
    [ -n "$port" ] || port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$log")
    if [ -n "$port" ] && curl -s -m 2 "http://127.0.0.1:$port/healthz" | grep -q '"status":"ok"'; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.2
  done
  cat "$log" >&2
  echo "mindrec-serve did not load its model in $limit s" >&2
  return 1
}

# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# require_built PROGRAM...: exits naming the first program not built (with $build's cmake line).
require_built() {
  local b
  for b in "$@"; do
    [ -x "$b" ] || { echo "$b not built (scripts/setup.sh, or cmake --build ${build:-build})" >&2; exit 1; }
  done
}

# work_dir NAME: makes $dir when the caller gave one (kept), else sets it to a new temporary
# directory removed when the script exits.
work_dir() {
  if [ -n "$dir" ]; then
    mkdir -p "$dir"
  else
    dir=$(mktemp -d "${TMPDIR:-/var/tmp}/mindrec-$1.XXXXXX")
    trap 'rm -rf "$dir"' EXIT
  fi
}
