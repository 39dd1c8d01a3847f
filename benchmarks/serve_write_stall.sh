#!/usr/bin/env bash
# Does a write stall the recalls of a running mindrec-serve? (issue 25 item 1) For each store,
# mindrec-serve builds the store of a model's item vectors, then one client recalls without
# pause (one user, top-50) while POST /rec/insert_data upserts every item again (which rebuilds
# the store aside); the client's latencies before and during the write.
#   benchmarks/serve_write_stall.sh [--items 367983] [--stores "faiss:HNSW32;hnsw"] [--check]
# --check (CI): fails unless the longest recall during each write took under a quarter of it.
# Random weights of the Books shape (mindrec init); the server on 2 compute slots.
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/lib.sh
items=367983 stores="faiss:HNSW32;hnsw" check=()
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --stores) stores=$2; shift 2 ;;
    --check) check=(--check); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
cat > "$dir/c.yaml" <<YAML
runner:
  train_data_dir: x
  test_data_dir: y
hyper_parameters:
  item_count: $items
  neg_samples: 10
YAML
build/tools/mindrec init --config "$dir/c.yaml" --out "$dir/w.safetensors" > /dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F); $items items x 64"
IFS=';' read -ra specs <<< "$stores"
for spec in "${specs[@]}"; do
  build/tools/mindrec-serve --config "$dir/c.yaml" --weights "$dir/w.safetensors" --store "$spec" --port 0 \
    --threads 4 --quiet > "$dir/serve.log" 2>&1 &
  pid=$!
  url=$(serve_url "$dir/serve.log" $pid 3600)
  echo "== $spec ($(sed -n 's/.*loaded \([0-9]*\) vectors.* in \([0-9.]*\) s.*/\1 vectors built in \2 s/p' "$dir/serve.log"))"
  python3 benchmarks/serve_write_stall.py "$url" --items "$items" "${check[@]}"
  kill -TERM $pid; wait $pid 2>/dev/null || true
  pid=""
done
