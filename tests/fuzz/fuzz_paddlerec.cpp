// PaddleRec's text formats: the first byte picks the training log or the evaluation reader
// (and whether an item_count bound applies); the rest is the file.
#include "fuzz_common.hpp"
#include "mindrec/data.hpp"
#include "mindrec/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const std::string& path = mindrec::fuzz::write_input(data + 1, size - 1, ".txt");
  const int64_t item_count = (mode & 2) ? 1000 : 0;
  try {
    if (mode & 1) {
      const mindrec::EvalSet s = mindrec::read_eval_data(path, item_count);
      for (int64_t u = 0; u < s.num_users(); ++u) (void)s.eval_length(u);
    } else {
      const mindrec::ClickLog log = mindrec::read_train_data(path, item_count);
      (void)log.num_users();
    }
  } catch (const mindrec::Error&) {
  }
  return 0;
}
