// Device queries for builds without CUDA (MINDREC_WITH_CUDA=OFF).
#include "mindrec/device.hpp"
#include "mindrec/error.hpp"

namespace mindrec {
bool built_with_cuda() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_description(int) {
  throw Unsupported("this build of mindrec has no CUDA support (configure with -DMINDREC_WITH_CUDA=ON)");
}
void cuda_self_test(int) {
  throw Unsupported("this build of mindrec has no CUDA support (configure with -DMINDREC_WITH_CUDA=ON)");
}
}  // namespace mindrec
