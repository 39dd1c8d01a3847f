#include "detail/csv.hpp"

#include "mindrec/error.hpp"

namespace mindrec::detail {

std::vector<std::string> split_csv_fields(const std::string& line, const std::string& where) {
  bool comma = false, quoted = false;
  for (const char ch : line) {
    if (ch == '"') quoted = !quoted;
    else if (ch == ',' && !quoted) comma = true;
  }
  if (quoted) throw FormatError(where + "a quoted field is not closed on its line: '" + line + "'");
  std::vector<std::string> f;
  if (!comma) {
    for (size_t i = line.find_first_not_of(" \t"); i != std::string::npos;) {
      const size_t e = line.find_first_of(" \t", i);
      f.push_back(line.substr(i, e == std::string::npos ? std::string::npos : e - i));
      if (e == std::string::npos) break;
      i = line.find_first_not_of(" \t", e);
    }
    return f;
  }
  size_t i = 0;
  for (;;) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string field;
    if (i < line.size() && line[i] == '"') {
      for (++i;; ++i) {
        if (i >= line.size())  // a quote inside an unquoted field can pair up with this one
          throw FormatError(where + "a quoted field is not closed on its line: '" + line + "'");
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') field += '"', ++i;
          else break;
        } else {
          field += line[i];
        }
      }
      ++i;  // past the closing quote
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i < line.size() && line[i] != ',')
        throw FormatError(where + "text after a closing quote in '" + line + "'");
    } else {
      const size_t c = line.find(',', i);
      field = line.substr(i, c == std::string::npos ? std::string::npos : c - i);
      const size_t b = field.find_last_not_of(" \t");
      field.erase(b == std::string::npos ? 0 : b + 1);
      i = c == std::string::npos ? line.size() : c;
    }
    f.push_back(field);
    if (i >= line.size()) break;
    ++i;  // past the comma
    if (i == line.size()) {  // a trailing comma: an empty last field
      f.emplace_back();
      break;
    }
  }
  return f;
}



std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"") == std::string::npos && (v.empty() || (v.front() != ' ' && v.back() != ' '))) return v;
  std::string q = "\"";
  for (const char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

}  // namespace mindrec::detail
