// The milvus:// store: item vectors kept in a Milvus collection, behind the VectorStore
// contract. It speaks to the server only through milvus::Client (client.hpp), so the wire
// (REST v1 today) can change without touching what is here.
//
// Two collection layouts, told apart by describing the collection:
//   * primary key = item id (a collection made with auto_id off, e.g. by pymilvus): rows are
//     written by upsert and found by primary key (indexed).
//   * auto-id primary key (every collection Milvus' REST v1 creates, so every collection this
//     store creates): the item id is kept in the dynamic field "item_id"; a replacement inserts
//     the new rows first and deletes the old ones after, so no search ever misses the item
//     (one may see both rows for an instant: results are de-duplicated by item id).
// Writes wait (polling, bounded by wait=) until the server shows them, so a search after a
// write sees it, as the contract says; Milvus' REST v1 reads are otherwise bounded-stale.
#include <algorithm>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "detail/hash.hpp"
#include "detail/parallel.hpp"
#include "detail/params.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/weights.hpp"
#include "store/backends.hpp"
#include "store/attributes.hpp"
#include "store/milvus/client.hpp"
#include "store/store_io.hpp"

namespace mindrec::store {
namespace {

using milvus::Client;
using milvus::CollectionInfo;

constexpr int kMaxLimit = 16384;  // Milvus: limit (+ offset) of a search or query
constexpr int kKeysPerQuery = 4096;

struct MilvusSpec {
  milvus::Endpoint ep;
  std::string collection;
  std::string base;     // milvus://host:port/collection
  int fetch = 256;      // hits asked per query vector (over-fetch: the server's HNSW ef = limit)
  bool fetch_set = false;
  double wait_s = 10;   // read-your-writes: poll until a write is visible, at most this long
  bool create = true;
  int64_t batch = 5000;  // rows per insert/upsert request
  bool read_only = false;  // attach_vector_store: every write refused
};

// The spec as it may be shown: a token= value is never echoed (messages reach logs).
std::string redacted(const std::string& spec) {
  std::string out = spec;
  for (size_t at = out.find("token="); at != std::string::npos; at = out.find("token=", at + 9)) {
    if (at > 0 && out[at - 1] != '?' && out[at - 1] != '&') continue;
    const size_t end = out.find('&', at);
    out.replace(at + 6, (end == std::string::npos ? out.size() : end) - (at + 6), "***");
  }
  return out;
}

[[noreturn]] void bad(const std::string& spec, const std::string& why) {
  throw InvalidArgument("vector store '" + redacted(spec) + "': " + why +
                        " (expected milvus://HOST:PORT/COLLECTION[?fetch=N&token=USER:PASSWORD&db=NAME&timeout=S"
                        "&retries=N&connections=N&wait=S&batch=N&create=0|1])");
}

double number(const std::string& spec, const std::string& name, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(x >= lo && x <= hi))
    bad(spec, name + "=" + v + " is not a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

// A count (fetch, retries, connections, batch, port): an integer in [lo, hi].
long long count(const std::string& spec, const std::string& name, const std::string& v, long long lo, long long hi) {
  const double x = number(spec, name, v, double(lo), double(hi));
  if (x != std::floor(x)) bad(spec, name + "=" + v + " is not an integer");
  return static_cast<long long>(x);
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 255 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// host[:port] entries of MINDREC_MILVUS_TOKEN_HOSTS (comma-separated): where the environment's
// token may also go when the URL was read from a store file.
bool env_token_scoped_to(const milvus::Endpoint& ep) {
  const char* hosts = std::getenv("MINDREC_MILVUS_TOKEN_HOSTS");
  if (!hosts) return false;
  std::string list = hosts;
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    const std::string h = list.substr(at, comma - at);
    at = comma + 1;
    if (h == ep.host || h == ep.host + ":" + std::to_string(ep.port)) return true;
  }
  return false;
}

MilvusSpec parse(const std::string& spec, const store::RemoteOpen& how) {
  MilvusSpec s;
  const std::string scheme = "milvus://";
  if (spec.rfind(scheme, 0) != 0) bad(spec, "not a milvus:// URL");
  const size_t q = spec.find('?');
  const std::string rest = spec.substr(scheme.size(), q == std::string::npos ? std::string::npos : q - scheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string::npos) bad(spec, "no collection after the host");
  const std::string hostport = rest.substr(0, slash);
  s.collection = rest.substr(slash + 1);
  if (!valid_name(s.collection)) bad(spec, "'" + s.collection + "' is not a collection name (letters, digits, _)");
  size_t colon = hostport.rfind(':');
  if (!hostport.empty() && hostport[0] == '[') {  // [IPv6]:port
    const size_t close = hostport.find(']');
    if (close == std::string::npos) bad(spec, "unclosed '['");
    s.ep.host = hostport.substr(1, close - 1);
    colon = hostport.size() > close + 1 && hostport[close + 1] == ':' ? close + 1 : std::string::npos;
  } else {
    s.ep.host = hostport.substr(0, colon);
  }
  if (s.ep.host.empty()) bad(spec, "no host");
  if (colon != std::string::npos) s.ep.port = int(count(spec, "port", hostport.substr(colon + 1), 1, 65535));
  s.base = scheme + hostport + "/" + s.collection;
  // The environment's token goes to a host the caller named, never to one read from a file
  // (a downloaded store file could name any host) unless MINDREC_MILVUS_TOKEN_HOSTS lists it.
  if (const char* t = std::getenv("MINDREC_MILVUS_TOKEN"); t && (!how.url_from_file || env_token_scoped_to(s.ep)))
    s.ep.token = t;
  if (q != std::string::npos) {
    const std::string opts = spec.substr(q + 1);
    size_t at = 0;
    while (at <= opts.size()) {
      size_t amp = opts.find('&', at);
      if (amp == std::string::npos) amp = opts.size();
      const std::string kv = opts.substr(at, amp - at);
      at = amp + 1;
      if (kv.empty()) continue;
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) bad(spec, "expected name=value, got '" + kv + "'");
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "fetch") s.fetch = int(count(spec, k, v, 1, kMaxLimit)), s.fetch_set = true;
      else if (k == "token") s.ep.token = v;  // the caller's own spec
      else if (k == "db") {
        if (!valid_name(v)) bad(spec, "'" + v + "' is not a database name");
        s.ep.db = v;
      } else if (k == "timeout") s.ep.timeout_s = number(spec, k, v, 0.001, 3600);
      else if (k == "retries") s.ep.retries = int(count(spec, k, v, 0, 10));
      else if (k == "connections") s.ep.connections = int(count(spec, k, v, 1, 256));
      else if (k == "wait") s.wait_s = number(spec, k, v, 0, 3600);
      else if (k == "batch") s.batch = int64_t(count(spec, k, v, 1, 100000));
      else if (k == "create") s.create = count(spec, k, v, 0, 1) != 0;
      else bad(spec, "unknown option '" + k + "'");
    }
  }
  s.read_only = how.read_only;
  return s;
}

std::string in_list(const std::string& field, const int64_t* ids, size_t n) {
  std::string f = field + " in [";
  for (size_t i = 0; i < n; ++i) {
    if (i) f += ',';
    f += std::to_string(ids[i]);
  }
  return f + "]";
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class MilvusStore final : public VectorStore {
 public:
  MilvusStore(const MilvusSpec& spec, int dim, Metric metric, std::unique_ptr<Client> client)
      : VectorStore(spec.base, dim, metric), s_(spec), c_(std::move(client)) {
    info_ = attach();
    key_ = key_of(info_);
  }

 private:
  // ---- the collection ----
  std::string what() const { return backend(); }

  static std::string key_of(const CollectionInfo& info) { return info.auto_id ? "item_id" : info.pk_field; }

  // Describes (creating when missing and allowed) and checks the collection against dim and
  // metric; waits (bounded) until it is loaded.
  CollectionInfo attach() const {
    CollectionInfo info = c_->describe(s_.collection);
    if (!info.exists) {
      if (!s_.create)
        throw RemoteNotFound(what() + ": the collection '" + s_.collection + "' does not exist (create=0)", 100);
      c_->create(s_.collection, dim(), metric());
      log(LogLevel::info, what() + ": created the collection (dim " + std::to_string(dim()) + ", " + to_string(metric()) + ")");
      info = c_->describe(s_.collection);
    }
    const double t0 = now_s();
    while (info.exists && !info.loaded && now_s() - t0 < 60) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      info = c_->describe(s_.collection);
    }
    if (!info.exists) throw RemoteNotFound(what() + ": the collection '" + s_.collection + "' vanished", 100);
    if (!info.loaded)
      throw RemoteError(what() + ": the collection is not loaded after 60 s (REST v1 cannot load one: load it with pymilvus)", 101);
    if (info.dim != dim())
      throw InvalidArgument(what() + ": the collection holds vectors of dim " + std::to_string(info.dim) +
                            ", this store needs dim " + std::to_string(dim()));
    const std::string want = metric() == Metric::inner_product ? "IP" : "L2";
    if (info.metric != want)
      throw InvalidArgument(what() + ": the collection's index uses metric '" + info.metric + "', this store needs '" +
                            want + "' (" + to_string(metric()) + ")");
    if (info.auto_id && !info.dynamic_fields)
      throw Unsupported(what() + ": the collection assigns its own primary keys and has no dynamic fields: item ids cannot be stored");
    return info;
  }

  bool by_pk() const { return !info_.auto_id; }

  milvus::Rows rows(int64_t n, const float* v, const int64_t* ids, const milvus::Fields* fields = nullptr) const {
    return milvus::Rows{n, dim(), v, ids, info_.vector_field, key_, fields};
  }

  // The stored rows of these item ids, whole: vectors and the attribute columns they hold.
  milvus::RowsRead read_rows(const std::vector<int64_t>& ids, const std::vector<AttributeSpec>& columns) const {
    milvus::RowsRead out;
    for (size_t at = 0; at < ids.size(); at += kKeysPerQuery) {
      const size_t m = std::min<size_t>(kKeysPerQuery, ids.size() - at);
      c_->query_rows(s_.collection, in_list(key_, ids.data() + at, m), key_, info_.pk_field, info_.vector_field, dim(),
                     columns, kMaxLimit, out);
    }
    return out;
  }

  bool schema_field(const std::string& name) const {
    return std::find(info_.scalar_fields.begin(), info_.scalar_fields.end(), name) != info_.scalar_fields.end();
  }

  // A filter (checked against the declared columns) in Milvus' syntax: `id` as the key field,
  // dynamic fields absent from a row read as the column's default (attributes.hpp).
  std::string translate(const std::string& filter, const std::vector<AttributeSpec>& columns) const {
    return FilterPlan::parse(filter, columns).to_milvus(key_, [this](const std::string& f) { return !schema_field(f); });
  }

  // The stored rows of these item ids: (item id, primary key) pairs, one per row.
  std::vector<std::pair<int64_t, int64_t>> rows_of(int64_t n, const int64_t* ids) const {
    std::vector<std::pair<int64_t, int64_t>> out;
    const std::vector<std::string> fields = by_pk() ? std::vector<std::string>{key_}
                                                    : std::vector<std::string>{key_, info_.pk_field};
    for (int64_t at = 0; at < n; at += kKeysPerQuery) {
      const size_t m = size_t(std::min<int64_t>(kKeysPerQuery, n - at));
      const auto got = c_->query_keys(s_.collection, in_list(key_, ids + at, m), fields, kMaxLimit);
      for (size_t i = 0; i < got.size(); i += fields.size())
        out.emplace_back(got[i], by_pk() ? got[i] : got[i + 1]);
    }
    return out;
  }

  // Read-your-writes: polls until every primary key of a sample of `pks` (spread over the
  // whole write) is visible (or, for a delete, none is), at most wait= seconds.
  void wait_visible(const std::vector<int64_t>& pks, bool present, const char* op) const {
    if (s_.wait_s <= 0 || pks.empty()) return;
    std::vector<int64_t> sample;
    const size_t m = std::min<size_t>(pks.size(), 64);
    for (size_t i = 0; i < m; ++i) sample.push_back(pks[i * (pks.size() - 1) / std::max<size_t>(m - 1, 1)]);
    std::sort(sample.begin(), sample.end());
    sample.erase(std::unique(sample.begin(), sample.end()), sample.end());
    const std::string filter = in_list(info_.pk_field, sample.data(), sample.size());
    const double t0 = now_s();
    for (int sleep_ms = 5;; sleep_ms = std::min(sleep_ms * 2, 50)) {
      const size_t seen = c_->query_keys(s_.collection, filter, {info_.pk_field}, int(sample.size())).size();
      if (present ? seen == sample.size() : seen == 0) return;
      if (now_s() - t0 >= s_.wait_s) {
        log(LogLevel::warn, what() + ": " + op + " not visible to searches after " + std::to_string(s_.wait_s) +
                                " s (wait=); it is applied and will show once the server catches up");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    }
  }

  // ---- writes ----
  // Milvus has no transactions. A write is a sequence of requests, and a request that failed
  // may still have been applied (its answer lost to a timeout), so a failure is compensated by
  // requests that are right either way and that only ever remove rows of the write itself:
  //  - add: the rows of the failed batch and the batches before it are deleted by item id
  //    (ids that were not stored, by add's precondition): the add changed nothing;
  //  - upsert by primary key: the ids it added are deleted and the replaced vectors written
  //    back (upsert of a row replaces it: every item keeps exactly one row either way);
  //  - upsert of auto-id rows, chunk by chunk (new rows in, then the old ones out): a chunk
  //    whose insert failed loses its new rows again (delete by item id, sparing the old
  //    primary keys); a chunk whose delete failed has it sent again (idempotent: a delete
  //    already applied is harmless). Items of earlier chunks then hold their new vector,
  //    the others their old one, each exactly one row, and no item is ever without a row;
  //  - remove: items removed by chunks before the failure stay removed (remove again).
  // A compensation that fails too is logged at error level naming what may stand; the
  // write's own error is thrown.
  void check_writable() const {
    if (s_.read_only)
      throw Unsupported(what() + ": attached read-only (mindrec eval/recall --store, attach_vector_store): "
                                 "writes are refused; index into a collection of its own with mindrec index");
  }

  // Deletes every row whose key is among ids[0..n) and whose primary key is not among
  // `spare` (sorted), until a query shows none (a delete evaluates its filter on what the
  // server sees, which may lag a write by its bounded staleness): at most wait= seconds.
  void delete_keys(int64_t n, const int64_t* ids, const std::vector<int64_t>& spare) {
    for (int64_t at = 0; at < n; at += kKeysPerQuery) {
      const size_t m = size_t(std::min<int64_t>(kKeysPerQuery, n - at));
      std::string filter = in_list(key_, ids + at, m);
      if (!spare.empty() && !by_pk()) {
        filter += " and " + in_list(info_.pk_field, spare.data(), spare.size());
        filter.replace(filter.rfind(" in ["), 5, " not in [");
      }
      c_->delete_where(s_.collection, filter);
      const std::vector<std::string> fields = {info_.pk_field};
      const double t0 = now_s();
      for (int sleep_ms = 5;; sleep_ms = std::min(sleep_ms * 2, 50)) {
        const auto left = c_->query_keys(s_.collection, filter, fields, kMaxLimit);
        if (left.empty()) break;
        c_->delete_pks(s_.collection, info_.pk_field, left);  // rows the filter did not see yet
        if (now_s() - t0 >= std::max(s_.wait_s, 0.5)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
      }
    }
  }

  // Runs a compensation; if it fails too, says at error level what may stand.
  void compensate(const char* op, const std::string& may_stand, const std::function<void()>& fn) noexcept {
    try {
      fn();
    } catch (const std::exception& e) {
      log(LogLevel::error, what() + ": a failed " + op + " could not be undone (" + e.what() + "): " + may_stand);
    }
  }

  void delete_pks(const std::vector<int64_t>& pks) {
    for (size_t at = 0; at < pks.size(); at += kMaxLimit)
      c_->delete_pks(s_.collection, info_.pk_field,
                     std::vector<int64_t>(pks.begin() + at, pks.begin() + std::min(pks.size(), at + kMaxLimit)));
  }

  void stored_ids_impl(int64_t n, const int64_t* ids, std::vector<int64_t>& out) const override {
    for (const auto& r : rows_of(n, ids)) out.push_back(r.first);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }

  void add_impl(int64_t n, const float* vectors, const int64_t* ids) override {
    check_writable();
    std::vector<int64_t> pks;
    pks.reserve(size_t(n));
    int64_t sent = 0;  // items whose batch was sent, answered or not
    try {
      for (int64_t at = 0; at < n; at += s_.batch) {
        const int64_t m = std::min(s_.batch, n - at);
        sent = at + m;
        const auto got = c_->insert(s_.collection, rows(m, vectors + size_t(at) * dim(), ids + at));
        pks.insert(pks.end(), got.begin(), got.end());
      }
    } catch (...) {
      compensate("add", "rows of up to " + std::to_string(sent) + " of its items may stay (remove them)",
                 [&] { delete_keys(sent, ids, {}); });
      throw;
    }
    wait_visible(pks, true, "an add");
  }

  void upsert_impl(int64_t n, const float* vectors, const int64_t* ids, const std::vector<int64_t>& stored) override {
    check_writable();
    std::vector<int64_t> was(stored);
    std::sort(was.begin(), was.end());
    replace(n, vectors, ids, was, nullptr, nullptr);
  }

  // Writes the rows of ids (`was`, sorted: those stored), each with its scalar fields when
  // `fields` [n] is given. `old`: the stored rows of `was` when the caller read them already
  // (with their fields, which a failed write puts back).
  void replace(int64_t n, const float* vectors, const int64_t* ids, const std::vector<int64_t>& was,
               const milvus::Fields* fields, const milvus::RowsRead* old_rows_read) {
    if (by_pk()) {
      // Upsert by primary key; a failed batch (whose answer may be lost: it is counted as
      // sent) puts back what the batches sent changed: the stored rows, with their fields.
      const milvus::RowsRead read_here = old_rows_read ? milvus::RowsRead{} : read_rows(was, {});
      const milvus::RowsRead& back = old_rows_read ? *old_rows_read : read_here;
      const std::vector<int64_t>& old_ids = back.keys;
      const std::vector<float>& old = back.vectors;
      const milvus::Fields* old_fields = back.fields.data();
      int64_t sent = 0;
      try {
        for (int64_t at = 0; at < n; at += s_.batch) {
          const int64_t m = std::min(s_.batch, n - at);
          sent = at + m;
          c_->upsert(s_.collection, rows(m, vectors + size_t(at) * dim(), ids + at, fields ? fields + at : nullptr));
        }
      } catch (...) {
        compensate("upsert", "up to " + std::to_string(sent) + " of its items may hold their new vectors (each one row)", [&] {
          std::vector<int64_t> added;
          for (int64_t i = 0; i < sent; ++i)
            if (!std::binary_search(was.begin(), was.end(), ids[i])) added.push_back(ids[i]);
          if (!added.empty()) delete_pks(added);
          if (!old_ids.empty())
            c_->upsert(s_.collection, rows(int64_t(old_ids.size()), old.data(), old_ids.data(), old_fields));
        });
        throw;
      }
      wait_visible(std::vector<int64_t>(ids, ids + n), true, "an upsert");
      return;
    }
    // Auto-id rows, a chunk of items at a time: the new rows in, then the old ones out (a
    // search may see both for an instant: results are de-duplicated by item id).
    std::map<int64_t, std::vector<int64_t>> old_rows;  // item -> its primary keys now
    if (old_rows_read)
      for (size_t r = 0; r < old_rows_read->keys.size(); ++r) old_rows[old_rows_read->keys[r]].push_back(old_rows_read->pks[r]);
    else if (!was.empty())
      for (const auto& [item, pk] : rows_of(int64_t(was.size()), was.data())) old_rows[item].push_back(pk);
    std::vector<int64_t> fresh, gone;
    const int64_t chunk = std::min<int64_t>(s_.batch, kMaxLimit);
    for (int64_t at = 0; at < n; at += chunk) {
      const int64_t m = std::min(chunk, n - at);
      std::vector<int64_t> old_pks;
      for (int64_t i = at; i < at + m; ++i)
        if (const auto it = old_rows.find(ids[i]); it != old_rows.end()) old_pks.insert(old_pks.end(), it->second.begin(), it->second.end());
      std::sort(old_pks.begin(), old_pks.end());
      const std::string stand = "items before the " + std::to_string(at + 1) + "th hold their new vectors, the others their old ones";
      std::vector<int64_t> got;
      try {
        got = c_->insert(s_.collection, rows(m, vectors + size_t(at) * dim(), ids + at, fields ? fields + at : nullptr));
      } catch (...) {
        compensate("upsert", stand + "; items from the " + std::to_string(at + 1) + "th may show two rows (upsert again)",
                   [&] { delete_keys(m, ids + at, old_pks); });
        throw;
      }
      fresh.insert(fresh.end(), got.begin(), got.end());
      try {
        delete_pks(old_pks);
      } catch (...) {
        compensate("upsert", stand + "; items from the " + std::to_string(at + 1) + "th to the " + std::to_string(at + m) +
                                 "th show their old and new rows (upsert again)",
                   [&] { delete_pks(old_pks); });  // forward: a delete that may have been applied is sent again
        throw;
      }
      gone.insert(gone.end(), old_pks.begin(), old_pks.end());
    }
    wait_visible(fresh, true, "an upsert");
    wait_visible(gone, false, "an upsert's removal of the replaced rows");
  }

  int64_t remove_impl(int64_t n, const int64_t* ids) override {
    check_writable();
    const auto found = rows_of(n, ids);
    if (found.empty()) return 0;
    std::vector<int64_t> pks, items;
    for (const auto& r : found) pks.push_back(r.second), items.push_back(r.first);
    delete_pks(pks);  // chunks already sent stay applied if a later one fails (remove again)
    wait_visible(pks, false, "a remove");
    std::sort(items.begin(), items.end());
    return int64_t(std::unique(items.begin(), items.end()) - items.begin());
  }

  void clear_impl() override {
    check_writable();
    c_->delete_where(s_.collection, info_.pk_field + " >= 0 or " + info_.pk_field + " < 0");
    const double t0 = now_s();
    while (s_.wait_s > 0 && size_impl() > 0) {
      if (now_s() - t0 >= s_.wait_s) {
        log(LogLevel::warn, what() + ": clear not visible after " + std::to_string(s_.wait_s) + " s (wait=)");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // ---- reads ----
  void reconstruct_impl(int64_t id, float* out) const override {
    const milvus::RowsRead r = read_rows({id}, {});
    if (r.keys.empty()) throw InvalidArgument(what() + ": id " + std::to_string(id) + " is not stored");
    std::copy(r.vectors.begin(), r.vectors.begin() + dim(), out);
  }

  bool contains_impl(int64_t id) const override { return !rows_of(1, &id).empty(); }

  int64_t size_impl() const override {
    return c_->count(s_.collection, info_.pk_field + " >= 0 or " + info_.pk_field + " < 0");
  }

  // Filters go to the server, translated (translate()); exclusions become "key not in [...]".
  // Attributes are the collection's fields: a declared column is a field of the schema or a
  // dynamic field of each row.
  bool remote_filter_impl() const override { return true; }

  void check_attributes_impl(const std::vector<AttributeSpec>& columns) const override {
    for (const auto& c : columns) {
      if (c.name == key_ || c.name == info_.pk_field || c.name == info_.vector_field)
        throw InvalidArgument(what() + ": attribute '" + c.name + "' would overwrite the collection's " +
                              (c.name == info_.vector_field ? "vector" : "key") + " field");
      if (!schema_field(c.name) && !info_.dynamic_fields)
        throw Unsupported(what() + ": the collection has no field '" + c.name +
                          "' and no dynamic fields: add the field to its schema (pymilvus) or use a collection with dynamic fields");
    }
  }

  void remote_filter_allows_impl(const std::string& filter, const std::vector<AttributeSpec>& columns, int64_t n,
                                 const int64_t* ids, uint8_t* out) const override {
    const std::string f = translate(filter, columns);
    std::vector<int64_t> sorted;
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] >= 0) sorted.push_back(ids[i]);
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::unordered_set<int64_t> allowed;
    for (size_t at = 0; at < sorted.size(); at += kKeysPerQuery) {
      const size_t m = std::min<size_t>(kKeysPerQuery, sorted.size() - at);
      for (int64_t k : c_->query_keys(s_.collection, f + " and (" + in_list(key_, sorted.data() + at, m) + ")", {key_}, kMaxLimit))
        allowed.insert(k);
    }
    // An id without a row has no fields for the server to test: not allowed.
    for (int64_t i = 0; i < n; ++i) out[i] = allowed.count(ids[i]) ? 1 : 0;
  }

  // Attribute values, written with the item's row (Milvus 2.3 writes rows whole): each stored
  // item's row is read back (vector and attributes), the values merged in and the row written
  // again the way upserts write (replace()). With vectors: an upsert carrying the attributes.
  void write_attributes_impl(int64_t n, const float* vectors, const int64_t* ids, const std::vector<int64_t>& stored,
                             const AttributeBatch& values, const std::vector<AttributeSpec>& columns) override {
    check_writable();
    for (const auto& c : values.columns) {
      const bool dynamic = !schema_field(c.name);
      for (double v : c.floats)
        if (!std::isfinite(v)) throw InvalidArgument(what() + ": attribute '" + c.name + "' holds an infinite value (JSON has none)");
      for (int64_t v : c.ints)
        if (dynamic && (v > (int64_t(1) << 53) || v < -(int64_t(1) << 53)))
          throw InvalidArgument(what() + ": attribute '" + c.name + "' holds " + std::to_string(v) +
                                ": Milvus reads a dynamic field's integers back as doubles (exact within +-2^53)");
    }
    std::vector<int64_t> want = vectors ? stored : std::vector<int64_t>(ids, ids + n);
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    const milvus::RowsRead old = read_rows(want, columns);
    std::unordered_map<int64_t, size_t> row_of;
    for (size_t r = 0; r < old.keys.size(); ++r) row_of.emplace(old.keys[r], r);
    std::vector<int64_t> wids, was;
    std::vector<float> wv;
    std::vector<milvus::Fields> wf;
    int64_t skipped = 0, first_skipped = -1;
    for (int64_t i = 0; i < n; ++i) {
      const auto it = row_of.find(ids[i]);
      if (!vectors && it == row_of.end()) {
        if (skipped++ == 0) first_skipped = ids[i];
        continue;
      }
      wids.push_back(ids[i]);
      const float* v = vectors ? vectors + size_t(i) * dim() : old.vectors.data() + it->second * size_t(dim());
      wv.insert(wv.end(), v, v + dim());
      milvus::Fields f = it == row_of.end() ? milvus::Fields{} : old.fields[it->second];
      if (it != row_of.end()) was.push_back(ids[i]);
      for (const auto& c : values.columns) {
        milvus::Scalar x;
        x.type = c.type;
        if (c.type == AttributeType::int64) x.i = c.ints[size_t(i)];
        else if (c.type == AttributeType::float64) x.f = c.floats[size_t(i)];
        else if (c.type == AttributeType::boolean) x.i = c.bools[size_t(i)];
        else x.s = c.strings[size_t(i)];
        const auto at = std::find_if(f.begin(), f.end(), [&](const auto& p) { return p.first == c.name; });
        if (at != f.end()) at->second = std::move(x);
        else f.emplace_back(c.name, std::move(x));
      }
      wf.push_back(std::move(f));
    }
    if (skipped > 0)
      log(LogLevel::warn, what() + ": attributes of " + std::to_string(skipped) + " ids without a row (id " +
                              std::to_string(first_skipped) + " first) not kept: a Milvus row holds an item's attributes "
                              "with its vector (upsert the vector with them)");
    if (wids.empty()) return;
    std::sort(was.begin(), was.end());
    replace(int64_t(wids.size()), wv.data(), wids.data(), was, wf.data(), &old);
  }
  double exact_filter_fraction_impl(const SearchContext&) const override { return 0; }
  std::vector<std::string> search_param_names_impl() const override { return {"fetch"}; }

  void search_impl(int64_t nq, const float* queries, int k, int64_t* ids, float* scores,
                   const SearchContext& ctx) const override {
    const int fetch = int(detail::integer_param(what(), "fetch", ctx.param("fetch", double(s_.fetch)), 1, kMaxLimit));
    const std::string filter = ctx.filter().empty() ? "" : translate(ctx.filter(), ctx.attribute_columns());
    if (k > kMaxLimit)
      throw Unsupported(what() + ": k = " + std::to_string(k) + " but Milvus returns at most " +
                        std::to_string(kMaxLimit) + " hits per query");
    const int limit = std::min(kMaxLimit, std::max(k, fetch));
    const bool ip = metric() == Metric::inner_product;
    auto one = [&](int64_t i) {
      std::string expr = filter;
      if (ctx.excludes(i)) {
        std::string list;
        for (int64_t id : ctx.excluded(i)) list += (list.empty() ? "" : ",") + std::to_string(id);
        expr += (expr.empty() ? "" : " and ") + key_ + " not in [" + list + "]";
      }
      auto hits = c_->search(s_.collection, queries + size_t(i) * dim(), dim(), limit, key_, expr);
      // Exact order: best score first, the smaller id on ties; one hit per item (an item
      // being replaced may show its old and new rows for an instant).
      std::sort(hits.begin(), hits.end(), [&](const milvus::Hit& a, const milvus::Hit& b) {
        if (a.distance != b.distance) return ip ? a.distance > b.distance : a.distance < b.distance;
        return a.key < b.key;
      });
      int j = 0;
      std::unordered_set<int64_t> seen;
      for (size_t h = 0; h < hits.size() && j < k; ++h) {
        if (!by_pk() && !seen.insert(hits[h].key).second) continue;
        ids[i * k + j] = hits[h].key;
        scores[i * k + j] = hits[h].distance;
        ++j;
      }
      for (; j < k; ++j) ids[i * k + j] = -1, scores[i * k + j] = padding_score(metric());
    };
    // One request per query vector (REST v1 takes one), up to connections= at once (a team
    // of the process's thread pool: no threads made per call).
    detail::parallel_for(nq, int(std::min<int64_t>(nq, s_.ep.connections)), 1, one);
  }

  // ---- the store file: a descriptor, never the vectors ----
  std::function<void(StoreWriter&)> payload_writer_impl() const override {
    nlohmann::json d = {{"format", "mindrec milvus descriptor"}, {"version", 1}, {"url", backend()},
                        {"host", s_.ep.host}, {"port", s_.ep.port}, {"db", s_.ep.db}, {"collection", s_.collection},
                        {"dim", dim()}, {"metric", to_string(metric())}, {"layout", by_pk() ? "primary_key" : "item_id"},
                        {"key_field", key_}, {"fetch", s_.fetch},
                        {"fingerprint", fingerprint_hex(source_fingerprint())}};
    auto text = std::make_shared<std::string>(d.dump(2) + "\n");
    return [text](StoreWriter& out) { out.write(text->data(), text->size()); };
  }

  std::function<void()> read_payload_impl(StoreReader& in, int64_t count) override {
    const std::string text = in.read_rest();
    const auto d = nlohmann::json::parse(text, nullptr, false);
    if (!d.is_object() || d.value("format", "") != "mindrec milvus descriptor")
      throw FormatError(in.what() + ": not a milvus:// store descriptor");
    const std::string url = d.value("url", "");
    if (url != backend())
      throw FormatError(in.what() + ": describes '" + url + "', this store is '" + backend() + "'");
    if (d.value("db", "") != s_.ep.db)
      throw FormatError(in.what() + ": describes database '" + d.value("db", "") + "', this store uses '" + s_.ep.db + "'");
    // The descriptor's fetch, applied in the commit (under the lock) unless the spec set one.
    int fetch = 0;
    if (d.contains("fetch") && d["fetch"].is_number_integer()) fetch = std::clamp(d["fetch"].get<int>(), 1, kMaxLimit);
    const CollectionInfo info = attach();  // the collection is there, of this dim and metric
    const int64_t now = size_impl();
    if (now != count)
      log(LogLevel::info, what() + ": the collection holds " + std::to_string(now) + " vectors, " +
                              std::to_string(count) + " when the descriptor was saved (a shared, live catalogue)");
    return [this, fetch, info] {
      if (!s_.fetch_set && fetch > 0) s_.fetch = fetch;
      info_ = info;
      key_ = key_of(info);
    };
  }

  std::string search_params_impl() const override {
    char wait[32];
    std::snprintf(wait, sizeof wait, "%g", s_.wait_s);
    return "fetch=" + std::to_string(s_.fetch) + "&wait=" + wait;
  }

  void set_param_impl(const std::string& name, double value) override {
    if (name == "fetch") s_.fetch = int(detail::integer_param(what(), name, value, 1, kMaxLimit)), s_.fetch_set = true;
    else if (name == "wait")
      throw InvalidArgument(what() + ": wait is how long a write waits to be visible, an option of the URL (?wait=S), "
                                     "not a search parameter");
    else
      throw InvalidArgument(what() + ": unknown or out-of-range search parameter " + name + "=" + std::to_string(value) +
                            " (fetch in [1, 16384])");
  }

  MilvusSpec s_;
  std::unique_ptr<Client> c_;
  CollectionInfo info_;
  std::string key_;  // the field holding the item id
};

}  // namespace

std::unique_ptr<VectorStore> make_milvus_store(const std::string& spec, int dim, Metric metric, const RemoteOpen& how) {
  const MilvusSpec s = parse(spec, how);
  return std::make_unique<MilvusStore>(s, dim, metric, milvus::make_rest_v1_client(s.ep));
}

}  // namespace mindrec::store
