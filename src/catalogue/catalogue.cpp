// Catalogue (catalogue.hpp): raw ids in one arena, an open-addressing table of dense ids, the
// file reader and writer, the fingerprint.
#include "mindrec/catalogue.hpp"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>

#include "detail/csv.hpp"
#include "detail/hash.hpp"
#include "mindrec/detail/huge_pages.hpp"
#include "mindrec/error.hpp"
#include "mindrec/file_io.hpp"
#include "mindrec/log.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {
namespace {

uint64_t hash_bytes(std::string_view s) {
  // 64-bit multiply-xorshift over 8-byte words; the last word overlaps the one before when the
  // length is not a multiple of 8 (no variable-length copy): ids of 10-16 bytes cost two rounds.
  const size_t n = s.size();
  const char* p = s.data();
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w = 0;
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 < n; i += 8) {
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0xff51afd7ed558ccdull;
      h ^= h >> 32;
    }
    std::memcpy(&w, p + n - 8, 8);
  } else {
    for (size_t i = 0; i < n; ++i) w |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
  }
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

// Huge pages for the arrays a lookup reads at random: on 4 KiB pages at 20M items nearly every
// read is also a TLB miss.
template <class T>
using HugeVector = std::vector<T, detail::HugePageAllocator<T>>;

// Layout, for a lookup in two dependent memory reads (the slot, then the record):
//   - arena: 8-byte words; item records at word positions, each [id: 4 bytes][length - 1:
//     1 byte][raw id bytes], padded to a whole word;
//   - slots: open addressing (linear probing, load <= 0.7), each (hash tag << 32) | (record
//     position + 1), 0 = empty: a slot whose tag differs is skipped without reading a record;
//   - pos [item_count]: each id's record position (kNone: no row), for to_raw.
struct Catalogue::Data {
  static constexpr uint32_t kNone = 0xffffffffu;
  bool numeric = false;
  int64_t items = 0;
  HugeVector<uint64_t> arena;
  HugeVector<uint32_t> pos;      // [item_count]
  HugeVector<uint8_t> retired;   // [item_count]
  HugeVector<int64_t> clicks;    // [item_count]
  HugeVector<uint64_t> slots;    // power-of-two size
  mutable std::string source;

  const char* record(uint32_t p) const { return reinterpret_cast<const char*>(arena.data() + p); }
  std::string_view key_at(uint32_t p) const {
    const char* r = record(p);
    return std::string_view(r + 5, size_t(static_cast<unsigned char>(r[4])) + 1);
  }
  int64_t id_at(uint32_t p) const {
    uint32_t id;
    std::memcpy(&id, record(p), 4);
    return id;
  }
  void place(uint32_t p, uint64_t h) {
    const size_t mask = slots.size() - 1;
    size_t s = size_t(h) & mask;
    while (slots[s] != 0) s = (s + 1) & mask;
    slots[s] = (h >> 32 << 32) | (uint64_t(p) + 1);
  }
};

Catalogue::~Catalogue() = default;
Catalogue::Catalogue(Catalogue&&) noexcept = default;
Catalogue& Catalogue::operator=(Catalogue&&) noexcept = default;
Catalogue::Catalogue(const Catalogue& o) : d_(std::make_unique<Data>(*o.d_)) {}
Catalogue& Catalogue::operator=(const Catalogue& o) {
  if (this != &o) d_ = std::make_unique<Data>(*o.d_);
  return *this;
}
int64_t Catalogue::size() const { return d_->items; }
int64_t Catalogue::item_count() const { return int64_t(d_->pos.size()); }
bool Catalogue::numeric() const { return d_->numeric; }
const std::string& Catalogue::source() const { return d_->source; }

Catalogue::Catalogue(bool numeric) : d_(std::make_unique<Data>()) {
  d_->numeric = numeric;
  d_->pos = {Data::kNone};
  d_->retired = {0};
  d_->clicks = {0};
  rehash(16);
}

