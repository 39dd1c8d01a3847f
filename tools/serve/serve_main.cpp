// mindrec-serve: the seed system's candidate-generation API as a small C++ server that embeds
// mindrec (no external vector database). cpp-httplib does HTTP; RecService does the rest.
//
//   mindrec-serve --config C.yaml --weights W.safetensors [--store flat] [--index items.idx]
//                 [--host 127.0.0.1] [--port 8000] [--threads N] [--max-body-mb 64]
//
// With --index FILE: the store is loaded from FILE at start if it exists (else made empty from
// --store), and saved atomically to FILE on SIGINT/SIGTERM and on POST /rec/save.
// --port 0 picks a free port; the first line on stdout says which ("listening on http://...").
#include <httplib.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
#include "mindrec/file_io.hpp"
#include "mindrec/recommender.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/log.hpp"
#include "mindrec/version.hpp"
#include "rec_service.hpp"

namespace {

struct Args {
  std::string config, weights, store, index, host = "127.0.0.1", token_file, access_log = "-";
  int port = 8000, threads = 0, max_users = 1024, max_top_k = 1000;
  int64_t max_projection_mb = 1024;
  double max_body_mb = 64, drain_seconds = 30;
  bool quiet = false, insecure = false, allow_mismatched_index = false;
};

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string read_token(const std::string& path) {
  std::string t = mindrec::read_file(path);
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) t.pop_back();
  if (t.empty()) throw mindrec::ConfigError(path + ": the token file is empty");
  return t;
}

// X-Request-Id: the client's (letters, digits, '.', '_', '-'; at most 64) or a new one.
std::string request_id(const httplib::Request& req) {
  std::string id = req.get_header_value("X-Request-Id");
  const bool usable = !id.empty() && id.size() <= 64 &&
      std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; });
  if (usable) return id;
  thread_local std::mt19937_64 rng(std::random_device{}() ^ std::hash<std::thread::id>{}(std::this_thread::get_id()));
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(rng()));
  return b;
}

// One JSON line per request (time, method, path, status, latency, request id).
class AccessLog {
 public:
  explicit AccessLog(const std::string& where) {
    if (where == "-") f_ = stderr;
    else if (!where.empty() && where != "off") {
      f_ = std::fopen(where.c_str(), "a");
      if (!f_) throw mindrec::IoError("cannot open the access log '" + where + "'");
      owned_ = true;
    }
  }
  ~AccessLog() {
    if (owned_) std::fclose(f_);
  }
  void write(const httplib::Request& req, int status, double ms, const std::string& id) {
    if (!f_) return;
    char when[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const nlohmann::json line = {{"time", when}, {"method", req.method}, {"path", req.path}, {"status", status},
                                 {"latency_ms", std::round(ms * 1000) / 1000}, {"request_id", id}};
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(text.data(), 1, text.size(), f_);  // one write per line: lines do not interleave
    std::fflush(f_);
  }

 private:
  std::FILE* f_ = nullptr;
  bool owned_ = false;
};

// SIGINT/SIGTERM: the handler only writes the signal number to a pipe (async-signal-safe);
// a watcher thread reads it and stops the server, and the main thread then saves the store,
// outside any signal handler. (sigwait would not do: libraries start threads before main,
// OpenBLAS's among them, and a signal could be delivered to one of those.)
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_shutdown_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &b, 1);
}

