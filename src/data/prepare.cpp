#include "mindrec/prepare.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "mindrec/catalogue.hpp"
#include "mindrec/data.hpp"
#include "detail/csv.hpp"
#include "detail/file_util.hpp"
#include "detail/random.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/weights.hpp"

namespace mindrec {
namespace {

struct Click {
  int32_t user, item;
  double time;
  int64_t seq;  // line order, to keep equal timestamps in file order
};

class Interner {
 public:
  int32_t id(const std::string& s) {
    auto [it, inserted] = map_.emplace(s, static_cast<int32_t>(names_.size()));
    if (inserted) names_.push_back(s);
    return it->second;
  }
  const std::string& name(int32_t i) const { return names_[size_t(i)]; }
  size_t size() const { return names_.size(); }

 private:
  std::unordered_map<std::string, int32_t> map_;
  std::vector<std::string> names_;
};

// --columns "user=1,item=2,time=4" (1-based field numbers) or "user=customer,item=sku,time=ts"
// (names in the file's header line). index: 0-based fields (-1: not given: 1, 2, 3).
struct ColumnPick {
  int index[3] = {-1, -1, -1};          // user, item, time
  std::vector<std::string> names;       // by header name: user, item, time ("" for numbered)
};

ColumnPick parse_columns(const std::string& spec) {
  ColumnPick c;
  if (spec.empty()) return c;
  static const char* keys[3] = {"user", "item", "time"};
  bool given[3] = {false, false, false}, by_name = false, by_number = false;
  std::vector<std::string> names(3);
  size_t start = 0;
  for (;;) {
    const size_t comma = spec.find(',', start);
    const std::string kv = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t eq = kv.find('=');
    const std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    const int at = k == "user" ? 0 : k == "item" ? 1 : (k == "time" || k == "timestamp") ? 2 : -1;
    if (at < 0 || v.empty() || given[at])
      throw InvalidArgument("--columns '" + spec + "': expected user=N,item=N,time=N (1-based field numbers) or "
                            "header names, each once; got '" + kv + "'");
    given[at] = true;
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (*end == '\0') {
      if (n < 1 || n > 10000) throw InvalidArgument("--columns '" + spec + "': field number " + v + " is not in [1, 10000]");
      c.index[at] = int(n - 1);
      by_number = true;
    } else {
      names[size_t(at)] = v;
      by_name = true;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (int i = 0; i < 3; ++i)
    if (!given[i]) throw InvalidArgument("--columns '" + spec + "': '" + keys[i] + "=' is missing");
  if (by_name && by_number)
    throw InvalidArgument("--columns '" + spec + "': use field numbers or header names, not both");
  if (by_name) c.names = names, c.index[0] = c.index[1] = c.index[2] = -1;
  return c;
}

void resolve_names(ColumnPick& c, const std::vector<std::string>& header, const std::string& where) {
  static const char* keys[3] = {"user", "item", "time"};
  for (int i = 0; i < 3; ++i) {
    const auto it = std::find(header.begin(), header.end(), c.names[size_t(i)]);
    if (it == header.end())
      throw FormatError(where + "--columns " + keys[i] + "=" + c.names[size_t(i)] + ": no such field in the header");
    c.index[i] = int(it - header.begin());
  }
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// A timestamp: a number (epoch seconds, or any number that orders the clicks), or ISO-8601:
// YYYY-MM-DD, then optionally T or a space and HH:MM[:SS[.fff]], then optionally Z or
// +HH:MM / -HH:MM / +HHMM (no zone: UTC). Seconds since 1970 (UTC) in `t`; false if neither.
bool parse_time(const std::string& s, double& t) {
  char* end = nullptr;
  errno = 0;
  t = std::strtod(s.c_str(), &end);
  if (end != s.c_str() && *end == '\0' && errno != ERANGE && std::isfinite(t)) return true;
  auto digits = [&](size_t at, size_t n, int& v) {
    if (at + n > s.size()) return false;
    v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    return true;
  };
  int Y, M, D, h = 0, mi = 0, sec = 0;
  if (!digits(0, 4, Y) || s.size() < 10 || s[4] != '-' || !digits(5, 2, M) || s[7] != '-' || !digits(8, 2, D)) return false;
  if (M < 1 || M > 12 || D < 1 || D > 31) return false;
  size_t i = 10;
  double frac = 0;
  if (i < s.size() && (s[i] == 'T' || s[i] == ' ')) {
    if (!digits(i + 1, 2, h) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(i + 4, 2, mi)) return false;
    i += 6;
    if (i < s.size() && s[i] == ':') {
      if (!digits(i + 1, 2, sec)) return false;
      i += 3;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        double scale = 0.1;
        for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10) frac += (s[i] - '0') * scale;
      }
    }
    if (h > 24 || mi > 59 || sec > 60) return false;
  }
  int64_t offset = 0;  // seconds east of UTC
  if (i < s.size()) {
    if (s[i] == 'Z' && i + 1 == s.size()) {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int oh, om = 0;
      if (!digits(i + 1, 2, oh)) return false;
      size_t j = i + 3;
      if (j < s.size() && s[j] == ':') ++j;
      if (j < s.size() && !digits(j, 2, om)) return false;
      if (j < s.size()) j += 2;
      if (j != s.size() || oh > 23 || om > 59) return false;
      offset = (s[i] == '+' ? 1 : -1) * (int64_t(oh) * 3600 + int64_t(om) * 60);
      i = j;
    } else {
      return false;
    }
  }
  if (i != s.size()) return false;
  t = double(days_from_civil(Y, unsigned(M), unsigned(D)) * 86400 + int64_t(h) * 3600 + int64_t(mi) * 60 + sec - offset) + frac;
  return true;
}

}  // namespace

PrepareReport prepare_dataset(const std::string& input, const std::string& out_dir,
                              const PrepareOptions& opt) {
  MINDREC_EXPECTS(opt.min_count >= 1, "prepare: min_count must be >= 1");
  std::ifstream in(input);
  if (!in) throw IoError("cannot open '" + input + "': " + std::strerror(errno));
  PrepareReport rep;
  // The previous catalogue first: a bad one fails before the log is read.
  std::unique_ptr<Catalogue> prev;
  if (!opt.catalogue.empty()) {
    prev = std::make_unique<Catalogue>(Catalogue::load(opt.catalogue));
    if (opt.numeric_ids && !prev->numeric())
      throw InvalidArgument("prepare: numeric raw ids were asked for, but the previous catalogue '" + opt.catalogue +
                            "' has string raw ids (its header says raw_id, not raw_id:int64)");
  }
  const Catalogue id_rules(prev ? prev->numeric() : opt.numeric_ids);  // checks and canonicalises raw item ids
  Interner users, items;
  std::vector<Click> clicks;
  std::string line;
  int64_t number = 0;
  bool seen_data = false;
  ColumnPick pick = parse_columns(opt.columns);
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t p = line.find_first_not_of(" \t");
    if (p == std::string::npos || line[p] == '#') continue;
    const std::string where = input + ":" + std::to_string(number) + ": ";
    const std::vector<std::string> f = detail::split_csv_fields(line, where);
    if (!seen_data && !pick.names.empty()) {  // --columns by header names: this line is the header
      resolve_names(pick, f, where);
      seen_data = true;
      log(LogLevel::info, where + "header line '" + line + "'");
      continue;
    }
    if (pick.index[0] < 0) {  // no --columns: user, item, timestamp
      if (f.size() != 3)
        throw FormatError(where + "expected 3 fields user,item,timestamp, got " + std::to_string(f.size()) + " in '" +
                          line + "': name the columns, e.g. --columns user=1,item=2,time=4 (1-based) or "
                          "--columns user=<header name>,item=...,time=...");
    } else if (int(f.size()) <= std::max({pick.index[0], pick.index[1], pick.index[2]})) {
      throw FormatError(where + "has " + std::to_string(f.size()) + " fields, --columns needs " +
                        std::to_string(std::max({pick.index[0], pick.index[1], pick.index[2]}) + 1) + ": '" + line + "'");
    }
    const std::string& user = f[size_t(pick.index[0] < 0 ? 0 : pick.index[0])];
    const std::string& item = f[size_t(pick.index[1] < 0 ? 1 : pick.index[1])];
    const std::string& ts = f[size_t(pick.index[2] < 0 ? 2 : pick.index[2])];
    if (user.empty() || item.empty() || ts.empty())
      throw FormatError(where + "an empty " + std::string(user.empty() ? "user" : item.empty() ? "item" : "timestamp") +
                        " field in '" + line + "'");
    double t = 0;
    if (!parse_time(ts, t)) {
      if (!seen_data) {  // a header line such as "user,item,timestamp"
        seen_data = true;
        log(LogLevel::info, where + "skipping header line '" + line + "'");
        continue;
      }
      throw FormatError(where + "timestamp '" + ts + "' is neither a number (epoch seconds) nor ISO-8601 "
                        "(2024-01-01, 2024-01-01T10:00:00Z, 2024-01-01 10:00:00+02:00)");
    }
    seen_data = true;
    std::string item_id;
    try {
      item_id = id_rules.canonical(item, where + "item: ");
    } catch (const InvalidArgument& e) {
      throw FormatError(std::string(e.what()) + " (item ids become the catalogue's raw ids)");
    }
    clicks.push_back({users.id(user), items.id(item_id), t, number});
  }
  if (!pick.names.empty() && pick.index[0] < 0)
    throw FormatError(input + ": --columns names header fields, but the file has no header line");
  rep.lines = static_cast<int64_t>(clicks.size());

