#include "metrics.hpp"

#include <cstdio>

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
         "\",store=\"" + label(snap->store_spec) + "\",weights=\"" + label(snap->weights_path) + "\"} 1\n";
    head("mindrec_model_load_seconds", "gauge", "How long loading the current model and store took.");
    o += "mindrec_model_load_seconds " + num(snap->load_seconds) + "\n";
    head("mindrec_model_loaded_timestamp_seconds", "gauge", "When the current model and store were loaded (Unix time).");
    o += "mindrec_model_loaded_timestamp_seconds " + std::to_string(snap->loaded_at_unix) + "\n";
  }
  head("mindrec_snapshot_generation", "gauge", "Model swaps since start.");
  o += "mindrec_snapshot_generation " + std::to_string(generation) + "\n";
  head("mindrec_reloads_total", "counter", "Reloads (POST /admin/reload, SIGHUP), by result.");
  o += "mindrec_reloads_total{result=\"ok\"} " + std::to_string(reloads_ok_) + "\n";
  o += "mindrec_reloads_total{result=\"error\"} " + std::to_string(reloads_failed_) + "\n";
  return o;
}

}  // namespace mindrec::serve
