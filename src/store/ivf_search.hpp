// Private: mindrec's own search of a Faiss IVF index (ivf_search.cpp): the coarse assignment
// and the list scans, which the faiss: backend (faiss_store.cpp) calls for its IVF indexes.
// Faiss's own IVF search (Debian's 1.7.3, built for baseline x86-64) scores the centroids and
// the lists one scalar product at a time; these use mindrec's run-time dispatched kernels
// (detail/simd.hpp). Writes to the lists are ivf_lists.hpp's.
#pragma once

#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexScalarQuantizer.h>

#include <cstdint>
#include <vector>

#include "mindrec/vector_store.hpp"

namespace mindrec::store::ivf {

/// A copy of a flat coarse quantizer's centroids laid out for detail::simd's block16_dot
/// (block_centroids), and the quantizer it was made of; coarse_assign uses it only for that
/// quantizer (else an Eigen GEMM on the centroids themselves).
struct CentroidBlocks {
  const std::vector<float>* data = nullptr;
  const faiss::Index* of = nullptr;
};

/// The flat coarse quantizer's centroids of `index` (an IVF, alone or behind a
/// pre-transform), 16 to a block, dimension-major; empty where it has no trained flat
/// quantizer of the IVF's dimension.
std::vector<float> block_centroids(const faiss::Index& index);

/// Each of the nq vectors' nprobe best lists of `v` (assign [nq, nprobe]) and their scores
/// (coarse: inner product, or squared L2 distance). False, writing nothing, where `v` has no
/// flat quantizer of its dimension.
bool coarse_assign(const faiss::IndexIVF& v, const CentroidBlocks& blocks, int64_t nq, const float* q, int64_t nprobe,
                   int64_t* assign, float* coarse);

/// `v` if its fast-scan lists are ones mindrec scans (4-bit PQ, inner product, blocks of 32,
/// at most 128 sub-quantizers), else null.
const faiss::IndexIVFPQFastScan* own_pq4_scan(const faiss::IndexIVF* v);

/// The top-k of each query over its assigned lists (ids/scores [nq, k], best first, padded with
/// -1), the filter and exclusions of `ctx` (query i is ctx's query q0 + i) applied inside the
/// scan: IVF-Flat (inner product or L2), IVF-SQ8 and 4-bit PQ fast-scan (inner product).
/// False, writing nothing, for any other index (Faiss's search_preassigned then).
bool scan(const faiss::IndexIVF& v, int64_t nq, const float* q, int k, int64_t nprobe, const int64_t* assign,
          const float* coarse, float* scores, int64_t* ids, const SearchContext& ctx, int64_t q0);

}  // namespace mindrec::store::ivf
