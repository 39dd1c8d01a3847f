// Private to mindrec-serve: counters and latency histograms of every answer, rendered in the
// Prometheus text exposition format (version 0.0.4).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "mindrec/recommender.hpp"

namespace mindrec::serve {

class Metrics {
 public:
  static constexpr double kBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,   5,     10};
  static constexpr size_t kNumBuckets = sizeof(kBuckets) / sizeof(kBuckets[0]);

  void observe(const std::string& endpoint, int status, double seconds);
  void reloaded(bool ok);
  /// One /rec/recall answered: its users, those who got the popular-items fallback, and those
  /// whose list came back shorter than top_k (empty ones counted in both).
  void recalled(int64_t users, int64_t fallback, int64_t short_lists, int64_t empty_lists);
  /// A history id refused: reason "padding" (id 0) or "out_of_range".
  void refused(const char* reason);
  /// Raw ids of "ids": "raw" histories that the served catalogue does not know (skipped).
  void unknown_raw_ids(int64_t n);
  /// The exposition text. `snap` is null while the first model loads; `store_size` is -1
  /// when the store could not say (unreachable).
  std::string render(const RecommenderSnapshot* snap, uint64_t generation, int64_t store_size, bool ready) const;

 private:
  struct Endpoint {
    std::map<int, uint64_t> by_status;
    uint64_t buckets[kNumBuckets] = {};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex m_;
  std::map<std::string, Endpoint> endpoints_;
  uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
  uint64_t recall_users_ = 0, fallback_users_ = 0, short_lists_ = 0, empty_lists_ = 0;
  uint64_t refused_padding_ = 0, refused_range_ = 0, unknown_raw_ids_ = 0;
  uint64_t batch_buckets_[11] = {};  // users per request: <= 1, 2, 4, ..., 1024
  uint64_t batches_ = 0, batch_users_sum_ = 0;
};

}  // namespace mindrec::serve
