// A reload under traffic (issue 28, benchmarks/bench_cycle.sh): a client recalls from a
// running mindrec-serve without pause while POST /admin/reload swaps in the next snapshot.
// Prints the reload's seconds, the recall latency (p50/p99) before, during and after it, and
// every request that did not get 200 (the reload is meant to cost no error).
//
//   bench_reload --port P --recall-body JSON --reload-body JSON [--before-s 2] [--after-s 2]
//                [--clients 1]
// Last line: reload_s=S recall_p99_during_ms=A recall_p99_before_ms=B recalls_during=N errors=E
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double start_s, ms;
  bool ok;
};

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> kv = {{"before-s", "2"}, {"after-s", "2"}, {"clients", "1"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) {
      std::fprintf(stderr, "bench_reload: bad argument %s\n", argv[i]);
      return 2;
    }
    kv[argv[i] + 2] = argv[i + 1];
  }
  for (const char* k : {"port", "recall-body", "reload-body"})
    if (!kv.count(k)) {
      std::fprintf(stderr, "bench_reload: missing --%s\n", k);
      return 2;
    }
  const int port = std::atoi(kv["port"].c_str()), clients = std::max(1, std::atoi(kv["clients"].c_str()));
  const double before_s = std::atof(kv["before-s"].c_str()), after_s = std::atof(kv["after-s"].c_str());
  const auto t0 = Clock::now();
  auto now_s = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  std::atomic<bool> stop{false};
  std::mutex m;
  std::vector<Sample> samples;
  std::vector<std::string> first_errors;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);  // else Nagle and the delayed ACK add ~40 ms to each request
      cli.set_read_timeout(600, 0);
      std::vector<Sample> mine;
      std::vector<std::string> errs;
      while (!stop) {
        const double s = now_s();
        auto r = cli.Post("/rec/recall", kv["recall-body"], "application/json");
        const bool ok = r && r->status == 200;
        mine.push_back({s, (now_s() - s) * 1e3, ok});
        if (!ok && errs.size() < 3)
          errs.push_back(r ? std::to_string(r->status) + " " + r->body.substr(0, 200) : httplib::to_string(r.error()));
      }
      std::lock_guard<std::mutex> l(m);
      samples.insert(samples.end(), mine.begin(), mine.end());
      first_errors.insert(first_errors.end(), errs.begin(), errs.end());
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(before_s));
  httplib::Client admin("127.0.0.1", port);
  admin.set_read_timeout(3600, 0);
  const double r0 = now_s();
  auto r = admin.Post("/admin/reload", kv["reload-body"], "application/json");
  const double r1 = now_s();
  std::this_thread::sleep_for(std::chrono::duration<double>(after_s));
  stop = true;
  for (auto& t : threads) t.join();
  if (!r || r->status != 200) {
    std::fprintf(stderr, "bench_reload: the reload failed: %s\n",
                 r ? (std::to_string(r->status) + " " + r->body).c_str() : httplib::to_string(r.error()).c_str());
    return 1;
  }
  std::vector<double> phase[3];
  int errors = 0;
  for (const Sample& s : samples) {
    errors += s.ok ? 0 : 1;
    phase[s.start_s < r0 ? 0 : s.start_s < r1 ? 1 : 2].push_back(s.ms);
  }
  const char* names[3] = {"before", "during", "after"};
  for (int p = 0; p < 3; ++p)
    std::printf("recalls %s the reload: %zu, p50 %.3f ms, p99 %.3f ms\n", names[p], phase[p].size(),
                quantile(phase[p], 0.5), quantile(phase[p], 0.99));
  for (const auto& e : first_errors) std::printf("error: %s\n", e.c_str());
  std::printf("reload answered in %.3f s: %s\n", r1 - r0, r->body.substr(0, 300).c_str());
  std::printf("reload_s=%.3f recall_p99_during_ms=%.3f recall_p99_before_ms=%.3f recalls_during=%zu errors=%d\n", r1 - r0,
              quantile(phase[1], 0.99), quantile(phase[0], 0.99), phase[1].size(), errors);
  return errors == 0 ? 0 : 1;
}
