// The low-precision best-of-k kernels (best_rows.hpp): AMX-BF16 tiles and AVX-512 VNNI int8,
// sharing the candidate lists and the exact rescoring. Compiled with the baseline flags: each
// kernel carries its own target attribute and runs only after amx_bf16_usable() or
// vnni_int8_usable() said it may.
#include "detail/best_rows.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "detail/parallel.hpp"
#include "detail/simd.hpp"

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define MINDREC_LOWP 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define MINDREC_AMX_FN __attribute__((target("amx-tile,amx-bf16,avx512f")))
#define MINDREC_AVX512_FN __attribute__((target("avx512f")))
#define MINDREC_VNNI_FN __attribute__((target("avx512f,avx512bw,avx512vnni")))
#else
#define MINDREC_LOWP 0
#endif

namespace mindrec::detail {
namespace {

#if MINDREC_LOWP
bool ask_kernel() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = (d >> 24) & 1u, bf16 = (d >> 22) & 1u;
  if (!tile || !bf16 || !__builtin_cpu_supports("avx512f")) return false;
  constexpr long kReqXcompPerm = 0x1023;  // arch_prctl: ARCH_REQ_XCOMP_PERM
  constexpr long kXtileData = 18;         // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
}

constexpr int64_t kRows = 256;    // rows of x a task scores (rounded to bf16 or int8 once)
constexpr int64_t kChunk = 2048;  // centroids a pass: their bf16 tiles (256 KB at d = 64) stay in L2
constexpr int kCandidates = 64;   // near-best candidates kept a row; more: the row is scored in full

// One task's rows: each row's best approximate score so far (top), its margin (twice the bound
// on an approximation's error, best_rows.hpp), and the candidates within the margin of top
// when they came (a superset of those within the margin of the row's best at the end),
// compacted against the best so far when the list fills. Most blocks of scores hold nothing at
// or above top - margin: two compares a row of 32.
struct Candidates {
  std::vector<float> margin, top, cscore;
  std::vector<int32_t> cand;
  std::vector<int> count;  // -1: too many, the row is scored in full

  explicit Candidates(int64_t rows)
      : margin(size_t(rows), 0.0f),
        top(size_t(rows), -std::numeric_limits<float>::infinity()),
        cscore(size_t(rows * kCandidates)),
        cand(size_t(rows * kCandidates)),
        count(size_t(rows), 0) {}

  void compact(int64_t r) {
    const float keep = top[size_t(r)] - margin[size_t(r)];
    int kept = 0;
    for (int q = 0; q < count[size_t(r)]; ++q)
      if (cscore[size_t(r * kCandidates + q)] >= keep) {
        cand[size_t(r * kCandidates + kept)] = cand[size_t(r * kCandidates + q)];
        cscore[size_t(r * kCandidates + kept)] = cscore[size_t(r * kCandidates + q)];
        ++kept;
      }
    count[size_t(r)] = kept;
  }

  // Row r's approximate scores of centroids j .. j + 31 (v0: the first 16).
  MINDREC_AVX512_FN inline void offer(int64_t r, int64_t j, __m512 v0, __m512 v1) {
    const __m512 f = _mm512_set1_ps(top[size_t(r)] - margin[size_t(r)]);
    uint32_t m = uint32_t(_mm512_cmp_ps_mask(v0, f, _CMP_GE_OQ)) | (uint32_t(_mm512_cmp_ps_mask(v1, f, _CMP_GE_OQ)) << 16);
    if (!m) return;
    top[size_t(r)] = std::max(top[size_t(r)], _mm512_reduce_max_ps(_mm512_max_ps(v0, v1)));
    const float keep = top[size_t(r)] - margin[size_t(r)];
    if (count[size_t(r)] < 0) return;
    alignas(64) float sc[32];
    _mm512_store_ps(sc, v0);
    _mm512_store_ps(sc + 16, v1);
    for (; m; m &= m - 1) {
      const int b = __builtin_ctz(m);
      if (!(sc[b] >= keep)) continue;
      if (count[size_t(r)] == kCandidates) {
        compact(r);
        if (count[size_t(r)] > kCandidates / 2) {
          count[size_t(r)] = -1;
          return;
        }
      }
      cand[size_t(r * kCandidates + count[size_t(r)])] = int32_t(j + b);
      cscore[size_t(r * kCandidates + count[size_t(r)])] = sc[b];
      ++count[size_t(r)];
    }
  }

