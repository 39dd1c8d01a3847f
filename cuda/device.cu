// Device discovery and a self-test kernel. No Eigen here (nvcc and Eigen's headers are kept
// apart: .cu files see only plain pointers).
#include <vector>

#include "check.cuh"
#include "mindrec/device.hpp"

namespace mindrec {
namespace {
__global__ void saxpy_kernel(int n, float a, const float* x, float* y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

void check_index(int index) {
  const int n = cuda_device_count();
  if (index < 0 || index >= n)
    throw InvalidArgument("CUDA device " + std::to_string(index) + " does not exist (" +
                          std::to_string(n) + " device(s))");
}
}  // namespace

bool built_with_cuda() { return true; }

int cuda_device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  // No driver or no device is a normal state for a CPU host, not an error.
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
      err == cudaErrorNotSupported || err == cudaErrorInitializationError) {
    cudaGetLastError();
    return 0;
  }
  MINDREC_CUDA_CHECK(err);
  return n;
}

std::string cuda_device_description(int index) {
  check_index(index);
  cudaDeviceProp p{};
  MINDREC_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.totalGlobalMem >> 20) + " MiB)";
}

void cuda_self_test(int index) {
  check_index(index);
  MINDREC_CUDA_CHECK(cudaSetDevice(index));
  const int n = 1 << 20;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = float(i % 1000), y[i] = 1.0f;
  float *dx = nullptr, *dy = nullptr;
  MINDREC_CUDA_CHECK(cudaMalloc(&dx, n * sizeof(float)));
  try {
    MINDREC_CUDA_CHECK(cudaMalloc(&dy, n * sizeof(float)));
    MINDREC_CUDA_CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    MINDREC_CUDA_CHECK(cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    saxpy_kernel<<<(n + 255) / 256, 256>>>(n, 2.0f, dx, dy);
    MINDREC_CUDA_CHECK(cudaGetLastError());
    MINDREC_CUDA_CHECK(cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(dx);
    cudaFree(dy);
    throw;
  }
  cudaFree(dx);
  cudaFree(dy);
  for (int i = 0; i < n; ++i)
    if (y[i] != 2.0f * float(i % 1000) + 1.0f)
      throw Error("cuda_self_test: wrong result at element " + std::to_string(i));
}

}  // namespace mindrec
