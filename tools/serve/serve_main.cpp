// mindrec-serve: the seed system's candidate-generation API as a small C++ server that embeds
// mindrec (no external vector database). cpp-httplib does HTTP; RecService does the rest.
//
//   mindrec-serve --config C.yaml --weights W.safetensors [--index items.idx [--create-index]]
//                 [--store SPEC] [--host 127.0.0.1] [--port 8000] [--threads N] [--max-body-mb 64]
//
// The model loads after the port is bound: /healthz answers at once ("loading"), /readyz
// only once a model is served. --index FILE must exist (--create-index builds it from the
// weights, saved there); without --index the store is built from the weights. Signals:
// SIGTERM/SIGINT drain and exit (saving the store to the served index file if it changed and
// the file did not change on disk); SIGHUP reopens the access log (logrotate) and reloads
// the served files, on a thread of its own. --port 0 picks a free port; the first line on
// stdout says which ("listening on http://...").
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
#include <functional>
#include <memory>
#include <thread>

#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
#include "mindrec/file_io.hpp"
#include "mindrec/recommender.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/log.hpp"
#include "mindrec/version.hpp"
#include "access_log.hpp"
#include "../cli_checks.hpp"
#include "rec_service.hpp"

namespace {

struct Args {
  std::string config, weights, store, index, catalogue, host = "127.0.0.1", token_file, access_log = "-";
  int port = 8000, threads = 0, max_users = 1024, max_top_k = 1000;
  int64_t max_projection_mb = 1024;
  double max_body_mb = 64, drain_seconds = 30;
  bool quiet = false, insecure = false, allow_mismatched_index = false, create_index = false;
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

// SIGINT/SIGTERM: the handler only writes the signal number to a pipe (async-signal-safe);
// a watcher thread reads it and stops the server, and the main thread then saves the store,
// outside any signal handler. (sigwait would not do: libraries start threads before main,
// OpenBLAS's among them, and a signal could be delivered to one of those.)
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_shutdown_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &b, 1);
}

// The reload thread: loads the first model, then every SIGHUP's reload, one at a time, off
// the signal thread (so SIGTERM's drain never waits behind a reload). Requests coalesce.
class Reloader {
 public:
  explicit Reloader(std::function<void()> first) : thread_([this, f = std::move(first)] { loop(f); }) {}
  ~Reloader() {
    if (thread_.joinable()) thread_.join();
  }
  void request(std::function<void()> job) {
    std::lock_guard<std::mutex> l(m_);
    next_ = std::move(job);
    cv_.notify_one();
  }
  /// Ends the thread once idle; false (and nothing waited for) if a load is running now.
  bool finish() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
      cv_.notify_one();
      if (busy_) return false;
    }
    thread_.join();
    return true;
  }

 private:
  void loop(const std::function<void()>& first) {
    {
      std::lock_guard<std::mutex> l(m_);
      busy_ = true;
    }
    first();
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> l(m_);
        busy_ = false;
        cv_.wait(l, [&] { return stop_ || next_; });
        if (stop_) return;
        job = std::move(next_);
        next_ = nullptr;
        busy_ = true;
      }
      job();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::function<void()> next_;
  bool stop_ = false, busy_ = false;
  std::thread thread_;
};

