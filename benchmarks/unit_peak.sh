#!/usr/bin/env bash
# The multiply-add rate one core's vector units reach, the bound the IVF assignment's kernels
# are held against (RESULTS: the nightly cycle): 16 independent accumulators, no loads, for
#   vpdpbusd zmm (AVX-512 VNNI: 64 u8 x s8 products into int32 an instruction) and
#   vfmadd zmm   (AVX-512F: 16 float multiply-adds an instruction).
# Compiled here with g++ -O2 (the source below); a unit the CPU lacks is skipped. Prints
# instructions/s and multiply-adds/s per core, best of ROUNDS (default 3), one thread.
#
#   benchmarks/unit_peak.sh [--rounds 3]
set -euo pipefail
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/peak.cpp" <<'EOF'
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

// Empty asm statements keep every accumulator live in a register across iterations.
#define KEEP(a)                                                                                  \
  asm volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]),      \
               "+v"(a[6]), "+v"(a[7]));                                                          \
  asm volatile("" : "+v"(a[8]), "+v"(a[9]), "+v"(a[10]), "+v"(a[11]), "+v"(a[12]), "+v"(a[13]), \
               "+v"(a[14]), "+v"(a[15]))

__attribute__((target("avx512f,avx512bw,avx512vnni"))) long vnni(long iters) {
  __m512i a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_epi32(i);
  const __m512i x = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x02020202);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) a[i] = _mm512_dpbusd_epi32(a[i], x, b);
    KEEP(a);
  }
  long s = 0;
  for (int i = 0; i < 16; ++i) s += _mm512_reduce_add_epi32(a[i]);
  return s;
}

__attribute__((target("avx512f"))) float fma_loop(long iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(0.01f * i);
  const __m512 x = _mm512_set1_ps(0.5f), b = _mm512_set1_ps(0.25f);  // a -> 0.5 a + 0.25: stays finite
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], x, b);
    KEEP(a);
  }
  float s = 0;
  for (int i = 0; i < 16; ++i) s += _mm512_reduce_add_ps(a[i]);
  return s;
}

template <class F>
double rate(F f, long iters) {  // instructions a second
  const auto t0 = std::chrono::steady_clock::now();
  volatile auto keep = f(iters);
  (void)keep;
  return double(iters) * 16 / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const long iters = 50000000;
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) {
    double best = 0;
    for (int r = 0; r < rounds; ++r) best = std::max(best, rate(vnni, iters));
    std::printf("vpdpbusd zmm: %.2f G instructions/s, %.1f G multiply-adds/s (int8)\n", best / 1e9, best * 64 / 1e9);
  } else {
    std::printf("vpdpbusd zmm: no AVX-512 VNNI here\n");
  }
  if (__builtin_cpu_supports("avx512f")) {
    double best = 0;
    for (int r = 0; r < rounds; ++r) best = std::max(best, rate(fma_loop, iters));
    std::printf("vfmadd zmm: %.2f G instructions/s, %.1f G multiply-adds/s (float)\n", best / 1e9, best * 16 / 1e9);
  } else {
    std::printf("vfmadd zmm: no AVX-512F here\n");
  }
}
EOF
g++ -std=c++17 -O2 -o "$tmp/peak" "$tmp/peak.cpp"
"$tmp/peak" "$rounds"