  // 5-core: items with >= min_count clicks, then users with >= min_count of those.
  std::vector<int64_t> item_n(items.size(), 0), user_n(users.size(), 0);
  for (const auto& c : clicks) ++item_n[size_t(c.item)];
  auto item_ok = [&](int32_t i) { return item_n[size_t(i)] >= opt.min_count; };
  for (const auto& c : clicks)
    if (item_ok(c.item)) ++user_n[size_t(c.user)];
  auto keep = [&](const Click& c) { return item_ok(c.item) && user_n[size_t(c.user)] >= opt.min_count; };
  clicks.erase(std::remove_if(clicks.begin(), clicks.end(), [&](const Click& c) { return !keep(c); }),
               clicks.end());
  rep.clicks_kept = static_cast<int64_t>(clicks.size());
  if (clicks.empty())
    throw InvalidArgument("prepare: no clicks survive the " + std::to_string(opt.min_count) +
                          "-core filter of '" + input + "'");

  // Items 1..n by falling popularity among the kept clicks (ties: first appearance).
  std::vector<int64_t> kept_n(items.size(), 0);
  for (const auto& c : clicks) ++kept_n[size_t(c.item)];
  std::vector<int32_t> item_order;
  for (int32_t i = 0; i < int32_t(items.size()); ++i)
    if (kept_n[size_t(i)] > 0) item_order.push_back(i);
  std::stable_sort(item_order.begin(), item_order.end(),
                   [&](int32_t a, int32_t b) { return kept_n[size_t(a)] > kept_n[size_t(b)]; });
  // Dense ids: the previous catalogue's where it knows the item, the next free ids (by falling
  // popularity) for the others; its items without clicks today are retired, keeping their ids.
  Catalogue cat = prev ? *prev : Catalogue(id_rules.numeric());
  std::vector<int64_t> new_item(items.size(), 0);
  if (prev)
    for (int64_t id = 1; id < cat.item_count(); ++id)
      if (cat.has_id(id)) cat.set_status(id, ItemStatus::retired), cat.set_clicks(id, 0);
  for (const int32_t i : item_order) {
    int64_t id = prev ? cat.to_dense(items.name(i)) : 0;
    if (id != 0) {
      cat.set_status(id, ItemStatus::active);
      cat.set_clicks(id, kept_n[size_t(i)]);
      ++rep.kept;
    } else {
      id = cat.add(items.name(i), ItemStatus::active, kept_n[size_t(i)]);
      if (prev) ++rep.added;
    }
    new_item[size_t(i)] = id;
  }
  if (prev) {
    rep.retired = prev->size() - rep.kept;
    if (rep.kept == 0 && prev->size() > 0)
      log(LogLevel::warn, "prepare: the previous catalogue '" + opt.catalogue + "' (" + std::to_string(prev->size()) +
                              " items) shares no item id with '" + input + "' (" + std::to_string(item_order.size()) +
                              " items kept): every item is new and every old one retired; is it the right catalogue "
                              "(and the right --columns item=...)?");
  }
  rep.items = static_cast<int64_t>(item_order.size());
  rep.item_count = cat.item_count();

