// Private: the CSV fields of one line (RFC 4180 quoting) and a field written back, shared by
// prepare's raw log reader and the catalogue file.
#pragma once

#include <string>
#include <vector>

namespace mindrec::detail {

/// One line's fields: comma-separated (RFC 4180: "quoted, fields" with "" for a quote; spaces
/// around a field dropped) when the line has a comma outside quotes, else whitespace-separated.
/// Throws FormatError prefixed with `where` for an unclosed quote or text after one.
std::vector<std::string> split_csv_fields(const std::string& line, const std::string& where);

/// A value as a CSV field: quoted (RFC 4180) when it holds a comma, a quote or surrounding space.
std::string csv_field(const std::string& v);

}  // namespace mindrec::detail