std::string Catalogue::canonical(std::string_view raw, const std::string& where) const {
  if (const std::string p = raw_id_problem(raw); !p.empty())
    throw InvalidArgument(where + "raw id '" + std::string(raw.substr(0, 300)) + "' " + p);
  if (!d_->numeric) return std::string(raw);
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
                          (d_->source.empty() ? "" : " '" + d_->source + "'") + " (ids 1.." + std::to_string(item_count() - 1) + ")");
}

bool Catalogue::has_id(int64_t id) const { return id >= 1 && id < item_count() && d_->pos[size_t(id)] != Data::kNone; }

std::string_view Catalogue::to_raw(int64_t id) const {
  check_id(id, "to_raw");
  return d_->key_at(d_->pos[size_t(id)]);
}

ItemStatus Catalogue::status(int64_t id) const {
  check_id(id, "status");
  return d_->retired[size_t(id)] ? ItemStatus::retired : ItemStatus::active;
}

void Catalogue::set_status(int64_t id, ItemStatus s) {
  check_id(id, "set_status");
  d_->retired[size_t(id)] = s == ItemStatus::retired;
}

int64_t Catalogue::clicks(int64_t id) const {
  check_id(id, "clicks");
  return d_->clicks[size_t(id)];
}

void Catalogue::set_clicks(int64_t id, int64_t c) {
  check_id(id, "set_clicks");
  MINDREC_EXPECTS(c >= 0, "catalogue set_clicks: clicks must be >= 0");
  d_->clicks[size_t(id)] = c;
}

int64_t Catalogue::active_count() const {
  int64_t n = 0;
  for (int64_t id = 1; id < item_count(); ++id) n += has_id(id) && !d_->retired[size_t(id)];
  return n;
}

int64_t Catalogue::find(std::string_view key) const { return find_hashed(key, hash_bytes(key)); }

int64_t Catalogue::find_hashed(std::string_view key, uint64_t h) const {
  const size_t mask = d_->slots.size() - 1;
  const uint64_t tag = h >> 32;
  for (size_t s = size_t(h) & mask;; s = (s + 1) & mask) {
    const uint64_t v = d_->slots[s];
    if (v == 0) return 0;
    if (v >> 32 != tag) continue;
    const uint32_t p = uint32_t(v) - 1;
    const std::string_view k = d_->key_at(p);
    if (k.size() == key.size() && std::memcmp(k.data(), key.data(), key.size()) == 0) return d_->id_at(p);
  }
}

int64_t Catalogue::to_dense(std::string_view raw) const {
  if (!d_->numeric) return raw.empty() || raw.size() > kMaxRawIdBytes ? 0 : find(raw);
  try {
    return find(canonical(raw));
  } catch (const InvalidArgument&) {
    return 0;
  }
}

void Catalogue::to_dense(const std::string_view* raws, size_t n, int64_t* out) const {
  // In groups, with the cache misses of each stage issued for the whole group before any is
  // waited on: the slots, then the records their tags point to; then the exact probes (which
  // then read only cached lines).
  constexpr size_t G = 32;
  const size_t mask = d_->slots.size() - 1;
  std::string canon[G];
  std::string_view key[G];
  uint64_t hash[G];
  for (size_t first = 0; first < n; first += G) {
    const size_t m = std::min(G, n - first);
    for (size_t i = 0; i < m; ++i) {
      key[i] = raws[first + i];
      if (d_->numeric) {
        try {
          canon[i] = canonical(key[i]);
        } catch (const InvalidArgument&) {
          canon[i].clear();
        }
        key[i] = canon[i];
      }
      hash[i] = hash_bytes(key[i]);
      __builtin_prefetch(&d_->slots[size_t(hash[i]) & mask]);
    }
    // The record of the first slot along each probe whose tag matches: at load 0.7 a key is
    // often not in its first slot, and its record would then be a miss of its own.
    for (size_t i = 0; i < m; ++i)
      for (size_t s = size_t(hash[i]) & mask, t = 0; t < 8; ++t, s = (s + 1) & mask) {
        const uint64_t v = d_->slots[s];
        if (v == 0) break;
        if (v >> 32 == hash[i] >> 32) {
          __builtin_prefetch(d_->record(uint32_t(v) - 1));
          break;
        }
      }
    for (size_t i = 0; i < m; ++i)
      out[first + i] = key[i].empty() || key[i].size() > kMaxRawIdBytes ? 0 : find_hashed(key[i], hash[i]);
  }
}

