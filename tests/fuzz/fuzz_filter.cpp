// Filter expressions (README "Filters"): the parser takes any bytes; an expression it accepts
// must evaluate the same two ways, word-wise over the columns (what searches use) and one id at
// a time (the plan's interpreter), for every id of a fixed table and beyond it.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "mindrec/error.hpp"
#include "store/attributes.hpp"

namespace {
const mindrec::store::AttributeTable& table() {
  static const mindrec::store::AttributeTable t = [] {
    using namespace mindrec;
    store::AttributeTable tab;
    auto d = tab.prepare_declare({{"price", AttributeType::int64},
                                  {"rating", AttributeType::float64},
                                  {"in_stock", AttributeType::boolean},
                                  {"category", AttributeType::string}});
    tab.commit(*d);
    std::vector<int64_t> ids, price;
    std::vector<double> rating;
    std::vector<uint8_t> stock;
    std::vector<std::string> cat;
    const char* names[] = {"shoes", "bags", "", "hats", "a\"b"};
    for (int64_t i = 0; i < 150; i += 1 + (i % 3 == 0)) {  // gaps: ids without a row read defaults
      ids.push_back(i);
      price.push_back(i * 7 % 101 - 20);
      rating.push_back(double(i % 11) / 2.0);
      stock.push_back(i % 4 != 0);
      cat.push_back(names[i % 5]);
    }
    AttributeBatch b;
    b.add("price", price).add("rating", rating).add_bool("in_stock", stock).add("category", cat);
    auto s = tab.prepare_set(int64_t(ids.size()), ids.data(), b);
    tab.commit(*s);
    return tab;
  }();
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto& t = table();
  try {
    const auto plan = mindrec::store::FilterPlan::parse(text, t.specs());
    const mindrec::store::Allowed a = plan.evaluate(t);
    // Every id of the table and around it, the last words of the bitmap and beyond, and each
    // number the input names (and its neighbours): not all ids up to a named one (an id
    // literal of 8M made one input take 8M interpreted calls, a libFuzzer timeout).
    auto check = [&](int64_t id) {
      if (id >= 0 && a.test(id) != plan.test(t, id)) std::abort();  // the two evaluations disagree
    };
    for (int64_t id = 0; id < 4096; ++id) check(id);
    for (int64_t id = std::max<int64_t>(4096, a.nbits - 70); id < a.nbits + 70; ++id) check(id);
    for (size_t i = 0; i < text.size();) {
      if (text[i] < '0' || text[i] > '9') {
        ++i;
        continue;
      }
      int64_t v = 0;
      for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) v = v < (int64_t(1) << 40) ? v * 10 + (text[i] - '0') : v;
      for (int64_t id = v - 1; id <= v + 1; ++id) check(id);
    }
  } catch (const mindrec::Error&) {
  }
  return 0;
}
