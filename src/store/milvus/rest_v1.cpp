// The Milvus REST API v1 client (Milvus 2.3: /v1/vector/*, on the gRPC port) over cpp-httplib:
// a pool of keep-alive connections, per-request timeouts, bounded retries of idempotent calls,
// and every error the server reports (HTTP 200 carrying {"code", "message"}) turned into a
// typed mindrec error. What the API does and does not do is in ../shared/docs/milvus-notes.md
// and the README's "A Milvus-backed store".
#include <httplib.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "mindrec/error.hpp"
#include "store/milvus/client.hpp"

namespace mindrec::store::milvus {
namespace {

using json = nlohmann::json;

void append_float(std::string& out, float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back the same
  out.append(buf, r.ptr);
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// A float64 attribute: the shortest form that reads back the same, always a JSON double
// (5.0, not 5: Milvus compares a JSON integer and a float literal differently).
void append_double(std::string& out, double v) {
  char buf[40];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  const std::string_view t(buf, size_t(r.ptr - buf));
  out += t;
  if (t.find_first_of(".eE") == std::string_view::npos) out += ".0";
}

// A JSON string literal (collection and field names come from the user's URL).
std::string quoted(const std::string& s) { return json(s).dump(); }

// int64 from a JSON number or a string (REST v1 sends strings unless asked for numbers).
int64_t as_int64(const json& v, const std::string& what) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    int64_t x = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), x);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return x;
  }
  throw FormatError(what + ": expected an int64, got " + v.dump(-1, ' ', true, json::error_handler_t::replace).substr(0, 80));
}

std::string describe_error(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection: return "cannot connect (is the server up?)";
    case httplib::Error::ConnectionTimeout: return "connecting timed out (timeout=)";
    case httplib::Error::Read: return "the connection failed while reading the answer (server gone, or no answer within timeout=)";
    case httplib::Error::Write: return "the connection failed while sending the request (server gone?)";
    default: return "HTTP transport error: " + httplib::to_string(e);
  }
}

class RestV1 final : public Client {
 public:
  explicit RestV1(const Endpoint& ep) : ep_(ep), where_("milvus://" + ep.host + ":" + std::to_string(ep.port)) {
    headers_ = {{"Accept-Type-Allow-Int64", "true"}};
    if (!ep_.token.empty()) headers_.emplace("Authorization", "Bearer " + ep_.token);
  }

  const std::string& where() const override { return where_; }

  CollectionInfo describe(const std::string& collection) override {
    std::string path = "/v1/vector/collections/describe?collectionName=" + httplib::detail::encode_query_param(collection);
    if (!ep_.db.empty()) path += "&dbName=" + httplib::detail::encode_query_param(ep_.db);
    CollectionInfo info;
    json data;
    try {
      data = call("describe", collection, false, path, "", true);
    } catch (const RemoteNotFound&) {
      return info;
    }
    info.exists = true;
    const std::string what = where_ + " describe '" + collection + "'";
    try {
      for (const auto& f : data.at("fields")) {
        const std::string type = f.at("type").get<std::string>();
        if (f.value("primaryKey", false)) {
          info.pk_field = f.at("name").get<std::string>();
          info.auto_id = f.value("autoId", false);
          if (type != "Int64") throw FormatError(what + ": the primary key '" + info.pk_field + "' is " + type + ", not Int64");
        } else if (type.rfind("FloatVector(", 0) != 0) {
          info.scalar_fields.push_back(f.at("name").get<std::string>());
        } else {
          info.vector_field = f.at("name").get<std::string>();
          const std::string d = type.substr(12, type.size() - 13);  // FloatVector(64)
          const auto r = std::from_chars(d.data(), d.data() + d.size(), info.dim);
          if (r.ec != std::errc() || r.ptr != d.data() + d.size() || type.back() != ')' || info.dim < 1)
            throw FormatError(what + ": unexpected vector type '" + type.substr(0, 40) + "'");
        }
      }
      for (const auto& ix : data.value("indexes", json::array()))
        if (ix.value("fieldName", "") == info.vector_field) info.metric = ix.value("metricType", "");
      info.dynamic_fields = data.value("enableDynamicField", false);
      info.loaded = data.value("load", "") == "LoadStateLoaded";
    } catch (const json::exception& e) {
      throw FormatError(what + ": unexpected answer: " + e.what());
    }
    if (info.pk_field.empty() || info.vector_field.empty())
      throw FormatError(what + ": the collection has no Int64 primary key or no FloatVector field");
    return info;
  }

