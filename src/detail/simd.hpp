// Private: the hot per-vector kernels of the graph and compressed-list indexes (inner product,
// squared L2, and the SQ8 code scan), chosen once at run time for the CPU the process runs on:
// AVX-512F, else AVX2 + FMA, else the x86-64 baseline (SSE2), else (not x86) portable loops.
// A generic build (MINDREC_NATIVE=OFF, -march=x86-64) thus still runs AVX-512 on a machine that
// has it; MINDREC_SIMD=avx512|avx2|sse2|scalar forces a level (benchmarks, tests).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mindrec::detail {

/// Sum of a[i] * b[i].
using DotFn = float (*)(const float* a, const float* b, size_t n);
/// Sum of (a[i] - b[i])^2.
using L2Fn = float (*)(const float* a, const float* b, size_t n);
/// Sum of q[i] * code[i] over uint8 codes (the SQ8 scan's inner loop: the caller folds the
/// per-dimension scale into q and the offsets into a constant).
using DotU8Fn = float (*)(const float* q, const uint8_t* code, size_t n);

struct SimdKernels {
  DotFn dot;
  L2Fn l2sq;
  DotU8Fn dot_u8;
  const char* level;  // "avx512", "avx2", "sse2" or "scalar"
};

/// The kernels for this CPU (resolved on first use; thread-safe).
const SimdKernels& simd();

/// The kernels of one level, for tests that compare levels; nullptr where this CPU or build
/// cannot run it.
const SimdKernels* simd_level(const char* level);

}  // namespace mindrec::detail
