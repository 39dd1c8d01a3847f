// A small MIND for the retrieval and serving tests: 300 items (ids 1..299), D = H = 8, L = 6,
// K = 3; item rows scaled up so that retrieval scores are well separated.
#pragma once

#include "mindrec/model.hpp"

namespace mindrec::test {

inline ModelConfig small_config() {
  ModelConfig c;
  c.item_count = 300;
  c.embedding_dim = c.hidden_size = 8;
  c.maxlen = 6;
  c.neg_samples = 10;
  c.capsule.max_k = 3;
  return c;
}

inline MindWeights small_weights() {
  MindWeights w = init_weights(small_config(), 5);
  for (size_t i = 8; i < w.item_emb.size(); ++i) w.item_emb[i] *= 100;  // spread the items
  return w;
}

}  // namespace mindrec::test