  void create(const std::string& collection, int dim, Metric metric) override {
    std::string body = "{" + db() + "\"collectionName\":" + quoted(collection) + ",\"dimension\":" +
                       std::to_string(dim) + ",\"metricType\":\"" + (metric == Metric::inner_product ? "IP" : "L2") +
                       "\",\"primaryField\":\"id\",\"vectorField\":\"vector\"}";
    call("create", collection, true, "/v1/vector/collections/create", body, false);
  }

  void drop(const std::string& collection) override {
    call("drop", collection, true, "/v1/vector/collections/drop",
         "{" + db() + "\"collectionName\":" + quoted(collection) + "}", true);
  }

  std::vector<int64_t> insert(const std::string& collection, const Rows& rows) override {
    const json data = call("insert", collection, true, "/v1/vector/insert", rows_body(collection, rows), false);
    std::vector<int64_t> pks;
    try {
      for (const auto& v : data.at("insertIds")) pks.push_back(as_int64(v, where_ + " insert into '" + collection + "'"));
    } catch (const json::exception& e) {
      throw FormatError(where_ + " insert into '" + collection + "': unexpected answer: " + e.what());
    }
    if (int64_t(pks.size()) != rows.n)
      throw FormatError(where_ + " insert into '" + collection + "': " + std::to_string(rows.n) +
                        " rows sent, " + std::to_string(pks.size()) + " ids came back");
    return pks;
  }

  void upsert(const std::string& collection, const Rows& rows) override {
    call("upsert", collection, true, "/v1/vector/upsert", rows_body(collection, rows), true);
  }

  void delete_pks(const std::string& collection, const std::string& /*pk_field*/,
                  const std::vector<int64_t>& pks) override {
    std::string body = "{" + db() + "\"collectionName\":" + quoted(collection) + ",\"id\":[";
    for (size_t i = 0; i < pks.size(); ++i) {
      if (i) body += ',';
      append_int(body, pks[i]);
    }
    body += "]}";
    call("delete", collection, true, "/v1/vector/delete", body, true);
  }

  void delete_where(const std::string& collection, const std::string& filter) override {
    call("delete", collection, true, "/v1/vector/delete",
         "{" + db() + "\"collectionName\":" + quoted(collection) + ",\"filter\":" + quoted(filter) + "}", true);
  }

  std::vector<int64_t> query_keys(const std::string& collection, const std::string& filter,
                                  const std::vector<std::string>& fields, int limit) override {
    const json data = call("query", collection, true, "/v1/vector/query", query_body(collection, filter, fields, limit), true);
    std::vector<int64_t> out;
    const std::string what = where_ + " query '" + collection + "'";
    try {
      for (const auto& row : data)
        for (const auto& f : fields) out.push_back(as_int64(row.at(f), what));
    } catch (const json::exception& e) {
      throw FormatError(what + ": unexpected answer: " + e.what());
    }
    return out;
  }

  void query_rows(const std::string& collection, const std::string& filter, const std::string& key_field,
                  const std::string& pk_field, const std::string& vector_field, int dim,
                  const std::vector<AttributeSpec>& columns, int limit, RowsRead& out) override {
    std::vector<std::string> fields = {key_field, vector_field};
    if (pk_field != key_field) fields.push_back(pk_field);
    for (const auto& c : columns) fields.push_back(c.name);
    const json data = call("query", collection, true, "/v1/vector/query", query_body(collection, filter, fields, limit), true);
    const std::string what = where_ + " query '" + collection + "'";
    try {
      for (const auto& row : data) {
        const auto& v = row.at(vector_field);
        if (!v.is_array() || int(v.size()) != dim)
          throw FormatError(what + ": a vector of " + std::to_string(v.size()) + " numbers, expected " + std::to_string(dim));
        Fields f;
        for (const auto& c : columns) {
          const auto it = row.find(c.name);
          if (it == row.end() || it->is_null()) continue;  // a row written before the column was declared
          Scalar x;
          x.type = c.type;
          const bool ok = c.type == AttributeType::int64     ? it->is_number_integer()
                          : c.type == AttributeType::float64 ? it->is_number()
                          : c.type == AttributeType::boolean ? it->is_boolean()
                                                             : it->is_string();
          if (!ok)
            throw FormatError(what + ": field '" + c.name + "' holds " + it->dump().substr(0, 40) + ", not a " + to_string(c.type) +
                              " (written by another client?)");
          if (c.type == AttributeType::int64) x.i = it->get<int64_t>();
          else if (c.type == AttributeType::float64) x.f = it->get<double>();
          else if (c.type == AttributeType::boolean) x.i = it->get<bool>() ? 1 : 0;
          else x.s = it->get<std::string>();
          f.emplace_back(c.name, std::move(x));
        }
        out.keys.push_back(as_int64(row.at(key_field), what));
        out.pks.push_back(as_int64(row.at(pk_field), what));
        for (const auto& x : v) out.vectors.push_back(x.get<float>());
        out.fields.push_back(std::move(f));
      }
    } catch (const json::exception& e) {
      throw FormatError(what + ": unexpected answer: " + e.what());
    }
  }

