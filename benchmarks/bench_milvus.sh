#!/usr/bin/env bash
# milvus:// against the in-process stores on the bench_store data (367,983 x 64 clustered item
# vectors, 2,000 users with 4 interests each, merged top-50), in one run on one machine: a real
# Milvus 2.3.5 server (scripts/milvus-server.sh; started here, stopped by PID on exit) on
# loopback, beside `flat` (exact) and faiss:IVF4096,Flat. Columns: build s and insert items/s
# (the whole catalogue written and visible), client memory, recall@50 against exact search,
# batch users/s (all threads; milvus: one request per interest, connections= at once),
# single-user p50/p99 on one thread (milvus: the user's K requests concurrently). The server's
# own memory (VmHWM, VmRSS) is printed after the table.
#
#   benchmarks/bench_milvus.sh [--items N] [--users U] [--fetch "256 1024"] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
items=367983 users=2000 fetch="256 1024" build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --fetch) fetch=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'bash scripts/milvus-server.sh stop "$work/milvus" || true; rm -rf "$work"' EXIT
bash scripts/milvus-server.sh start "$work/milvus" >/dev/null
# shellcheck disable=SC1091
. "$work/milvus/env"
export MINDREC_MILVUS_TOKEN=$MILVUS_TOKEN
backends="flat,faiss:IVF4096,Flat?nprobe=16,faiss:IVF4096,Flat?nprobe=64"
for f in $fetch; do backends+=",milvus://$MILVUS_URL/bench_items?fetch=$f"; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); Milvus 2.3.5 (PyPI) on loopback; $(date -u +%F)"
"$build/benchmarks/bench_store" --items "$items" --users "$users" --backends "$backends"
echo "milvus server: $(grep -E 'VmHWM|VmRSS' /proc/"$MILVUS_PID"/status | tr -s ' \t\n' ' ')"
