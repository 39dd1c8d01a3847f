// The one k-selection of the CPU search paths (src/store/topk_select.hpp): what it keeps and
// the order it writes, against sorting everything (larger score first, then the smaller id).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "store/topk_select.hpp"

using namespace mindrec;

TEST_CASE("TopK keeps the k best pairs - ties to the smaller id - as a full sort does") {
  uint32_t state = 7;
  auto next = [&] { return state = state * 1664525u + 1013904223u, state >> 8; };
  for (const int k : {1, 2, 5, 50, 200}) {
    for (const int n : {0, 1, 3, 50, 199, 200, 201, 1000, 5000}) {
      CAPTURE(k);
      CAPTURE(n);
      // Scores from a small set, so that many tie; ids distinct, pushed in a shuffled order.
      std::vector<std::pair<float, int64_t>> all;
      for (int i = 0; i < n; ++i) all.emplace_back(float(next() % 37) * 0.25f, int64_t(next() % 1000000) * 8 + i % 8);
      std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.second < b.second; });
      all.erase(std::unique(all.begin(), all.end(), [](auto& a, auto& b) { return a.second == b.second; }), all.end());
      for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[next() % i]);
      store::TopK top(k);
      for (const auto& [s, id] : all) top.push(s, id);
      std::vector<int64_t> ids(size_t(k), 99);
      std::vector<float> sc(size_t(k), 99.f);
      top.write(ids.data(), sc.data(), -1.f);
      std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      for (int j = 0; j < k; ++j) {
        CAPTURE(j);
        if (j < int(all.size())) {
          CHECK(ids[size_t(j)] == all[size_t(j)].second);
          CHECK(sc[size_t(j)] == all[size_t(j)].first);
        } else {
          CHECK(ids[size_t(j)] == -1);
          CHECK(sc[size_t(j)] == -1.f);
        }
      }
    }
  }
}
