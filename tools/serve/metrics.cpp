#include "metrics.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#if defined(__linux__)
#include <sys/resource.h>
#include <unistd.h>
#endif

#include "mindrec/version.hpp"
#include "mindrec/weights.hpp"

namespace mindrec::serve {

namespace {
std::string label(const std::string& v) {  // label value escaping
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}
}  // namespace

void Metrics::observe(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(m_);
  Endpoint& e = endpoints_[endpoint];
  ++e.by_status[status];
  for (size_t b = 0; b < kNumBuckets; ++b)
    if (seconds <= kBuckets[b]) ++e.buckets[b];
  ++e.count;
  e.sum += seconds;
}

void Metrics::reloaded(bool ok) {
  std::lock_guard<std::mutex> lock(m_);
  ++(ok ? reloads_ok_ : reloads_failed_);
}

void Metrics::recalled(int64_t users, int64_t fallback, int64_t short_lists, int64_t empty_lists) {
  std::lock_guard<std::mutex> lock(m_);
  recall_users_ += uint64_t(users);
  fallback_users_ += uint64_t(fallback);
  short_lists_ += uint64_t(short_lists);
  empty_lists_ += uint64_t(empty_lists);
  ++batches_;
  batch_users_sum_ += uint64_t(users);
  for (int b = 0; b < 11; ++b)
    if (users <= (int64_t(1) << b)) ++batch_buckets_[b];
}

void Metrics::refused(const char* reason) {
  std::lock_guard<std::mutex> lock(m_);
  ++(std::string(reason) == "padding" ? refused_padding_ : refused_range_);
}

void Metrics::unknown_raw_ids(int64_t n) {
  std::lock_guard<std::mutex> lock(m_);
  unknown_raw_ids_ += uint64_t(n);
}

namespace {
// The process's own numbers, from /proc (Linux; absent elsewhere): resident memory, CPU time,
// open file descriptors.
void process_metrics(std::string& o) {
#if defined(__linux__)
  std::ifstream statm("/proc/self/statm");
  long long pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident) {
    o += "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n";
    o += "process_resident_memory_bytes " + std::to_string(pages_resident * sysconf(_SC_PAGESIZE)) + "\n";
  }
  struct rusage ru = {};
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    const double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    o += "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\n";
    o += "process_cpu_seconds_total " + num(cpu) + "\n";
  }
  std::error_code ec;
  int64_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++fds;
  if (!ec) {
    o += "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\n";
    o += "process_open_fds " + std::to_string(fds) + "\n";
  }
#else
  (void)o;
#endif
}
}  // namespace

