// Run-time dispatched kernels (simd.hpp). Each level is compiled with its own target
// attribute, so the file builds with the baseline flags and the AVX code runs only where
// __builtin_cpu_supports says it may.
#include "detail/simd.hpp"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

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

// ---- AVX-512F: masked tails, so no scalar remainder ----
// GCC 12's _mm512_reduce_add_ps reads an "undefined" vector on purpose: -Wuninitialized
// reports that header code, not this file's.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
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
#pragma GCC diagnostic pop
#endif

const SimdKernels kScalar{dot_scalar, l2_scalar, dot_u8_scalar, "scalar"};
#if MINDREC_X86
const SimdKernels kSse2{dot_sse2, l2_sse2, dot_u8_sse2, "sse2"};
const SimdKernels kAvx2{dot_avx2, l2_avx2, dot_u8_avx2, "avx2"};
const SimdKernels kAvx512{dot_avx512, l2_avx512, dot_u8_avx512, "avx512"};
#endif

bool cpu_has(const char* level) {
#if MINDREC_X86
  if (!std::strcmp(level, "avx512")) return __builtin_cpu_supports("avx512f");
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
