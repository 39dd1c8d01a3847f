// Private: what the milvus:// store needs from a Milvus server, independent of the wire.
// The store (milvus_store.cpp) speaks only to this interface; rest_v1.cpp implements it over
// Milvus' REST API v1 (HTTP/1.1 + JSON, cpp-httplib). A REST v2 or gRPC client implements the
// same interface and is chosen in make_client() without touching the store.
//
// Errors: the server's refusals are RemoteError (RemoteAuthError, RemoteNotFound) naming the
// operation, the endpoint and the server's code and message; a server that cannot be reached,
// drops the connection or does not answer within the timeout is IoError. Calls marked
// idempotent are retried (bounded, with backoff) on those IoErrors before they are thrown.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mindrec/vector_store.hpp"

namespace mindrec::store::milvus {

/// Where the server is and how to talk to it (the milvus:// URL's host, port and options).
struct Endpoint {
  std::string host;
  int port = 19530;
  std::string db;           // empty: the server's default database
  std::string token;        // "user:password" or an API key; sent as a bearer token
  double timeout_s = 10;    // per request: connect, send and receive each
  int retries = 2;          // extra attempts of an idempotent call after an IoError
  int connections = 8;      // the connection pool: concurrent requests at most
};

/// A collection as the server describes it.
struct CollectionInfo {
  bool exists = false;
  int dim = 0;
  std::string metric;        // the vector index's metric as the server names it: "IP", "L2", ...
  std::string pk_field;      // the Int64 primary key
  bool auto_id = true;       // the server assigns primary keys
  std::string vector_field;  // the FloatVector field
  bool dynamic_fields = false;
  bool loaded = false;
  std::vector<std::string> scalar_fields;  // the schema's other fields (not the key, not the vector)
};

/// A scalar value of a row's field (an attribute): int64 (bool as 0/1 in `i`), float64 or
/// string, as its AttributeType says.
struct Scalar {
  AttributeType type = AttributeType::int64;
  int64_t i = 0;
  double f = 0;
  std::string s;
};
/// A row's scalar fields by name (those it holds: a row may lack a dynamic field).
using Fields = std::vector<std::pair<std::string, Scalar>>;

/// Rows to write: n vectors [n, dim] and each row's int64 key in field `key_field` (the
/// primary key when the collection has no auto id, else a dynamic field).
struct Rows {
  int64_t n = 0;
  int dim = 0;
  const float* vectors = nullptr;
  const int64_t* keys = nullptr;
  std::string vector_field, key_field;
  const Fields* fields = nullptr;  // null, or each row's scalar fields [n]
};

/// Rows read back whole (query_rows): per row its key, its primary key, its vector [dim] and
/// the scalar fields asked for that it holds.
struct RowsRead {
  std::vector<int64_t> keys, pks;
  std::vector<float> vectors;
  std::vector<Fields> fields;
};

struct Hit {
  int64_t key;     // the value of the key field asked for
  float distance;  // the raw metric: inner product, or squared L2
};

class Client {
 public:
  virtual ~Client() = default;
  /// "milvus://host:port" (for messages).
  virtual const std::string& where() const = 0;

  /// exists == false if there is no such collection. Idempotent.
  virtual CollectionInfo describe(const std::string& collection) = 0;
  /// Creates a collection the server's way (REST v1: Int64 auto-id primary key "id", vector
  /// field "vector", dynamic fields on, an index of the given metric) and loads it.
  virtual void create(const std::string& collection, int dim, Metric metric) = 0;
  virtual void drop(const std::string& collection) = 0;

  /// Inserts rows (not idempotent: never retried); returns the primary keys, in row order.
  virtual std::vector<int64_t> insert(const std::string& collection, const Rows& rows) = 0;
  /// Inserts or replaces rows by primary key (idempotent).
  virtual void upsert(const std::string& collection, const Rows& rows) = 0;
  /// Deletes the rows whose primary key is among `pks` (idempotent).
  virtual void delete_pks(const std::string& collection, const std::string& pk_field,
                          const std::vector<int64_t>& pks) = 0;
  /// Deletes every row matching a boolean expression (idempotent).
  virtual void delete_where(const std::string& collection, const std::string& filter) = 0;

  /// The int64 `fields` of the rows matching `filter`, row-major [rows, fields.size()]; at
  /// most `limit` rows (the server caps it at 16384). Idempotent.
  virtual std::vector<int64_t> query_keys(const std::string& collection, const std::string& filter,
                                          const std::vector<std::string>& fields, int limit) = 0;
  /// The rows matching `filter` (at most `limit`), whole: key, primary key, vector and those
  /// of `columns` each row holds (a value of another type than declared is FormatError naming
  /// the field). Appended to `out`. Idempotent.
  virtual void query_rows(const std::string& collection, const std::string& filter, const std::string& key_field,
                          const std::string& pk_field, const std::string& vector_field, int dim,
                          const std::vector<AttributeSpec>& columns, int limit, RowsRead& out) = 0;
  /// count(*) of the rows matching `filter`. Idempotent.
  virtual int64_t count(const std::string& collection, const std::string& filter) = 0;
  /// The `limit` nearest rows of one query vector [dim], best first, with each row's
  /// `key_field`. Idempotent; safe to call from several threads at once (one connection of
  /// the pool each).
  /// `filter`: a boolean expression over the collection's fields ("" none).
  virtual std::vector<Hit> search(const std::string& collection, const float* query, int dim,
                                  int limit, const std::string& key_field, const std::string& filter = "") = 0;
};

/// The REST v1 client (rest_v1.cpp).
std::unique_ptr<Client> make_rest_v1_client(const Endpoint& endpoint);

}  // namespace mindrec::store::milvus
