// Item attributes (AttributeTable) and filter expressions (FilterPlan): see attributes.hpp
// and include/mindrec/attributes.hpp for the grammar.
#include "store/attributes.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "detail/csv.hpp"
#include "detail/fault.hpp"
#include "mindrec/catalogue.hpp"
#include <fstream>
#include "mindrec/error.hpp"
#include "store/store_io.hpp"

namespace mindrec {

const char* to_string(AttributeType t) {
  switch (t) {
    case AttributeType::int64: return "int64";
    case AttributeType::float64: return "float64";
    case AttributeType::boolean: return "bool";
    case AttributeType::string: return "string";
  }
  return "?";
}

AttributeType parse_attribute_type(const std::string& name) {
  if (name == "int64" || name == "int") return AttributeType::int64;
  if (name == "float64" || name == "float" || name == "double") return AttributeType::float64;
  if (name == "bool") return AttributeType::boolean;
  if (name == "string") return AttributeType::string;
  throw InvalidArgument("attribute type '" + name + "' is not one of int64, float64, bool, string");
}

int64_t AttributeBatch::Column::size() const {
  switch (type) {
    case AttributeType::int64: return int64_t(ints.size());
    case AttributeType::float64: return int64_t(floats.size());
    case AttributeType::boolean: return int64_t(bools.size());
    case AttributeType::string: return int64_t(strings.size());
  }
  return 0;
}

AttributeBatch& AttributeBatch::add(const std::string& name, std::vector<int64_t> values) {
  Column c;
  c.name = name;
  c.type = AttributeType::int64;
  c.ints = std::move(values);
  columns.push_back(std::move(c));
  return *this;
}
AttributeBatch& AttributeBatch::add(const std::string& name, std::vector<double> values) {
  Column c;
  c.name = name;
  c.type = AttributeType::float64;
  c.floats = std::move(values);
  columns.push_back(std::move(c));
  return *this;
}
AttributeBatch& AttributeBatch::add_bool(const std::string& name, std::vector<uint8_t> values) {
  Column c;
  c.name = name;
  c.type = AttributeType::boolean;
  c.bools = std::move(values);
  columns.push_back(std::move(c));
  return *this;
}
AttributeBatch& AttributeBatch::add(const std::string& name, std::vector<std::string> values) {
  Column c;
  c.name = name;
  c.type = AttributeType::string;
  c.strings = std::move(values);
  columns.push_back(std::move(c));
  return *this;
}

namespace {
constexpr int64_t kMaxAttributeId = int64_t(1) << 32;  // ids below 2^32 (attributes and their file)
bool parse_int(const std::string& v, int64_t& out) {
  if (v.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (errno == ERANGE || *end != '\0') return false;
  out = x;
  return true;
}
bool parse_real(const std::string& v, double& out) {
  if (v.empty()) return false;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (*end != '\0' || std::isnan(x)) return false;
  out = x;
  return true;
}
bool parse_bool(const std::string& v, uint8_t& out) {
  std::string l = v;
  for (char& c : l) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (l == "true" || l == "1") return out = 1, true;
  if (l == "false" || l == "0") return out = 0, true;
  return false;
}
}  // namespace

AttributeFile read_attributes_csv(const std::string& path, const Catalogue* catalogue) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open attribute file '" + path + "'");
  std::string line;
  int64_t line_no = 0;
  std::vector<std::string> head;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    head = detail::split_csv_fields(line, path + ":" + std::to_string(line_no) + ": ");
    break;
  }
  if (head.empty()) throw FormatError(path + ": empty (expected a header: id,name[:type],... or raw_id,name[:type],...)");
  const bool raw = head[0] == "raw_id";
  if (!raw && head[0] != "id")
    throw FormatError(path + ":" + std::to_string(line_no) + ": the first column is '" + head[0] + "', expected 'id' or 'raw_id'");
  if (raw && !catalogue)
    throw FormatError(path + ": keyed by raw_id, which needs the weights' catalogue (catalogue.csv beside the weights, or --catalogue)");
  AttributeFile f;
  std::vector<int> typed;  // 1 if the header gave a type
  for (size_t c = 1; c < head.size(); ++c) {
    AttributeSpec a;
    const size_t colon = head[c].find(':');
    a.name = head[c].substr(0, colon);
    try {
      if (colon != std::string::npos) a.type = parse_attribute_type(head[c].substr(colon + 1));
      store::AttributeTable().prepare_declare({a});  // the name's rules
    } catch (const InvalidArgument& e) {
      throw FormatError(path + ":" + std::to_string(line_no) + ": column " + std::to_string(c + 1) + ": " + e.what());
    }
    typed.push_back(colon != std::string::npos);
    f.columns.push_back(a);
  }
  std::vector<std::vector<std::string>> cells(f.columns.size());
  std::vector<int64_t> lines;
  std::unordered_set<int64_t> seen;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    std::vector<std::string> row = detail::split_csv_fields(line, where);
    if (row.size() != head.size())
      throw FormatError(where + std::to_string(row.size()) + " fields, the header has " + std::to_string(head.size()));
    int64_t id = 0;
    if (raw) {
      id = catalogue->to_dense(row[0]);
      if (id == 0) {
        ++f.unknown_raw_ids;
        continue;
      }
    } else if (!parse_int(row[0], id) || id < 0 || id >= kMaxAttributeId) {
      throw FormatError(where + "field 'id': '" + row[0] + "' is not an item id in [0, 2^32)");
    }
    if (!seen.insert(id).second)
      throw FormatError(where + "field '" + head[0] + "': item " + row[0] + " appears twice");
    f.ids.push_back(id);
    lines.push_back(line_no);
    for (size_t c = 0; c < f.columns.size(); ++c) cells[c].push_back(std::move(row[c + 1]));
  }
  for (size_t c = 0; c < f.columns.size(); ++c) {
    AttributeSpec& a = f.columns[c];
    const auto& v = cells[c];
    if (!typed[c]) {  // the narrowest type that holds every value
      bool ints = true, reals = true, bools = true;
      int64_t i;
      double d;
      for (const auto& x : v) {
        ints = ints && parse_int(x, i);
        reals = reals && parse_real(x, d);
        std::string l = x;
        for (char& ch : l) ch = char(std::tolower(static_cast<unsigned char>(ch)));
        bools = bools && (l == "true" || l == "false");
      }
      a.type = v.empty() ? AttributeType::string : ints ? AttributeType::int64 : reals ? AttributeType::float64
             : bools ? AttributeType::boolean : AttributeType::string;
    }
    AttributeBatch::Column col;
    col.name = a.name;
    col.type = a.type;
    for (size_t r = 0; r < v.size(); ++r) {
      auto bad = [&](const char* want) {
        throw FormatError(path + ":" + std::to_string(lines[r]) + ": field '" + a.name + "': '" + v[r] + "' is not " + want);
      };
      switch (a.type) {
        case AttributeType::int64: {
          int64_t x;
          if (!parse_int(v[r], x)) bad("an int64");
          col.ints.push_back(x);
          break;
        }
        case AttributeType::float64: {
          double x;
          if (!parse_real(v[r], x)) bad("a number");
          col.floats.push_back(x);
          break;
        }
        case AttributeType::boolean: {
          uint8_t x;
          if (!parse_bool(v[r], x)) bad("a bool (true, false, 1, 0)");
          col.bools.push_back(x);
          break;
        }
        case AttributeType::string:
          if (v[r].size() > 65535) bad("a string of at most 65535 bytes");
          col.strings.push_back(v[r]);
          break;
      }
    }
    f.values.columns.push_back(std::move(col));
  }
  return f;
}