int run(const Args& a) {
  using namespace mindrec;
  // Mutating endpoints on a non-loopback address need a token (or an explicit --insecure).
  if (a.token_file.empty() && !is_loopback(a.host) && !a.insecure)
    throw ConfigError("refusing to serve the mutating endpoints (/rec/insert_data, /rec/items, drops, save, "
                      "/admin/reload) on " + a.host + " without a token: pass --token-file FILE, or --insecure "
                      "if the network is trusted");
  ModelOptions model_options;
  model_options.max_projection_bytes = a.max_projection_mb << 20;
  // At start-up the store is --index if that file exists, else empty (the seed's API fills it
  // with /rec/insert_data). SIGHUP and a bare POST /admin/reload read the same files again
  // (replaced by a deploy); then a missing --index file means "build it from the new weights".
  SnapshotSource source;
  source.config = a.config;
  source.weights = a.weights;
  source.index = a.index;
  source.store_spec = a.store;
  source.allow_mismatched_index = a.allow_mismatched_index;
  source.model_options = model_options;
  source.build_missing_store = false;
  const auto first = load_snapshot(source);
  if (!first->index_path.empty())
    std::fprintf(stderr, "mindrec-serve: loaded %lld vectors ('%s') from %s\n",
                 static_cast<long long>(first->store->size()), first->store->backend().c_str(), a.index.c_str());
  serve::ServiceOptions opt;
  opt.index_path = a.index;
  opt.max_users = a.max_users;
  opt.max_top_k = a.max_top_k;
  if (!a.token_file.empty()) opt.token = read_token(a.token_file);
  opt.reload = source;
  opt.reload.build_missing_store = true;
  serve::RecService service(first, opt);
  AccessLog access(a.quiet ? "off" : a.access_log);
  std::atomic<int> in_flight{0};

  httplib::Server svr;
  // HTTP workers (connections served at once); computing is bounded separately by the
  // service's compute slots (default_threads(), one thread each).
  const int threads = a.threads > 0 ? a.threads : std::max(2, mindrec::default_threads());
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
  // the client's delayed ACK add ~40 ms to every response (measured: 75 req/s, p50 44 ms).
  svr.set_tcp_nodelay(true);
  svr.set_payload_max_length(static_cast<size_t>(a.max_body_mb * 1024 * 1024));
  // Every answer: the service's reply, the request id header, one access-log line.
  auto respond = [&service, &access](const httplib::Request& req, httplib::Response& res, const std::string& body,
                                     std::chrono::steady_clock::time_point t0) {
    const std::string id = request_id(req);
    const serve::Reply r = service.handle(req.method, req.path, body, req.get_header_value("Authorization"));
    res.status = r.status;
    res.set_content(r.body, r.content_type.c_str());
    res.set_header("X-Request-Id", id);
    if (r.status == 401) res.set_header("WWW-Authenticate", "Bearer");
    access.write(req, r.status, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), id);
  };
  auto forward = [&respond, &in_flight](const httplib::Request& req, httplib::Response& res) {
    ++in_flight;
    respond(req, res, req.body, std::chrono::steady_clock::now());
    --in_flight;
  };
  // Requests with a body are read through a ContentReader: the seed's clients POST with no
  // body and no Content-Length (curl -X POST .../rec/count), which httplib's eager reader
  // refuses with 400; here the body is read only when the request announces one.
  const size_t max_body = static_cast<size_t>(a.max_body_mb * 1024 * 1024);
  auto forward_body = [&respond, &in_flight, max_body](const httplib::Request& req, httplib::Response& res,
                                                      const httplib::ContentReader& reader) {
    struct Count {
      std::atomic<int>& n;
      explicit Count(std::atomic<int>& x) : n(x) { ++n; }
      ~Count() { --n; }
    } count(in_flight);
    const auto t0 = std::chrono::steady_clock::now();
    std::string body;
    if (req.has_header("Content-Length") || req.get_header_value("Transfer-Encoding") == "chunked") {
      bool too_large = false;  // httplib checks Content-Length against the limit, not chunks
      const bool ok = reader([&body, &too_large, max_body](const char* data, size_t n) {
        if (body.size() + n > max_body) return !(too_large = true);
        body.append(data, n);
        return true;
      });
      if (!ok || too_large) {
        const int status = res.status == 413 || too_large ? 413 : 400;
        const serve::Reply r = serve::error_reply(
            status, "", status == 413 ? "request body too large (see --max-body-mb)" : "could not read the request body");
        res.status = r.status;
        res.set_content(r.body, r.content_type.c_str());
        return;
      }
    }
    respond(req, res, body, t0);
  };
  // Every path and method goes to the service, which answers 404/405 itself.
  const char* any = R"(/.*)";
  svr.Get(any, forward);
  svr.Post(any, forward_body);
  svr.Put(any, forward_body);
  svr.Delete(any, forward_body);
  svr.Patch(any, forward_body);
  // Errors httplib produces itself (413 body too large, 400 unparsable request) get the same
  // JSON shape as the service's.
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string msg = res.status == 413 ? "request body too large (see --max-body-mb)"
                                              : "bad HTTP request";
    const serve::Reply r = serve::error_reply(res.status, "", msg);
    res.set_content(r.body, r.content_type.c_str());
  });

  int port = a.port;
  if (port == 0) {
    port = svr.bind_to_any_port(a.host);
    if (port < 0) throw IoError("cannot bind to " + a.host);
  } else if (!svr.bind_to_port(a.host, port)) {
    throw IoError("cannot bind to " + a.host + ":" + std::to_string(port) + " (in use?)");
  }
  if (::pipe(g_signal_pipe) != 0) throw IoError("pipe() failed");
  struct sigaction sa = {};
  sa.sa_handler = on_shutdown_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  std::mutex stop_m;
  std::condition_variable stop_cv;
  bool stopped = false;
  std::thread waiter([&] {
    for (;;) {
      unsigned char sig = 0;
      ssize_t got;
      while ((got = ::read(g_signal_pipe[0], &sig, 1)) < 0 && errno == EINTR) {
      }
      if (got == 1 && sig == SIGHUP) {  // reload from the start-up files, keep serving
        std::fprintf(stderr, "mindrec-serve: SIGHUP, reloading %s\n", a.weights.c_str());
        const serve::Reply r = service.reload("");
        std::fprintf(stderr, "mindrec-serve: reload %s: %s\n", r.status == 200 ? "done" : "FAILED", r.body.c_str());
        continue;
      }
      if (sig != 0)
        std::fprintf(stderr, "mindrec-serve: %s, draining %d request(s) and shutting down\n",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", in_flight.load());
      break;
    }
    // Stops accepting; listen_after_bind returns once the requests in flight are answered.
    // stop() does nothing before the accept loop runs (a signal right after start-up), so it
    // is repeated until the loop has ended or the drain time is up.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                                  std::chrono::duration<double>(a.drain_seconds));
    std::unique_lock<std::mutex> lock(stop_m);
    while (!stopped && std::chrono::steady_clock::now() < deadline) {
      lock.unlock();
      svr.stop();
      lock.lock();
      stop_cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return stopped; });
    }
    if (!stopped) {
      std::fprintf(stderr, "mindrec-serve: %d request(s) still running after --drain-seconds %g; saving and exiting\n",
                   in_flight.load(), a.drain_seconds);
      if (service.save_if_configured())
        std::fprintf(stderr, "mindrec-serve: saved %lld vectors to %s\n",
                     static_cast<long long>(service.store().size()), a.index.c_str());
      std::fflush(stderr);
      std::_Exit(3);
    }
  });
  std::printf("mindrec-serve %s: listening on http://%s:%d (%lld vectors, store '%s', %d threads)\n",
              MINDREC_VERSION_STRING, a.host.c_str(), port, static_cast<long long>(service.store().size()),
              service.store().backend().c_str(), threads);
  std::fflush(stdout);
  const bool listened = svr.listen_after_bind();
  if (!listened) {
    const unsigned char zero = 0;
    [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &zero, 1);
  }
  {
    std::lock_guard<std::mutex> lock(stop_m);
    stopped = true;
  }
  stop_cv.notify_all();
  waiter.join();
  if (service.save_if_configured())
    std::fprintf(stderr, "mindrec-serve: saved %lld vectors to %s\n",
                 static_cast<long long>(service.store().size()), a.index.c_str());
  return listened ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mindrec-serve: MIND candidate generation over HTTP, vector store in-process"};
  app.set_version_flag("--version", MINDREC_VERSION_STRING);
  Args a;
  app.add_option("--config", a.config, "model config (YAML)")->required()->check(CLI::ExistingFile);
  app.add_option("--weights", a.weights, "weights (.safetensors)")->required()->check(CLI::ExistingFile);
  app.add_option("--store", a.store, "vector store backend, e.g. flat, faiss:HNSW32?efSearch=128 (default flat)");
  app.add_option("--index", a.index, "store file: loaded at start if present, saved on shutdown and POST /rec/save");
  app.add_option("--host", a.host, "address to listen on")->capture_default_str();
  app.add_option("--port", a.port, "port (0 = any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--threads", a.threads, "HTTP worker threads (0 = max(2, cores)); at most one compute thread per core runs, whatever this is")->check(CLI::NonNegativeNumber);
  app.add_option("--max-body-mb", a.max_body_mb, "largest request body, MiB (413 above)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-projection-mb", a.max_projection_mb,
                 "precompute item_emb x S (faster interest extraction) when it takes at most this many MB; "
                 "0 = never (saves a table's worth of memory)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--max-users", a.max_users, "users per /rec/recall request")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-top-k", a.max_top_k, "largest top_k")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_flag("--quiet", a.quiet, "no access log");
  app.add_option("--access-log", a.access_log, "access log: '-' (stderr, the default), a file (appended), or 'off'")->capture_default_str();
  app.add_option("--token-file", a.token_file, "file holding the bearer token the mutating endpoints require")->check(CLI::ExistingFile);
  app.add_flag("--insecure", a.insecure, "serve the mutating endpoints on a non-loopback address without a token");
  app.add_flag("--allow-mismatched-index", a.allow_mismatched_index, "serve an --index built from other weights (refused otherwise)");
  app.add_option("--drain-seconds", a.drain_seconds, "on SIGTERM, how long requests in flight may take before the server saves and exits anyway (exit 3)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("mindrec-serve: error: ") + e.what() + " (see --help)\n";
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mindrec-serve: error: %s\n", e.what());
    return 1;
  }
}