std::string Metrics::render(const RecommenderSnapshot* snap, uint64_t generation, int64_t store_size, bool ready) const {
  const std::string fingerprint = snap ? fingerprint_hex(snap->model->item_fingerprint()) : "";  // outside the lock
  std::string o;
  auto head = [&](const char* name, const char* type, const char* help) {
    o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  std::lock_guard<std::mutex> lock(m_);
  head("mindrec_requests_total", "counter", "Requests answered, by endpoint and HTTP status.");
  for (const auto& [ep, e] : endpoints_)
    for (const auto& [status, n] : e.by_status)
      o += "mindrec_requests_total{endpoint=\"" + label(ep) + "\",status=\"" + std::to_string(status) + "\"} " +
           std::to_string(n) + "\n";
  head("mindrec_request_errors_total", "counter", "Requests answered with a 4xx or 5xx status, by endpoint and status.");
  for (const auto& [ep, e] : endpoints_)
    for (const auto& [status, n] : e.by_status)
      if (status >= 400)
        o += "mindrec_request_errors_total{endpoint=\"" + label(ep) + "\",status=\"" + std::to_string(status) +
             "\"} " + std::to_string(n) + "\n";
  head("mindrec_request_duration_seconds", "histogram", "Time to answer a request, by endpoint.");
  for (const auto& [ep, e] : endpoints_) {
    const std::string l = "endpoint=\"" + label(ep) + "\"";
    for (size_t b = 0; b < kNumBuckets; ++b)
      o += "mindrec_request_duration_seconds_bucket{" + l + ",le=\"" + num(kBuckets[b]) + "\"} " +
           std::to_string(e.buckets[b]) + "\n";
    o += "mindrec_request_duration_seconds_bucket{" + l + ",le=\"+Inf\"} " + std::to_string(e.count) + "\n";
    o += "mindrec_request_duration_seconds_sum{" + l + "} " + num(e.sum) + "\n";
    o += "mindrec_request_duration_seconds_count{" + l + "} " + std::to_string(e.count) + "\n";
  }
  head("mindrec_ready", "gauge", "1 when GET /readyz answers 200 (a model loaded, the last reload good, the store reachable and not empty).");
  o += std::string("mindrec_ready ") + (ready ? "1" : "0") + "\n";
  if (store_size >= 0) {
    head("mindrec_store_vectors", "gauge", "Item vectors in the current store.");
    o += "mindrec_store_vectors " + std::to_string(store_size) + "\n";
  }
  if (snap) {
    head("mindrec_model_info", "gauge", "The current model: item fingerprint of its weights, store spec, weights file.");
    o += "mindrec_model_info{fingerprint=\"" + fingerprint + "\",backend=\"" + label(snap->store->backend()) +
         "\",store=\"" + label(snap->store->spec()) + "\",weights=\"" + label(snap->weights_path) + "\"} 1\n";
    head("mindrec_model_load_seconds", "gauge", "How long loading the current model and store took.");
    o += "mindrec_model_load_seconds " + num(snap->load_seconds) + "\n";
    head("mindrec_model_loaded_timestamp_seconds", "gauge", "When the current model and store were loaded (Unix time).");
    o += "mindrec_model_loaded_timestamp_seconds " + std::to_string(snap->loaded_at_unix) + "\n";
  }
  if (snap) {
    // The served weights' evaluation as mindrec train recorded it: an alert on a bad nightly model.
    const auto& ev = snap->model->weights().evaluation;
    if (!ev.empty()) {
      head("mindrec_model_evaluation", "gauge",
           "The served weights' evaluation as mindrec train recorded it (validation users), by metric.");
      for (const auto& [k, v] : ev) o += "mindrec_model_evaluation{metric=\"" + label(k) + "\"} " + num(v) + "\n";
      const auto r = ev.find("recall@50"), p = ev.find("popularity_recall@50");
      if (r != ev.end() && p != ev.end() && p->second > 0) {
        head("mindrec_model_recall50_vs_popularity", "gauge",
             "The served weights' recorded Recall@50 over the popularity baseline's on the same users.");
        o += "mindrec_model_recall50_vs_popularity " + num(r->second / p->second) + "\n";
      }
    }
    head("mindrec_model_popular_items", "gauge", "Popular items the weights carry for users without clicks (0: such users are refused).");
    o += "mindrec_model_popular_items " + std::to_string(snap->model->weights().popular_items.size()) + "\n";
  }
  head("mindrec_recall_users_total", "counter", "Users answered by /rec/recall, by how: recalled, or the popular-items fallback (no clicks).");
  o += "mindrec_recall_users_total{result=\"recalled\"} " + std::to_string(recall_users_ - fallback_users_) + "\n";
  o += "mindrec_recall_users_total{result=\"fallback\"} " + std::to_string(fallback_users_) + "\n";
  head("mindrec_recall_short_results_total", "counter", "Users whose list came back shorter than top_k (empty included).");
  o += "mindrec_recall_short_results_total " + std::to_string(short_lists_) + "\n";
  head("mindrec_recall_empty_results_total", "counter", "Users whose list came back empty.");
  o += "mindrec_recall_empty_results_total " + std::to_string(empty_lists_) + "\n";
  head("mindrec_refused_ids_total", "counter", "History ids refused (400), by reason: padding (id 0) or out_of_range.");
  o += "mindrec_refused_ids_total{reason=\"padding\"} " + std::to_string(refused_padding_) + "\n";
  o += "mindrec_refused_ids_total{reason=\"out_of_range\"} " + std::to_string(refused_range_) + "\n";
  head("mindrec_recall_unknown_raw_ids_total", "counter",
       "Raw ids in \"ids\": \"raw\" histories the served catalogue does not know (skipped; a rising rate: the catalogue lags the shop's).");
  o += "mindrec_recall_unknown_raw_ids_total " + std::to_string(unknown_raw_ids_) + "\n";
  head("mindrec_recall_batch_users", "histogram", "Users per /rec/recall request.");
  for (int b = 0; b < 11; ++b)
    o += "mindrec_recall_batch_users_bucket{le=\"" + std::to_string(1 << b) + "\"} " + std::to_string(batch_buckets_[b]) + "\n";
  o += "mindrec_recall_batch_users_bucket{le=\"+Inf\"} " + std::to_string(batches_) + "\n";
  o += "mindrec_recall_batch_users_sum " + std::to_string(batch_users_sum_) + "\n";
  o += "mindrec_recall_batch_users_count " + std::to_string(batches_) + "\n";
  head("mindrec_build_info", "gauge", "The mindrec version serving.");
  o += std::string("mindrec_build_info{version=\"") + MINDREC_VERSION_STRING + "\"} 1\n";
  process_metrics(o);
  head("mindrec_snapshot_generation", "gauge", "Model swaps since start.");
  o += "mindrec_snapshot_generation " + std::to_string(generation) + "\n";
  head("mindrec_reloads_total", "counter", "Reloads (POST /admin/reload, SIGHUP), by result.");
  o += "mindrec_reloads_total{result=\"ok\"} " + std::to_string(reloads_ok_) + "\n";
  o += "mindrec_reloads_total{result=\"error\"} " + std::to_string(reloads_failed_) + "\n";
  return o;
}

}  // namespace mindrec::serve
