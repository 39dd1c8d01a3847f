#include "mindrec/prepare.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "mindrec/data.hpp"
#include "detail/file_util.hpp"
#include "detail/random.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"

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

}  // namespace

PrepareReport prepare_dataset(const std::string& input, const std::string& out_dir,
                              const PrepareOptions& opt) {
  MINDREC_EXPECTS(opt.min_count >= 1, "prepare: min_count must be >= 1");
  std::ifstream in(input);
  if (!in) throw IoError("cannot open '" + input + "': " + std::strerror(errno));
  PrepareReport rep;
  Interner users, items;
  std::vector<Click> clicks;
  std::string line;
  int64_t number = 0;
  bool seen_data = false;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t p = line.find_first_not_of(" \t");
    if (p == std::string::npos || line[p] == '#') continue;
    const bool csv = line.find(',') != std::string::npos;
    std::vector<std::string> f;
    if (csv) {
      size_t start = 0;
      for (;;) {
        const size_t c = line.find(',', start);
        std::string field = line.substr(start, c == std::string::npos ? std::string::npos : c - start);
        const size_t a = field.find_first_not_of(" \t"), b = field.find_last_not_of(" \t");
        f.push_back(a == std::string::npos ? "" : field.substr(a, b - a + 1));
        if (c == std::string::npos) break;
        start = c + 1;
      }
    } else {
      for (size_t i = p; i < line.size();) {
        const size_t e = line.find_first_of(" \t", i);
        f.push_back(line.substr(i, e == std::string::npos ? std::string::npos : e - i));
        if (e == std::string::npos) break;
        i = line.find_first_not_of(" \t", e);
        if (i == std::string::npos) break;
      }
    }
    const std::string where = input + ":" + std::to_string(number) + ": ";
    if (f.size() != 3 || f[0].empty() || f[1].empty() || f[2].empty())
      throw FormatError(where + "expected 3 fields user,item,timestamp, got '" + line + "'");
    char* end = nullptr;
    errno = 0;
    const double t = std::strtod(f[2].c_str(), &end);
    if (end == f[2].c_str() || *end != '\0' || errno == ERANGE) {
      if (!seen_data) {  // a header line such as "user,item,timestamp"
        seen_data = true;
        log(LogLevel::info, where + "skipping header line '" + line + "'");
        continue;
      }
      throw FormatError(where + "timestamp is not a number: '" + f[2] + "'");
    }
    seen_data = true;
    clicks.push_back({users.id(f[0]), items.id(f[1]), t, number});
  }
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
  std::vector<int64_t> new_item(items.size(), 0);
  for (size_t r = 0; r < item_order.size(); ++r) new_item[size_t(item_order[r])] = int64_t(r) + 1;
  rep.items = static_cast<int64_t>(item_order.size());
  rep.item_count = rep.items + 1;

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
  write_file_atomic((fs::path(out_dir) / "item_map.csv").string(), [&](std::ostream& o) {
    o << "raw_id,id\n";
    for (int32_t i : item_order) o << items.name(i) << ',' << new_item[size_t(i)] << '\n';
  });
  write_file_atomic((fs::path(out_dir) / "user_map.csv").string(), [&](std::ostream& o) {
    o << "raw_id,id\n";
    for (int32_t u : user_order) o << users.name(u) << ',' << new_user[size_t(u)] << '\n';
  });
  write_file_atomic((fs::path(out_dir) / "dataset.json").string(), [&](std::ostream& o) {
    o << nlohmann::ordered_json{{"source", input},
                                {"min_count", opt.min_count},
                                {"seed", opt.seed},
                                {"lines", rep.lines},
                                {"clicks", rep.clicks_kept},
                                {"items", rep.items},
                                {"item_count", rep.item_count},
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