  // Users 0..U-1 in order of first appearance; each user's clicks sorted by time.
  std::vector<int64_t> new_user(users.size(), -1);
  std::vector<int32_t> user_order;
  for (const auto& c : clicks)
    if (new_user[size_t(c.user)] < 0) {
      new_user[size_t(c.user)] = static_cast<int64_t>(user_order.size());
      user_order.push_back(c.user);
    }
  std::stable_sort(clicks.begin(), clicks.end(), [&](const Click& a, const Click& b) {
    const int64_t ua = new_user[size_t(a.user)], ub = new_user[size_t(b.user)];
    if (ua != ub) return ua < ub;
    if (a.time != b.time) return a.time < b.time;
    return a.seq < b.seq;
  });
  const int64_t U = static_cast<int64_t>(user_order.size());
  std::vector<int64_t> offsets(U + 1, 0), seq;
  seq.reserve(clicks.size());
  for (const auto& c : clicks) {
    ++offsets[size_t(new_user[size_t(c.user)]) + 1];
    seq.push_back(new_item[size_t(c.item)]);
  }
  for (int64_t u = 0; u < U; ++u) offsets[u + 1] += offsets[u];

  // Seeded shuffle, then 80/10/10.
  std::vector<int64_t> perm(U);
  std::iota(perm.begin(), perm.end(), 0);
  detail::Rng rng(opt.seed);
  for (int64_t i = U - 1; i > 0; --i)
    std::swap(perm[size_t(i)], perm[size_t(rng.below(uint64_t(i) + 1))]);
  rep.users = U;
  rep.train_users = U * 8 / 10;
  rep.valid_users = U / 10;
  rep.test_users = U - rep.train_users - rep.valid_users;
  std::vector<int64_t> train_u(perm.begin(), perm.begin() + rep.train_users),
      valid_u(perm.begin() + rep.train_users, perm.begin() + rep.train_users + rep.valid_users),
      test_u(perm.begin() + rep.train_users + rep.valid_users, perm.end());
  for (auto* v : {&train_u, &valid_u, &test_u}) std::sort(v->begin(), v->end());