void Catalogue::rehash(size_t n) {
  d_->slots.assign(n, 0);
  for (int64_t id = 1; id < item_count(); ++id)
    if (has_id(id)) d_->place(d_->pos[size_t(id)], hash_bytes(d_->key_at(d_->pos[size_t(id)])));
}

void Catalogue::reserve(int64_t items) {
  d_->pos.reserve(size_t(items) + 1);
  d_->retired.reserve(size_t(items) + 1);
  d_->clicks.reserve(size_t(items) + 1);
  size_t slots = d_->slots.size();
  while (double(items) > 0.7 * double(slots)) slots *= 2;
  if (slots != d_->slots.size()) rehash(slots);
}

void Catalogue::grow_to(int64_t count) {
  d_->pos.resize(size_t(count), Data::kNone);
  d_->retired.resize(size_t(count), 0);
  d_->clicks.resize(size_t(count), 0);
}

namespace {
// Ids may leave gaps (rows removed by hand), but every id up to the largest costs memory: the
// largest may exceed the rows so far by at most this much.
int64_t largest_allowed(int64_t items) { return 2 * items + (int64_t(1) << 20); }
}  // namespace

void Catalogue::insert(int64_t id, std::string_view raw, ItemStatus status, int64_t clicks) {
  if (id >= 1 && id >= item_count() && id > largest_allowed(d_->items))
    throw InvalidArgument("catalogue: item id " + std::to_string(id) + " would leave a gap of " +
                          std::to_string(id - item_count()) + " ids after " + std::to_string(d_->items) +
                          " items (at most 2 x items + 1,048,576: dense ids are nearly contiguous)");
  if (id < item_count() || id >= int64_t(UINT32_MAX) - 1)
    throw InvalidArgument("catalogue: item id " + std::to_string(id) + (id < item_count() ? " is already used or below the largest id " + std::to_string(item_count() - 1) + " (ids only grow)" : " is too large"));
  MINDREC_EXPECTS(clicks >= 0, "catalogue: clicks must be >= 0");
  const std::string key = canonical(raw);
  if (const int64_t old = find(key); old != 0)
    throw InvalidArgument("catalogue: raw id '" + key + "' is already item " + std::to_string(old));
  append(id, key, status, clicks, hash_bytes(key));
}

// A checked, canonical, new raw id with a new id above the largest.
void Catalogue::append(int64_t id, std::string_view key, ItemStatus status, int64_t clicks, uint64_t hash) {
  const size_t words = (5 + key.size() + 7) / 8;
  if (d_->arena.size() + words >= size_t(Data::kNone))
    throw InvalidArgument("catalogue: more than 32 GB of raw ids");
  if (double(d_->items + 1) > 0.7 * double(d_->slots.size())) rehash(d_->slots.size() * 2);
  grow_to(id + 1);
  const uint32_t p = uint32_t(d_->arena.size());
  d_->arena.resize(d_->arena.size() + words, 0);
  char* r = reinterpret_cast<char*>(d_->arena.data() + p);
  const uint32_t id32 = uint32_t(id);
  std::memcpy(r, &id32, 4);
  r[4] = static_cast<char>(key.size() - 1);
  std::memcpy(r + 5, key.data(), key.size());
  d_->pos[size_t(id)] = p;
  d_->retired[size_t(id)] = status == ItemStatus::retired;
  d_->clicks[size_t(id)] = clicks;
  ++d_->items;
  d_->place(p, hash);
}

int64_t Catalogue::add(std::string_view raw, ItemStatus status, int64_t clicks) {
  const int64_t id = item_count();
  insert(id, raw, status, clicks);
  return id;
}

uint64_t Catalogue::fingerprint(int64_t below) const {
  const int64_t end = below < 0 ? item_count() : std::min(below, item_count());
  detail::WordHash h;
  const char kind = d_->numeric ? 'n' : 's';
  h.update(&kind, 1);
  for (int64_t id = 1; id < end; ++id) {
    if (!has_id(id)) continue;
    const std::string_view k = d_->key_at(d_->pos[size_t(id)]);
    const uint64_t head[2] = {uint64_t(id), uint64_t(k.size())};
    h.update(head, sizeof head);
    h.update(k.data(), k.size());
  }
  const uint64_t d = h.digest();
  return d == 0 ? 1 : d;
}

