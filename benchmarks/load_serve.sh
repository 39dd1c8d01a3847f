#!/usr/bin/env bash
# Load test of mindrec-serve's /rec/recall on loopback with wrk (Debian package), bounded in
# time. Starts the server on a free port, inserts the model's item vectors, runs wrk, prints
# requests/s, latency p50/p99 and the number of failed requests, and fails if any failed.
#
#   benchmarks/load_serve.sh [--config C] [--weights W] [--store SPEC] [--seconds S]
#                            [--connections N] [--threads T] [--server-threads T]
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/amazonbook-sample.yaml
weights=output/amazonbook-sample/best.safetensors
store=flat seconds=10 connections=8 wrk_threads=1 server_threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --weights) weights=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) wrk_threads=$2; shift 2 ;;
    --server-threads) server_threads=$2; shift 2 ;;
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
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$log")
[ -n "$port" ] || { cat "$log" >&2; exit 1; }
url=http://127.0.0.1:$port
items=$(curl -s -X POST "$url/rec/insert_data" | sed -n 's/.*"inserted":\([0-9]*\).*/\1/p')
item_count=$(sed -n 's/.*"item_count":\([0-9]*\).*/\1/p' <<< "$(curl -s "$url/healthz")")
echo "mindrec-serve on $url: $items item vectors in '$store', $server_threads HTTP threads"

out=$(MINDREC_LOAD_ITEMS=$item_count wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" \
      --latency -s benchmarks/load_serve.lua "$url")
echo "$out"
rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
p50=$(awk '$1 == "50%" {print $2}' <<< "$out")
p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
bad=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<< "$out")
sock=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<< "$out")
total=$(awk '/requests in/ {print $1}' <<< "$out")
echo "| /rec/recall (1 user, top_k 50, $store) | $connections conn | ${seconds} s | $total requests | ${rps} req/s | p50 $p50 | p99 $p99 | failed ${bad:-0} + socket errors ${sock:-0} |"
if [ "${bad:-0}" != 0 ] || [ "${sock:-0}" != 0 ] || [ -z "$total" ] || [ "$total" = 0 ]; then
  echo "load test FAILED: failed requests or socket errors" >&2
  exit 1
fi
