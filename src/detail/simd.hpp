// Private: the hot per-vector kernels of the graph and compressed-list indexes (inner product,
// squared L2, the SQ8 code scan and the 4-bit PQ block scan), chosen once at run time for the
// CPU the process runs on: AVX-512F + BW, else AVX2 + FMA, else the x86-64 baseline (SSE2; its
// 4-bit scan is the portable one: pshufb is SSSE3), else (not x86) portable loops.
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

/// The 4-bit PQ fast-scan kernel: one block of 32 vectors whose codes are packed the way
/// Faiss's IVF-PQ fast-scan lists pack them (faiss/impl/pq4_fast_scan.h, bbs = 32): for each
/// pair of sub-quantizers (2p, 2p+1) 32 bytes, byte j < 16 holding sub-quantizer 2p's codes of
/// vectors perm(j) (low nibble) and perm(j) + 16 (high nibble), byte 16 + j the same for 2p + 1,
/// perm = 0, 8, 1, 9, ..., 7, 15. lut holds 16 uint8 entries per sub-quantizer (2 * npairs of
/// them). Writes sums[v] = sum over sub-quantizers m of lut[m][code_m(v)] for v < 32 and
/// returns the bit mask of the vectors whose sum is >= threshold. npairs <= 64, so that
/// sums stay below 32768; threshold <= 32767.
using Pq4BlockFn = uint32_t (*)(const uint8_t* block, const uint8_t* lut, size_t npairs, uint16_t threshold,
                                uint16_t* sums);

/// Where vector v's code for sub-quantizer m sits in such a block: byte offset and nibble
/// shift (0 or 4).
inline void pq4_code_position(size_t v, size_t m, size_t* byte, unsigned* shift) {
  const size_t u = v & 15;
  *byte = (m >> 1) * 32 + (m & 1) * 16 + (u < 8 ? 2 * u : 2 * (u - 8) + 1);
  *shift = v < 16 ? 0u : 4u;
}

/// Inner products of nq queries q [nq, d] with vectors stored 16 to a block, dimension-major:
/// block b holds vectors 16b..16b+15 as [d][16] (ct[(b * d + j) * 16 + l] = vector 16b + l,
/// dimension j). Writes out [nq, nblocks * 16]. The IVF coarse assignment of one user's few
/// queries against every centroid: no packing per call (Eigen's GEMM packs the centroids each
/// time, most of that step's cost).
using Block16DotFn = void (*)(const float* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out);
/// The same over uint8 codes in the same layout (ct[(b * d + j) * 16 + l]): the filter
/// planner's exact path scores the allowed items' SQ8 codes this way (the caller folds the
/// per-dimension scale into q and the offsets into a constant), every query of a call per load.
using Block16DotU8Fn = void (*)(const uint8_t* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out);

/// Inner products of nq queries q [nq, d] with n row-major vectors x [n, d]: out[i * ldo + r] =
/// <q_i, x_r>. Each score is summed in an order fixed by d and the level alone (per-lane sums
/// over the dimensions, then one reduction tree shared by every row), so a score does not
/// depend on n, nq, the row's position or the other queries: the flat store's exact scan is
/// the same for one user alone and inside any batch (a GEMM's rounding depends on the shapes).
using RowsDotFn = void (*)(const float* x, size_t n, size_t d, const float* q, size_t nq, float* out, size_t ldo);

struct SimdKernels {
  DotFn dot;
  L2Fn l2sq;
  DotU8Fn dot_u8;
  Pq4BlockFn pq4_block;
  Block16DotFn block16_dot;
  Block16DotU8Fn block16_dot_u8;
  RowsDotFn rows_dot;
  const char* level;  // "avx512", "avx2", "sse2" or "scalar"
};

/// The kernels for this CPU (resolved on first use; thread-safe).
const SimdKernels& simd();

/// The kernels of one level, for tests that compare levels; nullptr where this CPU or build
/// cannot run it.
const SimdKernels* simd_level(const char* level);

}  // namespace mindrec::detail
