// What needs CUDA, in builds without it (MINDREC_WITH_CUDA=OFF): device queries that find
// none, and the CUDA model and store, which answer Unsupported naming the option.
#include "mindrec/device.hpp"
#include "mindrec/error.hpp"
#include "model/device_model.hpp"
#include "store/backends.hpp"

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

namespace mindrec {
namespace model {
std::unique_ptr<DeviceModel> make_cuda_model(const MindWeights&, const float*) {
  throw Unsupported("MindModel: the CUDA device is not available in this build (MINDREC_WITH_CUDA=OFF)");
}
}  // namespace model
namespace store {
std::unique_ptr<VectorStore> make_cuda_flat_store(int, Metric) {
  throw Unsupported("vector store 'cuda:flat' needs a build with MINDREC_WITH_CUDA=ON");
}
}  // namespace store
}  // namespace mindrec
