#!/usr/bin/env bash
# The IVF first fill's coarse assignment on each path this CPU has, one run (issue 28 item 3):
# `mindrec index --store faiss:IVF<L>,PQ32x4fs` of the same diffuse model (bench_scale
# gen-weights --noise 1.5, the cycle's data) with
#   gemm: Eigen's float GEMM and the vectorised row maximum (MINDREC_SIMD=avx512, or avx2 where
#         the CPU has no AVX-512; the baseline),
#   vnni: AVX-512 VNNI in int8 (MINDREC_SIMD=vnni), where the CPU has it,
#   amx:  AMX-BF16 tiles (MINDREC_SIMD=amx), where the CPU has them,
# the paths alternated ROUNDS times. Prints each build's time ("indexed ... in S s", the tool's
# own figure) and items/s, and each path's best against the GEMM's best. The three give the same
# lists up to float rounding of near ties (tests/best_rows). Last line:
#   items=N nlist=L gemm_items_per_s=A vnni_items_per_s=B amx_items_per_s=C vnni_vs_gemm=B/A amx_vs_gemm=C/A
# (a path the CPU lacks: 0 and "-").
#
#   benchmarks/ivf_kernels.sh [--items 2000000] [--nlist 4096] [--rounds 2] [--dir D] [--build DIR]
# Full size (the cycle's step): --items 20000000 --nlist 16384 --rounds 1 (the GEMM alone ~10 minutes
# on 2 cores). CI runs --items 100000 --nlist 1024.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
items=2000000 nlist=4096 rounds=2 dir="" build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --nlist) nlist=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
require_built "$build/benchmarks/bench_scale" "$build/tools/mindrec" "$build/tests/mindrec_best_rows_tests"
work_dir ivf-kernels
[ -f "$dir/w-$items.safetensors" ] ||
  "$build/benchmarks/bench_scale" gen-weights --items "$items" --noise 1.5 --out "$dir/w-$items.safetensors" \
    --config-out "$dir/c-$items.yaml" > /dev/null
# Which kernels this process may run: the kernel test prints them ("kernel: amx", "kernel: vnni").
kernels=$("$build/tests/mindrec_best_rows_tests" --no-run 2>/dev/null | sed -n 's/^kernel: //p' | tr '\n' ' ' || true)
gemm_level=avx2
grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && gemm_level=avx512
paths="gemm"
for k in vnni amx; do
  case " $kernels " in *" $k "*) paths="$paths $k" ;; esac
done
echo "== IVF first fill: $items items x 64, faiss:IVF$nlist,PQ32x4fs, $(nproc) cores, paths: $paths (gemm = MINDREC_SIMD=$gemm_level); $(date -u +%F); $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
declare -A best=([gemm]=0 [vnni]=0 [amx]=0)
for r in $(seq 1 "$rounds"); do
  for p in $paths; do
    simd=$p
    [ "$p" = gemm ] && simd=$gemm_level
    out=$(MINDREC_SIMD=$simd "$build/tools/mindrec" index --config "$dir/c-$items.yaml" --weights "$dir/w-$items.safetensors" \
      --store "faiss:IVF$nlist,PQ32x4fs" --out "$dir/ivf.idx" 2>&1 | tail -1)
    s=$(sed -n 's/.* in \([0-9.]*\) s -> .*/\1/p' <<<"$out")
    [ -n "$s" ] || { echo "mindrec index printed no time: $out" >&2; exit 1; }
    rate=$(awk -v n="$items" -v s="$s" 'BEGIN { printf "%d", n / s }')
    echo "  round $r $p: $s s, $rate items/s"
    [ "$rate" -gt "${best[$p]}" ] && best[$p]=$rate
  done
done
rm -f "$dir/ivf.idx"
vs() { [ "${best[$1]}" -gt 0 ] && ratio "${best[$1]}" "${best[gemm]}" || echo -; }
echo "items=$items nlist=$nlist gemm_items_per_s=${best[gemm]} vnni_items_per_s=${best[vnni]} amx_items_per_s=${best[amx]} vnni_vs_gemm=$(vs vnni) amx_vs_gemm=$(vs amx)"
