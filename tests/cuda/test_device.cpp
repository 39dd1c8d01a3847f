// CUDA device test: skips (exit 77) with a message where no device exists; otherwise runs
// the self-test kernel on every device and checks its result element by element.
#include <cstdio>

#include "mindrec/device.hpp"
#include "mindrec/error.hpp"
#include "mindrec/model.hpp"

int main() {
  if (!mindrec::built_with_cuda()) {
    std::printf("FAIL: built without CUDA but the CUDA tests were enabled\n");
    return 1;
  }
  const int n = mindrec::cuda_device_count();
  if (n == 0) {
    // Without a device, asking for the CUDA model is a typed error, not an abort.
    mindrec::ModelConfig c;
    c.item_count = 50;
    c.neg_samples = 5;
    try {
      mindrec::MindModel m(mindrec::init_weights(c, 1), mindrec::Device::cuda);
      std::printf("FAIL: MindModel on CUDA was built without a device\n");
      return 1;
    } catch (const mindrec::CudaError& e) {
      std::printf("no device: MindModel(Device::cuda) throws CudaError: %s\n", e.what());
    }
    std::printf("SKIP: no CUDA device on this host (CUDA tests need a GPU)\n");
    return 77;
  }
  try {
    for (int i = 0; i < n; ++i) {
      std::printf("device %d: %s\n", i, mindrec::cuda_device_description(i).c_str());
      mindrec::cuda_self_test(i);
      std::printf("device %d: self-test kernel OK\n", i);
    }
  } catch (const mindrec::Error& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  return 0;
}