  namespace fs = std::filesystem;
  for (const char* sub : {"train", "valid", "test"}) fs::create_directories(fs::path(out_dir) / sub);
  ClickLog train;
  train.offsets.push_back(0);
  for (int64_t u : train_u) {
    train.user_ids.push_back(u);
    train.items.insert(train.items.end(), seq.begin() + offsets[u], seq.begin() + offsets[u + 1]);
    train.offsets.push_back(static_cast<int64_t>(train.items.size()));
  }
  write_train_data((fs::path(out_dir) / "train" / "data.txt").string(), train);
  auto eval_set = [&](const std::vector<int64_t>& us) {
    EvalSet s;
    s.hist_offsets.push_back(0);
    s.eval_offsets.push_back(0);
    for (int64_t u : us) {
      const int64_t n = offsets[u + 1] - offsets[u], k = n * 8 / 10;  // ComiRec: int(0.8 n)
      s.user_ids.push_back(u);
      s.target_items.push_back(0);
      s.hist_items.insert(s.hist_items.end(), seq.begin() + offsets[u], seq.begin() + offsets[u] + k);
      s.eval_items.insert(s.eval_items.end(), seq.begin() + offsets[u] + k, seq.begin() + offsets[u + 1]);
      s.hist_offsets.push_back(static_cast<int64_t>(s.hist_items.size()));
      s.eval_offsets.push_back(static_cast<int64_t>(s.eval_items.size()));
    }
    return s;
  };
  write_eval_data((fs::path(out_dir) / "valid" / "data.txt").string(), eval_set(valid_u));
  write_eval_data((fs::path(out_dir) / "test" / "data.txt").string(), eval_set(test_u));
  cat.save((fs::path(out_dir) / "catalogue.csv").string());
  write_file_atomic((fs::path(out_dir) / "item_map.csv").string(), [&](std::ostream& o) {
    o << "raw_id,id\n";
    for (int32_t i : item_order) o << detail::csv_field(items.name(i)) << ',' << new_item[size_t(i)] << '\n';
  });
  write_file_atomic((fs::path(out_dir) / "user_map.csv").string(), [&](std::ostream& o) {
    o << "raw_id,id\n";
    for (int32_t u : user_order) o << detail::csv_field(users.name(u)) << ',' << new_user[size_t(u)] << '\n';
  });
  write_file_atomic((fs::path(out_dir) / "dataset.json").string(), [&](std::ostream& o) {
    o << nlohmann::ordered_json{{"source", input},
                                {"min_count", opt.min_count},
                                {"seed", opt.seed},
                                {"lines", rep.lines},
                                {"clicks", rep.clicks_kept},
                                {"items", rep.items},
                                {"item_count", rep.item_count},
                                {"catalogue", "catalogue.csv"},
                                {"catalogue_fingerprint", fingerprint_hex(cat.fingerprint())},
                                {"previous_catalogue", opt.catalogue},
                                {"kept", rep.kept},
                                {"new", rep.added},
                                {"retired", rep.retired},
                                {"users", rep.users},
                                {"train_users", rep.train_users},
                                {"valid_users", rep.valid_users},
                                {"test_users", rep.test_users}}
                .dump(2)
      << '\n';
  });
  return rep;
}

}  // namespace mindrec
