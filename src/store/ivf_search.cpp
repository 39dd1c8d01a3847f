// mindrec's own IVF search on a Faiss IVF index's lists (the faiss: backend hands its IVF
// indexes here, faiss_store.cpp): the coarse assignment of queries to lists and the list
// scans of IVF-Flat, IVF-SQ8 and 4-bit PQ fast-scan, each with the filter inside the scan.
// The lists' writes are in ivf_lists.cpp.
#include "store/ivf_search.hpp"

#include <faiss/IVFlib.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <typeinfo>
#include <vector>

#include "detail/parallel.hpp"
#include "detail/simd.hpp"
#include "detail/vector_math.hpp"
#include "mindrec/config.hpp"
#include "mindrec/detail/eigen.hpp"
#include "store/topk_select.hpp"

namespace mindrec::store::ivf {
namespace {

// Calls fn(j, n, codes, ids) for each non-empty probed list assign[j], j < nprobe.
template <class Fn>
void for_each_list(const faiss::InvertedLists* lists, const int64_t* assign, int64_t nprobe, Fn&& fn) {
  for (int64_t j = 0; j < nprobe; ++j) {
    if (assign[j] < 0) continue;
    const size_t list = size_t(assign[j]), n = lists->list_size(list);
    if (n == 0) continue;
    faiss::InvertedLists::ScopedCodes codes(lists, list);
    faiss::InvertedLists::ScopedIds lid(lists, list);
    fn(j, n, codes.get(), lid.get());
  }
}

// The list scan of IVF-Flat, vectorised: each probed list is a row-major [n, d] float
// block, scored against the query by one Eigen GEMV, and the shared k-selection keeps the
// best (rank = inner product or -squared distance; ties to the smaller id).
void scan_flat(const faiss::IndexIVF& v, int64_t nq, const float* q, int k, int64_t nprobe, const int64_t* assign,
               float* scores, int64_t* ids, const SearchContext& ctx, int64_t q0) {
  const bool filtered = ctx.filtered();
  const int d = v.d;
  const bool ip = v.metric_type == faiss::METRIC_INNER_PRODUCT;
  const faiss::InvertedLists* lists = v.invlists;
#pragma omp parallel for schedule(dynamic, 8) if (nq >= 64) num_threads(default_threads())
  for (int64_t i = 0; i < nq; ++i) {
    const Eigen::Map<const Eigen::RowVectorXf> qi(q + i * d, d);
    TopK best(k);
    Eigen::VectorXf sc;
    for_each_list(lists, assign + i * nprobe, nprobe, [&](int64_t, size_t n, const uint8_t* codes, const int64_t* lid) {
      const detail::MapConstMat<float> X(reinterpret_cast<const float*>(codes), int64_t(n), d);
      if (ip) sc.noalias() = X * qi.transpose();
      else sc = -(X.rowwise() - qi).rowwise().squaredNorm();
      if (!filtered) {
        for (size_t r = 0; r < n; ++r) best.push(sc[int64_t(r)], lid[r]);
      } else {  // the filter inside the scan: a vector that could enter is asked first
        for (size_t r = 0; r < n; ++r)
          if ((!best.full() || sc[int64_t(r)] >= best.worst()) && ctx.allows(q0 + i, lid[r])) best.push(sc[int64_t(r)], lid[r]);
      }
    });
    best.write(ids + i * k, scores + i * k, 0.f, !ip);
  }
}

// The list scan of IVF-SQ8 under inner product, vectorised (detail::simd's dot_u8 at the
// CPU's best level): Faiss' 8-bit codes decode to x_j = vmin_j + (c_j + 0.5) / 255 * vdiff_j
// (plus the list's centroid when the codes are residuals), so
//   q.x = q.centroid + sum_j q_j (vmin_j + 0.5 vdiff_j / 255) + sum_j (q_j vdiff_j / 255) c_j,
// one constant per query and list plus one u8 dot product per vector. The scores are those of
// the decoded vectors, as Faiss' own scan gives (re-rank exactly with RecallOptions::rerank).
void scan_sq8(const faiss::IndexIVFScalarQuantizer& v, int64_t nq, const float* q, int k, int64_t nprobe,
              const int64_t* assign, const float* coarse, float* scores, int64_t* ids, const SearchContext& ctx,
              int64_t q0) {
  const bool filtered = ctx.filtered();
  const int d = v.d;
  const float* vmin = v.sq.trained.data();
  const float* vdiff = v.sq.trained.data() + d;
  const faiss::InvertedLists* lists = v.invlists;
  const auto dot_u8 = detail::simd().dot_u8;
#pragma omp parallel for schedule(dynamic, 8) if (nq >= 64) num_threads(default_threads())
  for (int64_t i = 0; i < nq; ++i) {
    const float* qi = q + i * d;
    std::vector<float> qs(static_cast<size_t>(d));
    float base = 0;
    for (int j = 0; j < d; ++j) {
      qs[size_t(j)] = qi[j] * vdiff[j] / 255.f;
      base += qi[j] * (vmin[j] + 0.5f * vdiff[j] / 255.f);
    }
    TopK best(k);
    for_each_list(lists, assign + i * nprobe, nprobe, [&](int64_t j, size_t n, const uint8_t* code, const int64_t* lid) {
      const float c0 = base + (v.by_residual ? coarse[i * nprobe + j] : 0.f);
      for (size_t r = 0; r < n; ++r) {
        const float sc = c0 + dot_u8(qs.data(), code + r * size_t(d), size_t(d));
        if (!filtered || ((!best.full() || sc >= best.worst()) && ctx.allows(q0 + i, lid[r]))) best.push(sc, lid[r]);
      }
    });
    best.write(ids + i * k, scores + i * k, 0.f, false);
  }
}

// The list scan of IVF-PQ fast-scan (4-bit codes) under inner product. With residual codes,
// q.x = q.centroid + sum_m q_m . C_m[code_m] (C_m: sub-quantizer m's 16 centroids), so one
// table of 16 floats per sub-quantizer serves every list. The tables are rounded to uint8
// with one scale a (the widest table spans 0..255) and the kernel adds them up for 32 codes
// at a time in SIMD registers (detail::simd's pq4_block). Each rounded entry is within
// 0.5 / a of its float, so a sum S can only belong to a float score >= the bar of the top-k
// if S >= (bar - constant) * a - M / 2: the kernel returns those vectors, whose float score
// (the sum of the float tables) goes to the shared k-selection. The result is the exact
// top-k of the decoded vectors' inner products, the scores Faiss's IndexIVFPQ would give;
// RecallOptions::rerank makes them exact.
void scan_pq4(const faiss::IndexIVFPQFastScan& v, int64_t nq, const float* q, int k, int64_t nprobe,
              const int64_t* assign, const float* coarse, float* scores, int64_t* ids, const SearchContext& ctx,
              int64_t q0) {
  const bool filtered = ctx.filtered();
  const size_t M = v.M, M2 = v.M2, dsub = v.pq.dsub;
  const float* cent = v.pq.centroids.data();  // [M][16][dsub]
  const faiss::InvertedLists* lists = v.invlists;
  const auto block_scan = detail::simd().pq4_block;
  const size_t block_bytes = 16 * M2;  // 32 codes of M2 nibbles
#pragma omp parallel for schedule(dynamic, 8) if (nq >= 64) num_threads(default_threads())
  for (int64_t i = 0; i < nq; ++i) {
    const float* qi = q + i * v.d;
    std::vector<float> lut(16 * M2, 0.f);
    std::vector<uint8_t> lut8(16 * M2, 0);
    float lo_sum = 0.f, span = 0.f;
    for (size_t m = 0; m < M; ++m) {
      float lo = INFINITY, hi = -INFINITY;
      for (size_t c = 0; c < 16; ++c) {
        const float* cm = cent + (m * 16 + c) * dsub;  // a few dimensions: a plain loop
        float t = 0.f;
        for (size_t e = 0; e < dsub; ++e) t += qi[m * dsub + e] * cm[e];
        lut[m * 16 + c] = t;
        lo = std::min(lo, t);
        hi = std::max(hi, t);
      }
      for (size_t c = 0; c < 16; ++c) lut[m * 16 + c] -= lo;  // the floats too: one rounding less
      lo_sum += lo;
      span = std::max(span, hi - lo);
    }
    const float a = span > 0.f ? 255.f / span : 0.f;
    for (size_t e = 0; e < 16 * M; ++e) lut8[e] = uint8_t(std::min(255.f, std::nearbyint(lut[e] * a)));
    const float slack = 0.5f * float(M) + 1.f;  // rounding of M entries, plus float error
    TopK best(k);
    uint16_t sums[32];
    for_each_list(lists, assign + i * nprobe, nprobe, [&](int64_t j, size_t n, const uint8_t* code, const int64_t* lid) {
      const float c0 = lo_sum + (v.by_residual ? coarse[i * nprobe + j] : 0.f);
      for (size_t b0 = 0; b0 < n; b0 += 32, code += block_bytes) {
        uint16_t bar = 0;
        if (best.full() && a > 0.f) {
          // worst and c0 are floats of magnitude ~|c0|: their difference carries rounding of
          // a few ulp(c0), which the scale a magnifies (review F16: residual codes whose
          // centroid term dwarfs the tables' span).
          const float need = (best.worst() - c0) * a - slack - std::abs(c0) * a * FLT_EPSILON * 4.f;
          bar = need <= 0.f ? 0 : need >= 32767.f ? 32767 : uint16_t(std::ceil(need));
        }
        uint32_t hits = block_scan(code, lut8.data(), M2 / 2, bar, sums);
        if (n - b0 < 32) hits &= (uint32_t(1) << (n - b0)) - 1;
        while (hits) {
          const size_t r = size_t(__builtin_ctz(hits));
          hits &= hits - 1;
          size_t at;  // vector r's byte in each sub-quantizer's 16 (simd.hpp's layout)
          unsigned shift;
          detail::pq4_code_position(r, 0, &at, &shift);
          float s0 = 0.f, s1 = 0.f;
          const float* t = lut.data();
          for (size_t p = 0; p < M2 / 2; ++p, at += 32, t += 32) {  // padded sub-quantizer: table 0
            s0 += t[(code[at] >> shift) & 15u];
            s1 += t[16 + ((code[at + 16] >> shift) & 15u)];
          }
          if (!filtered || ctx.allows(q0 + i, lid[b0 + r])) best.push(c0 + (s0 + s1), lid[b0 + r]);
        }
      }
    });
    best.write(ids + i * k, scores + i * k, 0.f, false);
  }
}
}  // namespace

// The flat coarse quantizer's centroids, 16 to a block, dimension-major (detail::simd's
// block16_dot); empty where the index has no trained flat quantizer. The caller keeps it
// beside the index (with the quantizer it was made of: CentroidBlocks), set in the same
// exclusive section that trains, replaces or clears the index.
std::vector<float> block_centroids(const faiss::Index& index) {
  const auto* v = faiss::ivflib::try_extract_index_ivf(const_cast<faiss::Index*>(&index));
  const auto* flat = v ? dynamic_cast<const faiss::IndexFlat*>(v->quantizer) : nullptr;
  if (!v || !v->is_trained || !flat || flat->d != v->d || flat->ntotal != int64_t(v->nlist)) return {};
  const size_t nlist = v->nlist, dd = size_t(v->d);
  std::vector<float> ct((nlist + 15) / 16 * dd * 16, 0.f);
  const float* c = flat->get_xb();
  for (size_t r = 0; r < nlist; ++r)
    for (size_t j = 0; j < dd; ++j) ct[((r / 16) * dd + j) * 16 + r % 16] = c[r * dd + j];
  return ct;
}

// The coarse assignment of an IVF with a flat quantizer of the IVF's dimension, by
// mindrec (the centroids' scores by detail::simd's block16_dot on the copy above, else a
// blocked Eigen GEMM, + partial selection): each of the nq vectors' nprobe best lists and
// their scores (inner product, or squared L2 distance). Debian's Faiss is built for baseline
// x86-64 and scores the centroids one scalar inner product at a time: for one user (4
// queries x 4,096 centroids) that was most of the ~0.8 ms a search took, and most of the
// time a batch took to be added. Blocks of 256 vectors on the thread policy's team. Returns
// false (writing nothing) where it does not apply.
bool coarse_assign(const faiss::IndexIVF& v, const CentroidBlocks& blocks, int64_t nq, const float* q, int64_t nprobe,
                   int64_t* assign, float* coarse) {
  auto* flat = dynamic_cast<const faiss::IndexFlat*>(v.quantizer);
  if (!v.is_trained || !flat || flat->ntotal != int64_t(v.nlist) || flat->d != v.d) return false;
  const int d = v.d;
  const int64_t nlist = static_cast<int64_t>(v.nlist);
  nprobe = std::min(nprobe, nlist);
  const bool ip = v.metric_type == faiss::METRIC_INNER_PRODUCT;
  using Mat = detail::MatR<float>;
  const detail::MapConstMat<float> C(flat->get_xb(), nlist, d);
  Eigen::VectorXf cnorm;
  if (!ip) cnorm = C.rowwise().squaredNorm();
  constexpr int64_t kBlock = 256;  // queries per GEMM: bounds the [block, nlist] scratch
  // Eigen packs the 4,096 x 64 centroids on every call, which for one user's 4 queries was
  // most of the assignment; the block kernel reads the copy laid out for it instead.
  const bool blocked = blocks.of == v.quantizer && blocks.data && !blocks.data->empty();
  const int64_t stride = blocked ? (nlist + 15) / 16 * 16 : nlist;
  const int64_t nblocks = (nq + kBlock - 1) / kBlock;
  detail::parallel_for(nblocks, nblocks > 1 ? 0 : 1, 1, [&](int64_t blk) {
    const int64_t b0 = blk * kBlock, nb = std::min(kBlock, nq - b0);
    const detail::MapConstMat<float> Q(q + b0 * d, nb, d);
    Mat S;
    if (blocked) {
      S.resize(nb, stride);
      detail::simd().block16_dot(blocks.data->data(), size_t(stride / 16), size_t(d), q + b0 * d, size_t(nb), S.data());
    } else {
      S.noalias() = Q * C.transpose();
    }
    std::vector<int64_t> order(static_cast<size_t>(nlist));
    for (int64_t i = 0; i < nb; ++i) {
      float* row = S.data() + i * stride;
      if (!ip) {  // squared L2 = |q|^2 + |c|^2 - 2 q.c, smaller is better: rank by -(...)
        const float qn = Q.row(i).squaredNorm();
        for (int64_t c = 0; c < nlist; ++c) row[c] = -(qn + cnorm[c] - 2.f * row[c]);
      }
      for (int64_t c = 0; c < nlist; ++c) order[size_t(c)] = c;
      std::partial_sort(order.begin(), order.begin() + nprobe, order.end(),
                        [row](int64_t a, int64_t b) { return row[a] > row[b]; });
      for (int64_t j = 0; j < nprobe; ++j) {
        assign[size_t((b0 + i) * nprobe + j)] = order[size_t(j)];
        const float sc = row[order[size_t(j)]];
        coarse[size_t((b0 + i) * nprobe + j)] = ip ? sc : -sc;
      }
    }
  });
  return true;
}

// IVF-PQ fast-scan lists mindrec scans itself: inner product, 4-bit codes in blocks of 32,
// at most 128 sub-quantizers (sums of 128 uint8 table entries fit the kernel's uint16).
const faiss::IndexIVFPQFastScan* own_pq4_scan(const faiss::IndexIVF* v) {
  const auto* fs = dynamic_cast<const faiss::IndexIVFPQFastScan*>(v);
  if (!fs || fs->metric_type != faiss::METRIC_INNER_PRODUCT || fs->nbits != 4 || fs->bbs != 32 ||
      fs->M > 128 || fs->pq.dsub * fs->M != size_t(v->d))
    return nullptr;
  return fs;
}

bool scan(const faiss::IndexIVF& v, int64_t nq, const float* q, int k, int64_t nprobe, const int64_t* assign,
          const float* coarse, float* scores, int64_t* ids, const SearchContext& ctx, int64_t q0) {
  const bool ip = v.metric_type == faiss::METRIC_INNER_PRODUCT;
  if (typeid(v) == typeid(faiss::IndexIVFFlat)) {
    scan_flat(v, nq, q, k, nprobe, assign, scores, ids, ctx, q0);
    return true;
  }
  if (const auto* sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(&v);
      sq && ip && sq->sq.qtype == faiss::ScalarQuantizer::QT_8bit && sq->code_size == size_t(v.d)) {
    scan_sq8(*sq, nq, q, k, nprobe, assign, coarse, scores, ids, ctx, q0);
    return true;
  }
  if (const auto* pq4 = own_pq4_scan(&v)) {
    scan_pq4(*pq4, nq, q, k, nprobe, assign, coarse, scores, ids, ctx, q0);
    return true;
  }
  return false;
}

}  // namespace mindrec::store::ivf