void check_filter(const std::string& filter, const std::vector<AttributeSpec>& attributes) {
  if (!filter.empty()) store::FilterPlan::parse(filter, attributes);
}

namespace store {

namespace {

using mindrec::kMaxAttributeId;
constexpr int64_t kIdLiteralFloor = int64_t(1) << 26;  // id literals below max(2^26, rows)

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_keyword(const std::string& s) {
  const std::string l = lower(s);
  return l == "and" || l == "or" || l == "not" || l == "in" || l == "true" || l == "false" || l == "like";
}

void check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 255 && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok)
    throw InvalidArgument("attribute name '" + name +
                          "': expected letters, digits and '_' (1-255 characters, not starting with a digit)");
  if (name == "id" || is_keyword(name))
    throw InvalidArgument("attribute name '" + name + "' is reserved (the item id or a keyword of the filter grammar)");
}

}  // namespace

size_t AttributeTable::Column::bytes() const {
  size_t b = ints.capacity() * 8 + floats.capacity() * 8 + bools.capacity() + codes.capacity() * 4;
  for (const auto& s : dict) b += s.size() + sizeof(std::string) + 16;  // + the index's entry
  return b;
}

size_t AttributeTable::bytes() const {
  size_t b = 0;
  for (const auto& c : cols_) b += c.bytes();
  return b;
}

const AttributeTable::Column* AttributeTable::find(const std::string& name) const {
  for (const auto& c : cols_)
    if (c.spec.name == name) return &c;
  return nullptr;
}

std::vector<AttributeSpec> AttributeTable::specs() const {
  std::vector<AttributeSpec> out;
  for (const auto& c : cols_) out.push_back(c.spec);
  return out;
}

namespace {
void resize_column(AttributeTable::Column& c, size_t rows) {
  switch (c.spec.type) {
    case AttributeType::int64: c.ints.resize(rows, 0); break;
    case AttributeType::float64: c.floats.resize(rows, 0.0); break;
    case AttributeType::boolean: c.bools.resize(rows, 0); break;
    case AttributeType::string: c.codes.resize(rows, 0); break;
  }
}
size_t column_capacity(const AttributeTable::Column& c) {
  switch (c.spec.type) {
    case AttributeType::int64: return c.ints.capacity();
    case AttributeType::float64: return c.floats.capacity();
    case AttributeType::boolean: return c.bools.capacity();
    case AttributeType::string: return c.codes.capacity();
  }
  return 0;
}
void reserve_column(AttributeTable::Column& c, size_t rows) {
  switch (c.spec.type) {
    case AttributeType::int64: c.ints.reserve(rows); break;
    case AttributeType::float64: c.floats.reserve(rows); break;
    case AttributeType::boolean: c.bools.reserve(rows); break;
    case AttributeType::string: c.codes.reserve(rows); break;
  }
}
}  // namespace

// What a write applies at commit: either a whole new set of columns (declare, or a set that
// grows the rows past a column's capacity: copies made aside), or values written in place
// into columns that already have room.
struct AttributeTable::Staged {
  bool replace = false;
  std::vector<Column> cols;  // replace: the new columns (values applied already)
  int64_t rows = 0;
  // In place: per batch column, the table column and the values (strings as codes), plus a
  // new dictionary when the batch brings new strings.
  struct Write {
    size_t col = 0;
    std::vector<int64_t> ints;
    std::vector<double> floats;
    std::vector<uint8_t> bools;
    std::vector<uint32_t> codes;
    bool new_dict = false;
    std::vector<std::string> dict;
    std::unordered_map<std::string, uint32_t> index;
  };
  std::vector<Write> writes;
  std::vector<int64_t> ids;
};