  int64_t count(const std::string& collection, const std::string& filter) override {
    const json data = call("count", collection, true, "/v1/vector/query",
                           query_body(collection, filter, {"count(*)"}, 0), true);
    try {
      return as_int64(data.at(0).at("count(*)"), where_ + " count '" + collection + "'");
    } catch (const json::exception& e) {
      throw FormatError(where_ + " count '" + collection + "': unexpected answer: " + e.what());
    }
  }

  std::vector<Hit> search(const std::string& collection, const float* query, int dim, int limit,
                          const std::string& key_field, const std::string& filter) override {
    std::string body;
    body.reserve(size_t(dim) * 12 + 128);
    body = "{" + db() + "\"collectionName\":" + quoted(collection) + ",\"limit\":" + std::to_string(limit) +
           ",\"outputFields\":[" + quoted(key_field) + "]," + (filter.empty() ? "" : "\"filter\":" + quoted(filter) + ",") +
           "\"vector\":[";
    for (int j = 0; j < dim; ++j) {
      if (j) body += ',';
      append_float(body, query[j]);
    }
    body += "]}";
    const json data = call("search", collection, true, "/v1/vector/search", body, true);
    std::vector<Hit> hits;
    const std::string what = where_ + " search '" + collection + "'";
    try {
      hits.reserve(data.size());
      for (const auto& h : data) hits.push_back({as_int64(h.at(key_field), what), h.at("distance").get<float>()});
    } catch (const json::exception& e) {
      throw FormatError(what + ": unexpected answer: " + e.what());
    }
    return hits;
  }

 private:
  std::string db() const { return ep_.db.empty() ? "" : "\"dbName\":" + quoted(ep_.db) + ","; }

  std::string rows_body(const std::string& collection, const Rows& r) const {
    std::string body;
    body.reserve(size_t(r.n) * (size_t(r.dim) * 11 + 48) + 64);
    body = "{" + db() + "\"collectionName\":" + quoted(collection) + ",\"data\":[";
    const std::string vf = "{" + quoted(r.vector_field) + ":[", kf = "]," + quoted(r.key_field) + ":";
    for (int64_t i = 0; i < r.n; ++i) {
      if (i) body += ',';
      body += vf;
      const float* v = r.vectors + size_t(i) * r.dim;
      for (int j = 0; j < r.dim; ++j) {
        if (j) body += ',';
        append_float(body, v[j]);
      }
      body += kf;
      append_int(body, r.keys[i]);
      if (r.fields)
        for (const auto& [name, v] : r.fields[i]) {
          body += ',' + quoted(name) + ':';
          switch (v.type) {
            case AttributeType::int64: append_int(body, v.i); break;
            case AttributeType::float64: append_double(body, v.f); break;
            case AttributeType::boolean: body += v.i ? "true" : "false"; break;
            case AttributeType::string: body += quoted(v.s); break;
          }
        }
      body += '}';
    }
    body += "]}";
    return body;
  }

  std::string query_body(const std::string& collection, const std::string& filter,
                         const std::vector<std::string>& fields, int limit) const {
    std::string body = "{" + db() + "\"collectionName\":" + quoted(collection) + ",\"filter\":" + quoted(filter) +
                       ",\"limit\":" + std::to_string(limit) + ",\"outputFields\":[";
    for (size_t i = 0; i < fields.size(); ++i) body += (i ? "," : "") + quoted(fields[i]);
    return body + "]}";
  }

