// Exact top-k: blocked GEMM of queries against the base, then the shared k-selection.
#include "mindrec/topk.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <limits>
#include <functional>
#include <vector>

#include <omp.h>

#include "mindrec/config.hpp"
#include "mindrec/detail/eigen.hpp"
#include "mindrec/error.hpp"
#include "store/topk_select.hpp"
#include "detail/simd.hpp"

namespace mindrec {

namespace {
// Pushes a block of scores (plus bias when given) with ids b0.. into `h`. Once `h` is full only
// a score at or above its worst kept one can enter, so runs of 16 are screened by their
// maximum first (a reduction the compiler vectorises); a run that cannot enter is skipped
// whole. Exactly the pairs pushed one by one would select (ties at the bar are pushed).
// `ok(row)` decides whether a row may enter (a filter): asked only of rows whose score could.
struct AcceptAll {
  bool operator()(int64_t) const { return true; }
};
template <class Ok>
inline void push_scores(store::TopK& h, const float* row, const float* bias, int64_t b0, int64_t bn, const Ok& ok) {
  auto score = [&](int64_t j) { return bias ? row[j] + bias[j] : row[j]; };
  int64_t j = 0;
  for (; j < bn && !h.full(); ++j)
    if (ok(b0 + j)) h.push(score(j), b0 + j);
  constexpr int64_t kRun = 16;
  for (; j + kRun <= bn; j += kRun) {
    float m = score(j);
    for (int64_t t = 1; t < kRun; ++t) {
      const float v = score(j + t);
      m = v > m ? v : m;
    }
    if (m < h.worst()) continue;
    for (int64_t t = 0; t < kRun; ++t) {
      const float v = score(j + t);
      if (v >= h.worst() && ok(b0 + j + t)) h.push(v, b0 + j + t);
    }
  }
  for (; j < bn; ++j) {
    const float v = score(j);
    if (v >= h.worst() && ok(b0 + j)) h.push(v, b0 + j);
  }
}

// Accept(q) gives the row predicate of query q. Invariant: every score by the SIMD row kernel
// (detail::SimdKernels::rows_dot), whose sums do not depend on the queries scored beside it, so
// a user's result is the same bits alone and inside any batch; otherwise by Eigen (a GEMM over
// the query block, or a matrix-vector product per query for a few), faster for large batches
// but rounding by the batch's shape.
template <class Accept>
void exact_topk_t(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k,
                  int64_t* ids, float* scores, int threads, const float* bias, const Accept& accept,
                  bool invariant) {
  MINDREC_EXPECTS(nb >= 0 && nq >= 0 && d >= 1 && k >= 1, "exact_topk: bad sizes");
  for (int64_t i = 0; i < nq * d; ++i)  // NaN would reach the k-selection's comparisons
    if (!std::isfinite(queries[i]))
      throw InvalidArgument("exact_topk: query " + std::to_string(i / d) + " holds NaN or Inf");
  constexpr int64_t kQueryBlock = 64, kBaseBlock = 4096, kFewQueries = 8;
  const int64_t qblocks = (nq + kQueryBlock - 1) / kQueryBlock;
  const int64_t bblocks = (nb + kBaseBlock - 1) / kBaseBlock;
  const int want = resolve_threads(threads);
  const float pad = -std::numeric_limits<float>::infinity();
  // Scores queries [q0, q0+qn) against base rows [b_begin, b_end) into best[0..qn).
  auto scan = [&](int64_t q0, int64_t qn, int64_t b_begin, int64_t b_end, store::TopK* best,
                  detail::MatR<float>& block) {
    detail::MapConstMat<float> Q(queries + q0 * d, qn, d);
    for (int64_t b0 = b_begin; b0 < b_end; b0 += kBaseBlock) {
      const int64_t bn = std::min(kBaseBlock, b_end - b0);
      block.resize(qn, bn);
      const detail::MapConstMat<float> B(base + b0 * d, bn, d);
      if (invariant) {
        detail::simd().rows_dot(base + b0 * d, size_t(bn), size_t(d), queries + q0 * d, size_t(qn), block.data(), size_t(bn));
      } else if (qn <= kFewQueries) {
        // A matrix-vector product per query: a GEMM would copy (pack) the whole base block
        // for a handful of queries, which costs more than the arithmetic.
        for (int64_t i = 0; i < qn; ++i) block.row(i).transpose().noalias() = B * Q.row(i).transpose();
      } else {
        block.noalias() = Q * B.transpose();
      }
      for (int64_t i = 0; i < qn; ++i) {
        const float* row = block.data() + i * bn;
        const auto ok = accept(q0 + i);
        if (bias) push_scores(best[i], row, bias + b0, b0, bn, ok);
        else push_scores(best[i], row, nullptr, b0, bn, ok);
      }
    }
  };
  if (qblocks >= want || bblocks < 2) {
    // Enough query blocks for every thread: each thread takes whole blocks of queries.
    const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(want, qblocks)));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      detail::MatR<float> block;
      std::vector<store::TopK> best(kQueryBlock, store::TopK(k));
#pragma omp for schedule(dynamic, 1)
      for (int64_t qb = 0; qb < qblocks; ++qb) {
        const int64_t q0 = qb * kQueryBlock, qn = std::min(kQueryBlock, nq - q0);
        for (int64_t i = 0; i < qn; ++i) best[size_t(i)].reset(k);
        scan(q0, qn, 0, nb, best.data(), block);
        for (int64_t i = 0; i < qn; ++i) best[size_t(i)].write(ids + (q0 + i) * k, scores + (q0 + i) * k, pad);
      }
    }
    return;
  }
  // Few queries (one user's interests): the base is split into one range per thread, every
  // thread scans all queries over its range, and the per-range selections are merged. The
  // merge keeps the same k pairs under the same tie rule, so the result does not depend on
  // the split.
  const int nt = static_cast<int>(std::min<int64_t>(want, bblocks));
  std::vector<store::TopK> partial(size_t(nt) * nq, store::TopK(k));