std::shared_ptr<AttributeTable::Staged> AttributeTable::prepare_declare(const std::vector<AttributeSpec>& specs) const {
  auto s = std::make_shared<Staged>();
  s->replace = true;
  s->rows = rows_;
  s->cols = cols_;  // copies: a declaration is rare (once per store)
  std::unordered_set<std::string> seen;
  for (const auto& spec : specs) {
    check_name(spec.name);
    if (!seen.insert(spec.name).second) throw InvalidArgument("attribute '" + spec.name + "' declared twice");
    if (const Column* c = find(spec.name)) {
      if (c->spec.type != spec.type)
        throw InvalidArgument("attribute '" + spec.name + "' is already declared as " + to_string(c->spec.type) +
                              ", not " + to_string(spec.type));
      continue;
    }
    Column c;
    c.spec = spec;
    if (spec.type == AttributeType::string) {
      c.dict.push_back("");
      c.index.emplace("", 0);
    }
    resize_column(c, size_t(rows_));
    s->cols.push_back(std::move(c));
  }
  detail::fault_point("attributes.declare");
  return s;
}

void check_attribute_batch(int64_t n, const int64_t* ids, const AttributeBatch& batch,
                           const std::vector<AttributeSpec>& columns) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0) throw InvalidArgument("set_attributes: id " + std::to_string(ids[i]) + " is negative");
  {
    std::vector<int64_t> sorted(ids, ids + n);
    std::sort(sorted.begin(), sorted.end());
    const auto twice = std::adjacent_find(sorted.begin(), sorted.end());
    if (twice != sorted.end())
      throw InvalidArgument("set_attributes: id " + std::to_string(*twice) + " appears twice in the batch");
  }
  std::unordered_set<std::string> seen;
  for (const auto& bc : batch.columns) {
    const auto col = std::find_if(columns.begin(), columns.end(), [&](const AttributeSpec& c) { return c.name == bc.name; });
    if (col == columns.end()) {
      std::string have;
      for (const auto& c : columns) have += (have.empty() ? "" : ", ") + c.name;
      throw InvalidArgument("set_attributes: no attribute '" + bc.name + "' (declared: " +
                            (have.empty() ? std::string("none") : have) + ")");
    }
    if (!seen.insert(bc.name).second) throw InvalidArgument("set_attributes: attribute '" + bc.name + "' given twice");
    if (bc.type != col->type)
      throw InvalidArgument("set_attributes: attribute '" + bc.name + "' is " + to_string(col->type) + ", the batch gives " +
                            to_string(bc.type) + " values");
    if (bc.size() != n)
      throw InvalidArgument("set_attributes: attribute '" + bc.name + "' has " + std::to_string(bc.size()) + " values for " +
                            std::to_string(n) + " ids");
    for (double v : bc.floats)
      if (std::isnan(v)) throw InvalidArgument("set_attributes: attribute '" + bc.name + "' holds NaN");
    for (uint8_t v : bc.bools)
      if (v > 1) throw InvalidArgument("set_attributes: attribute '" + bc.name + "' holds a bool other than 0 or 1");
    for (const auto& v : bc.strings)
      if (v.size() > 65535)
        throw InvalidArgument("set_attributes: attribute '" + bc.name + "': a string of " + std::to_string(v.size()) +
                              " bytes (at most 65535)");
  }
}

std::shared_ptr<AttributeTable::Staged> AttributeTable::prepare_set(int64_t n, const int64_t* ids,
                                                                    const AttributeBatch& batch) const {
  int64_t max_id = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= kMaxAttributeId)
      throw InvalidArgument("set_attributes: id " + std::to_string(ids[i]) + " is outside [0, 2^32)");
    max_id = std::max(max_id, ids[i]);
  }
  check_attribute_batch(n, ids, batch, specs());
  auto s = std::make_shared<Staged>();
  for (const auto& bc : batch.columns) {
    size_t at = 0;
    while (cols_[at].spec.name != bc.name) ++at;  // declared: checked above
    const Column& col = cols_[at];
    Staged::Write w;
    w.col = at;
    switch (bc.type) {
      case AttributeType::int64: w.ints = bc.ints; break;
      case AttributeType::float64: w.floats = bc.floats; break;
      case AttributeType::boolean: w.bools = bc.bools; break;
      case AttributeType::string: {
        w.codes.resize(size_t(n));
        const std::unordered_map<std::string, uint32_t>* index = &col.index;
        for (int64_t i = 0; i < n; ++i) {
          const std::string& v = bc.strings[size_t(i)];
          auto it = index->find(v);
          if (it == index->end()) {
            if (!w.new_dict) {  // the first new value: the dictionary is copied aside
              w.new_dict = true;
              w.dict = col.dict;
              w.index = col.index;
              index = &w.index;
            }
            if (w.dict.size() >= 0xffffffffu)
              throw InvalidArgument("set_attributes: attribute '" + bc.name + "' has too many distinct values");
            it = w.index.emplace(v, uint32_t(w.dict.size())).first;
            w.dict.push_back(v);
          }
          w.codes[size_t(i)] = it->second;
        }
        break;
      }
    }
    s->writes.push_back(std::move(w));
  }
  s->ids.assign(ids, ids + n);
  s->rows = std::max(rows_, max_id + 1);
  bool room = true;
  for (const auto& c : cols_) room = room && column_capacity(c) >= size_t(s->rows);
  if (!room) {
    // The rows grow past a column's capacity: every column copied aside with room to spare
    // (searches read the old ones meanwhile), the values applied at commit.
    s->replace = true;
    s->cols = cols_;
    const size_t cap = std::max(size_t(s->rows), size_t(rows_) + size_t(rows_) / 2);
    for (auto& c : s->cols) {
      reserve_column(c, cap);
      resize_column(c, size_t(s->rows));
    }
  }
  detail::fault_point("attributes.set");
  return s;
}

