// Catalogue (catalogue.hpp): raw ids in one arena, an open-addressing table of dense ids, the
// file reader and writer, the fingerprint.
#include "mindrec/catalogue.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>

#include "detail/csv.hpp"
#include "detail/hash.hpp"
#include "mindrec/error.hpp"
#include "mindrec/file_io.hpp"
#include "mindrec/log.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {
namespace {

uint64_t hash_bytes(std::string_view s) {
  // 64-bit multiply-xorshift over 8-byte words: short ids (10-16 bytes) cost two rounds.
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 32);
}

// What is wrong with a raw id's bytes, or "" when nothing: 1..256 bytes of valid UTF-8 without
// commas or control characters.
std::string raw_id_problem(std::string_view s) {
  if (s.empty()) return "is empty";
  if (s.size() > Catalogue::kMaxRawIdBytes)
    return "is " + std::to_string(s.size()) + " bytes long (at most " + std::to_string(Catalogue::kMaxRawIdBytes) + ")";
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == ',') return "holds a comma (ids are separated by commas on the command line and in the catalogue)";
    if (c < 0x20 || c == 0x7f) return "holds a control character (byte " + std::to_string(c) + " at " + std::to_string(i) + ")";
    if (c < 0x80) {
      ++i;
      continue;
    }
    const int n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    bool ok = n > 0 && i + size_t(n) < s.size();  // the continuation bytes i+1..i+n exist
    uint32_t cp = n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
    for (int k = 1; ok && k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((d & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (ok && ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))))
      ok = false;
    if (!ok) return "is not valid UTF-8 (at byte " + std::to_string(i) + ")";
    i += size_t(n) + 1;
  }
  return "";
}

}  // namespace

Catalogue::Catalogue(bool numeric) : numeric_(numeric), offsets_{0, 0}, present_{0}, clicks_{0} {
  rehash(16);
}

std::string Catalogue::canonical(std::string_view raw, const std::string& where) const {
  if (const std::string p = raw_id_problem(raw); !p.empty())
    throw InvalidArgument(where + "raw id '" + std::string(raw.substr(0, 300)) + "' " + p);
  if (!numeric_) return std::string(raw);
  size_t i = raw[0] == '-' ? 1 : 0;
  if (i == raw.size()) throw InvalidArgument(where + "raw id '" + std::string(raw) + "' is not an int64 number");
  unsigned long long v = 0;
  const unsigned long long limit = raw[0] == '-' ? 9223372036854775808ull : 9223372036854775807ull;
  for (; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c < '0' || c > '9' || v > (limit - unsigned(c - '0')) / 10)
      throw InvalidArgument(where + "raw id '" + std::string(raw) + "' is not an int64 number (the catalogue's raw_id:int64)");
    v = v * 10 + unsigned(c - '0');
  }
  if (raw[0] == '-' && v != 0) return "-" + std::to_string(v);
  return std::to_string(v);
}

void Catalogue::check_id(int64_t id, const char* who) const {
  if (!has_id(id))
    throw InvalidArgument(std::string("catalogue ") + who + ": item id " + std::to_string(id) + " is not in the catalogue" +
                          (source_.empty() ? "" : " '" + source_ + "'") + " (ids 1.." + std::to_string(item_count() - 1) + ")");
}

bool Catalogue::has_id(int64_t id) const { return id >= 1 && id < item_count() && (present_[size_t(id)] & 1); }

std::string_view Catalogue::to_raw(int64_t id) const {
  check_id(id, "to_raw");
  return std::string_view(arena_).substr(offsets_[size_t(id)], offsets_[size_t(id) + 1] - offsets_[size_t(id)]);
}

ItemStatus Catalogue::status(int64_t id) const {
  check_id(id, "status");
  return (present_[size_t(id)] & 2) ? ItemStatus::retired : ItemStatus::active;
}

void Catalogue::set_status(int64_t id, ItemStatus s) {
  check_id(id, "set_status");
  present_[size_t(id)] = uint8_t(1 | (s == ItemStatus::retired ? 2 : 0));
}

int64_t Catalogue::clicks(int64_t id) const {
  check_id(id, "clicks");
  return clicks_[size_t(id)];
}

void Catalogue::set_clicks(int64_t id, int64_t c) {
  check_id(id, "set_clicks");
  MINDREC_EXPECTS(c >= 0, "catalogue set_clicks: clicks must be >= 0");
  clicks_[size_t(id)] = c;
}

int64_t Catalogue::active_count() const {
  int64_t n = 0;
  for (const uint8_t p : present_) n += p == 1;
  return n;
}

int64_t Catalogue::find(std::string_view key) const {
  const size_t mask = slots_.size() - 1;
  for (size_t s = size_t(hash_bytes(key)) & mask;; s = (s + 1) & mask) {
    const uint32_t v = slots_[s];
    if (v == 0) return 0;
    const size_t id = v - 1;
    if (offsets_[id + 1] - offsets_[id] == key.size() && std::memcmp(arena_.data() + offsets_[id], key.data(), key.size()) == 0)
      return int64_t(id);
  }
}

