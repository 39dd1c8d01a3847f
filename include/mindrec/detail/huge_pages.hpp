// Installed for mindrec's own Python package (python/src/core.hpp), not part of the API: one
// allocator for the library and the package. Memory read at random (an hnsw graph's level-0
// block, its codes) or written in large arrays (the package's outputs) on transparent huge
// pages: on 4 KiB pages nearly every element read is also a TLB miss. The
// advice is given before the memory is first written, so its pages are faulted in huge
// (honoured where THP is "always" or "madvise"; harmless elsewhere). MINDREC_HUGE_PAGES=0 in
// the environment turns it off.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace mindrec::detail {

inline void advise_huge_pages(const void* at, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  static const bool off = [] {
    const char* v = std::getenv("MINDREC_HUGE_PAGES");
    return v && std::string(v) == "0";
  }();
  if (off) return;
  constexpr uintptr_t huge = uintptr_t(2) << 20;
  const auto begin = reinterpret_cast<uintptr_t>(at);
  const uintptr_t a = (begin + huge - 1) & ~(huge - 1), b = (begin + bytes) & ~(huge - 1);
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
#else
  (void)at, (void)bytes;
#endif
}

/// Storage of 2 MiB and more aligned to 2 MiB and advised for huge pages; smaller storage
/// 64-byte aligned.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHuge = size_t(2) << 20;
  HugePageAllocator() noexcept = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T), align = bytes >= kHuge ? kHuge : 64;
    void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!p) throw std::bad_alloc();
    if (align == kHuge) advise_huge_pages(p, bytes);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const noexcept { return false; }
};

}  // namespace mindrec::detail
