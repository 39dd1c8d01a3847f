// Checked CUDA calls: every runtime call goes through MINDREC_CUDA_CHECK, which throws
// mindrec::CudaError naming the call, file and line (a library inside a server must not abort).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "mindrec/error.hpp"

namespace mindrec::cuda_detail {
[[noreturn]] inline void throw_cuda(cudaError_t err, const char* call, const char* file, int line) {
  throw CudaError(std::string(call) + " failed: " + cudaGetErrorName(err) + " (" +
                  cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line));
}

/// Throws CudaError "<who>: CUDA device N is not available (M device(s))" unless `device`
/// exists; a host without a driver or a device counts as 0 devices, never as an abort.
inline void require_device(const std::string& who, int device) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || device < 0 || device >= count) {
    cudaGetLastError();  // clear the sticky error of a failed query
    throw CudaError(who + ": CUDA device " + std::to_string(device) + " is not available (" +
                    std::to_string(err == cudaSuccess ? count : 0) + " device(s))");
  }
}
}  // namespace mindrec::cuda_detail

#define MINDREC_CUDA_CHECK(call)                                                      \
  do {                                                                                \
    const cudaError_t mindrec_err_ = (call);                                          \
    if (mindrec_err_ != cudaSuccess)                                                  \
      ::mindrec::cuda_detail::throw_cuda(mindrec_err_, #call, __FILE__, __LINE__);    \
  } while (0)

#include <cublas_v2.h>

namespace mindrec::cuda_detail {
[[noreturn]] inline void throw_cublas(cublasStatus_t st, const char* call, const char* file, int line) {
  throw CudaError(std::string(call) + " failed: cuBLAS status " + std::to_string(int(st)) + " at " + file + ":" +
                  std::to_string(line));
}
}  // namespace mindrec::cuda_detail

#define MINDREC_CUBLAS_CHECK(call)                                                    \
  do {                                                                                \
    const cublasStatus_t mindrec_st_ = (call);                                        \
    if (mindrec_st_ != CUBLAS_STATUS_SUCCESS)                                         \
      ::mindrec::cuda_detail::throw_cublas(mindrec_st_, #call, __FILE__, __LINE__);   \
  } while (0)
