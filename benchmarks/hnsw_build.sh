#!/usr/bin/env bash
# HNSW build speed beside faiss-cpu's HNSW and hnswlib, same data, same run (issue 28): the
# diffuse set (bench_store --noise 1.5: 367,983 x 64, the ann_target.sh data) exported by
# bench_store, then benchmarks/hnsw_build.py in the peers' venv with mindrec's Python package
# (.venv) on its path: each system's build at M=32 and the same ef_construction (64; 200; faiss's
# default 40), then recall@50 and single-user p50/p99 on one ef grid, every system timed by one
# harness (ann_peers.py's). Last line: mindrec's and faiss-cpu's build items/s at efC 64.
#
#   benchmarks/hnsw_build.sh [--items N] [--users U] [--quick] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
items=367983 users=1000 quick="" build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --quick) quick=--quick; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
venv=$(peers_venv)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
site=$(ls -d .venv/lib/python3*/site-packages/mindrec 2>/dev/null | head -1)
[ -n "$site" ] || { echo "mindrec's Python package is not in .venv (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$work/pkg" && ln -s "$PWD/$site" "$work/pkg/mindrec"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F)"
"$build/benchmarks/bench_store" --items "$items" --users "$users" --noise 1.5 --search-only --export "$work" \
  --backends flat >/dev/null
out=$(PYTHONPATH="$work/pkg" "$venv/bin/python" benchmarks/hnsw_build.py "$work" $quick)
echo "$out"
rate() { grep -F "build | $1" <<<"$out" | head -1 | awk -F'|' '{ gsub(/ items\/s| /, "", $4); print $4 }'; }
m=$(rate "mindrec hnsw:M=32,ef_construction=64 ")
f64=$(grep -F "build | faiss-cpu" <<<"$out" | grep -F "efConstruction=64 " | awk -F'|' '{ gsub(/ items\/s| /, "", $4); print $4 }')
echo "mindrec_efc64_items_per_s=$m faiss_efc64_items_per_s=$f64 ratio=$(ratio "$m" "$f64")"
