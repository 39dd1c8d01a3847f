// Private: a store's attribute columns (AttributeTable) and a filter expression parsed into a
// plan (FilterPlan) evaluated over them into the allowed set (Allowed) a search obeys.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "mindrec/attributes.hpp"
#include "mindrec/store_stream.hpp"

namespace mindrec::store {

/// Columns indexed by item id: rows() ids have a row (the largest id given a value, plus 1).
/// Reads (filters) run under the store's shared lock; a write validates and allocates aside
/// (prepare), then applies under the exclusive lock without throwing (commit).
class AttributeTable {
 public:
  struct Column {
    AttributeSpec spec;
    std::vector<int64_t> ints;     // int64, [rows]
    std::vector<double> floats;    // float64, [rows]
    std::vector<uint8_t> bools;    // bool, [rows]
    std::vector<uint32_t> codes;   // string, [rows]: index into dict (0 = "")
    std::vector<std::string> dict; // string: dict[0] == ""
    std::unordered_map<std::string, uint32_t> index;  // string: dict value -> code
    size_t bytes() const;
  };

  int64_t rows() const { return rows_; }
  const std::vector<Column>& columns() const { return cols_; }
  const Column* find(const std::string& name) const;
  std::vector<AttributeSpec> specs() const;
  bool empty() const { return cols_.empty(); }
  size_t bytes() const;

  /// A prepared write: everything allocated; commit() swaps it in and cannot throw.
  struct Staged;
  /// Declares columns (new names only; a name already declared with the same type is kept,
  /// with another type InvalidArgument).
  std::shared_ptr<Staged> prepare_declare(const std::vector<AttributeSpec>& specs) const;
  /// Sets values for ids (refused: ids < 0 or >= 2^32, unknown columns, columns of another
  /// type, sizes other than n, ids repeated in the batch).
  std::shared_ptr<Staged> prepare_set(int64_t n, const int64_t* ids, const AttributeBatch& batch) const;
  void commit(Staged& s) noexcept;
  void clear() noexcept;

  void write(StoreWriter& out) const;
  /// Reads what write() wrote, validated (FormatError naming `what`), into a new table.
  static AttributeTable read(StoreReader& in);

 private:
  std::vector<Column> cols_;
  int64_t rows_ = 0;
};

/// The ids a filter allows: a bitmap over ids below nbits; every id at or above it answers
/// `beyond` (nbits exceeds every id the filter names, so those ids all compare alike).
struct Allowed {
  std::vector<uint64_t> bits;
  int64_t nbits = 0;
  bool beyond = false;
  int64_t count = 0;  ///< allowed ids below nbits
  bool test(int64_t id) const {
    return id >= 0 && (id < nbits ? ((bits[size_t(id) >> 6] >> (id & 63)) & 1) != 0 : beyond);
  }
};

/// `text` with every field named `from` renamed `to` (strings and other tokens untouched):
/// a filter's `id` as a remote collection's key field.
std::string rename_filter_field(const std::string& text, const std::string& from, const std::string& to);

/// A parsed filter checked against a table's columns.
class FilterPlan {
 public:
  /// InvalidArgument naming the position and token for a malformed expression, an unknown
  /// field or a literal of the wrong type.
  static FilterPlan parse(const std::string& text, const std::vector<AttributeSpec>& columns);
  /// The allowed set over `t` (which must have the columns the plan was parsed against).
  Allowed evaluate(const AttributeTable& t) const;
  /// True if the row of `id` in `t` passes (one id; the interpreter of the plan).
  bool test(const AttributeTable& t, int64_t id) const;
  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  int64_t max_id_literal_ = -1;
};

}  // namespace mindrec::store