  // One request: a connection from the pool, the server's answer checked; IoErrors of an
  // idempotent call retried (100, 200, 400 ms ... apart). Returns the answer's "data".
  json call(const char* op, const std::string& collection, bool post, const std::string& path,
            const std::string& body, bool idempotent) {
    const std::string what = where_ + " " + op + " '" + collection + "'";
    const int attempts = 1 + (idempotent ? std::max(0, ep_.retries) : 0);
    for (int attempt = 1;; ++attempt) {
      std::string failure;
      {
        Lease c(*this);
        httplib::Result res = post ? c->Post(path, headers_, body, "application/json") : c->Get(path, headers_);
        if (res) {
          if (res->status < 500) {
            c.keep();
            return answer(what, res->status, res->body);
          }
          failure = "HTTP " + std::to_string(res->status) + " " + head(res->body, 200);
        } else {
          failure = describe_error(res.error());
        }
      }
      if (attempt >= attempts)
        throw IoError(what + ": " + failure + (attempts > 1 ? " (after " + std::to_string(attempts) + " attempts)" : ""));
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << std::min(attempt - 1, 4)));
    }
  }

  // At most n bytes of s, not cutting a UTF-8 sequence (messages become Python str).
  static std::string head(const std::string& s, size_t n) {
    if (s.size() <= n) return s;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
  }

  static json answer(const std::string& what, int status, const std::string& body) {
    json j = json::parse(body, nullptr, false);
    int code = status;
    std::string message = head(body, 300);
    if (j.is_object() && j.contains("code") && j["code"].is_number_integer()) {
      code = j["code"].get<int>();
      if (j.contains("message") && j["message"].is_string()) message = j["message"].get<std::string>();
    }
    const std::string text = what + ": Milvus error " + std::to_string(code) + ": " + message;
    if (status == 401 || status == 403 || code == 1800)
      throw RemoteAuthError(text + " (check the token: milvus://...?token=user:password or MINDREC_MILVUS_TOKEN)", code);
    if (status != 200) throw RemoteError(what + ": HTTP " + std::to_string(status) + ": " + message, status);
    if (!j.is_object() || !j.contains("code")) throw RemoteError(what + ": not a Milvus REST v1 answer: " + message, status);
    if (code == 100) throw RemoteNotFound(text, code);
    if (code != 200 && code != 0) throw RemoteError(text, code);
    return j.contains("data") ? j["data"] : json();
  }

  // A connection taken from the pool for one request; returned on keep(), else dropped (a
  // failed connection is not reused).
  class Lease {
   public:
    explicit Lease(RestV1& p) : p_(p) {
      std::unique_lock<std::mutex> l(p_.mu_);
      p_.cv_.wait(l, [&] { return !p_.idle_.empty() || p_.open_ < std::max(1, p_.ep_.connections); });
      if (!p_.idle_.empty()) {
        c_ = std::move(p_.idle_.back());
        p_.idle_.pop_back();
      } else {
        ++p_.open_;
        l.unlock();
        try {
          c_ = std::make_unique<httplib::Client>(p_.ep_.host, p_.ep_.port);
        } catch (...) {
          std::lock_guard<std::mutex> g(p_.mu_);
          --p_.open_;
          p_.cv_.notify_one();
          throw;
        }
        const auto t = std::chrono::duration<double>(p_.ep_.timeout_s);
        c_->set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
        c_->set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
        c_->set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
        c_->set_keep_alive(true);
        c_->set_tcp_nodelay(true);  // else Nagle holds the body behind the headers for a delayed ACK (40 ms)
      }
    }
    ~Lease() {
      std::lock_guard<std::mutex> g(p_.mu_);
      if (keep_) p_.idle_.push_back(std::move(c_));
      else --p_.open_;
      p_.cv_.notify_one();
    }
    httplib::Client* operator->() { return c_.get(); }
    void keep() { keep_ = true; }

   private:
    RestV1& p_;
    std::unique_ptr<httplib::Client> c_;
    bool keep_ = false;
  };

  Endpoint ep_;
  std::string where_;
  httplib::Headers headers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;
  int open_ = 0;
};

}  // namespace

std::unique_ptr<Client> make_rest_v1_client(const Endpoint& endpoint) {
  return std::make_unique<RestV1>(endpoint);
}

}  // namespace mindrec::store::milvus
