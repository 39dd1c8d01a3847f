// Private: the best of k vectors for each of n vectors by inner product, on the CPU's
// low-precision units, for the IVF's coarse training and first assignment
// (store/ivf_build.cpp), whose cost is that product at 16,384 lists and more:
// - Intel AMX tiles (AMX-BF16: 16 x 16 x 32 bf16 products a tile instruction, about 16 times
//   the multiply-adds a cycle of AVX-512 float FMAs);
// - AVX-512 VNNI (vpdpbusd: 64 u8 x s8 products into 16 int32 a instruction, 4 times a float
//   FMA's multiply-adds; AMD Zen 4 and later, Intel since Ice Lake), for CPUs without AMX.
//
// Exact in the sense that matters: every score is first approximated, with an error bounded
// (below); every candidate within twice that bound of a row's best approximate score is then
// scored again exactly in float, and the best of those is the answer. A row whose candidates
// are more than kCandidates (equal vectors among the k, a zero row) is scored exactly against
// all k. So the answer is the float argmax up to float rounding of near ties, whichever unit
// made the approximation.
//
// bf16 error bound: bf16 keeps 8 significant bits (unit roundoff u = 2^-8, round to nearest
// even); a product of two rounded values is within (2u + u^2) of the exact one, and the tile
// unit sums the exact bf16 products in float (d x 2^-24 of the sum of their magnitudes). By
// Cauchy-Schwarz the sum of |x_t c_t| is at most |x| |c|, so |approx - exact| <=
// (2^-7 + 2^-16 + d 2^-24) |x| |c| < 2^-6 |x| max|c| for d < 2^17: the margin used is that,
// doubled (two approximations compared), plus the float rounding of subtracting h.
//
// int8 error bound: a row x is scaled by s_x = max|x_t| / 127 and rounded (q_x = round(x /
// s_x), |q_x,t| <= 127), each centroid likewise (s_j, q_j); the integer sum q_x . q_j is exact
// (int32: d <= 4096), so the approximation is s_x s_j (q_x . q_j) = x~ . c~_j up to three float
// roundings. x . c_j - x~ . c~_j = (x - x~) . c_j + x~ . (c_j - c~_j), so by Cauchy-Schwarz the
// error is at most e_x |c_j| + |x~| e_j with e_x = |x - x~|, e_j = |c_j - c~_j| (both measured
// when the vectors are rounded): at most e_x max|c| + |x~| max e_j for the row, a few 10^-3 of
// |x| max|c| on real data (each coordinate off by at most half a step, the steps a 254th of the
// largest coordinate). The margin is twice that, plus the roundings (2^-20 (|x~| max|c| + max|h|)).
#pragma once

#include <cstdint>

namespace mindrec::detail {

/// Whether this process may run the AMX-BF16 kernel: an x86-64 CPU with AMX-TILE, AMX-BF16 and
/// AVX-512F, Linux granting the tile state (arch_prctl, asked once), and MINDREC_SIMD unset or
/// "amx" (MINDREC_SIMD=vnni, avx512, avx2, ... turn it off).
bool amx_bf16_usable();

/// Whether this process may run the VNNI int8 kernel: an x86-64 CPU with AVX-512F, AVX-512BW
/// and AVX-512 VNNI, and MINDREC_SIMD unset, "amx" or "vnni" (a vector level turns it off).
bool vnni_int8_usable();

/// For each of the n rows of x [n, d], the j < k maximising <x, c_j> - h[j] (c [k, d]; h
/// nullptr: 0; ties: the smaller j, among rows scored equal in float) into best[i], and that
/// float score into score[i] when score is given. On `threads` threads (0: the thread policy's).
/// Returns false, writing nothing, where amx_bf16_usable() is false.
bool amx_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                   int64_t* best, float* score);

/// The same on AVX-512 VNNI in int8 (the same answers). Returns false, writing nothing, where
/// vnni_int8_usable() is false or d > 4096 (the int32 sums' range).
bool vnni_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                    int64_t* best, float* score);

/// amx_best_rows where the CPU has AMX, else vnni_best_rows; false where neither ran.
bool lowp_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                    int64_t* best, float* score);

}  // namespace mindrec::detail
