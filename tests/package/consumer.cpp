// Package consumer: load weights, extract a user's interests, recall through a store built
// from the item vectors, and check the merged top-N against brute force computed here from
// the public API alone (interests . item rows, pool K*N, sort, drop 0 and duplicates).
#include <mindrec/mindrec.hpp>

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer WEIGHTS.safetensors\n");
    return 2;
  }
  try {
    mindrec::set_log_level(mindrec::LogLevel::off);
    mindrec::MindModel model(mindrec::load_weights(argv[1]));
    const auto& c = model.config();
    auto store = mindrec::build_item_store(model, "flat");

    const int N = 10, L = c.maxlen, K = c.capsule.max_k, H = c.hidden_size;
    std::vector<int64_t> hist(size_t(L), 0);
    const int64_t clicks[] = {43, 23, 65, 7, 512};
    std::copy(std::begin(clicks), std::end(clicks), hist.begin());
    const int32_t len = 5;
    std::vector<int64_t> ids(N);
    std::vector<float> scores(N);
    mindrec::RecallOptions opt;
    opt.topn = N;
    mindrec::recall_items(model, *store, hist.data(), &len, 1, opt, ids.data(), scores.data());

    // Brute force.
    std::vector<float> interests(size_t(K) * H);
    int32_t count = 0;
    model.extract_interests(hist.data(), &len, 1, interests.data(), &count);
    const auto& emb = model.weights().item_emb;
    std::vector<std::pair<float, int64_t>> pool;
    for (int k = 0; k < count; ++k) {
      std::vector<std::pair<float, int64_t>> all;
      for (int64_t i = 1; i < c.item_count; ++i) {
        float s = 0;
        for (int h = 0; h < H; ++h) s += interests[size_t(k) * H + h] * emb[size_t(i) * H + h];
        all.emplace_back(s, i);
      }
      std::partial_sort(all.begin(), all.begin() + N, all.end(), [](auto& a, auto& b) { return a.first > b.first; });
      pool.insert(pool.end(), all.begin(), all.begin() + N);
    }
    std::stable_sort(pool.begin(), pool.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<int64_t> want;
    std::set<int64_t> seen;
    for (auto& [s, id] : pool)
      if (id != 0 && seen.insert(id).second && int(want.size()) < N) want.push_back(id);

    std::printf("mindrec %s: %d interests, top-%d:", MINDREC_VERSION_STRING, count, N);
    for (auto id : ids) std::printf(" %lld", static_cast<long long>(id));
    std::printf("\n");
    if (ids != want) {
      std::printf("consumer: MISMATCH against brute force\n");
      return 1;
    }
    // Raw item ids through a catalogue (every item "SKU-<id>"): the same answer, in raw ids.
    mindrec::Catalogue cat;
    for (int64_t i = 1; i < c.item_count; ++i) cat.add("SKU-" + std::to_string(i));
    const mindrec::RawRecallResult raw =
        mindrec::recall_raw_histories(model, *store, cat, {{"SKU-43", "SKU-23", "SKU-65", "SKU-7", "SKU-512", "NEW"}}, opt);
    if (raw.ids[0].size() != size_t(N) || raw.unknown[0] != std::vector<std::string>{"NEW"}) return 1;
    for (int j = 0; j < N; ++j)
      if (raw.ids[0][size_t(j)] != "SKU-" + std::to_string(want[size_t(j)])) {
        std::printf("consumer: raw-id MISMATCH at %d\n", j);
        return 1;
      }
    // A mindrec error is a typed exception the host can catch.
    try {
      mindrec::load_weights("/nonexistent.safetensors");
      return 1;
    } catch (const mindrec::IoError&) {
    }
    std::printf("consumer: ok\n");
    return 0;
  } catch (const mindrec::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