#pragma omp parallel num_threads(nt)
  {
    // The team may be smaller than asked (nested region, thread limit): ranges are shared
    // out over the threads actually granted.
    const int got = omp_get_num_threads();
    detail::MatR<float> block;
    for (int r = omp_get_thread_num(); r < nt; r += got) {
      const int64_t b_begin = bblocks * r / nt * kBaseBlock;
      const int64_t b_end = std::min(nb, bblocks * (r + 1) / nt * kBaseBlock);
      for (int64_t q0 = 0; q0 < nq; q0 += kQueryBlock)
        scan(q0, std::min(kQueryBlock, nq - q0), b_begin, b_end, partial.data() + size_t(r) * nq + q0, block);
    }
  }
  for (int64_t i = 0; i < nq; ++i) {
    store::TopK& into = partial[size_t(i)];
    for (int r = 1; r < nt; ++r)
      partial[size_t(r) * nq + i].for_each([&](float s, int64_t id) { into.push(s, id); });
    into.write(ids + i * k, scores + i * k, pad);
  }
}
}  // namespace

void exact_topk(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k,
                int64_t* ids, float* scores, int threads, const float* bias) {
  exact_topk_t(base, nb, d, queries, nq, k, ids, scores, threads, bias, [](int64_t) { return AcceptAll{}; }, true);
}

namespace store {
void exact_topk_gemm(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k, int64_t* ids,
                     float* scores, int threads) {
  exact_topk_t(base, nb, d, queries, nq, k, ids, scores, threads, nullptr, [](int64_t) { return AcceptAll{}; },
               false);
}

void exact_topk_filtered(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k,
                         int64_t* ids, float* scores, int threads, const float* bias,
                         const std::function<bool(int64_t, int64_t)>& accept) {
  struct Ok {
    const std::function<bool(int64_t, int64_t)>* f;
    int64_t q;
    bool operator()(int64_t row) const { return (*f)(q, row); }
  };
  exact_topk_t(base, nb, d, queries, nq, k, ids, scores, threads, bias, [&](int64_t q) { return Ok{&accept, q}; },
               true);
}
}  // namespace store

}  // namespace mindrec