size_t Catalogue::overhead_bytes() const {
  size_t raw = 0;
  for (int64_t id = 1; id < item_count(); ++id)
    if (has_id(id)) raw += d_->key_at(d_->pos[size_t(id)]).size();
  return d_->pos.capacity() * sizeof(uint32_t) + d_->retired.capacity() + d_->clicks.capacity() * sizeof(int64_t) +
         d_->slots.capacity() * sizeof(uint64_t) + d_->arena.capacity() * sizeof(uint64_t) - raw;
}

namespace {
// Lines of a file (for reserving before a load): a memchr pass, from the page cache next time.
int64_t count_lines(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return 0;
  std::vector<char> buf(1 << 20);
  int64_t n = 0;
  for (size_t got; (got = std::fread(buf.data(), 1, buf.size(), f)) > 0;)
    for (const char* p = buf.data(); (p = static_cast<const char*>(std::memchr(p, '\n', size_t(buf.data() + got - p))));
         ++p)
      ++n;
  std::fclose(f);
  return n + 1;
}
}  // namespace

Catalogue Catalogue::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open catalogue '" + path + "': " + std::strerror(errno));
  std::error_code ec;
  const auto file_bytes = std::filesystem::file_size(path, ec);
  std::string line;
  int64_t number = 0;
  int col_status = -1, col_clicks = -1;
  bool header = false;
  Catalogue c;
  std::vector<std::string> quoted;       // fields of a line with quotes (RFC 4180)
  std::vector<std::string_view> f;       // the line's fields
  int64_t last_id = 0, rows = 0;
  // Rows are parsed and checked line by line, then entered in batches: the slots a batch's raw
  // ids hash to are prefetched together, so their cache misses overlap.
  struct Pending {
    int64_t id = 0, clicks = 0, line = 0;
    ItemStatus status = ItemStatus::active;
    std::string key;
    uint64_t hash = 0;
  };
  constexpr size_t kBatch = 64;
  std::vector<Pending> pending(kBatch);
  size_t npending = 0;
  auto seen_id = [&](int64_t id) {
    if (c.has_id(id)) return true;
    for (size_t i = 0; i < npending; ++i)
      if (pending[i].id == id) return true;
    return false;
  };
  auto flush = [&] {
    const size_t mask = c.d_->slots.size() - 1;
    for (size_t i = 0; i < npending; ++i) __builtin_prefetch(&c.d_->slots[size_t(pending[i].hash) & mask]);
    for (size_t i = 0; i < npending; ++i) {
      const Pending& p = pending[i];
      if (const int64_t old = c.find_hashed(p.key, p.hash); old != 0)
        throw FormatError(path + ":" + std::to_string(p.line) + ": field raw_id: '" + p.key + "' appears twice (items " +
                          std::to_string(old) + " and " + std::to_string(p.id) + ")");
      c.append(p.id, p.key, p.status, p.clicks, p.hash);
    }
    npending = 0;
  };
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto where = [&] { return path + ":" + std::to_string(number) + ": "; };
    f.clear();
    if (line.find('"') == std::string::npos) {  // as written: split on commas, no copies
      const std::string_view v(line);
      for (size_t i = 0;;) {
        const size_t e = v.find(',', i);
        std::string_view field = v.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i);
        while (!field.empty() && (field.front() == ' ' || field.front() == '\t')) field.remove_prefix(1);
        while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.remove_suffix(1);
        f.push_back(field);
        if (e == std::string_view::npos) break;
        i = e + 1;
      }
    } else {
      quoted = detail::split_csv_fields(line, where());
      for (const auto& q : quoted) f.emplace_back(q);
    }
    if (!header) {
      if (f.size() < 2 || f[0] != "id" || (f[1] != "raw_id" && f[1] != "raw_id:int64"))
        throw FormatError(where() + "not a catalogue: the header must begin 'id,raw_id' (or 'id,raw_id:int64'), got '" +
                          line.substr(0, 200) + "'");
      for (size_t i = 2; i < f.size(); ++i) {
        if (f[i] == "status") col_status = int(i);
        if (f[i] == "clicks") col_clicks = int(i);
      }
      c = Catalogue(f[1] == "raw_id:int64");
      c.d_->source = path;
      const int64_t lines = count_lines(path);
      c.reserve(lines);
      if (!ec) c.d_->arena.reserve(size_t(file_bytes) / 8 + size_t(lines));  // a line is longer than its record
      header = true;
      continue;
    }
    const size_t need = size_t(std::max({1, col_status, col_clicks})) + 1;
    if (f.size() < need)
      throw FormatError(where() + "expected at least " + std::to_string(need) + " fields, got " + std::to_string(f.size()) +
                        " (a raw id cannot hold a comma)");
    auto integer = [&](std::string_view s, const char* field) {
      int64_t v = -1;
      const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || err != std::errc() || end != s.data() + s.size() || v < 0)
        throw FormatError(where() + "field " + field + ": '" + std::string(s.substr(0, 100)) + "' is not a non-negative integer");
      return v;
    };
    const int64_t id = integer(f[0], "id");
    if (id < 1) throw FormatError(where() + "field id: 0 is the padding id, not an item");
    if (id <= last_id)
      throw FormatError(where() + "field id: " + std::to_string(id) +
                        (id == last_id || seen_id(id) ? " appears twice (a duplicate dense id)" : " is out of order (ids must increase)"));
    if (id > largest_allowed(rows))
      throw FormatError(where() + "field id: " + std::to_string(id) + " would leave a gap of " +
                        std::to_string(id - last_id - 1) + " ids after " + std::to_string(rows) +
                        " items (at most 2 x items + 1,048,576: dense ids are nearly contiguous)");
    ItemStatus st = ItemStatus::active;
    if (col_status >= 0) {
      const std::string_view s = f[size_t(col_status)];
      if (s == "retired") st = ItemStatus::retired;
      else if (s != "active")
        throw FormatError(where() + "field status: '" + std::string(s.substr(0, 100)) + "' is neither active nor retired");
    }
    const int64_t clicks = col_clicks >= 0 ? integer(f[size_t(col_clicks)], "clicks") : 0;
    Pending& p = pending[npending++];
    std::string_view key = f[1];
    if (const std::string problem = raw_id_problem(key); !problem.empty())
      throw FormatError(where() + "field raw_id: raw id '" + std::string(key.substr(0, 300)) + "' " + problem);
    if (c.d_->numeric) {
      try {
        p.key = c.canonical(key, where() + "field raw_id: ");
      } catch (const InvalidArgument& e) {
        throw FormatError(e.what());
      }
    } else {
      p.key.assign(key.data(), key.size());
    }
    p.id = id, p.status = st, p.clicks = clicks, p.line = number, p.hash = hash_bytes(p.key);
    last_id = id;
    ++rows;
    if (npending == kBatch) flush();
  }
  flush();
  if (in.bad()) throw IoError("cannot read catalogue '" + path + "'");
  if (!header) throw FormatError(path + ": empty: a catalogue needs the header 'id,raw_id,status,clicks'");
  if (c.d_->arena.capacity() > c.d_->arena.size() + c.d_->arena.size() / 8) c.d_->arena.shrink_to_fit();
  return c;
}

void Catalogue::save(const std::string& path) const {
  write_file_atomic(path, [&](std::ostream& o) {
    o << (d_->numeric ? "id,raw_id:int64,status,clicks\n" : "id,raw_id,status,clicks\n");
    std::string line;
    for (int64_t id = 1; id < item_count(); ++id) {
      if (!has_id(id)) continue;
      line = std::to_string(id);
      line += ',';
      line += detail::csv_field(std::string(to_raw(id)));
      line += d_->retired[size_t(id)] ? ",retired," : ",active,";
      line += std::to_string(d_->clicks[size_t(id)]);
      line += '\n';
      o << line;
    }
  });
  d_->source = path;
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
