// The AMX-BF16 best-of-k kernel (amx.hpp). Compiled with the baseline flags: the tile code
// carries its own target attribute and runs only after amx_bf16_usable() said it may.
#include "detail/amx.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "detail/parallel.hpp"
#include "detail/simd.hpp"

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define MINDREC_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define MINDREC_AMX_FN __attribute__((target("amx-tile,amx-bf16,avx512f")))
#else
#define MINDREC_AMX 0
#endif

namespace mindrec::detail {
namespace {

#if MINDREC_AMX
bool ask_kernel() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = (d >> 24) & 1u, bf16 = (d >> 22) & 1u;
  if (!tile || !bf16 || !__builtin_cpu_supports("avx512f")) return false;
  constexpr long kReqXcompPerm = 0x1023;  // arch_prctl: ARCH_REQ_XCOMP_PERM
  constexpr long kXtileData = 18;         // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
}

constexpr int64_t kRows = 256;    // rows of x a task scores (converted to bf16 once)
constexpr int64_t kChunk = 2048;  // centroids a pass: their bf16 tiles (256 KB at d = 64) stay in L2
constexpr int kCandidates = 64;   // near-best candidates kept a row; more: the row is scored in full

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

// The packed operands of one call.
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

  // Each row's margin: twice the bound on an approximation's error (amx.hpp).
  std::vector<float> margin(size_t(rp), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    float xn = 0;
    for (int t = 0; t < d; ++t) xn += job.x[(from + r) * d + t] * job.x[(from + r) * d + t];
    margin[size_t(r)] = 2 * (std::ldexp(1.0f, -6) * std::sqrt(xn) * job.cmax + std::ldexp(1.0f, -20) * job.hmax + 1e-30f);
  }
  // One pass: each row's best approximation so far (top) and the candidates within the margin
  // of it when they came (a superset of those within the margin of the row's best at the end),
  // compacted against the best so far when the list fills. Most blocks hold nothing at or
  // above top - margin: two compares a row of 32 scores.
  std::vector<float> top(size_t(rp), -std::numeric_limits<float>::infinity());
  std::vector<int32_t> cand(size_t(rp * kCandidates));
  std::vector<float> cscore(size_t(rp * kCandidates));
  std::vector<int> count(size_t(rp), 0);  // -1: too many, the row is scored in full
  auto compact = [&](int64_t r) {
    const float keep = top[size_t(r)] - margin[size_t(r)];
    int kept = 0;
    for (int q = 0; q < count[size_t(r)]; ++q)
      if (cscore[size_t(r * kCandidates + q)] >= keep) {
        cand[size_t(r * kCandidates + kept)] = cand[size_t(r * kCandidates + q)];
        cscore[size_t(r * kCandidates + kept)] = cscore[size_t(r * kCandidates + q)];
        ++kept;
      }
    count[size_t(r)] = kept;
  };
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
  for (int64_t c0 = 0; c0 < job.kp; c0 += kChunk) {
    const int64_t c1 = std::min(job.kp, c0 + kChunk);
    for (int64_t r0 = 0; r0 < rp; r0 += 32) {
      for (int64_t j = c0; j < c1; j += 32) {
        block32(&xa[size_t(r0 * dp)], steps, &job.b[size_t((j / 16) * group)], &job.b[size_t((j / 16 + 1) * group)], out);
        const __m512 h0 = _mm512_loadu_ps(&job.h[size_t(j)]), h1 = _mm512_loadu_ps(&job.h[size_t(j + 16)]);
        for (int r = 0; r < 32; ++r) {
          const __m512 v0 = _mm512_sub_ps(_mm512_load_ps(out + r * 32), h0);
          const __m512 v1 = _mm512_sub_ps(_mm512_load_ps(out + r * 32 + 16), h1);
          const int64_t row = r0 + r;
          const __m512 f = _mm512_set1_ps(top[size_t(row)] - margin[size_t(row)]);
          uint32_t m = uint32_t(_mm512_cmp_ps_mask(v0, f, _CMP_GE_OQ)) | (uint32_t(_mm512_cmp_ps_mask(v1, f, _CMP_GE_OQ)) << 16);
          if (!m) continue;
          top[size_t(row)] = std::max(top[size_t(row)], _mm512_reduce_max_ps(_mm512_max_ps(v0, v1)));
          const float keep = top[size_t(row)] - margin[size_t(row)];
          if (count[size_t(row)] < 0) continue;
          for (; m; m &= m - 1) {
            const int b = __builtin_ctz(m);
            const float sc = out[r * 32 + b] - job.h[size_t(j + b)];
            if (!(sc >= keep)) continue;
            if (count[size_t(row)] == kCandidates) {
              compact(row);
              if (count[size_t(row)] > kCandidates / 2) {
                count[size_t(row)] = -1;
                break;
              }
            }
            cand[size_t(row * kCandidates + count[size_t(row)])] = int32_t(j + b);
            cscore[size_t(row * kCandidates + count[size_t(row)])] = sc;
            ++count[size_t(row)];
          }
        }
      }
    }
  }
  _tile_release();
  // The candidates (or, past kCandidates or with none, every centroid) scored in float.
  const DotFn dot = simd().dot;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = job.x + (from + r) * d;
    if (count[size_t(r)] > 0) compact(r);  // against the row's best approximation
    const int cnt = count[size_t(r)];
    const bool all = cnt <= 0;
    const int64_t m = all ? job.k : cnt;
    int64_t at = 0;
    float top = -std::numeric_limits<float>::infinity();
    bool first = true;
    for (int64_t q = 0; q < m; ++q) {
      const int64_t j = all ? q : cand[size_t(r * kCandidates + q)];
      const float s = dot(xr, job.c + j * d, size_t(d)) - job.h[size_t(j)];
      if (first || s > top || (s == top && j < at)) top = s, at = j, first = false;
    }
    best[from + r] = at;
    if (score) score[from + r] = top;
  }
}
#endif

}  // namespace

bool amx_bf16_usable() {
#if MINDREC_AMX
  static const bool granted = ask_kernel();
  const char* forced = std::getenv("MINDREC_SIMD");
  return granted && (!forced || !*forced || !std::strcmp(forced, "amx"));
#else
  return false;
#endif
}

bool amx_best_rows(int64_t n, const float* x, int d, int64_t k, const float* c, const float* h, int threads,
                   int64_t* best, float* score) {
#if MINDREC_AMX
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
  const int64_t tasks = (n + kRows - 1) / kRows;
  parallel_for(tasks, threads, 1, [&](int64_t t) {
    const int64_t from = t * kRows;
    run_rows(job, from, std::min(kRows, n - from), best, score);
  });
  return true;
#else
  (void)n, (void)x, (void)d, (void)k, (void)c, (void)h, (void)threads, (void)best, (void)score;
  return false;
#endif
}

}  // namespace mindrec::detail
