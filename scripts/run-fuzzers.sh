#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for a bounded time from its committed seed corpus
# (copied, so the repository's corpus does not grow), under ASan+UBSan. A crash, leak, timeout
# or sanitizer report fails the run and leaves the input in $OUT_DIR/<target>/; keep it as a
# regression input in tests/fuzz/regressions/<target>/ once fixed (ctest replays those).
#
#   scripts/run-fuzzers.sh BUILD_DIR [SECONDS_PER_TARGET] [RUNS]   (default 20 s, 30000 runs)
# Each target stops after RUNS inputs or SECONDS, whichever comes first, from a fixed seed
# (FUZZ_SEED, default 1): the same inputs every run, so CI does not turn red at random on an
# input found by chance; a longer exploration is `FUZZ_SEED=0 scripts/run-fuzzers.sh B 600 0`.
# BUILD_DIR: configured with clang++, -DMINDREC_BUILD_FUZZERS=ON -DMINDREC_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/run-fuzzers.sh BUILD_DIR [SECONDS]}
seconds=${2:-20}
runs=${3:-30000}
seed=${FUZZ_SEED:-1}
out=${OUT_DIR:-$build/fuzz-out}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for dir in tests/fuzz/corpus/*/; do
  name=$(basename "$dir")
  exe="$build/tests/fuzz/fuzz_$name"
  [ -x "$exe" ] || { echo "FAIL: $exe not built" >&2; exit 1; }
  work="$out/$name"
  rm -rf "$work" && mkdir -p "$work/corpus"
  cp "$dir"* "$work/corpus/"
  asan=$ASAN_OPTIONS
  # Faiss 1.7.3's read_index leaks the index it was building when it throws on a malformed
  # payload (inside faiss::read_direct_map and friends, not in mindrec); leaks are not
  # counted for that target, every other sanitizer report still is.
  [ "$name" = store_file ] && asan="$asan:detect_leaks=0"
  if ASAN_OPTIONS=$asan "$exe" "$work/corpus" -max_total_time="$seconds" -runs="$runs" -seed="$seed" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -artifact_prefix="$work/" -print_final_stats=1 > "$work/log" 2>&1; then
    echo "fuzz_$name: $(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/log" | grep -oE '[0-9]+$') runs (seed $seed, at most ${seconds}s), no crash"
  else
    echo "FAIL: fuzz_$name found a problem (input in $work/):" >&2
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$work/log" | head -20 >&2
    status=1
  fi
done
exit $status
