// Run-time dispatched kernels (simd.hpp). Each level is compiled with its own target
// attribute, so the file builds with the baseline flags and the AVX code runs only where
// __builtin_cpu_supports says it may.
#include "detail/simd.hpp"

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MINDREC_X86 1
#else
#define MINDREC_X86 0
#endif

namespace mindrec::detail {
namespace {

// ---- portable (any CPU): four partial sums the compiler can keep in registers ----
float dot_scalar(const float* a, const float* b, size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) s0 += a[i] * b[i], s1 += a[i + 1] * b[i + 1], s2 += a[i + 2] * b[i + 2], s3 += a[i + 3] * b[i + 3];
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}
float l2_scalar(const float* a, const float* b, size_t n) {
  float s0 = 0, s1 = 0;
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
    s0 += d0 * d0, s1 += d1 * d1;
  }
  for (; i < n; ++i) s0 += (a[i] - b[i]) * (a[i] - b[i]);
  return s0 + s1;
}
float dot_u8_scalar(const float* q, const uint8_t* c, size_t n) {
  float s0 = 0, s1 = 0;
  size_t i = 0;
  for (; i + 2 <= n; i += 2) s0 += q[i] * float(c[i]), s1 += q[i + 1] * float(c[i + 1]);
  for (; i < n; ++i) s0 += q[i] * float(c[i]);
  return s0 + s1;
}
uint32_t pq4_block_scalar(const uint8_t* block, const uint8_t* lut, size_t npairs, uint16_t threshold, uint16_t* sums) {
  uint32_t mask = 0;
  for (size_t v = 0; v < 32; ++v) {
    unsigned s = 0;
    for (size_t m = 0; m < 2 * npairs; ++m) {
      size_t byte;
      unsigned shift;
      pq4_code_position(v, m, &byte, &shift);
      s += lut[m * 16 + ((block[byte] >> shift) & 15u)];
    }
    sums[v] = uint16_t(s);
    if (s >= threshold) mask |= 1u << v;
  }
  return mask;
}

// Float vectors or uint8 codes (the caller folds scale and offset into q and a constant).
template <class T>
void block16_scalar(const T* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out) {
  const size_t stride = nblocks * 16;
  for (size_t b = 0; b < nblocks; ++b)
    for (size_t i = 0; i < nq; ++i) {
      float acc[16] = {};
      for (size_t j = 0; j < d; ++j) {
        const float qj = q[i * d + j];
        const T* c = ct + (b * d + j) * 16;
        for (size_t l = 0; l < 16; ++l) acc[l] += qj * float(c[l]);
      }
      for (size_t l = 0; l < 16; ++l) out[i * stride + b * 16 + l] = acc[l];
    }
}
void block16_dot_scalar(const float* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out) {
  block16_scalar(ct, nblocks, d, q, nq, out);
}
void block16_dot_u8_scalar(const uint8_t* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out) {
  block16_scalar(ct, nblocks, d, q, nq, out);
}
// Row scores through a level's own dot product (its order depends on d alone).
template <DotFn Dot>
void rows_dot_each(const float* x, size_t n, size_t d, const float* q, size_t nq, float* out, size_t ldo) {
  for (size_t r = 0; r < n; ++r)
    for (size_t i = 0; i < nq; ++i) out[i * ldo + r] = Dot(q + i * d, x + r * d, d);
}

#if MINDREC_X86
// ---- SSE2 (every x86-64) ----
float hsum128(__m128 v) {
  __m128 sh = _mm_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1));
  __m128 s = _mm_add_ps(v, sh);
  sh = _mm_movehl_ps(sh, s);
  return _mm_cvtss_f32(_mm_add_ss(s, sh));
}
float dot_sse2(const float* a, const float* b, size_t n) {
  __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
    s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(a + i + 4), _mm_loadu_ps(b + i + 4)));
  }
  float s = hsum128(_mm_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}
float l2_sse2(const float* a, const float* b, size_t n) {
  __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128 d0 = _mm_sub_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i));
    const __m128 d1 = _mm_sub_ps(_mm_loadu_ps(a + i + 4), _mm_loadu_ps(b + i + 4));
    s0 = _mm_add_ps(s0, _mm_mul_ps(d0, d0));
    s1 = _mm_add_ps(s1, _mm_mul_ps(d1, d1));
  }
  float s = hsum128(_mm_add_ps(s0, s1));
  for (; i < n; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}