  // The candidates (or, past kCandidates or with none, every centroid) of rows [from, from +
  // rows) scored in float: the answer.
  void finish(int64_t from, int64_t rows, const float* x, int d, int64_t k, const float* c, const float* h,
              int64_t* best, float* score) {
    const DotFn dot = simd().dot;
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + (from + r) * d;
      if (count[size_t(r)] > 0) compact(r);  // against the row's best approximation
      const int cnt = count[size_t(r)];
      const bool all = cnt <= 0;
      const int64_t m = all ? k : cnt;
      int64_t at = 0;
      float best_score = -std::numeric_limits<float>::infinity();
      bool first = true;
      for (int64_t q = 0; q < m; ++q) {
        const int64_t j = all ? q : cand[size_t(r * kCandidates + q)];
        const float s = dot(xr, c + j * d, size_t(d)) - h[size_t(j)];
        if (first || s > best_score || (s == best_score && j < at)) best_score = s, at = j, first = false;
      }
      best[from + r] = at;
      if (score) score[from + r] = best_score;
    }
  }
};

// Round to nearest even (finite input).
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

struct TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The packed operands of one AMX call.
struct Job {
  int64_t k, kp;  // kp: k rounded up to 32 (padding centroids score -inf)
  int d, steps;      // steps: 32-dimension slices (d rounded up to 32, zero padded)
  const float* x;
  const float* c;
  std::vector<uint16_t> b;  // centroid tiles: 16 at a time, [steps][16 pairs][16 centroids][2]
  std::vector<float> h;     // h[j], +inf for the padding
  float cmax = 0, hmax = 0;
};

// 32 rows (xa: bf16 [32][32 steps]) against the 32 centroids of groups g, g + 1: out [32][32].
MINDREC_AMX_FN inline void block32(const uint16_t* xa, int steps, const uint16_t* b0, const uint16_t* b1, float* out) {
  const int64_t xs = int64_t(steps) * 64;  // bytes a row of xa
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int s = 0; s < steps; ++s) {
    _tile_loadd(4, xa + s * 32, xs);
    _tile_loadd(5, xa + 16 * int64_t(steps) * 32 + s * 32, xs);
    _tile_loadd(6, b0 + s * 512, 64);
    _tile_loadd(7, b1 + s * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 128);
  _tile_stored(1, out + 16, 128);
  _tile_stored(2, out + 512, 128);
  _tile_stored(3, out + 528, 128);
}

// Rows [from, from + rows) of the job.
MINDREC_AMX_FN void run_rows(const Job& job, int64_t from, int64_t rows, int64_t* best, float* score) {
  const int steps = job.steps, d = job.d;
  const int64_t rp = (rows + 31) / 32 * 32, dp = int64_t(steps) * 32;
  const int64_t group = int64_t(steps) * 512;  // uint16 a group of 16 centroids
  std::vector<uint16_t> xa(size_t(rp * dp), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int t = 0; t < d; ++t) xa[size_t(r * dp + t)] = to_bf16(job.x[(from + r) * d + t]);
  alignas(64) float out[32 * 32];
  Candidates cs(rp);
  for (int64_t r = 0; r < rows; ++r) {
    float xn = 0;
    for (int t = 0; t < d; ++t) xn += job.x[(from + r) * d + t] * job.x[(from + r) * d + t];
    cs.margin[size_t(r)] = 2 * (std::ldexp(1.0f, -6) * std::sqrt(xn) * job.cmax + std::ldexp(1.0f, -20) * job.hmax + 1e-30f);
  }
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
  for (int64_t c0 = 0; c0 < job.kp; c0 += kChunk) {
    const int64_t c1 = std::min(job.kp, c0 + kChunk);
    for (int64_t r0 = 0; r0 < rp; r0 += 32) {
      for (int64_t j = c0; j < c1; j += 32) {
        block32(&xa[size_t(r0 * dp)], steps, &job.b[size_t((j / 16) * group)], &job.b[size_t((j / 16 + 1) * group)], out);
        const __m512 h0 = _mm512_loadu_ps(&job.h[size_t(j)]), h1 = _mm512_loadu_ps(&job.h[size_t(j + 16)]);
        for (int r = 0; r < 32; ++r)
          cs.offer(r0 + r, j, _mm512_sub_ps(_mm512_load_ps(out + r * 32), h0), _mm512_sub_ps(_mm512_load_ps(out + r * 32 + 16), h1));
      }
    }
  }
  _tile_release();
  cs.finish(from, rows, job.x, d, job.k, job.c, job.h.data(), best, score);
}