void AttributeTable::commit(Staged& s) noexcept {
  if (s.replace) {
    cols_.swap(s.cols);
  } else {
    for (auto& c : cols_) resize_column(c, size_t(s.rows));  // within capacity: no allocation
  }
  rows_ = s.rows;
  for (auto& w : s.writes) {
    Column& c = cols_[w.col];
    if (w.new_dict) {
      c.dict.swap(w.dict);
      c.index.swap(w.index);
    }
    for (size_t i = 0; i < s.ids.size(); ++i) {
      const size_t r = size_t(s.ids[i]);
      switch (c.spec.type) {
        case AttributeType::int64: c.ints[r] = w.ints[i]; break;
        case AttributeType::float64: c.floats[r] = w.floats[i]; break;
        case AttributeType::boolean: c.bools[r] = w.bools[i]; break;
        case AttributeType::string: c.codes[r] = w.codes[i]; break;
      }
    }
  }
}

void AttributeTable::clear() noexcept {
  cols_.clear();
  rows_ = 0;
}

// Payload: u64 columns, u64 rows, then per column: name (u8 frame), u8 type frame, values
// (frame of rows), and for strings the dictionary: u64 frame of lengths, u8 frame of bytes.
void AttributeTable::write(StoreWriter& out) const {
  const uint64_t head[2] = {cols_.size(), uint64_t(rows_)};
  put(out, head, 2);
  for (const auto& c : cols_) {
    put(out, c.spec.name.data(), c.spec.name.size());
    const uint8_t type = uint8_t(c.spec.type);
    put(out, &type, 1);
    switch (c.spec.type) {
      case AttributeType::int64: put(out, c.ints.data(), size_t(rows_)); break;
      case AttributeType::float64: put(out, c.floats.data(), size_t(rows_)); break;
      case AttributeType::boolean: put(out, c.bools.data(), size_t(rows_)); break;
      case AttributeType::string: {
        put(out, c.codes.data(), size_t(rows_));
        std::vector<uint64_t> lens;
        std::string bytes;
        for (const auto& v : c.dict) lens.push_back(v.size()), bytes += v;
        put(out, lens.data(), lens.size());
        put(out, bytes.data(), bytes.size());
        break;
      }
    }
  }
}

AttributeTable AttributeTable::read(StoreReader& in) {
  const std::string what = in.what() + " (attributes)";
  uint64_t head[2];
  in.get(head, 2);
  if (head[0] > 4096 || head[1] > uint64_t(kMaxAttributeId))
    throw FormatError(what + ": " + std::to_string(head[0]) + " columns of " + std::to_string(head[1]) + " rows is out of range");
  AttributeTable t;
  t.rows_ = int64_t(head[1]);
  std::unordered_set<std::string> seen;
  for (uint64_t k = 0; k < head[0]; ++k) {
    const std::vector<char> name = in.get_vector<char>();
    Column c;
    c.spec.name.assign(name.begin(), name.end());
    try {
      check_name(c.spec.name);
    } catch (const InvalidArgument& e) {
      throw FormatError(what + ": " + e.what());
    }
    if (!seen.insert(c.spec.name).second) throw FormatError(what + ": column '" + c.spec.name + "' twice");
    uint8_t type = 0;
    in.get(&type, 1);
    if (type > 3) throw FormatError(what + ": column '" + c.spec.name + "' has unknown type " + std::to_string(type));
    c.spec.type = AttributeType(type);
    if (in.remaining() / 8 < head[1] / 8) throw FormatError(what + ": truncated");
    switch (c.spec.type) {
      case AttributeType::int64:
        c.ints = in.get_vector<int64_t>();
        break;
      case AttributeType::float64:
        c.floats = in.get_vector<double>();
        for (double v : c.floats)
          if (std::isnan(v)) throw FormatError(what + ": column '" + c.spec.name + "' holds NaN");
        break;
      case AttributeType::boolean:
        c.bools = in.get_vector<uint8_t>();
        for (uint8_t v : c.bools)
          if (v > 1) throw FormatError(what + ": column '" + c.spec.name + "' holds a bool other than 0 or 1");
        break;
      case AttributeType::string: {
        c.codes = in.get_vector<uint32_t>();
        const std::vector<uint64_t> lens = in.get_vector<uint64_t>();
        const std::vector<char> bytes = in.get_vector<char>();
        size_t at = 0;
        for (uint64_t len : lens) {
          if (len > bytes.size() - at) throw FormatError(what + ": column '" + c.spec.name + "': dictionary overruns its bytes");
          std::string v(bytes.data() + at, size_t(len));
          at += size_t(len);
          if (!c.index.emplace(v, uint32_t(c.dict.size())).second)
            throw FormatError(what + ": column '" + c.spec.name + "': dictionary value repeated");
          c.dict.push_back(std::move(v));
        }
        if (at != bytes.size() || c.dict.empty() || !c.dict[0].empty())
          throw FormatError(what + ": column '" + c.spec.name + "': malformed dictionary");
        for (uint32_t code : c.codes)
          if (code >= c.dict.size()) throw FormatError(what + ": column '" + c.spec.name + "': code past the dictionary");
        break;
      }
    }
    const size_t got = c.ints.size() + c.floats.size() + c.bools.size() + c.codes.size();
    if (got != head[1])
      throw FormatError(what + ": column '" + c.spec.name + "' has " + std::to_string(got) + " values for " +
                        std::to_string(head[1]) + " rows");
    t.cols_.push_back(std::move(c));
  }
  return t;
}

// ---- filter expressions ----

