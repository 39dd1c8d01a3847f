// Exact top-k: blocked GEMM of queries against the base, then the shared k-selection.
#include "mindrec/topk.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <limits>
#include <vector>

#include "mindrec/config.hpp"
#include "mindrec/detail/eigen.hpp"
#include "mindrec/error.hpp"
#include "store/topk_select.hpp"

namespace mindrec {

void exact_topk(const float* base, int64_t nb, int d, const float* queries, int64_t nq, int k,
                int64_t* ids, float* scores, int threads, const float* bias) {
  MINDREC_EXPECTS(nb >= 0 && nq >= 0 && d >= 1 && k >= 1, "exact_topk: bad sizes");
  for (int64_t i = 0; i < nq * d; ++i)  // NaN would reach the k-selection's comparisons
    if (!std::isfinite(queries[i]))
      throw InvalidArgument("exact_topk: query " + std::to_string(i / d) + " holds NaN or Inf");
  constexpr int64_t kQueryBlock = 64, kBaseBlock = 4096;
  const int64_t qblocks = (nq + kQueryBlock - 1) / kQueryBlock;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(resolve_threads(threads), qblocks)));
  const float pad = -std::numeric_limits<float>::infinity();
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    detail::MatR<float> block;
    std::vector<store::TopK> best(kQueryBlock, store::TopK(k));
#pragma omp for schedule(dynamic, 1)
    for (int64_t qb = 0; qb < qblocks; ++qb) {
      const int64_t q0 = qb * kQueryBlock, qn = std::min(kQueryBlock, nq - q0);
      for (int64_t i = 0; i < qn; ++i) best[size_t(i)].reset(k);
      detail::MapConstMat<float> Q(queries + q0 * d, qn, d);
      for (int64_t b0 = 0; b0 < nb; b0 += kBaseBlock) {
        const int64_t bn = std::min(kBaseBlock, nb - b0);
        block.resize(qn, bn);
        block.noalias() = Q * detail::MapConstMat<float>(base + b0 * d, bn, d).transpose();
        for (int64_t i = 0; i < qn; ++i) {
          store::TopK& h = best[size_t(i)];
          const float* row = block.data() + i * bn;
          if (bias)
            for (int64_t j = 0; j < bn; ++j) h.push(row[j] + bias[b0 + j], b0 + j);
          else
            for (int64_t j = 0; j < bn; ++j) h.push(row[j], b0 + j);
        }
      }
      for (int64_t i = 0; i < qn; ++i) best[size_t(i)].write(ids + (q0 + i) * k, scores + (q0 + i) * k, pad);
    }
  }
}

}  // namespace mindrec
