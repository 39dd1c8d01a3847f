#!/usr/bin/env bash
# Two settings of the hnsw store on the same graph in one run: bench_store --search-only on the
# diffuse set (noise 1.5), the graph built once and loaded from an index cache by every round;
# rounds alternate the baseline and the default. Prints each round's row, the median p50 / p99 /
# users/s of each side and their ratios (baseline / default: > 1 means the default is faster).
#
#   benchmarks/hnsw_ab.sh --compare walk|huge_pages [--items N] [--users U] [--spec SPEC]
#                         [--rounds R] [--build DIR] [--cache DIR]
#
# --cache DIR: an index cache kept between runs (bench_store --index-cache); default: a
# temporary one, removed at exit.
# walk:       baseline `walk=0` (hnswlib's own search on the float vectors) against the default
#             walk on the elements' 8-bit codes with the beam scored exactly.
# huge_pages: baseline MINDREC_HUGE_PAGES=0 (4 KiB pages) against the level-0 block advised for
#             transparent huge pages, granted only where /sys/kernel/mm/transparent_hugepage/
#             enabled is "always" or "madvise" (printed); elsewhere the ratio is about 1.
set -euo pipefail
cd "$(dirname "$0")/.."
items=367983 users=1000 rounds=3 build=build spec="hnsw:M=32,ef_construction=200?ef=80" compare= cache=
while [ $# -gt 0 ]; do
  case "$1" in
    --compare) compare=$2; shift 2 ;;
    --items) items=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --spec) spec=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$compare" in
  walk) base_name="walk=0 (hnswlib's search, floats)" new_name="walk on 8-bit codes" ;;
  huge_pages) base_name="4 KiB pages (MINDREC_HUGE_PAGES=0)" new_name="huge pages"
    echo "transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)" ;;
  *) echo "--compare walk|huge_pages is required" >&2; exit 2 ;;
esac
if [ -z "$cache" ]; then
  cache=$(mktemp -d)
  trap 'rm -rf "$cache"' EXIT
fi
run() {  # run SIDE(0 baseline | 1 default): prints the row
  local env=() s=$spec
  if [ "$1" = 0 ]; then
    # walk=0 is a build parameter (hnsw:...,walk=0), before the search parameters.
    if [ "$compare" = walk ]; then
      local head=${spec%%\?*} tail=""
      [ "$head" != "$spec" ] && tail="?${spec#*\?}"
      if [ "$head" = hnsw ]; then s="hnsw:walk=0$tail"; else s="$head,walk=0$tail"; fi
    else env=(MINDREC_HUGE_PAGES=0); fi
  fi
  env "${env[@]}" "$build/benchmarks/bench_store" --items "$items" --users "$users" --noise 1.5 --search-only \
    --index-cache "$cache" --backends "$s" | grep -F "| $s |"
}
run 1 >/dev/null  # builds the graph once (saved to the cache)
rows=()
for r in $(seq 1 "$rounds"); do
  for h in 0 1; do
    row=$(run "$h")
    echo "round $r side=$h $row"
    rows+=("$h $row")
  done
done
# | store | build s | insert items/s | memory MiB | recall | batch users/s | p50 | p99 |
printf '%s\n' "${rows[@]}" | awk -F'|' -v base="$base_name" -v new="$new_name" '
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
             h ? new : base, rec[h], m50[h], m99[h], mu[h], n[h]
    }
    printf "ratio baseline / default: p50 %.2fx, p99 %.2fx; users/s default / baseline: %.2fx\n",
           m50[0] / m50[1], m99[0] / m99[1], mu[1] / mu[0]
  }'