namespace {

enum class Tok { ident, integer, number, string, lparen, rparen, lbrack, rbrack, comma, minus, op, kw_and, kw_or, kw_not, kw_in, kw_true, kw_false, end };

struct Token {
  Tok kind = Tok::end;
  std::string text;  // as written (ops: the operator; strings: the decoded value)
  size_t pos = 0;
  int64_t i = 0;
  double f = 0;
};

[[noreturn]] void fail(const std::string& text, size_t pos, const std::string& why) {
  throw InvalidArgument("filter '" + text + "': position " + std::to_string(pos) + ": " + why);
}

std::vector<Token> tokenize(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  while (true) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    Token t;
    t.pos = i;
    if (i >= s.size()) {
      out.push_back(t);
      return out;
    }
    const char c = s[i];
    auto two = [&](const char* op) { return s.compare(i, 2, op) == 0; };
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      t.text = s.substr(i, j - i);
      const std::string l = lower(t.text);
      t.kind = l == "and" ? Tok::kw_and : l == "or" ? Tok::kw_or : l == "not" ? Tok::kw_not : l == "in" ? Tok::kw_in
             : l == "true" ? Tok::kw_true : l == "false" ? Tok::kw_false : Tok::ident;
      if (l == "like") fail(s, i, "'like' is not supported (the operators are ==, !=, <, <=, >, >=, in, not in)");
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      bool real = false;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      if (j < s.size() && s[j] == '.') {
        real = true;
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t e = j + 1;
        if (e < s.size() && (s[e] == '+' || s[e] == '-')) ++e;
        if (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) {
          real = true;
          j = e;
          while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
      }
      if (j < s.size() && (std::isalpha(static_cast<unsigned char>(s[j])) || s[j] == '_'))
        fail(s, i, "malformed number '" + s.substr(i, j + 1 - i) + "'");
      t.text = s.substr(i, j - i);
      if (real) {
        t.kind = Tok::number;
        t.f = std::strtod(t.text.c_str(), nullptr);
        if (!std::isfinite(t.f)) fail(s, i, "number '" + t.text + "' is out of range");
      } else {
        t.kind = Tok::integer;
        errno = 0;
        char* end = nullptr;
        const unsigned long long v = std::strtoull(t.text.c_str(), &end, 10);
        if (errno == ERANGE || v > uint64_t(std::numeric_limits<int64_t>::max()))
          fail(s, i, "integer '" + t.text + "' is out of range");
        t.i = int64_t(v);
        t.f = double(v);
      }
      i = j;
    } else if (c == '"' || c == '\'') {
      size_t j = i + 1;
      std::string v;
      for (;; ++j) {
        if (j >= s.size()) fail(s, i, "unterminated string");
        if (s[j] == c) break;
        if (s[j] == '\\') {
          if (++j >= s.size()) fail(s, i, "unterminated string");
          const char e = s[j];
          v += e == 'n' ? '\n' : e == 't' ? '\t' : e;  // \" \' \\ and others: the character
          continue;
        }
        v += s[j];
      }
      t.kind = Tok::string;
      t.text = v;
      i = j + 1;
    } else if (two("==") || two("!=") || two("<=") || two(">=")) {
      t.kind = Tok::op;
      t.text = s.substr(i, 2);
      i += 2;
    } else if (two("&&")) {
      t.kind = Tok::kw_and, t.text = "&&", i += 2;
    } else if (two("||")) {
      t.kind = Tok::kw_or, t.text = "||", i += 2;
    } else if (c == '<' || c == '>') {
      t.kind = Tok::op, t.text = std::string(1, c), ++i;
    } else if (c == '!') {
      t.kind = Tok::kw_not, t.text = "!", ++i;
    } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',' || c == '-' || c == '+') {
      t.kind = c == '(' ? Tok::lparen : c == ')' ? Tok::rparen : c == '[' ? Tok::lbrack : c == ']' ? Tok::rbrack
             : c == ',' ? Tok::comma : Tok::minus;
      t.text = std::string(1, c);
      ++i;
    } else if (c == '=') {
      fail(s, i, "unexpected '=' (equality is '==')");
    } else {
      fail(s, i, "unexpected character '" + std::string(1, c) + "'");
    }
    out.push_back(std::move(t));
  }
}

enum class Op { eq, ne, lt, le, gt, ge, in, not_in };

}  // namespace

struct FilterPlan::Node {
  enum class Kind { and_, or_, not_, leaf } kind = Kind::leaf;
  std::shared_ptr<const Node> a, b;
  int col = -1;  // -1: the item id
  AttributeType type = AttributeType::int64;
  Op op = Op::eq;
  bool as_double = false;  // an int64 column (or the id) compared with a float literal
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<uint8_t> bools;
};

namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::vector<AttributeSpec>& cols) : s_(text), cols_(cols), t_(tokenize(text)) {}
  std::shared_ptr<const FilterPlan::Node> parse(int64_t& max_id) {
    auto n = expr(0);
    if (peek().kind != Tok::end) fail(s_, peek().pos, "unexpected '" + shown(peek()) + "' after a complete expression");
    max_id = max_id_;
    return n;
  }

 private:
  using NodeP = std::shared_ptr<const FilterPlan::Node>;
  const Token& peek() const { return t_[at_]; }
  const Token& next() { return t_[at_ < t_.size() - 1 ? at_++ : at_]; }
  static std::string shown(const Token& t) {
    if (t.kind == Tok::end) return "end of expression";
    if (t.kind == Tok::string) return "\"" + t.text + "\"";
    return t.text;
  }
  void depth_check(int depth) {
    if (depth > 200) fail(s_, peek().pos, "expression nested deeper than 200");
  }
  NodeP combine(FilterPlan::Node::Kind k, NodeP a, NodeP b) {
    auto n = std::make_shared<FilterPlan::Node>();
    n->kind = k;
    n->a = std::move(a);
    n->b = std::move(b);
    return n;
  }
  NodeP expr(int depth) {
    depth_check(depth);
    NodeP n = term(depth + 1);
    while (peek().kind == Tok::kw_or) {
      next();
      n = combine(FilterPlan::Node::Kind::or_, n, term(depth + 1));
    }
    return n;
  }
  NodeP term(int depth) {
    depth_check(depth);
    NodeP n = factor(depth + 1);
    while (peek().kind == Tok::kw_and) {
      next();
      n = combine(FilterPlan::Node::Kind::and_, n, factor(depth + 1));
    }
    return n;
  }
  NodeP factor(int depth) {
    depth_check(depth);
    const Token& t = peek();
    if (t.kind == Tok::kw_not) {
      next();
      return combine(FilterPlan::Node::Kind::not_, factor(depth + 1), nullptr);
    }
    if (t.kind == Tok::lparen) {
      next();
      NodeP n = expr(depth + 1);
      if (peek().kind != Tok::rparen) fail(s_, peek().pos, "expected ')', got '" + shown(peek()) + "'");
      next();
      return n;
    }
    if (t.kind == Tok::ident) return leaf();
    fail(s_, t.pos, "expected a field name, 'not' or '(', got '" + shown(t) + "'");
  }
  // A literal of the column's type, converted; `type` is the column's (the id: int64).
  void literal(FilterPlan::Node& n, const std::string& field) {
    const Token& t0 = peek();
    bool negative = false;
    if (t0.kind == Tok::minus) {
      negative = t0.text == "-";
      next();
      if (peek().kind != Tok::integer && peek().kind != Tok::number)
        fail(s_, peek().pos, "expected a number after '" + t0.text + "', got '" + shown(peek()) + "'");
    }
    const Token& t = next();
    auto wrong = [&](const char* want) {
      fail(s_, t.pos, "'" + field + "' is " + (n.col < 0 ? std::string("the item id") : to_string(n.type)) + ": expected " + want +
                          ", got '" + shown(t) + "'");
    };
    switch (n.type) {
      case AttributeType::int64:
      case AttributeType::float64:
        if (t.kind == Tok::integer) {
          n.ints.push_back(negative ? -t.i : t.i);
          n.floats.push_back(negative ? -t.f : t.f);
          if (n.col < 0 && !negative) max_id_ = std::max(max_id_, t.i);
        } else if (t.kind == Tok::number) {
          n.floats.push_back(negative ? -t.f : t.f);
          n.ints.push_back(0);
          if (n.type == AttributeType::int64) n.as_double = true;
          if (n.col < 0 && !negative) max_id_ = std::max(max_id_, int64_t(std::min(t.f, 9e18)));
        } else {
          wrong("a number");
        }
        break;
      case AttributeType::boolean:
        if (t.kind == Tok::kw_true) n.bools.push_back(1);
        else if (t.kind == Tok::kw_false) n.bools.push_back(0);
        else wrong("true or false");
        break;
      case AttributeType::string:
        if (t.kind != Tok::string) wrong("a quoted string");
        n.strings.push_back(t.text);
        break;
    }
  }
  NodeP leaf() {
    const Token name = next();
    auto n = std::make_shared<FilterPlan::Node>();
    if (name.text == "id") {
      n->col = -1;
      n->type = AttributeType::int64;
    } else {
      for (size_t c = 0; c < cols_.size(); ++c)
        if (cols_[c].name == name.text) n->col = int(c), n->type = cols_[c].type;
      if (n->col < 0) {
        std::string have = "id";
        for (const auto& c : cols_) have += ", " + c.name;
        fail(s_, name.pos, "unknown field '" + name.text + "' (the store has: " + have + ")");
      }
    }
    const Token& t = peek();
    if (t.kind == Tok::op) {
      next();
      const std::string& o = t.text;
      n->op = o == "==" ? Op::eq : o == "!=" ? Op::ne : o == "<" ? Op::lt : o == "<=" ? Op::le : o == ">" ? Op::gt : Op::ge;
      if (n->type == AttributeType::boolean && n->op != Op::eq && n->op != Op::ne)
        fail(s_, t.pos, "'" + name.text + "' is bool: '" + o + "' does not apply (use ==, != or in)");
      literal(*n, name.text);
      return n;
    }
    if (t.kind == Tok::kw_in || t.kind == Tok::kw_not) {
      n->op = Op::in;
      if (t.kind == Tok::kw_not) {
        next();
        if (peek().kind != Tok::kw_in) fail(s_, peek().pos, "expected 'in' after 'not', got '" + shown(peek()) + "'");
        n->op = Op::not_in;
      }
      next();
      if (peek().kind != Tok::lbrack) fail(s_, peek().pos, "expected '[', got '" + shown(peek()) + "'");
      next();
      if (peek().kind == Tok::rbrack) {
        next();
      } else {
        for (;;) {
          literal(*n, name.text);
          if (n->ints.size() + n->strings.size() + n->bools.size() > 1000000)
            fail(s_, peek().pos, "a list longer than 1,000,000 values");
          if (peek().kind == Tok::comma) {
            next();
            continue;
          }
          if (peek().kind == Tok::rbrack) {
            next();
            break;
          }
          fail(s_, peek().pos, "expected ',' or ']', got '" + shown(peek()) + "'");
        }
      }
      return n;
    }
    if (n->type == AttributeType::boolean) {  // a bool field alone
      n->op = Op::eq;
      n->bools.push_back(1);
      return n;
    }
    fail(s_, t.pos, "expected an operator after '" + name.text + "' (==, !=, <, <=, >, >=, in, not in), got '" + shown(t) + "'");
  }
  const std::string& s_;
  const std::vector<AttributeSpec>& cols_;
  std::vector<Token> t_;
  size_t at_ = 0;
  int64_t max_id_ = -1;
};

// Evaluates leaf `n` over ids [0, nbits) of `t` into `bits` (words cleared first).
template <class Value, class Pred>
void fill(std::vector<uint64_t>& bits, int64_t nbits, int64_t rows, Value value, Pred pred) {
  const int64_t lim = std::min(rows, nbits);
  int64_t i = 0;
  for (; i + 64 <= lim; i += 64) {
    uint64_t w = 0;
    for (int b = 0; b < 64; ++b) w |= uint64_t(pred(value(i + b))) << b;
    bits[size_t(i >> 6)] = w;
  }
  for (; i < nbits; ++i)
    if (pred(i < rows ? value(i) : value(-1))) bits[size_t(i >> 6)] |= uint64_t(1) << (i & 63);
}

