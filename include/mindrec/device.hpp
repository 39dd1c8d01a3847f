// Where mindrec computes (Device), and which CUDA devices this process can use. The queries
// are safe to call in every build: without CUDA support compiled in, or on a host without a
// driver or a GPU, the count is 0 (nothing aborts).
#pragma once

#include <string>

#include "mindrec/export.hpp"

namespace mindrec {

/// Where a MindModel computes. `cuda` needs a build with MINDREC_WITH_CUDA (else Unsupported)
/// and a device (CUDA device 0; else CudaError); it computes the same function as `cpu`
/// (tests/cuda/test_model_parity.cpp: relative error <= 1e-5 in FP32).
enum class Device { cpu, cuda };

/// True if this build of mindrec has its CUDA kernels (MINDREC_WITH_CUDA=ON).
MINDREC_API bool built_with_cuda();

/// Number of usable CUDA devices; 0 without CUDA support, driver or device.
MINDREC_API int cuda_device_count();

/// "name (sm_XY, N MiB)" of device `index`; throws InvalidArgument for a bad index and
/// CudaError if the runtime fails.
MINDREC_API std::string cuda_device_description(int index);

/// Launches a small kernel on device `index` (y = a·x + y on 1M floats) and checks every
/// element on the host: proves the toolchain, the compiled architectures and the driver
/// agree. Throws CudaError (call, file, line) or Error on a wrong result.
MINDREC_API void cuda_self_test(int index);

}  // namespace mindrec
