// Private: a store's attribute columns (AttributeTable) and a filter expression parsed into a
// plan (FilterPlan) evaluated over them into the allowed set (Allowed) a search obeys.
#pragma once

#include <cstdint>
#include <functional>
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

/// Checks a batch of attribute values against the declared `columns` (InvalidArgument naming
/// the problem): ids not negative nor repeated, every column declared once with its type and
/// n values, no NaN, bools 0 or 1, strings of at most 65535 bytes.
void check_attribute_batch(int64_t n, const int64_t* ids, const AttributeBatch& batch,
                           const std::vector<AttributeSpec>& columns);

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
  /// The filter in Milvus 2.3's expression syntax: `id` as `id_field`, keywords lower case,
  /// every leaf parenthesised, a bool column alone as `f == true`, floats with a decimal
  /// point (a float64 column's JSON value is a double). A column for which `may_be_missing`
  /// is true (a dynamic field: a row written before it was declared lacks it) reads as its
  /// default where absent, as in a local store: its leaf becomes `((not exists f) or (L))`
  /// when the default passes L, else `((exists f) and (L))` (Milvus' own reading of an absent
  /// key differs by operator: == false, != true).
  std::string to_milvus(const std::string& id_field, const std::function<bool(const std::string&)>& may_be_missing) const;
  struct Node;

 private:
  std::vector<AttributeSpec> cols_;
  std::shared_ptr<const Node> root_;
  int64_t max_id_literal_ = -1;
};

}  // namespace mindrec::store