int64_t Catalogue::to_dense(std::string_view raw) const {
  if (!numeric_) return raw.empty() || raw.size() > kMaxRawIdBytes ? 0 : find(raw);
  try {
    return find(canonical(raw));
  } catch (const InvalidArgument&) {
    return 0;
  }
}

void Catalogue::place(int64_t id) {
  const std::string_view key(arena_.data() + offsets_[size_t(id)], offsets_[size_t(id) + 1] - offsets_[size_t(id)]);
  const size_t mask = slots_.size() - 1;
  size_t s = size_t(hash_bytes(key)) & mask;
  while (slots_[s] != 0) s = (s + 1) & mask;
  slots_[s] = uint32_t(id + 1);
}

void Catalogue::rehash(size_t n) {
  slots_.assign(n, 0);
  for (int64_t id = 1; id < item_count(); ++id)
    if (present_[size_t(id)] & 1) place(id);
}

void Catalogue::grow_to(int64_t count) {
  offsets_.resize(size_t(count) + 1, offsets_.back());
  present_.resize(size_t(count), 0);
  clicks_.resize(size_t(count), 0);
}

void Catalogue::insert(int64_t id, std::string_view raw, ItemStatus status, int64_t clicks) {
  if (id < item_count() || id >= int64_t(UINT32_MAX) - 1)
    throw InvalidArgument("catalogue: item id " + std::to_string(id) + (id < item_count() ? " is already used or below the largest id " + std::to_string(item_count() - 1) + " (ids only grow)" : " is too large"));
  MINDREC_EXPECTS(clicks >= 0, "catalogue: clicks must be >= 0");
  const std::string key = canonical(raw);
  if (const int64_t old = find(key); old != 0)
    throw InvalidArgument("catalogue: raw id '" + key + "' is already item " + std::to_string(old));
  if (size_t(items_ + 1) * 2 > slots_.size()) {
    grow_to(id + 1);  // rehash walks the present rows only; the new one is placed below
    rehash(slots_.size() * 2);
  }
  grow_to(id + 1);
  arena_.append(key);
  offsets_[size_t(id) + 1] = arena_.size();
  present_[size_t(id)] = uint8_t(1 | (status == ItemStatus::retired ? 2 : 0));
  clicks_[size_t(id)] = clicks;
  ++items_;
  place(id);
}

int64_t Catalogue::add(std::string_view raw, ItemStatus status, int64_t clicks) {
  const int64_t id = item_count();
  insert(id, raw, status, clicks);
  return id;
}

uint64_t Catalogue::fingerprint(int64_t below) const {
  const int64_t end = below < 0 ? item_count() : std::min(below, item_count());
  detail::WordHash h;
  const char kind = numeric_ ? 'n' : 's';
  h.update(&kind, 1);
  for (int64_t id = 1; id < end; ++id) {
    if (!(present_[size_t(id)] & 1)) continue;
    const uint64_t len = offsets_[size_t(id) + 1] - offsets_[size_t(id)];
    const uint64_t head[2] = {uint64_t(id), len};
    h.update(head, sizeof head);
    h.update(arena_.data() + offsets_[size_t(id)], len);
  }
  const uint64_t d = h.digest();
  return d == 0 ? 1 : d;
}

size_t Catalogue::overhead_bytes() const {
  return offsets_.capacity() * sizeof(uint64_t) + present_.capacity() + clicks_.capacity() * sizeof(int64_t) +
         slots_.capacity() * sizeof(uint32_t) + (arena_.capacity() - arena_.size());
}