template <class T>
bool compare(Op op, const T& v, const T& lit) {
  switch (op) {
    case Op::eq: return v == lit;
    case Op::ne: return !(v == lit);
    case Op::lt: return v < lit;
    case Op::le: return v <= lit;
    case Op::gt: return v > lit;
    case Op::ge: return v >= lit;
    default: return false;
  }
}

// The leaf as a predicate over a value of its column (templated by the callers).
template <class T>
struct Match {
  Op op;
  std::vector<T> lits;  // sorted for in / not in
  bool operator()(const T& v) const {
    if (op == Op::in) return std::binary_search(lits.begin(), lits.end(), v);
    if (op == Op::not_in) return !std::binary_search(lits.begin(), lits.end(), v);
    return compare(op, v, lits[0]);
  }
};
template <class T>
Match<T> make_match(Op op, std::vector<T> lits) {
  std::sort(lits.begin(), lits.end());
  return Match<T>{op, std::move(lits)};
}

// One id's value of a column; `id` beyond the rows reads the default.
bool leaf_test(const FilterPlan::Node& n, const AttributeTable& t, int64_t id) {
  const bool in_rows = id < t.rows();
  if (n.col < 0) {
    if (n.as_double) return make_match(n.op, n.floats)(double(id));
    return make_match(n.op, n.ints)(id);
  }
  const auto& c = t.columns()[size_t(n.col)];
  switch (n.type) {
    case AttributeType::int64: {
      const int64_t v = in_rows ? c.ints[size_t(id)] : 0;
      return n.as_double ? make_match(n.op, n.floats)(double(v)) : make_match(n.op, n.ints)(v);
    }
    case AttributeType::float64: return make_match(n.op, n.floats)(in_rows ? c.floats[size_t(id)] : 0.0);
    case AttributeType::boolean: return make_match(n.op, n.bools)(in_rows ? c.bools[size_t(id)] : uint8_t(0));
    case AttributeType::string: return make_match(n.op, n.strings)(in_rows ? c.dict[c.codes[size_t(id)]] : std::string());
  }
  return false;
}

bool node_test(const FilterPlan::Node& n, const AttributeTable& t, int64_t id) {
  switch (n.kind) {
    case FilterPlan::Node::Kind::and_: return node_test(*n.a, t, id) && node_test(*n.b, t, id);
    case FilterPlan::Node::Kind::or_: return node_test(*n.a, t, id) || node_test(*n.b, t, id);
    case FilterPlan::Node::Kind::not_: return !node_test(*n.a, t, id);
    case FilterPlan::Node::Kind::leaf: return leaf_test(n, t, id);
  }
  return false;
}

void leaf_bits(const FilterPlan::Node& n, const AttributeTable& t, int64_t nbits, std::vector<uint64_t>& bits) {
  std::fill(bits.begin(), bits.end(), 0);
  const int64_t rows = t.rows();
  if (n.col < 0) {
    if (n.op == Op::in && !n.as_double) {  // a list of ids: set their bits only
      for (int64_t v : n.ints)
        if (v >= 0 && v < nbits) bits[size_t(v >> 6)] |= uint64_t(1) << (v & 63);
      return;
    }
    if (n.as_double) {
      const auto m = make_match(n.op, n.floats);
      fill(bits, nbits, nbits, [](int64_t i) { return double(i); }, m);
    } else {
      const auto m = make_match(n.op, n.ints);
      fill(bits, nbits, nbits, [](int64_t i) { return i; }, m);
    }
    return;
  }
  const auto& c = t.columns()[size_t(n.col)];
  switch (n.type) {
    case AttributeType::int64:
      if (n.as_double) {
        const auto m = make_match(n.op, n.floats);
        fill(bits, nbits, rows, [&](int64_t i) { return i < 0 ? 0.0 : double(c.ints[size_t(i)]); }, m);
      } else if (n.op != Op::in && n.op != Op::not_in) {
        const int64_t lit = n.ints[0];
        const Op op = n.op;
        fill(bits, nbits, rows, [&](int64_t i) { return i < 0 ? int64_t(0) : c.ints[size_t(i)]; },
             [op, lit](int64_t v) { return compare(op, v, lit); });
      } else {
        const auto m = make_match(n.op, n.ints);
        fill(bits, nbits, rows, [&](int64_t i) { return i < 0 ? int64_t(0) : c.ints[size_t(i)]; }, m);
      }
      return;
    case AttributeType::float64: {
      if (n.op != Op::in && n.op != Op::not_in) {
        const double lit = n.floats[0];
        const Op op = n.op;
        fill(bits, nbits, rows, [&](int64_t i) { return i < 0 ? 0.0 : c.floats[size_t(i)]; },
             [op, lit](double v) { return compare(op, v, lit); });
      } else {
        const auto m = make_match(n.op, n.floats);
        fill(bits, nbits, rows, [&](int64_t i) { return i < 0 ? 0.0 : c.floats[size_t(i)]; }, m);
      }
      return;
    }
    case AttributeType::boolean: {
      const auto m = make_match(n.op, n.bools);
      const uint8_t ok[2] = {uint8_t(m(0)), uint8_t(m(1))};
      fill(bits, nbits, rows, [&](int64_t i) { return i < 0 ? uint8_t(0) : c.bools[size_t(i)]; },
           [&ok](uint8_t v) { return ok[v] != 0; });
      return;
    }
    case AttributeType::string: {
      // The leaf decided once per dictionary value, then looked up per item by its code.
      const auto m = make_match(n.op, n.strings);
      std::vector<uint8_t> ok(c.dict.size());
      for (size_t v = 0; v < c.dict.size(); ++v) ok[v] = m(c.dict[v]);
      fill(bits, nbits, rows, [&](int64_t i) { return i < 0 ? uint32_t(0) : c.codes[size_t(i)]; },
           [&ok](uint32_t v) { return ok[v] != 0; });
      return;
    }
  }
}

