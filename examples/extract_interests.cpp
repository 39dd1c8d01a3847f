// Embedding mindrec: load a model and turn a user's click history into K interest vectors.
//   extract_interests W.safetensors 43 23 65
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mindrec/mindrec.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s WEIGHTS.safetensors ITEM_ID [ITEM_ID ...]\n", argv[0]);
    return 2;
  }
  try {
    mindrec::MindModel model(mindrec::load_weights(argv[1]));
    const auto& c = model.config();
    // One user: the last L items of the history, right-padded with 0.
    std::vector<int64_t> clicks;
    for (int i = 2; i < argc; ++i) clicks.push_back(std::strtoll(argv[i], nullptr, 10));
    std::vector<int64_t> offsets = {0, static_cast<int64_t>(clicks.size())};
    std::vector<int64_t> hist(c.maxlen);
    int32_t len = 0;
    mindrec::pack_histories(offsets, clicks, 0, 1, c.maxlen, hist.data(), &len);

    std::vector<float> interests(size_t(c.capsule.max_k) * c.hidden_size);
    int32_t k = 0;
    model.extract_interests(hist.data(), &len, 1, interests.data(), &k);
    for (int i = 0; i < k; ++i) {
      std::printf("interest %d:", i);
      for (int h = 0; h < 4 && h < c.hidden_size; ++h)
        std::printf(" %+.4f", interests[size_t(i) * c.hidden_size + h]);
      std::printf(" ...\n");
    }
  } catch (const mindrec::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