Catalogue Catalogue::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open catalogue '" + path + "': " + std::strerror(errno));
  std::string line;
  int64_t number = 0;
  int col_status = -1, col_clicks = -1;
  bool numeric = false, header = false;
  Catalogue c;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number) + ": ";
    const std::vector<std::string> f = detail::split_csv_fields(line, where);
    if (!header) {
      if (f.size() < 2 || f[0] != "id" || (f[1] != "raw_id" && f[1] != "raw_id:int64"))
        throw FormatError(where + "not a catalogue: the header must begin 'id,raw_id' (or 'id,raw_id:int64'), got '" +
                          line.substr(0, 200) + "'");
      numeric = f[1] == "raw_id:int64";
      for (size_t i = 2; i < f.size(); ++i) {
        if (f[i] == "status") col_status = int(i);
        if (f[i] == "clicks") col_clicks = int(i);
      }
      c = Catalogue(numeric);
      c.source_ = path;
      header = true;
      continue;
    }
    const size_t need = size_t(std::max({1, col_status, col_clicks})) + 1;
    if (f.size() < need)
      throw FormatError(where + "expected at least " + std::to_string(need) + " fields, got " + std::to_string(f.size()) +
                        " (a raw id cannot hold a comma)");
    auto integer = [&](const std::string& s, const char* field) {
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0' || errno == ERANGE || v < 0)
        throw FormatError(where + "field " + field + ": '" + s.substr(0, 100) + "' is not a non-negative integer");
      return int64_t(v);
    };
    const int64_t id = integer(f[0], "id");
    if (id < 1) throw FormatError(where + "field id: 0 is the padding id, not an item");
    if (id < c.item_count())
      throw FormatError(where + "field id: " + std::to_string(id) +
                        (c.has_id(id) ? " appears twice (a duplicate dense id)" : " is out of order (ids must increase)"));
    ItemStatus st = ItemStatus::active;
    if (col_status >= 0) {
      const std::string& s = f[size_t(col_status)];
      if (s == "retired") st = ItemStatus::retired;
      else if (s != "active") throw FormatError(where + "field status: '" + s.substr(0, 100) + "' is neither active nor retired");
    }
    const int64_t clicks = col_clicks >= 0 ? integer(f[size_t(col_clicks)], "clicks") : 0;
    std::string key;
    try {
      key = c.canonical(f[1], where + "field raw_id: ");
    } catch (const InvalidArgument& e) {
      throw FormatError(e.what());
    }
    if (const int64_t old = c.find(key); old != 0)
      throw FormatError(where + "field raw_id: '" + key + "' appears twice (items " + std::to_string(old) + " and " +
                        std::to_string(id) + ")");
    c.insert(id, key, st, clicks);
  }
  if (in.bad()) throw IoError("cannot read catalogue '" + path + "'");
  if (!header) throw FormatError(path + ": empty: a catalogue needs the header 'id,raw_id,status,clicks'");
  return c;
}

void Catalogue::save(const std::string& path) const {
  write_file_atomic(path, [&](std::ostream& o) {
    o << (numeric_ ? "id,raw_id:int64,status,clicks\n" : "id,raw_id,status,clicks\n");
    std::string line;
    for (int64_t id = 1; id < item_count(); ++id) {
      if (!(present_[size_t(id)] & 1)) continue;
      line = std::to_string(id);
      line += ',';
      line += detail::csv_field(std::string(to_raw(id)));
      line += (present_[size_t(id)] & 2) ? ",retired," : ",active,";
      line += std::to_string(clicks_[size_t(id)]);
      line += '\n';
      o << line;
    }
  });
  source_ = path;
}

std::string catalogue_path_for(const std::string& weights_path, const std::string& override_path) {
  if (!override_path.empty()) return override_path;
  namespace fs = std::filesystem;
  const fs::path beside = fs::path(weights_path).parent_path() / "catalogue.csv";
  std::error_code ec;
  return fs::is_regular_file(beside, ec) ? beside.string() : std::string();
}

void check_catalogue_pairing(const MindWeights& w, const Catalogue& c, const std::string& weights_name,
                             const std::string& catalogue_name, bool allow_mismatch) {
  const int64_t n = w.config.item_count;
  if (c.item_count() < n)
    throw ConfigError(catalogue_name + ": the catalogue's ids end at " + std::to_string(c.item_count() - 1) + " but " +
                      weights_name + " has item_count " + std::to_string(n) +
                      ": item rows without a raw id (the catalogue of other, smaller data?)");
  if (w.catalogue_fingerprint == 0) {
    log(LogLevel::warn, weights_name + " does not record a catalogue; using " + catalogue_name + " unchecked");
    return;
  }
  const uint64_t have = c.fingerprint(n);
  if (have == w.catalogue_fingerprint) return;
  const std::string msg = catalogue_name + ": catalogue " + fingerprint_hex(have) + " is not the one " + weights_name +
                          " was trained with (" + fingerprint_hex(w.catalogue_fingerprint) + ")";
  if (allow_mismatch) {
    log(LogLevel::warn, msg + " (allowed by request)");
    return;
  }
  throw ConfigError(msg + ": its ids mean other items; use the catalogue.csv written beside those weights, or allow "
                          "the mismatch explicitly (--allow-mismatched-index)");
}

std::shared_ptr<Catalogue> load_weights_catalogue(const std::string& weights_path, const MindWeights& w,
                                                  const std::string& override_path, bool allow_mismatch, bool required) {
  const std::string path = catalogue_path_for(weights_path, override_path);
  if (path.empty()) {
    const std::string beside = (std::filesystem::path(weights_path).parent_path() / "catalogue.csv").string();
    if (required)
      throw ConfigError(weights_path + ": no catalogue beside the weights (" + beside +
                        "): raw item ids need one; pass --catalogue FILE");
    if (w.catalogue_fingerprint != 0)
      log(LogLevel::warn, weights_path + " was trained with catalogue " + fingerprint_hex(w.catalogue_fingerprint) +
                              " but " + beside + " is missing: dense item ids only (pass --catalogue FILE for raw ids)");
    return nullptr;
  }
  auto c = std::make_shared<Catalogue>(Catalogue::load(path));
  check_catalogue_pairing(w, *c, weights_path, path, allow_mismatch);
  return c;
}

}  // namespace mindrec
