#!/usr/bin/env bash
# The hnsw store's level-0 block on transparent huge pages (madvise) against 4 KiB pages, on the
# same graph in one run: bench_store --search-only on the diffuse set (noise 1.5), the graph
# built once and loaded from an index cache by every round; rounds alternate
# MINDREC_HUGE_PAGES=0 (baseline: 4 KiB pages) and the default (huge pages advised). Prints
# each round's row, the median p50 / p99 / users/s of each side and their ratios
# (baseline / huge: > 1 means huge pages are faster).
#
#   benchmarks/hnsw_huge_pages.sh [--items N] [--users U] [--spec SPEC] [--rounds R] [--build DIR]
#
# Huge pages are granted only where /sys/kernel/mm/transparent_hugepage/enabled is "always" or
# "madvise" (printed); elsewhere both sides run on 4 KiB pages and the ratio is about 1.
set -euo pipefail
cd "$(dirname "$0")/.."
items=367983 users=1000 rounds=3 build=build spec="hnsw:M=32,ef_construction=200?ef=64"
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --spec) spec=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
echo "transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
run() {  # run HUGE(0|1): prints the spec's row
  local env=()
  [ "$1" = 0 ] && env=(MINDREC_HUGE_PAGES=0)
  env "${env[@]}" "$build/benchmarks/bench_store" --items "$items" --users "$users" --noise 1.5 --search-only \
    --index-cache "$cache" --backends "$spec" | grep -F "| $spec |"
}
run 1 >/dev/null  # builds the graph once (saved to the cache)
rows=()
for r in $(seq 1 "$rounds"); do
  for h in 0 1; do
    row=$(run "$h")
    echo "round $r huge=$h $row"
    rows+=("$h $row")
  done
done
# | store | build s | insert items/s | memory MiB | recall | batch users/s | p50 | p99 |
printf '%s\n' "${rows[@]}" | awk -F'|' '
  { h = substr($1, 1, 1); n[h]++; rec[h] = $6; u[h, n[h]] = $7; p50[h, n[h]] = $8; p99[h, n[h]] = $9 }
  function median(a, h, k,   i, j, t, v) {
    for (i = 1; i <= k; i++) v[i] = a[h, i] + 0
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
  }
  END {
    for (h = 0; h <= 1; h++) {
      m50[h] = median(p50, h, n[h]); m99[h] = median(p99, h, n[h]); mu[h] = median(u, h, n[h])
      printf "%s: recall %s, median p50 %.3f ms, p99 %.3f ms, %d users/s (%d rounds)\n",
             h ? "huge pages" : "4 KiB pages (MINDREC_HUGE_PAGES=0)", rec[h], m50[h], m99[h], mu[h], n[h]
    }
    printf "ratio 4 KiB / huge: p50 %.2fx, p99 %.2fx; users/s huge / 4 KiB: %.2fx\n",
           m50[0] / m50[1], m99[0] / m99[1], mu[1] / mu[0]
  }'