// --- AVX-512 VNNI, int8 ---

constexpr int kMaxVnniDim = 4096;  // 127 x 255 x d fits int32
constexpr int kVnniRows = 4;       // rows of a register block
constexpr int kVnniGroups = 4;     // groups of 16 centroids of a register block (64 centroids)

// v [d] scaled into int8 (q = round(v / s), s = max|v_t| / 127; a zero vector: s = 0, q = 0);
// returns s, with |v - s q| and |s q| (in double, then rounded up) in *err and *len.
float quantize(const float* v, int d, int8_t* q, float* err, float* len) {
  float m = 0;
  for (int t = 0; t < d; ++t) m = std::max(m, std::abs(v[t]));
  if (!(m > 0)) {
    for (int t = 0; t < d; ++t) q[t] = 0;
    double l = 0;
    for (int t = 0; t < d; ++t) l += double(v[t]) * v[t];
    *err = float(std::sqrt(l) * (1 + 1e-6)), *len = 0;
    return 0.0f;
  }
  const float s = m / 127.0f, inv = 127.0f / m;
  double e = 0, l = 0;
  for (int t = 0; t < d; ++t) {
    const long r = std::lrint(v[t] * inv);
    q[t] = int8_t(std::clamp(r, -127L, 127L));
    const double back = double(s) * q[t];  // exact in double
    e += (double(v[t]) - back) * (double(v[t]) - back);
    l += back * back;
  }
  *err = float(std::sqrt(e) * (1 + 1e-6)), *len = float(std::sqrt(l) * (1 + 1e-6));
  return s;
}

// The packed operands of one VNNI call.
struct Job8 {
  int64_t k, kp;  // kp: k rounded up to 64 (padding centroids: q = 0, h = +inf, score -inf)
  int d, steps;      // steps: 4-dimension slices (d rounded up to 4, zero padded)
  const float* x;
  const float* c;
  std::vector<int8_t> b;       // 16 centroids at a time: [steps][16 centroids][4]
  std::vector<float> scale;    // s_j
  std::vector<int32_t> corr;   // 128 sum_t q_j,t: the rows are stored as q + 128 (unsigned)
  std::vector<float> h;        // h[j], +inf for the padding
  float cmax = 0, emax = 0, hmax = 0;
};