float dot_u8_sse2(const float* q, const uint8_t* c, size_t n) {
  __m128 s0 = _mm_setzero_ps();
  const __m128i zero = _mm_setzero_si128();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + i)), zero);
    const __m128 lo = _mm_cvtepi32_ps(_mm_unpacklo_epi16(b, zero));
    const __m128 hi = _mm_cvtepi32_ps(_mm_unpackhi_epi16(b, zero));
    s0 = _mm_add_ps(s0, _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(q + i), lo), _mm_mul_ps(_mm_loadu_ps(q + i + 4), hi)));
  }
  float s = hsum128(s0);
  for (; i < n; ++i) s += q[i] * float(c[i]);
  return s;
}

// ---- AVX2 + FMA ----
__attribute__((target("avx2,fma"))) float hsum256(__m256 v) {
  return hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}
__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}
__attribute__((target("avx2,fma"))) float l2_avx2(const float* a, const float* b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(d, d, s0);
  }
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}
__attribute__((target("avx2,fma"))) float dot_u8_avx2(const float* q, const uint8_t* c, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i));
    const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)));
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), lo, s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), hi, s1);
  }
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += q[i] * float(c[i]);
  return s;
}

// The 4-bit scan, AVX2: per pair of sub-quantizers one 32-byte load of codes and one of the
// two 16-entry tables, split into low and high nibbles, looked up with pshufb (per 128-bit
// lane: lane 0 the pair's first sub-quantizer, lane 1 its second), added up as uint16 pairs of
// bytes. A uint16 lane holds (even vector) + 256 (odd vector), so a second accumulator of the
// odd bytes alone (>> 8) recovers both: even = all - (odd << 8), exact modulo 2^16 because
// the true sums stay below 2^15. Byte j's vectors are perm(j) = j/2 (even j) and 8 + j/2 (odd
// j), so even lanes are vectors 0..7 and odd lanes 8..15 (+16 for the high nibbles).
// (Helpers, not lambdas: a lambda does not inherit its enclosing function's target.)
__attribute__((target("avx2,fma"))) __m128i add_lanes_avx2(__m256i x) {
  return _mm_add_epi16(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
}
__attribute__((target("avx2,fma"))) uint32_t pq4_finish_avx2(__m256i lo, __m256i lo_odd, __m256i hi, __m256i hi_odd,
                                                               uint16_t threshold, uint16_t* sums) {
  const __m256i lo_even = _mm256_sub_epi16(lo, _mm256_slli_epi16(lo_odd, 8));
  const __m256i hi_even = _mm256_sub_epi16(hi, _mm256_slli_epi16(hi_odd, 8));
  const __m256i s0 = _mm256_set_m128i(add_lanes_avx2(lo_odd), add_lanes_avx2(lo_even));  // vectors 0..15
  const __m256i s1 = _mm256_set_m128i(add_lanes_avx2(hi_odd), add_lanes_avx2(hi_even));  // vectors 16..31
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums), s0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + 16), s1);
  const __m256i t = _mm256_set1_epi16(int16_t(int(threshold) - 1));
  const __m256i c = _mm256_packs_epi16(_mm256_cmpgt_epi16(s0, t), _mm256_cmpgt_epi16(s1, t));
  // packs works per lane (0-7, 16-23 | 8-15, 24-31): put the quarters back in vector order
  return uint32_t(_mm256_movemask_epi8(_mm256_permute4x64_epi64(c, 0xD8)));
}
__attribute__((target("avx2,fma"))) uint32_t pq4_block_avx2(const uint8_t* block, const uint8_t* lut, size_t npairs,
                                                              uint16_t threshold, uint16_t* sums) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  __m256i lo = _mm256_setzero_si256(), lo_odd = lo, hi = lo, hi_odd = lo;
  for (size_t p = 0; p < npairs; ++p) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32 * p));
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + 32 * p));
    const __m256i rl = _mm256_shuffle_epi8(l, _mm256_and_si256(b, nib));
    const __m256i rh = _mm256_shuffle_epi8(l, _mm256_and_si256(_mm256_srli_epi16(b, 4), nib));
    lo = _mm256_add_epi16(lo, rl);
    lo_odd = _mm256_add_epi16(lo_odd, _mm256_srli_epi16(rl, 8));
    hi = _mm256_add_epi16(hi, rh);
    hi_odd = _mm256_add_epi16(hi_odd, _mm256_srli_epi16(rh, 8));
  }
  return pq4_finish_avx2(lo, lo_odd, hi, hi_odd, threshold, sums);
}

