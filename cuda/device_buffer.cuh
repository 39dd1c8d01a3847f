// Device memory that only grows: once the largest batch has been seen, calls allocate nothing.
#pragma once

#include <algorithm>
#include <cstddef>

#include "check.cuh"

namespace mindrec::cuda_detail {

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t cap = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  /// At least n elements (contents are not kept when it grows).
  T* get(size_t n) {
    if (n > cap) {
      if (ptr) MINDREC_CUDA_CHECK(cudaFree(ptr));
      ptr = nullptr;
      cap = 0;
      MINDREC_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)));
      cap = n;
    }
    return ptr;
  }
  /// Copies n host elements in (asynchronously on `stream`).
  void upload(const T* host, size_t n, cudaStream_t stream) {
    get(n);
    if (n) MINDREC_CUDA_CHECK(cudaMemcpyAsync(ptr, host, n * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
};

}  // namespace mindrec::cuda_detail