// Rows [from, from + rows) of the job.
MINDREC_VNNI_FN void run_rows8(const Job8& job, int64_t from, int64_t rows, int64_t* best, float* score) {
  const int steps = job.steps, d = job.d;
  const int64_t rp = (rows + kVnniRows - 1) / kVnniRows * kVnniRows, dp = int64_t(steps) * 4;
  const int64_t group = int64_t(steps) * 64;  // bytes a group of 16 centroids
  std::vector<uint8_t> xu(size_t(rp * dp), uint8_t(128));
  std::vector<float> sx(size_t(rp), 0.0f);
  Candidates cs(rp);
  {
    std::vector<int8_t> q(static_cast<size_t>(d));
    for (int64_t r = 0; r < rows; ++r) {
      float err = 0, len = 0;
      sx[size_t(r)] = quantize(job.x + (from + r) * d, d, q.data(), &err, &len);
      for (int t = 0; t < d; ++t) xu[size_t(r * dp + t)] = uint8_t(int(q[size_t(t)]) + 128);
      const float bound = err * job.cmax + len * job.emax;
      cs.margin[size_t(r)] = 2 * (bound * (1.0f + std::ldexp(1.0f, -10)) +
                                  std::ldexp(1.0f, -20) * (len * (job.cmax + job.emax) + job.hmax) + 1e-30f);
    }
  }
  for (int64_t j = 0; j < job.kp; j += 16 * kVnniGroups) {
    const int8_t* bj = &job.b[size_t((j / 16) * group)];
    for (int64_t r0 = 0; r0 < rp; r0 += kVnniRows) {
      // 4 rows x 4 groups of 16 centroids in 16 named accumulators (arrays of them made GCC
      // copy each through a scratch register around every vpdpbusd).
      const __m512i z = _mm512_setzero_si512();
      __m512i a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
      __m512i a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
      const uint8_t* xr = &xu[size_t(r0 * dp)];
      for (int s = 0; s < steps; ++s) {
        const int8_t* bs = bj + s * 64;
        const __m512i b0 = _mm512_loadu_si512(bs), b1 = _mm512_loadu_si512(bs + group);
        const __m512i b2 = _mm512_loadu_si512(bs + 2 * group), b3 = _mm512_loadu_si512(bs + 3 * group);
        int32_t four[kVnniRows];
        for (int r = 0; r < kVnniRows; ++r) std::memcpy(&four[r], xr + r * dp + s * 4, 4);
        const __m512i x0 = _mm512_set1_epi32(four[0]), x1 = _mm512_set1_epi32(four[1]);
        const __m512i x2 = _mm512_set1_epi32(four[2]), x3 = _mm512_set1_epi32(four[3]);
        a00 = _mm512_dpbusd_epi32(a00, x0, b0), a01 = _mm512_dpbusd_epi32(a01, x0, b1);
        a02 = _mm512_dpbusd_epi32(a02, x0, b2), a03 = _mm512_dpbusd_epi32(a03, x0, b3);
        a10 = _mm512_dpbusd_epi32(a10, x1, b0), a11 = _mm512_dpbusd_epi32(a11, x1, b1);
        a12 = _mm512_dpbusd_epi32(a12, x1, b2), a13 = _mm512_dpbusd_epi32(a13, x1, b3);
        a20 = _mm512_dpbusd_epi32(a20, x2, b0), a21 = _mm512_dpbusd_epi32(a21, x2, b1);
        a22 = _mm512_dpbusd_epi32(a22, x2, b2), a23 = _mm512_dpbusd_epi32(a23, x2, b3);
        a30 = _mm512_dpbusd_epi32(a30, x3, b0), a31 = _mm512_dpbusd_epi32(a31, x3, b1);
        a32 = _mm512_dpbusd_epi32(a32, x3, b2), a33 = _mm512_dpbusd_epi32(a33, x3, b3);
      }
      const __m512i acc[kVnniRows][kVnniGroups] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
      for (int r = 0; r < kVnniRows; ++r) {
        const __m512 sxv = _mm512_set1_ps(sx[size_t(r0 + r)]);
        __m512 v[kVnniGroups];
#pragma GCC unroll 4
        for (int g = 0; g < kVnniGroups; ++g) {
          const int64_t jg = j + 16 * g;
          const __m512i exact = _mm512_sub_epi32(acc[r][g], _mm512_loadu_si512(&job.corr[size_t(jg)]));
          const __m512 st = _mm512_mul_ps(sxv, _mm512_loadu_ps(&job.scale[size_t(jg)]));
          v[g] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(exact), st, _mm512_loadu_ps(&job.h[size_t(jg)]));
        }
        cs.offer(r0 + r, j, v[0], v[1]);
        cs.offer(r0 + r, j + 32, v[2], v[3]);
      }
    }
  }
  cs.finish(from, rows, job.x, d, job.k, job.c, job.h.data(), best, score);
}

// rows(from, count) over the n rows, in tasks of kRows on `threads` threads.
template <class Fn>
void by_tasks(int64_t n, int threads, Fn&& rows) {
  parallel_for((n + kRows - 1) / kRows, threads, 1, [&](int64_t t) {
    const int64_t from = t * kRows;
    rows(from, std::min(kRows, n - from));
  });
}

const char* forced_simd() {
  const char* forced = std::getenv("MINDREC_SIMD");
  return forced && *forced ? forced : nullptr;
}
#endif

}  // namespace

bool amx_bf16_usable() {
#if MINDREC_LOWP
  static const bool granted = ask_kernel();
  const char* forced = forced_simd();
  return granted && (!forced || !std::strcmp(forced, "amx"));
#else
  return false;
#endif
}