// The block scores' loop over blocks and query groups: part[m - 1] scores m <= width queries
// against one block (the ISA kernels below, the query count a template parameter so that
// their accumulators stay in registers). T: float vectors or uint8 codes.
template <class T>
using Block16Part = void (*)(const T* cb, size_t d, const float* q, float* out, size_t stride);
template <class T>
void block16_drive(const Block16Part<T>* part, size_t width, const T* ct, size_t nblocks, size_t d, const float* q,
                   size_t nq, float* out) {
  const size_t stride = nblocks * 16;
  for (size_t b = 0; b < nblocks; ++b)
    for (size_t i0 = 0; i0 < nq; i0 += width) {
      const size_t m = nq - i0 < width ? nq - i0 : width;
      part[m - 1](ct + b * d * 16, d, q + i0 * d, out + i0 * stride + b * 16, stride);
    }
}

// One dimension's 16 values as two 8-lane float registers (codes widened once per load).
__attribute__((target("avx2,fma"))) inline void load16_avx2(const float* c, __m256* lo, __m256* hi) {
  *lo = _mm256_loadu_ps(c), *hi = _mm256_loadu_ps(c + 8);
}
__attribute__((target("avx2,fma"))) inline void load16_avx2(const uint8_t* c, __m256* lo, __m256* hi) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
  *lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(x));
  *hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(x, 8)));
}
// Block scores, AVX2: a block's 16 vectors are two 8-lane registers per dimension, each
// query's coordinate broadcast; up to four queries at a time (eight accumulators; the count a
// template parameter, so they stay in registers).
template <class T, int M>
__attribute__((target("avx2,fma"))) void block16_avx2_m(const T* cb, size_t d, const float* q, float* out,
                                                         size_t stride) {
  __m256 lo[M], hi[M];
  for (int i = 0; i < M; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
  for (size_t j = 0; j < d; ++j) {
    __m256 c0, c1;
    load16_avx2(cb + j * 16, &c0, &c1);
    for (int i = 0; i < M; ++i) {
      const __m256 qj = _mm256_broadcast_ss(q + size_t(i) * d + j);
      lo[i] = _mm256_fmadd_ps(c0, qj, lo[i]);
      hi[i] = _mm256_fmadd_ps(c1, qj, hi[i]);
    }
  }
  for (int i = 0; i < M; ++i) {
    _mm256_storeu_ps(out + size_t(i) * stride, lo[i]);
    _mm256_storeu_ps(out + size_t(i) * stride + 8, hi[i]);
  }
}
template <class T>
const Block16Part<T> kBlock16Avx2[] = {block16_avx2_m<T, 1>, block16_avx2_m<T, 2>, block16_avx2_m<T, 3>,
                                       block16_avx2_m<T, 4>};
void block16_dot_avx2(const float* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out) {
  block16_drive(kBlock16Avx2<float>, 4, ct, nblocks, d, q, nq, out);
}
void block16_dot_u8_avx2(const uint8_t* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out) {
  block16_drive(kBlock16Avx2<uint8_t>, 4, ct, nblocks, d, q, nq, out);
}

// Row scores, AVX2: eight rows at a time, each row's 8-lane sum over its dimensions (chunk
// by chunk, in order), then one tree folding the eight rows' lanes into one register: at each
// step a row's lane l is added to its lane l + w (w = 4, 2, 1), the same for every row.
__attribute__((target("avx2,fma"))) inline __m256 fold_rows_avx2(const __m256* a) {
  __m256 p[4], u[2];
  for (int k = 0; k < 4; ++k)  // [row 2k: l + l+4 | row 2k+1: l + l+4]
    p[k] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * k], a[2 * k + 1], 0x20),
                         _mm256_permute2f128_ps(a[2 * k], a[2 * k + 1], 0x31));
  for (int k = 0; k < 2; ++k)  // 128-bit half h: rows 4k + h, 4k + h + 2, two partials each
    u[k] = _mm256_add_ps(_mm256_shuffle_ps(p[2 * k], p[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(p[2 * k], p[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // half h, element e: row h + 2e; put row r at element r
  const __m256 s = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
// One group of eight rows (stride d) against one query: the eight scores, row r at element r.
__attribute__((target("avx2,fma"))) inline __m256 group_avx2(const float* xb, size_t d, const float* qi, __m256i tail) {
  const size_t full = d / 8;
  // the first chunk multiplied, the others added by FMA in order (the same for every row)
  __m256 acc[8];
  for (size_t c = 0; c < full + (d % 8 ? 1 : 0); ++c) {
    const bool whole = c < full;
    const __m256 qc = whole ? _mm256_loadu_ps(qi + 8 * c) : _mm256_maskload_ps(qi + 8 * c, tail);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const float* p = xb + r * d + 8 * c;
      const __m256 xc = whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail);
      acc[r] = c == 0 ? _mm256_mul_ps(xc, qc) : _mm256_fmadd_ps(xc, qc, acc[r]);
    }
  }
  return fold_rows_avx2(acc);
}
__attribute__((target("avx2,fma"))) void rows_dot_avx2(const float* x, size_t n, size_t d, const float* q, size_t nq,
                                                       float* out, size_t ldo) {
  alignas(32) int32_t lanes[8];
  for (size_t l = 0; l < 8; ++l) lanes[l] = l < d % 8 ? -1 : 0;
  const __m256i tail = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
  const size_t whole = n / 8 * 8;
  for (size_t r0 = 0; r0 < whole; r0 += 8)
    for (size_t i = 0; i < nq; ++i) _mm256_storeu_ps(out + i * ldo + r0, group_avx2(x + r0 * d, d, q + i * d, tail));
  if (whole < n) {  // the last rows, zero-padded to a group (each row's sum is its own)
    std::vector<float> pad(8 * d, 0.0f);
    std::memcpy(pad.data(), x + whole * d, (n - whole) * d * sizeof(float));
    alignas(32) float tmp[8];
    for (size_t i = 0; i < nq; ++i) {
      _mm256_store_ps(tmp, group_avx2(pad.data(), d, q + i * d, tail));
      for (size_t r = whole; r < n; ++r) out[i * ldo + r] = tmp[r - whole];
    }
  }
}

// ---- AVX-512F: masked tails, so no scalar remainder ----
// GCC 12's _mm512_reduce_add_ps reads an "undefined" vector on purpose: -Wuninitialized
// reports that header code, not this file's.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) float dot_avx512(const float* a, const float* b, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
__attribute__((target("avx512f"))) float l2_avx512(const float* a, const float* b, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s0 = _mm512_fmadd_ps(d, d, s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
__attribute__((target("avx512f"))) float dot_u8_avx512(const float* q, const uint8_t* c, size_t n) {
  __m512 s0 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i));
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), s0);
  }
  float s = _mm512_reduce_add_ps(s0);
  for (; i < n; ++i) s += q[i] * float(c[i]);
  return s;
}
// Block scores, AVX-512: a block's 16 vectors are one register per dimension, each query's
// coordinate broadcast; up to eight queries at a time.
__attribute__((target("avx512f"))) inline __m512 load16_avx512(const float* c) { return _mm512_loadu_ps(c); }
__attribute__((target("avx512f"))) inline __m512 load16_avx512(const uint8_t* c) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c))));
}
template <class T, int M>
__attribute__((target("avx512f"))) void block16_avx512_m(const T* cb, size_t d, const float* q, float* out,
                                                          size_t stride) {
  __m512 acc[M];
  for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
  for (size_t j = 0; j < d; ++j) {
    const __m512 c = load16_avx512(cb + j * 16);
    for (int i = 0; i < M; ++i) acc[i] = _mm512_fmadd_ps(c, _mm512_set1_ps(q[size_t(i) * d + j]), acc[i]);
  }
  for (int i = 0; i < M; ++i) _mm512_storeu_ps(out + size_t(i) * stride, acc[i]);
}
template <class T>
const Block16Part<T> kBlock16Avx512[] = {block16_avx512_m<T, 1>, block16_avx512_m<T, 2>, block16_avx512_m<T, 3>,
                                         block16_avx512_m<T, 4>, block16_avx512_m<T, 5>, block16_avx512_m<T, 6>,
                                         block16_avx512_m<T, 7>, block16_avx512_m<T, 8>};