void node_bits(const FilterPlan::Node& n, const AttributeTable& t, int64_t nbits, std::vector<uint64_t>& out) {
  using K = FilterPlan::Node::Kind;
  if (n.kind == K::leaf) return leaf_bits(n, t, nbits, out);
  node_bits(*n.a, t, nbits, out);
  if (n.kind == K::not_) {
    for (auto& w : out) w = ~w;
    return;
  }
  std::vector<uint64_t> other(out.size());
  node_bits(*n.b, t, nbits, other);
  if (n.kind == K::and_)
    for (size_t w = 0; w < out.size(); ++w) out[w] &= other[w];
  else
    for (size_t w = 0; w < out.size(); ++w) out[w] |= other[w];
}

}  // namespace

FilterPlan FilterPlan::parse(const std::string& text, const std::vector<AttributeSpec>& columns) {
  if (text.size() > (64u << 20)) throw InvalidArgument("filter: longer than 64 MiB");
  FilterPlan p;
  p.cols_ = columns;
  Parser parser(text, columns);
  p.root_ = parser.parse(p.max_id_literal_);
  return p;
}

Allowed FilterPlan::evaluate(const AttributeTable& t) const {
  Allowed a;
  const int64_t cap = std::max(kIdLiteralFloor, t.rows());
  if (max_id_literal_ >= cap)
    throw InvalidArgument("filter: id " + std::to_string(max_id_literal_) + " is beyond the ids a filter can name (below " +
                          std::to_string(cap) + ": 2^26 or the attribute rows)");
  a.nbits = (std::max(t.rows(), max_id_literal_ + 1) + 63) / 64 * 64;
  a.bits.assign(size_t(a.nbits / 64), 0);
  node_bits(*root_, t, a.nbits, a.bits);
  // Ids at or above nbits exceed every id literal and have no row: they all answer as one.
  a.beyond = node_test(*root_, t, a.nbits);
  for (uint64_t w : a.bits) a.count += __builtin_popcountll(w);
  return a;
}

bool FilterPlan::test(const AttributeTable& t, int64_t id) const { return node_test(*root_, t, id); }

namespace {

// A literal as Milvus reads it: integers as they are, floats always with a '.' or an exponent
// (so that a float64 column's JSON doubles compare as numbers of their own type), strings
// double-quoted with '"', '\\' and control characters escaped.
std::string milvus_float(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string milvus_string(const std::string& v) {
  std::string out = "\"";
  for (const char c : v) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

const char* milvus_op(Op op) {
  switch (op) {
    case Op::eq: return " == ";
    case Op::ne: return " != ";
    case Op::lt: return " < ";
    case Op::le: return " <= ";
    case Op::gt: return " > ";
    case Op::ge: return " >= ";
    case Op::in: return " in ";
    case Op::not_in: return " not in ";
  }
  return " == ";
}

// The leaf's literals in Milvus syntax: one, or a list for in / not in.
std::string milvus_literals(const FilterPlan::Node& n) {
  std::vector<std::string> lits;
  const bool floats = n.as_double || (n.col >= 0 && n.type == AttributeType::float64);
  if (n.col < 0 || n.type == AttributeType::int64) {
    if (floats) for (double v : n.floats) lits.push_back(milvus_float(v));
    else for (int64_t v : n.ints) lits.push_back(std::to_string(v));
  } else if (n.type == AttributeType::float64) {
    for (double v : n.floats) lits.push_back(milvus_float(v));
  } else if (n.type == AttributeType::boolean) {
    for (uint8_t v : n.bools) lits.push_back(v ? "true" : "false");
  } else {
    for (const auto& v : n.strings) lits.push_back(milvus_string(v));
  }
  if (n.op != Op::in && n.op != Op::not_in) return lits.at(0);
  std::string out = "[";
  for (size_t i = 0; i < lits.size(); ++i) out += (i ? ", " : "") + lits[i];
  return out + "]";
}

// True if the column's default value (0, 0.0, false, "") passes the leaf.
bool default_passes(const FilterPlan::Node& n) {
  switch (n.type) {
    case AttributeType::int64: return n.as_double ? make_match(n.op, n.floats)(0.0) : make_match(n.op, n.ints)(int64_t(0));
    case AttributeType::float64: return make_match(n.op, n.floats)(0.0);
    case AttributeType::boolean: return make_match(n.op, n.bools)(uint8_t(0));
    case AttributeType::string: return make_match(n.op, n.strings)(std::string());
  }
  return false;
}

std::string node_milvus(const FilterPlan::Node& n, const std::vector<AttributeSpec>& cols, const std::string& id_field,
                        const std::function<bool(const std::string&)>& may_be_missing) {
  using K = FilterPlan::Node::Kind;
  switch (n.kind) {
    case K::and_: return "(" + node_milvus(*n.a, cols, id_field, may_be_missing) + " and " + node_milvus(*n.b, cols, id_field, may_be_missing) + ")";
    case K::or_: return "(" + node_milvus(*n.a, cols, id_field, may_be_missing) + " or " + node_milvus(*n.b, cols, id_field, may_be_missing) + ")";
    case K::not_: return "not (" + node_milvus(*n.a, cols, id_field, may_be_missing) + ")";
    case K::leaf: break;
  }
  const std::string field = n.col < 0 ? id_field : cols.at(size_t(n.col)).name;
  const std::string leaf = "(" + field + milvus_op(n.op) + milvus_literals(n) + ")";
  if (n.col < 0 || !may_be_missing(field)) return leaf;
  return default_passes(n) ? "((not exists " + field + ") or " + leaf + ")" : "((exists " + field + ") and " + leaf + ")";
}

}  // namespace

std::string FilterPlan::to_milvus(const std::string& id_field,
                                  const std::function<bool(const std::string&)>& may_be_missing) const {
  return node_milvus(*root_, cols_, id_field, may_be_missing);
}

}  // namespace store
}  // namespace mindrec
