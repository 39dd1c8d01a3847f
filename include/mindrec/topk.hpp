// Exact top-k search over a row-major table: the reference every store is tested against,
// and the scan behind the `flat` store and the evaluation's exact retrieval.
#pragma once

#include <cstdint>

#include "mindrec/export.hpp"

namespace mindrec {

/// Exact inner-product top-k: for each of `nq` queries [nq, d] the k rows of `base` [nb, d]
/// with the largest inner product (row index = id), best first, ties to the smaller id.
/// Writes ids [nq, k] and scores [nq, k]; when k > nb the tail is id -1, score -inf.
/// Parallel over queries, or over ranges of `base` when there are too few queries to keep
/// the threads busy (`threads` 0 = all cores); deterministic: the same result for any
/// thread count, and a query's ids and scores are the same bits whatever queries share the
/// call (one user alone or inside a batch of thousands). With `bias` [nb], row j
/// scores <q, x_j> + bias[j].
MINDREC_API void exact_topk(const float* base, int64_t nb, int d, const float* queries, int64_t nq,
                            int k, int64_t* ids, float* scores, int threads = 0,
                            const float* bias = nullptr);

}  // namespace mindrec