bool vnni_int8_usable() {
#if MINDREC_LOWP
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vnni");
  const char* forced = forced_simd();
  return has && (!forced || !std::strcmp(forced, "amx") || !std::strcmp(forced, "vnni"));
#else
  return false;
#endif
}

#if MINDREC_LOWP
bool amx_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                   int64_t* best, float* score) {
  if (!amx_bf16_usable() || n <= 0 || k <= 0 || d <= 0) return false;
  Job job;
  job.k = k, job.kp = (k + 31) / 32 * 32, job.d = d, job.steps = (d + 31) / 32, job.x = x, job.c = c;
  const int64_t group = int64_t(job.steps) * 512;
  job.b.assign(size_t(job.kp / 16 * group), 0);
  job.h.assign(size_t(job.kp), std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < k; ++j) {
    const float* cj = c + j * d;
    uint16_t* tiles = &job.b[size_t((j / 16) * group)];
    float norm = 0;
    for (int t = 0; t < d; ++t) {
      tiles[(t / 32) * 512 + ((t % 32) / 2) * 32 + (j % 16) * 2 + (t % 2)] = to_bf16(cj[t]);
      norm += cj[t] * cj[t];
    }
    job.cmax = std::max(job.cmax, std::sqrt(norm));
    job.h[size_t(j)] = h ? h[j] : 0.0f;
    job.hmax = std::max(job.hmax, std::abs(job.h[size_t(j)]));
  }
  job.cmax *= 1.0f + std::ldexp(1.0f, -10);  // the norm's own rounding
  by_tasks(n, threads, [&](int64_t from, int64_t rows) { run_rows(job, from, rows, best, score); });
  return true;
}

bool vnni_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                    int64_t* best, float* score) {
  if (!vnni_int8_usable() || n <= 0 || k <= 0 || d <= 0 || d > kMaxVnniDim) return false;
  Job8 job;
  const int64_t per_block = 16 * kVnniGroups;
  job.k = k, job.kp = (k + per_block - 1) / per_block * per_block, job.d = d, job.steps = (d + 3) / 4;
  job.x = x, job.c = c;
  const int64_t group = int64_t(job.steps) * 64;
  job.b.assign(size_t(job.kp / 16 * group), 0);
  job.scale.assign(size_t(job.kp), 0.0f);
  job.corr.assign(size_t(job.kp), 0);
  job.h.assign(size_t(job.kp), std::numeric_limits<float>::infinity());
  std::vector<int8_t> q(static_cast<size_t>(d));
  for (int64_t j = 0; j < k; ++j) {
    const float* cj = c + j * d;
    float err = 0, len = 0;
    job.scale[size_t(j)] = quantize(cj, d, q.data(), &err, &len);
    int8_t* g = &job.b[size_t((j / 16) * group)];
    int32_t sum = 0;
    for (int t = 0; t < d; ++t) {
      g[(t / 4) * 64 + (j % 16) * 4 + (t % 4)] = q[size_t(t)];
      sum += q[size_t(t)];
    }
    job.corr[size_t(j)] = 128 * sum;
    double norm = 0;
    for (int t = 0; t < d; ++t) norm += double(cj[t]) * cj[t];
    job.cmax = std::max(job.cmax, float(std::sqrt(norm) * (1 + 1e-6)));
    job.emax = std::max(job.emax, err);
    job.h[size_t(j)] = h ? h[j] : 0.0f;
    job.hmax = std::max(job.hmax, std::abs(job.h[size_t(j)]));
  }
  by_tasks(n, threads, [&](int64_t from, int64_t rows) { run_rows8(job, from, rows, best, score); });
  return true;
}
#else
bool amx_best_rows(int64_t, const float*, int, int64_t, const float*, const float*, int, int64_t*, float*) {
  return false;
}
bool vnni_best_rows(int64_t, const float*, int, int64_t, const float*, const float*, int, int64_t*, float*) {
  return false;
}
#endif

bool lowp_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                    int64_t* best, float* score) {
  return amx_best_rows(n, x, d, k, c, h, threads, best, score) || vnni_best_rows(n, x, d, k, c, h, threads, best, score);
}

}  // namespace mindrec::detail
