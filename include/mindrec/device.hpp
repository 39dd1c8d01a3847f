// Which CUDA devices this process can use. Safe to call in every build: without CUDA support
// compiled in, or on a host without a driver or a GPU, the count is 0 (nothing aborts).
#pragma once

#include <string>

namespace mindrec {

/// True if this build of mindrec has its CUDA kernels (MINDREC_WITH_CUDA=ON).
bool built_with_cuda();

/// Number of usable CUDA devices; 0 without CUDA support, driver or device.
int cuda_device_count();

/// "name (sm_XY, N MiB)" of device `index`; throws InvalidArgument for a bad index and
/// CudaError if the runtime fails.
std::string cuda_device_description(int index);

/// Launches a small kernel on device `index` (y = a·x + y on 1M floats) and checks every
/// element on the host: proves the toolchain, the compiled architectures and the driver
/// agree. Throws CudaError (call, file, line) or Error on a wrong result.
void cuda_self_test(int index);

}  // namespace mindrec
