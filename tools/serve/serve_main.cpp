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

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/version.hpp"
#include "rec_service.hpp"

namespace {

struct Args {
  std::string config, weights, store, index, host = "127.0.0.1";
  int port = 8000, threads = 0, max_users = 1024, max_top_k = 1000;
  int64_t max_projection_mb = 1024;
  double max_body_mb = 64;
  bool quiet = false;
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
  const Config cfg = load_config(a.config);
  ModelOptions model_options;
  model_options.max_projection_bytes = a.max_projection_mb << 20;
  MindModel model(load_weights(a.weights, cfg.hyper_parameters), Device::cpu, model_options);
  std::unique_ptr<VectorStore> store;
  if (!a.index.empty() && std::filesystem::exists(a.index)) {
    store = load_vector_store(a.index, a.store);
    std::fprintf(stderr, "mindrec-serve: loaded %lld vectors ('%s') from %s\n",
                 static_cast<long long>(store->size()), store->backend().c_str(), a.index.c_str());
  } else {
    store = make_vector_store(a.store.empty() ? "flat" : a.store, cfg.hyper_parameters.hidden_size);
  }
  serve::ServiceOptions opt;
  opt.index_path = a.index;
  opt.max_users = a.max_users;
  opt.max_top_k = a.max_top_k;
  serve::RecService service(std::move(model), std::move(store), opt);

  httplib::Server svr;
  // HTTP workers (connections served at once); computing is bounded separately by the
  // service's compute slots (default_threads(), one thread each).
  const int threads = a.threads > 0 ? a.threads : std::max(2, mindrec::default_threads());
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
  // the client's delayed ACK add ~40 ms to every response (measured: 75 req/s, p50 44 ms).
  svr.set_tcp_nodelay(true);
  svr.set_payload_max_length(static_cast<size_t>(a.max_body_mb * 1024 * 1024));
  auto forward = [&service](const httplib::Request& req, httplib::Response& res) {
    const serve::Reply r = service.handle(req.method, req.path, req.body);
    res.status = r.status;
    res.set_content(r.body, r.content_type.c_str());
  };
  // Requests with a body are read through a ContentReader: the seed's clients POST with no
  // body and no Content-Length (curl -X POST .../rec/count), which httplib's eager reader
  // refuses with 400; here the body is read only when the request announces one.
  const size_t max_body = static_cast<size_t>(a.max_body_mb * 1024 * 1024);
  auto forward_body = [&service, max_body](const httplib::Request& req, httplib::Response& res,
                                           const httplib::ContentReader& reader) {
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
    const serve::Reply r = service.handle(req.method, req.path, body);
    res.status = r.status;
    res.set_content(r.body, r.content_type.c_str());
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
  if (!a.quiet)
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      if (res.status >= 400)
        std::fprintf(stderr, "mindrec-serve: %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
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
  std::thread waiter([&svr] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig != 0)
      std::fprintf(stderr, "mindrec-serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    svr.stop();
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
  app.add_flag("--quiet", a.quiet, "do not log refused requests");
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
