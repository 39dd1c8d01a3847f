#!/usr/bin/env bash
# Load test of mindrec-serve's /rec/recall on loopback with wrk (Debian package), bounded in
# time. Starts the server on a free port, inserts the model's item vectors, runs wrk, prints
# requests/s, latency p50/p99 and the number of failed requests, and fails if any failed.
#
#   benchmarks/load_serve.sh [--config C] [--weights W] [--store SPEC] [--seconds S]
#                            [--connections N] [--threads T] [--server-threads T] [--reloads N]
# With --reloads N, POST /admin/reload swaps the model and store N times during the run
# (evenly spaced; each reload reads the weights again and rebuilds the store aside): the run
# fails if any request fails or any reload does not answer 200.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
config=configs/amazonbook-sample.yaml
weights=output/amazonbook-sample/best.safetensors
store=flat seconds=10 connections=8 wrk_threads=1 server_threads=2 reloads=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --weights) weights=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) wrk_threads=$2; shift 2 ;;
    --server-threads) server_threads=$2; shift 2 ;;
    --reloads) reloads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
serve=build/tools/mindrec-serve
[ -x "$serve" ] || { echo "$serve not built (scripts/setup.sh)" >&2; exit 1; }

log=$(mktemp)
"$serve" --config "$config" --weights "$weights" --store "$store" --port 0 \
  --threads "$server_threads" --quiet > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
url=$(serve_url "$log" "$pid" 300) || exit 1
items=$(curl -s -X POST "$url/rec/insert_data" | sed -n 's/.*"inserted":\([0-9]*\).*/\1/p')
item_count=$(sed -n 's/.*"item_count":\([0-9]*\).*/\1/p' <<< "$(curl -s "$url/healthz")")
echo "mindrec-serve on $url: $items item vectors in '$store', $server_threads HTTP threads"

reload_log=$(mktemp)
if [ "$reloads" -gt 0 ]; then
  (
    for i in $(seq "$reloads"); do
      sleep "$(awk -v s="$seconds" -v n="$reloads" 'BEGIN { printf "%.2f", s / (n + 1) }')"
      curl -s -o /dev/null -w "%{http_code}\n" -X POST "$url/admin/reload" >> "$reload_log"
    done
  ) &
  reloader=$!
fi
out=$(MINDREC_LOAD_ITEMS=$item_count wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" \
      --latency -s benchmarks/load_serve.lua "$url")
echo "$out"
if [ "$reloads" -gt 0 ]; then
  wait "$reloader"
  ok_reloads=$(grep -c '^200$' "$reload_log" || true)
  generation=$(sed -n 's/.*"generation":\([0-9]*\).*/\1/p' <<< "$(curl -s "$url/healthz")")
  echo "reloads during the run: $ok_reloads of $reloads answered 200; the server is at generation $generation"
  rm -f "$reload_log"
  if [ "$ok_reloads" != "$reloads" ] || [ "$generation" != "$reloads" ]; then
    echo "load test FAILED: a reload did not succeed" >&2
    exit 1
  fi
fi
rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
p50=$(awk '$1 == "50%" {print $2}' <<< "$out")
p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
bad=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<< "$out")
sock=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<< "$out")
total=$(awk '/requests in/ {print $1}' <<< "$out")
echo "| /rec/recall (1 user, top_k 50, $store$([ "$reloads" -gt 0 ] && echo ", $reloads reloads")) | $connections conn | ${seconds} s | $total requests | ${rps} req/s | p50 $p50 | p99 $p99 | failed ${bad:-0} + socket errors ${sock:-0} |"
if [ "${bad:-0}" != 0 ] || [ "${sock:-0}" != 0 ] || [ -z "$total" ] || [ "$total" = 0 ]; then
  echo "load test FAILED: failed requests or socket errors" >&2
  exit 1
fi
