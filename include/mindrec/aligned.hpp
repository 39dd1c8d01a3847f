// 64-byte aligned storage for float arrays. Vectorised reductions (Eigen's and the compiler's)
// peel a number of leading elements that depends on the pointer's alignment, which changes
// the order of floating-point additions. With every buffer 64-byte aligned, the arithmetic
// depends only on the data, so results are bit-for-bit reproducible from run to run.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace mindrec {

template <class T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() noexcept = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n == 0) return nullptr;
    const std::size_t bytes = (n * sizeof(T) + Align - 1) / Align * Align;
    void* p = std::aligned_alloc(Align, bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const AlignedAllocator<U, Align>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const AlignedAllocator<U, Align>&) const noexcept { return false; }
};

/// std::vector with 64-byte aligned storage.
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace mindrec
