// Item attributes a vector store holds beside its vectors (typed columns per item id), and
// the filter expressions a search obeys (Milvus' boolean expression syntax).
//
// Columns: int64, float64, bool and string (a dictionary: 4 bytes per item plus each distinct
// value once). A column holds a value for every id below the largest id given one; ids that
// were never given a value read as the column's default: 0, 0.0, false, "". Attributes are
// keyed by the store's item id, need not belong to a stored vector (a catalogue's retired item
// keeps its row) and address ids below 2^32.
//
// Filter grammar (a subset of Milvus' boolean expressions):
//   expr    := term ( ("or" | "||") term )*
//   term    := factor ( ("and" | "&&") factor )*
//   factor  := ("not" | "!") factor | "(" expr ")" | leaf
//   leaf    := field op literal | field ["not"] "in" "[" literal ("," literal)* "]" | field
//   op      := == | != | < | <= | > | >=
//   literal := integer | float | "string" | 'string' | true | false
// Keywords are case-insensitive (and, AND, or, not, in, true, True...). `field` alone tests a
// bool column (in_stock means in_stock == true). The field `id` is the item id itself (an
// integer below 2^26 or below the attribute rows, whichever is larger). int64 columns compare
// with integers (and with floats, as numbers); float64 columns with numbers; bool columns with
// true/false (== and != and in); string columns with strings (ordering comparisons are
// byte-wise). A malformed expression, an unknown field or a literal of the wrong type is
// InvalidArgument naming the 0-based position and the token.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mindrec/export.hpp"

namespace mindrec {

enum class AttributeType { int64, float64, boolean, string };

/// "int64", "float64", "bool", "string".
MINDREC_API const char* to_string(AttributeType t);
/// The inverse of to_string ("int" and "float" and "double" accepted too); InvalidArgument
/// naming the accepted names otherwise.
MINDREC_API AttributeType parse_attribute_type(const std::string& name);

/// A column's declaration: a name (letters, digits and '_', not starting with a digit, not
/// "id" nor a keyword of the filter grammar) and a type.
struct AttributeSpec {
  std::string name;
  AttributeType type = AttributeType::int64;
  bool operator==(const AttributeSpec& o) const { return name == o.name && type == o.type; }
};

/// Values for some columns of n items: one entry per column, each with n values (in the
/// vector of its type; the others stay empty).
struct MINDREC_API AttributeBatch {
  struct MINDREC_API Column {
    std::string name;
    AttributeType type = AttributeType::int64;
    std::vector<int64_t> ints;        // int64
    std::vector<double> floats;       // float64
    std::vector<uint8_t> bools;       // bool (0 or 1)
    std::vector<std::string> strings; // string
    int64_t size() const;
  };
  std::vector<Column> columns;

  AttributeBatch& add(const std::string& name, std::vector<int64_t> values);
  AttributeBatch& add(const std::string& name, std::vector<double> values);
  AttributeBatch& add_bool(const std::string& name, std::vector<uint8_t> values);
  AttributeBatch& add(const std::string& name, std::vector<std::string> values);
};

class Catalogue;

/// What an attribute file holds (read_attributes_csv).
struct AttributeFile {
  std::vector<AttributeSpec> columns;
  std::vector<int64_t> ids;   ///< dense item ids, one per row kept
  AttributeBatch values;      ///< one column per `columns`, one value per id
  int64_t unknown_raw_ids = 0;  ///< rows skipped: raw ids the catalogue does not hold
};

/// Reads an attribute CSV (RFC 4180 quoting): a header `id,name[:type],...` (dense item ids)
/// or `raw_id,name[:type],...` (raw ids, mapped through `catalogue`, which is then required;
/// rows of raw ids it does not hold are skipped and counted), then one row per item. A type
/// is int64, float64, bool or string; a column without one takes the narrowest that holds
/// every value (integers, then numbers, then true/false, else strings). Bool values: true,
/// false, 1, 0 (any case). Bad input is FormatError naming file, line and field: a value of
/// the wrong type, an id repeated or outside [0, 2^32), a row of the wrong width.
MINDREC_API AttributeFile read_attributes_csv(const std::string& path, const Catalogue* catalogue = nullptr);

/// Checks that `filter` parses against the columns `attributes` (the `id` field always
/// exists); InvalidArgument naming the position and the token otherwise. An empty filter is
/// valid (every item).
MINDREC_API void check_filter(const std::string& filter, const std::vector<AttributeSpec>& attributes);

/// Per-call search options.
struct SearchOptions {
  /// A filter expression (grammar above) over the store's attributes: only items it allows
  /// are returned, chosen inside the search (exact among the allowed items for `flat`). ""
  /// allows every item.
  std::string filter;
  /// Search parameters for this call only, overriding the store's ("ef", "nprobe",
  /// "threads": what the backend's spec takes); a name the backend does not take is
  /// InvalidArgument. Mode switches (walk, faiss_scan) are set on the store's spec only.
  std::vector<std::pair<std::string, double>> params;
  /// Ids never returned, per query group: query q skips exclude[q / queries_per_exclude]
  /// (a user's K interests share the user's history). Null: none. Applied inside the search
  /// like the filter.
  const std::vector<std::vector<int64_t>>* exclude = nullptr;
  int queries_per_exclude = 1;

  bool empty() const { return filter.empty() && params.empty() && exclude == nullptr; }
};

}  // namespace mindrec