void block16_dot_avx512(const float* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out) {
  block16_drive(kBlock16Avx512<float>, 8, ct, nblocks, d, q, nq, out);
}
void block16_dot_u8_avx512(const uint8_t* ct, size_t nblocks, size_t d, const float* q, size_t nq, float* out) {
  block16_drive(kBlock16Avx512<uint8_t>, 8, ct, nblocks, d, q, nq, out);
}
// Row scores, AVX-512: sixteen rows at a time, as the AVX2 kernel (a row's lane l is added to
// its lane l + w for w = 8, 4, 2, 1, the same for every row).
__attribute__((target("avx512f"))) inline __m512 fold_rows_avx512(const __m512* a) {
  __m512 p[8], u[4], v[2];
  for (int k = 0; k < 8; ++k)  // [row 2k: l + l+8 | row 2k+1: l + l+8]
    p[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int k = 0; k < 4; ++k)  // 128-bit lane j: row 4k + j, four partials
    u[k] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * k], p[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(p[2 * k], p[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int k = 0; k < 2; ++k)  // lane j: rows 8k + j and 8k + j + 4, two partials each
    v[k] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * k], u[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(u[2 * k], u[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // lane j, element e: row j + 4e; put row r at element r
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), s);
}
// One group of sixteen rows (stride d) against one query: the sixteen scores in row order.
__attribute__((target("avx512f"))) inline __m512 group_avx512(const float* xb, size_t d, const float* qi) {
  const size_t full = d / 16;
  // the first chunk multiplied, the others added by FMA in order (as rows_dot_avx512_c)
  __m512 acc[16];
  const __mmask16 tail = __mmask16((1u << (d % 16)) - 1);
  for (size_t c = 0; c < full + (d % 16 ? 1 : 0); ++c) {
    const __mmask16 m = c < full ? __mmask16(0xFFFF) : tail;
    const __m512 qc = _mm512_maskz_loadu_ps(m, qi + 16 * c);
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) {
      const __m512 xc = _mm512_maskz_loadu_ps(m, xb + r * d + 16 * c);
      acc[r] = c == 0 ? _mm512_mul_ps(xc, qc) : _mm512_fmadd_ps(xc, qc, acc[r]);
    }
  }
  return fold_rows_avx512(acc);
}
// d = 16 C (C <= 8, the common embedding sizes): the query's C chunks stay in registers and a
// group's rows are walked one after the other; each row's lanes summed chunk by chunk in order,
// as group_avx512 sums them, so both give the same bits.
template <int C>
__attribute__((target("avx512f"))) void rows_dot_avx512_c(const float* x, size_t groups, const float* q, size_t nq,
                                                          float* out, size_t ldo) {
  constexpr size_t d = 16 * C;
  for (size_t i = 0; i < nq; ++i) {
    __m512 qc[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) qc[c] = _mm512_loadu_ps(q + i * d + 16 * c);
    const float* xr = x;
    for (size_t g = 0; g < groups; ++g) {
      __m512 acc[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r, xr += d) {
        acc[r] = _mm512_mul_ps(_mm512_loadu_ps(xr), qc[0]);
#pragma GCC unroll 8
        for (int c = 1; c < C; ++c) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xr + 16 * c), qc[c], acc[r]);
      }
      _mm512_storeu_ps(out + i * ldo + 16 * g, fold_rows_avx512(acc));
    }
  }
}
__attribute__((target("avx512f"))) void rows_dot_avx512(const float* x, size_t n, size_t d, const float* q, size_t nq,
                                                        float* out, size_t ldo) {
  using Fast = void (*)(const float*, size_t, const float*, size_t, float*, size_t);
  static constexpr Fast kFast[] = {nullptr, rows_dot_avx512_c<1>, rows_dot_avx512_c<2>, rows_dot_avx512_c<3>,
                                   rows_dot_avx512_c<4>, rows_dot_avx512_c<5>, rows_dot_avx512_c<6>,
                                   rows_dot_avx512_c<7>, rows_dot_avx512_c<8>};
  const size_t whole = n / 16 * 16;
  // Blocks of 64 rows (16 KiB at d = 64) so that every query of the call reads them from L1.
  constexpr size_t kRows = 64;
  if (d % 16 == 0 && d / 16 <= 8) {
    for (size_t r0 = 0; r0 < whole; r0 += kRows)
      kFast[d / 16](x + r0 * d, (whole - r0 < kRows ? whole - r0 : kRows) / 16, q, nq, out + r0, ldo);
  } else {
    for (size_t r0 = 0; r0 < whole; r0 += 16)
      for (size_t i = 0; i < nq; ++i) _mm512_storeu_ps(out + i * ldo + r0, group_avx512(x + r0 * d, d, q + i * d));
  }
  if (whole < n) {  // the last rows, zero-padded to a group (each row's sum is its own)
    std::vector<float> pad(16 * d, 0.0f);
    std::memcpy(pad.data(), x + whole * d, (n - whole) * d * sizeof(float));
    const __mmask16 keep = __mmask16((1u << (n - whole)) - 1);
    for (size_t i = 0; i < nq; ++i)
      _mm512_mask_storeu_ps(out + i * ldo + whole, keep, group_avx512(pad.data(), d, q + i * d));
  }
}
__attribute__((target("avx512f,avx512bw,avx2,fma"))) __m256i add_halves_avx512(__m512i x) {
  return _mm256_add_epi16(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64(x, 1));
}
// The 4-bit scan, AVX-512BW: two pairs of sub-quantizers per 64-byte load (pshufb works per
// 128-bit lane, so the four lanes are four sub-quantizers of the same 32 vectors), an odd last
// pair through a masked load (zero table entries add nothing), then the AVX2 finish.
__attribute__((target("avx512f,avx512bw,avx2,fma"))) uint32_t pq4_block_avx512(const uint8_t* block, const uint8_t* lut,
                                                                                size_t npairs, uint16_t threshold,
                                                                                uint16_t* sums) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  __m512i lo = _mm512_setzero_si512(), lo_odd = lo, hi = lo, hi_odd = lo;
  for (size_t p = 0; p < npairs; p += 2) {
    const __mmask64 m = npairs - p >= 2 ? ~__mmask64(0) : __mmask64(0xFFFFFFFFu);
    const __m512i b = _mm512_maskz_loadu_epi8(m, block + 32 * p);
    const __m512i l = _mm512_maskz_loadu_epi8(m, lut + 32 * p);
    const __m512i rl = _mm512_shuffle_epi8(l, _mm512_and_si512(b, nib));
    const __m512i rh = _mm512_shuffle_epi8(l, _mm512_and_si512(_mm512_srli_epi16(b, 4), nib));
    lo = _mm512_add_epi16(lo, rl);
    lo_odd = _mm512_add_epi16(lo_odd, _mm512_srli_epi16(rl, 8));
    hi = _mm512_add_epi16(hi, rh);
    hi_odd = _mm512_add_epi16(hi_odd, _mm512_srli_epi16(rh, 8));
  }
  return pq4_finish_avx2(add_halves_avx512(lo), add_halves_avx512(lo_odd), add_halves_avx512(hi),
                         add_halves_avx512(hi_odd), threshold, sums);
}
#pragma GCC diagnostic pop
#endif

