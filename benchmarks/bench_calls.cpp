// The C++ side of benchmarks/bench_python.py: the same calls the Python package makes, timed
// from C++ on the same files, so the script can print what the binding adds.
//   bench_calls --weights W.safetensors --index ITEMS.idx --users USERS.txt
//               [--single N] [--repeats R] [--threads T]
// USERS.txt is PaddleRec's slot format (read_eval_data). Prints one JSON object:
//   single_us_p50 / single_us_mean: recall_items for one user (topn 50), N calls in turn over the
//     users, one thread; extract_users_per_s: extract_interests over all users in one call, best
//     of R, with T threads (0 = all cores), into one reused buffer; extract_new_users_per_s: the
//     same into a new buffer per call.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "mindrec/mindrec.hpp"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string weights, index, users;
  int single = 2000, repeats = 3, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--weights") weights = v;
    else if (a == "--index") index = v;
    else if (a == "--users") users = v;
    else if (a == "--single") single = std::atoi(v.c_str());
    else if (a == "--repeats") repeats = std::atoi(v.c_str());
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "bench_calls: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (weights.empty() || index.empty() || users.empty()) {
    std::fprintf(stderr, "usage: bench_calls --weights W --index S --users USERS.txt [--single N] [--repeats R] [--threads T]\n");
    return 2;
  }
  try {
    const mindrec::MindModel model(mindrec::load_weights(weights));
    const auto store = mindrec::load_vector_store(index);
    const mindrec::EvalSet set = mindrec::read_eval_data(users, model.config().item_count);
    const int64_t U = set.num_users();
    const int L = model.config().maxlen, K = model.config().capsule.max_k, H = model.config().hidden_size;
    std::vector<int64_t> hist(size_t(U) * L);
    std::vector<int32_t> lens(static_cast<size_t>(U));
    mindrec::pack_histories(set.hist_offsets, set.hist_items, 0, U, L, hist.data(), lens.data());

    mindrec::RecallOptions o;
    o.topn = 50;
    o.threads = 1;
    std::vector<int64_t> ids(50);
    std::vector<float> scores(50);
    std::vector<double> t(static_cast<size_t>(single));
    for (int i = 0; i < std::min(single, 200); ++i)  // warm-up
      mindrec::recall_items(model, *store, hist.data() + size_t(i % U) * L, lens.data() + i % U, 1, o,
                            ids.data(), scores.data());
    for (int i = 0; i < single; ++i) {
      const int64_t u = i % U;
      const double t0 = now_s();
      mindrec::recall_items(model, *store, hist.data() + size_t(u) * L, lens.data() + u, 1, o, ids.data(),
                            scores.data());
      t[size_t(i)] = now_s() - t0;
    }
    double mean = 0;
    for (double x : t) mean += x;
    mean /= double(single);
    std::nth_element(t.begin(), t.begin() + single / 2, t.end());
    const double p50 = t[size_t(single / 2)];

    // 64-byte aligned like the library's own buffers, and on transparent huge pages as NumPy
    // (and the Python package's outputs) put large arrays: ~8% faster here than 4 KiB pages.
    mindrec::AlignedVector<float> out(size_t(U) * K * H);
    ::madvise(out.data(), out.size() * sizeof(float), MADV_HUGEPAGE);
    std::vector<int32_t> counts(static_cast<size_t>(U));
    double best = 1e300;
    for (int r = 0; r < repeats; ++r) {
      const double t0 = now_s();
      model.extract_interests(hist.data(), lens.data(), U, out.data(), counts.data(), threads);
      best = std::min(best, now_s() - t0);
    }
    // The same with a new (uninitialised, huge-page) output buffer per call, as a function that
    // returns its result must allocate: what Python's extract_interests without out= does.
    double best_new = 1e300;
    for (int r = 0; r < repeats; ++r) {
      const double t0 = now_s();
      const size_t bytes = size_t(U) * K * H * sizeof(float);
      float* fresh = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
      if (!fresh) throw std::bad_alloc();
      ::madvise(fresh, bytes, MADV_HUGEPAGE);
      model.extract_interests(hist.data(), lens.data(), U, fresh, counts.data(), threads);
      best_new = std::min(best_new, now_s() - t0);
      std::free(fresh);
    }
    std::printf("{\"users\": %lld, \"single_us_p50\": %.3f, \"single_us_mean\": %.3f, \"extract_users_per_s\": %.1f, "
                "\"extract_new_users_per_s\": %.1f}\n",
                static_cast<long long>(U), p50 * 1e6, mean * 1e6, double(U) / best, double(U) / best_new);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_calls: %s\n", e.what());
    return 1;
  }
  return 0;
}
