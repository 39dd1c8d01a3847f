#!/usr/bin/env bash
# Each store's resident memory, measured in a process of its own (RSS after - before the build,
# so the id maps and every derived structure count), its build peak, and what loading its saved
# file costs in another fresh process: the store's size after the load and the peak during it
# (review C1, C5). Diffuse synthetic item vectors (bench_store's, noise 1.5).
#   benchmarks/store_memory.sh [--items 367983] [--backends "flat;hnsw:M=32,ef_construction=200;..."]
set -euo pipefail
cd "$(dirname "$0")/.."
items=367983
backends="flat;hnsw:M=32,ef_construction=200;faiss:IVF4096,Flat;faiss:IVF4096,SQ8;faiss:IVF4096,PQ32x4fs;faiss:HNSW32"
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --backends) backends=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bench=build/benchmarks/bench_store
[ -x "$bench" ] || { echo "$bench not built (scripts/setup.sh)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "| store | items | build s | store MiB | B/item | build peak / store | file MiB | load s | store MiB after load | load peak / store |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
IFS=';' read -ra specs <<< "$backends"
for spec in "${specs[@]}"; do
  f="$dir/store.idx"
  b=$("$bench" --items "$items" --noise 1.5 --memory "$spec" --save "$f" | grep '^build ')
  l=$("$bench" --load "$f" | grep '^load ')
  bs=$(sed -n 's/.* in \([0-9.]*\) s, store.*/\1/p' <<< "$b")
  mib=$(sed -n 's/.*store \([0-9.]*\) MiB.*/\1/p' <<< "$b")
  bpi=$(sed -n 's/.*MiB (\([0-9]*\) B\/item).*/\1/p' <<< "$b")
  bpeak=$(sed -n 's/.* = \([0-9.]*\)x the store/\1/p' <<< "$b")
  ls_=$(sed -n 's/.* in \([0-9.]*\) s, store.*/\1/p' <<< "$l")
  lpeak=$(sed -n 's/.* = \([0-9.]*\)x the store/\1/p' <<< "$l")
  lmib=$(sed -n 's/.*store \([0-9.]*\) MiB.*/\1/p' <<< "$l")
  fmib=$(awk -v b="$(stat -c %s "$f")" 'BEGIN { printf "%.1f", b / 1048576 }')
  echo "| $spec | $((items - 1)) | $bs | $mib | $bpi | ${bpeak}x | $fmib | $ls_ | $lmib | ${lpeak}x |"
done
