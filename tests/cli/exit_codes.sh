#!/usr/bin/env bash
# The command line's exit statuses tell the kind of failure apart (README "Command line"):
# 2 usage, 3 configuration (pairing included), 4 input, 5 I/O (unreachable servers included),
# 7 unsupported; 6 (a remote store's refusal) is checked against a real Milvus in tests/milvus.
#   exit_codes.sh MINDREC CONFIG WEIGHTS INDEX OTHER_WEIGHTS
set -u
cli=$1 cfg=$2 weights=$3 index=$4 other=$5
fail=0
expect() {
  local want=$1 got
  shift
  "$@" > /dev/null 2>&1
  got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: exit $got, expected $want: $*"
    fail=1
  else
    echo "ok: exit $got: $*"
  fi
}
expect 0 "$cli" --version
expect 2 "$cli" frobnicate
expect 2 "$cli" recall --config "$cfg"
expect 2 "$cli" recall --config "$cfg" --weights "$weights" --index "$index" --hist 1 --topk 0
expect 3 "$cli" init --config "$(dirname "$0")/../../README.md" --out /tmp/mindrec-exit-codes.safetensors
expect 3 "$cli" recall --config "$cfg" --weights "$other" --index "$index" --hist 43,23,65
expect 4 "$cli" recall --config "$cfg" --weights "$weights" --index "$index" --hist 43,x
expect 2 "$cli" recall --config "$cfg" --weights "$weights" --hist 43 --index "$index" --store flat
expect 4 "$cli" recall --config "$cfg" --weights "$weights" --hist 43
expect 5 "$cli" infer --config "$cfg" --weights "$weights" --data "$(dirname "$0")/../../data/amazonbook-sample/valid" \
  --out /nonexistent-dir/u.npy
expect 5 "$cli" recall --config "$cfg" --weights "$weights" --store "milvus://127.0.0.1:1/items?timeout=1&retries=0" --hist 43
# cuda:flat: Unsupported in a build without CUDA, CudaError without a device (both 7).
if ! nvidia-smi > /dev/null 2>&1; then
  expect 7 "$cli" recall --config "$cfg" --weights "$weights" --store cuda:flat --hist 43
fi
exit $fail
