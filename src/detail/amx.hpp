// Private: the best of k vectors for each of n vectors by inner product on Intel AMX tiles
// (AMX-BF16: 16 x 16 x 32 bf16 products a tile instruction, about 16 times the multiply-adds
// a cycle of AVX-512 float FMAs), for the IVF's coarse training and first assignment
// (store/ivf_build.cpp), whose cost is that product at 16,384 lists and more.
//
// Exact in the sense that matters: every score is first approximated in bf16 with float
// accumulation, whose error is bounded (below); every candidate within twice that bound of
// a row's best approximate score is then scored again exactly in float, and the best of
// those is the answer. A row whose candidates are more than kCandidates (equal vectors among
// the k, a zero row) is scored exactly against all k. So the answer is the float argmax up to
// float rounding of near ties.
//
// Error bound: bf16 keeps 8 significant bits (unit roundoff u = 2^-8, round to nearest
// even); a product of two rounded values is within (2u + u^2) of the exact one, and the tile
// unit sums the exact bf16 products in float (d x 2^-24 of the sum of their magnitudes). By
// Cauchy-Schwarz the sum of |x_t c_t| is at most |x| |c|, so |approx - exact| <=
// (2^-7 + 2^-16 + d 2^-24) |x| |c| < 2^-6 |x| max|c| for d < 2^17: the margin used is that,
// doubled (two approximations compared), plus the float rounding of subtracting h.
#pragma once

#include <cstdint>

namespace mindrec::detail {

/// Whether this process may run the AMX-BF16 kernel: an x86-64 CPU with AMX-TILE, AMX-BF16 and
/// AVX-512F, Linux granting the tile state (arch_prctl, asked once), and MINDREC_SIMD not
/// forcing a level (MINDREC_SIMD=avx512, avx2, ... turn it off; "amx" or unset leave it on).
bool amx_bf16_usable();

/// For each of the n rows of x [n, d], the j < k maximising <x, c_j> - h[j] (c [k, d]; h
/// nullptr: 0; ties: the smaller j, among rows scored equal in float) into best[i], and that
/// float score into score[i] when score is given. On `threads` threads (0: the thread policy's).
/// Returns false, writing nothing, where amx_bf16_usable() is false.
bool amx_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                   int64_t* best, float* score);

}  // namespace mindrec::detail
