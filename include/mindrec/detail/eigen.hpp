// Eigen typedefs. mindrec data is row-major everywhere; Eigen defaults to column-major, so
// every matrix type is named here once with Eigen::RowMajor.
#pragma once

#include <Eigen/Core>

namespace mindrec::detail {

template <class S>
using MatR = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using RowVec = Eigen::Matrix<S, 1, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using MapMat = Eigen::Map<MatR<S>>;
template <class S>
using MapConstMat = Eigen::Map<const MatR<S>>;
template <class S>
using MapRow = Eigen::Map<RowVec<S>>;
template <class S>
using MapConstRow = Eigen::Map<const RowVec<S>>;

}  // namespace mindrec::detail
