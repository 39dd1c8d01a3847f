// mindrec-serve's request parsing: the first byte picks the endpoint, the rest is the body.
#include <memory>
#include <string>

#include "mindrec/error.hpp"
#include "mindrec/model.hpp"
#include "mindrec/vector_store.hpp"
#include "rec_service.hpp"

namespace {
mindrec::serve::RecService& service() {
  static std::unique_ptr<mindrec::serve::RecService> svc = [] {
    mindrec::ModelConfig c;
    c.item_count = 300;
    c.embedding_dim = c.hidden_size = 8;
    c.maxlen = 6;
    c.neg_samples = 10;
    c.capsule.max_k = 3;
    mindrec::serve::ServiceOptions o;
    o.compute_slots = 1;
    auto s = std::make_unique<mindrec::serve::RecService>(mindrec::MindModel(mindrec::init_weights(c, 5)),
                                                          mindrec::make_vector_store("flat", 8), o);
    s->insert_data();
    return s;
  }();
  return *svc;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* const kPaths[] = {"/rec/recall", "/rec/items", "/rec/items/delete", "/rec/count"};
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  const mindrec::serve::Reply r = service().handle("POST", kPaths[data[0] % 4], body);
  // Every answer is a JSON reply with a status; a bad request is a 4xx, never a throw.
  if (r.status < 200 || r.status >= 500) __builtin_trap();
  return 0;
}
