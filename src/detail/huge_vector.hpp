// Private: sizing a large array that is then read or written at random (the item table,
// Adam's moments, per-item bookkeeping of training) so that its pages are faulted in as
// transparent huge pages: the advice is given between allocation and the first write. On
// 4 KiB pages nearly every row touched in a multi-GB table is also a TLB miss.
// MINDREC_HUGE_PAGES=0 turns the advice off (detail::advise_huge_pages).
#pragma once

#include <cstddef>
#include <vector>

#include "mindrec/detail/huge_pages.hpp"

namespace mindrec::detail {

/// Arrays smaller than this stay as they are (a huge page would be mostly empty).
inline constexpr size_t kHugeArrayBytes = size_t(32) << 20;

/// v = n copies of `value`, in fresh storage advised for huge pages when it is large.
template <class T, class A>
void assign_on_huge_pages(std::vector<T, A>& v, size_t n, const T& value = T()) {
  if (n * sizeof(T) < kHugeArrayBytes) {
    v.assign(n, value);
    return;
  }
  std::vector<T, A> fresh;
  fresh.reserve(n);
  advise_huge_pages(fresh.data(), n * sizeof(T));
  fresh.assign(n, value);
  v.swap(fresh);
}

}  // namespace mindrec::detail