const SimdKernels kScalar{dot_scalar, l2_scalar, dot_u8_scalar, pq4_block_scalar,
                          block16_dot_scalar, block16_dot_u8_scalar, rows_dot_each<dot_scalar>, "scalar"};
#if MINDREC_X86
const SimdKernels kSse2{dot_sse2, l2_sse2, dot_u8_sse2, pq4_block_scalar,
                        block16_dot_scalar, block16_dot_u8_scalar, rows_dot_each<dot_sse2>, "sse2"};
const SimdKernels kAvx2{dot_avx2, l2_avx2, dot_u8_avx2, pq4_block_avx2,
                        block16_dot_avx2, block16_dot_u8_avx2, rows_dot_avx2, "avx2"};
const SimdKernels kAvx512{dot_avx512, l2_avx512, dot_u8_avx512, pq4_block_avx512,
                          block16_dot_avx512, block16_dot_u8_avx512, rows_dot_avx512, "avx512"};
#endif

bool cpu_has(const char* level) {
#if MINDREC_X86
  if (!std::strcmp(level, "avx512"))
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && cpu_has("avx2");
  if (!std::strcmp(level, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!std::strcmp(level, "sse2")) return true;
#endif
  return !std::strcmp(level, "scalar");
}

const SimdKernels& pick() {
  if (const char* forced = std::getenv("MINDREC_SIMD"))
    if (const SimdKernels* k = simd_level(forced)) return *k;
  for (const char* level : {"avx512", "avx2", "sse2"})
    if (const SimdKernels* k = simd_level(level)) return *k;
  return kScalar;
}

}  // namespace

const SimdKernels* simd_level(const char* level) {
  if (!cpu_has(level)) return nullptr;
#if MINDREC_X86
  if (!std::strcmp(level, "avx512")) return &kAvx512;
  if (!std::strcmp(level, "avx2")) return &kAvx2;
  if (!std::strcmp(level, "sse2")) return &kSse2;
#endif
  if (!std::strcmp(level, "scalar")) return &kScalar;
  return nullptr;
}

const SimdKernels& simd() {
  static const SimdKernels& k = pick();
  return k;
}

}  // namespace mindrec::detail
