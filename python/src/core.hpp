// Shared helpers of the binding: NumPy arrays that own C++ buffers (zero-copy outputs) and
// the input array types (read in place when C-contiguous and of the right dtype; the Python
// layer converts anything else once, before the call).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "mindrec/detail/huge_pages.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <new>
#include <utility>
#include <vector>

namespace mindrec::py {

namespace nb = nanobind;

template <class T>
using Out = nb::ndarray<nb::numpy, T>;

/// An input array: dtype T, C-contiguous, on the CPU; ndim checked by the caller (its message
/// names the argument).
template <class T>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;

/// A caller's output array: written in place, so it must already be float32/int32,
/// C-contiguous and writable (no conversion).
template <class T>
using Into = nb::ndarray<T, nb::c_contig, nb::device::cpu>;

/// Moves `v` into a NumPy array of `shape` without copying: the array's base is a capsule
/// that frees the vector when the last view is gone.
template <class T, class Alloc>
Out<T> to_numpy(std::vector<T, Alloc>&& v, std::initializer_list<size_t> shape) {
  auto* owned = new std::vector<T, Alloc>(std::move(v));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T, Alloc>*>(p); });
  return Out<T>(owned->data(), shape, owner);
}

/// An uninitialised output buffer of n values (the computation writes every element: no
/// zero-filling pass), handed to NumPy without a copy by release(). The library's allocator
/// (mindrec/detail/huge_pages.hpp): 64-byte aligned, and from 2 MiB on aligned to and advised
/// for transparent huge pages (fewer TLB misses while the computation writes it).
template <class T>
class Buffer {
 public:
  explicit Buffer(size_t n) : n_(std::max<size_t>(n, 1)) { p_ = Alloc().allocate(n_); }
  ~Buffer() {
    if (p_) Alloc().deallocate(p_, n_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() { return p_; }
  /// The NumPy array of `shape` that owns the buffer from now on.
  Out<T> release(std::initializer_list<size_t> shape) {
    nb::capsule owner(p_, [](void* q) noexcept { Alloc().deallocate(static_cast<T*>(q), 0); });
    T* q = p_;
    p_ = nullptr;
    return Out<T>(q, shape, owner);
  }

 private:
  using Alloc = mindrec::detail::HugePageAllocator<T>;
  size_t n_;
  T* p_ = nullptr;
};

/// A view of `data` kept alive by the Python object `owner` (e.g. a weights tensor).
template <class T>
Out<T> view(T* data, std::initializer_list<size_t> shape, nb::handle owner) {
  return Out<T>(data, shape, owner);
}

void bind_errors(nb::module_& m);
void bind_config(nb::module_& m);
void bind_model(nb::module_& m);
void bind_store(nb::module_& m);
void bind_train(nb::module_& m);
void bind_catalogue(nb::module_& m);

}  // namespace mindrec::py
