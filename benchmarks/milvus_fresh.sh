#!/usr/bin/env bash
# Recall of milvus:// on fresh rows (benchmarks/milvus_fresh.py) against a real Milvus 2.3.5 started
# with each setting of its growing segments' interim index: the default (nlist 128, nprobe 16),
# every list probed (nprobe=128, what scripts/milvus-server.sh starts CI's server with) and no
# interim index (a brute-force scan of the growing segment); diffuse and clustered data.
#   benchmarks/milvus_fresh.sh [--items 20000] [--users 20] [--seconds 1]
set -euo pipefail
cd "$(dirname "$0")/.."
items=20000 users=20 seconds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || { echo ".venv (mindrec's Python package) missing: scripts/setup.sh" >&2; exit 1; }
dir=$(mktemp -d)
trap 'bash scripts/milvus-server.sh stop "$dir/m" > /dev/null 2>&1 || true; rm -rf "$dir"' EXIT
echo "| server setting | data | items | seconds after the write | top-50 overlap with exact |"
echo "|---|---|---:|---:|---:|"
for setting in "default" "queryNode.segcore.interimIndex.nprobe=128" "queryNode.segcore.interimIndex.enableIndex=false"; do
  extra=""
  [ "$setting" != default ] && extra=$setting
  MILVUS_EXTRA_CONFIG="$extra" bash scripts/milvus-server.sh start "$dir/m" > /dev/null
  # shellcheck disable=SC1091
  . "$dir/m/env"
  for data in diffuse clustered; do
    line=$(MINDREC_MILVUS_TOKEN=$MILVUS_TOKEN .venv/bin/python benchmarks/milvus_fresh.py "milvus://$MILVUS_URL" \
      --items "$items" --users "$users" --data "$data" --seconds "$seconds")
    echo "| $setting | $data | $items | $seconds | $(sed -n 's/.*overlap=\([0-9.]*\).*/\1/p' <<< "$line") |"
  done
  bash scripts/milvus-server.sh stop "$dir/m" > /dev/null
done