// Runs fn on a thread of its own and waits at most `seconds` for it; false if it did not end
// (it is left running: the caller exits the process).
bool within(double seconds, std::function<void()> fn) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([fn = std::move(fn), done] {
    fn();
    *done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                                std::chrono::duration<double>(seconds));
  while (!*done && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (*done) {
    t.join();
    return true;
  }
  t.detach();
  return false;
}

void say(const std::string& line) {
  std::fprintf(stderr, "mindrec-serve: %s\n", line.c_str());
  std::fflush(stderr);
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
  // One rule for the store, at start-up and on reload (load_snapshot): --index FILE is
  // loaded (a missing file is an error unless --create-index: then the store is built from
  // the weights and saved there); without --index the store is built from the weights
  // (a milvus:// store is attached as it is, never written by a load).
  serve::ServiceOptions opt;
  opt.reload.config = a.config;
  opt.reload.weights = a.weights;
  opt.reload.index = a.index;
  opt.reload.create_index = a.create_index;
  opt.reload.store_spec = a.store;
  opt.reload.allow_mismatched_index = a.allow_mismatched_index;
  opt.reload.catalogue = a.catalogue;
  opt.reload.model_options = model_options;
  opt.max_users = a.max_users;
  opt.max_top_k = a.max_top_k;
  if (!a.token_file.empty()) opt.token = read_token(a.token_file);
  serve::RecService service(opt);
  serve::AccessLog access(a.quiet ? "off" : a.access_log);
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
    if (r.status == 503) res.set_header("Retry-After", "1");
    access.write(req.method, req.path, r.status,
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), id);
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
  constexpr unsigned char kLoadFailed = 0xFF;  // written to the pipe by the reload thread
  std::atomic<bool> load_failed{false};
  // The first model loads while the server already answers (/healthz "loading", /readyz 503).
  Reloader reloader([&] {
    try {
      service.start();
      const auto snap = service.snapshot();
      say("loaded " + std::to_string(snap->store->size()) + " vectors ('" + snap->store->spec() + "') " +
          (snap->index_created ? "built from the weights for " + snap->index_path
                               : snap->index_path.empty() ? std::string("built from the weights")
                                                          : "from " + snap->index_path) +
          " in " + std::to_string(snap->load_seconds) + " s; ready");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mindrec-serve: error: %s\n", e.what());
      load_failed = true;
      [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &kLoadFailed, 1);
    }
  });
  std::mutex stop_m;
  std::condition_variable stop_cv;
  bool stopped = false;
  std::thread waiter([&] {
    for (;;) {
      unsigned char sig = 0;
      ssize_t got;
      while ((got = ::read(g_signal_pipe[0], &sig, 1)) < 0 && errno == EINTR) {
      }
      if (got == 1 && sig == SIGHUP) {  // reopen the access log (logrotate), reload the served files
        if (const std::string err = access.reopen(); !err.empty()) say(err);
        say("SIGHUP: access log reopened; reloading the served files");
        reloader.request([&] {
          const serve::Reply r = service.reload("");
          say(std::string("reload ") + (r.status == 200 ? "done" : "FAILED") + ": " + r.body);
        });
        continue;
      }
      if (got == 1 && (sig == SIGINT || sig == SIGTERM))
        say(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ", draining " + std::to_string(in_flight.load()) +
            " request(s) and shutting down");
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
      // Requests still run (a long write among them may hold the store): the save gets one
      // more --drain-seconds, then the process exits whatever it is doing.
      say(std::to_string(in_flight.load()) + " request(s) still running after --drain-seconds " +
          std::to_string(a.drain_seconds) + "; saving (bounded) and exiting");
      const bool saved = within(a.drain_seconds, [&] {
        try {
          say(service.save_on_shutdown());
        } catch (const std::exception& e) {
          say(std::string("the shutdown save failed: ") + e.what());
        }
      });
      if (!saved) say("the shutdown save did not finish in time: not saved (the file on disk is untouched)");
      std::fflush(stderr);
      std::_Exit(3);
    }
  });
  std::printf("mindrec-serve %s: listening on http://%s:%d (%d threads; loading the model: GET /readyz)\n",
              MINDREC_VERSION_STRING, a.host.c_str(), port, threads);
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
  int rc = listened ? 0 : 1;
  if (load_failed) {
    rc = 1;
  } else {
    try {
      say(service.save_on_shutdown());
    } catch (const std::exception& e) {
      say(std::string("the shutdown save failed: ") + e.what());
      rc = 1;
    }
  }
  if (!reloader.finish()) {  // a reload is loading: not waited for
    say("a reload was still loading; exiting without it");
    std::fflush(stderr);
    std::fflush(stdout);
    std::_Exit(rc);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mindrec-serve: MIND candidate generation over HTTP, vector store in-process"};
  app.set_version_flag("--version", MINDREC_VERSION_STRING);
  Args a;
  app.add_option("--config", a.config, "model config (YAML)")->required()->check(CLI::ExistingFile);
  app.add_option("--weights", a.weights, "weights (.safetensors)")->required()->check(CLI::ExistingFile);
  app.add_option("--store", a.store, "vector store backend and search parameters, e.g. hnsw:M=32?ef=80, "
                                     "faiss:IVF4096,SQ8?nprobe=32, milvus://host:19530/items (default: the --index "
                                     "file's; flat when building)");
  app.add_option("--catalogue", a.catalogue, "the weights' catalogue (default: the served one saved beside --index, "
                                            "else catalogue.csv beside the weights): /rec/recall with \"ids\": \"raw\" "
                                            "and /rec/items with \"raw_ids\" use it")->check(CLI::ExistingFile);
  app.add_option("--index", a.index, "store file: loaded at start (it must exist, unless --create-index), saved on "
                                     "shutdown when the store changed (never over a file a deploy replaced) and on POST /rec/save");
  app.add_flag("--create-index", a.create_index, "when the --index file does not exist, build the store from the weights "
                                                 "(with --store) and save it there");
  app.add_option("--host", a.host, "address to listen on")->capture_default_str();
  app.add_option("--port", a.port, "port (0 = any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--threads", a.threads, "HTTP worker threads (0 = max(2, cores)); at most one compute thread per core runs, whatever this is")->check(mindrec::tools::non_negative());
  app.add_option("--max-body-mb", a.max_body_mb, "largest request body, MiB (413 above)")->capture_default_str()->check(mindrec::tools::positive(false));
  app.add_option("--max-projection-mb", a.max_projection_mb,
                 "precompute item_emb x S (faster interest extraction) when it takes at most this many MB; "
                 "0 = never (saves a table's worth of memory)")
      ->capture_default_str()->check(mindrec::tools::non_negative());
  app.add_option("--max-users", a.max_users, "users per /rec/recall request")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-top-k", a.max_top_k, "largest top_k")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_flag("--quiet", a.quiet, "no access log");
  app.add_option("--access-log", a.access_log, "access log: '-' (stderr, the default), a file (appended), or 'off'")->capture_default_str();
  app.add_option("--token-file", a.token_file, "file holding the bearer token the mutating endpoints require")->check(CLI::ExistingFile);
  app.add_flag("--insecure", a.insecure, "serve the mutating endpoints on a non-loopback address without a token");
  app.add_flag("--allow-mismatched-index", a.allow_mismatched_index, "serve an --index built from other weights (refused otherwise)");
  app.add_option("--drain-seconds", a.drain_seconds, "on SIGTERM, how long requests in flight may take before the server "
                                                   "saves (at most as long again) and exits anyway (exit 3)")->capture_default_str()->check(mindrec::tools::non_negative(false));
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
