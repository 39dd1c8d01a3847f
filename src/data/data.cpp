// Readers and writers for PaddleRec's training and evaluation files (mind-spec.md).
#include "mindrec/data.hpp"

#include <algorithm>
#include <charconv>
#include <ostream>
#include <string_view>
#include <unordered_set>

#include "detail/file_util.hpp"
#include "mindrec/error.hpp"

namespace mindrec {
namespace {

// Calls fn(line, line_number) for each line of `text` (without '\n' and a trailing '\r').
template <class Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  int64_t number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, ++number);
    pos = end + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Where {
  const std::string& file;
  int64_t line;
  [[noreturn]] void fail(const std::string& msg, std::string_view token) const {
    throw FormatError(file + ":" + std::to_string(line) + ": " + msg + " '" +
                      std::string(token) + "'");
  }
};

int64_t parse_id(std::string_view token, const Where& where, const char* what) {
  token = trim(token);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (token.empty() || ec != std::errc() || p != token.data() + token.size())
    where.fail(std::string(what) + " is not an integer:", token);
  if (v < 0) where.fail(std::string(what) + " is negative:", token);
  return v;
}

int64_t check_item(int64_t id, std::string_view token, int64_t item_count, const Where& where) {
  if (id == 0) where.fail("item id 0 is the padding id, not an item:", token);
  if (item_count > 0 && id >= item_count)
    where.fail("item id >= item_count (" + std::to_string(item_count) + "):", token);
  return id;
}

}  // namespace

int64_t ClickLog::num_distinct_items() const {
  std::vector<int64_t> sorted(items);
  std::sort(sorted.begin(), sorted.end());
  return std::unique(sorted.begin(), sorted.end()) - sorted.begin();
}

ClickLog read_train_data(const std::string& path, int64_t item_count) {
  struct Click {
    int64_t user, order, item;
    int64_t line;
    uint32_t file;
  };
  std::vector<Click> clicks;
  const auto files = detail::data_files(path);
  for (uint32_t f = 0; f < files.size(); ++f) {
    const std::string text = read_file(files[f]);
    for_each_line(text, [&](std::string_view line, int64_t number) {
      if (trim(line).empty()) return;
      const Where where{files[f], number};
      std::string_view fields[3];
      size_t start = 0;
      int n = 0;
      for (;;) {
        const size_t comma = line.find(',', start);
        const std::string_view field = line.substr(start, comma - start);
        if (n == 3) where.fail("expected 3 fields user_id,item_id,order, got more:", line);
        fields[n++] = field;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      if (n < 3) where.fail("expected 3 fields user_id,item_id,order:", line);
      Click c;
      c.user = parse_id(fields[0], where, "user_id");
      c.item = check_item(parse_id(fields[1], where, "item_id"), trim(fields[1]), item_count, where);
      c.order = parse_id(fields[2], where, "order");
      c.line = number;
      c.file = f;
      clicks.push_back(c);
    });
  }
  std::stable_sort(clicks.begin(), clicks.end(), [](const Click& a, const Click& b) {
    return a.user != b.user ? a.user < b.user : a.order < b.order;
  });
  ClickLog log;
  log.items.reserve(clicks.size());
  log.offsets.push_back(0);
  for (size_t i = 0; i < clicks.size(); ++i) {
    const Click& c = clicks[i];
    if (i > 0 && clicks[i - 1].user == c.user && clicks[i - 1].order == c.order) {
      const Where where{files[c.file], c.line};
      where.fail("duplicate order " + std::to_string(c.order) + " for user " +
                     std::to_string(c.user) + " (first at " + files[clicks[i - 1].file] + ":" +
                     std::to_string(clicks[i - 1].line) + "):",
                 std::to_string(c.order));
    }
    if (i == 0 || clicks[i - 1].user != c.user) {
      if (i > 0) log.offsets.push_back(static_cast<int64_t>(i));
      log.user_ids.push_back(c.user);
    }
    log.items.push_back(c.item);
  }
  if (!clicks.empty()) log.offsets.push_back(static_cast<int64_t>(clicks.size()));
  return log;
}

void write_train_data(const std::string& file, const ClickLog& log) {
  write_file_atomic(file, [&](std::ostream& out) {
    for (int64_t u = 0; u < log.num_users(); ++u)
      for (int64_t j = 0; j < log.length(u); ++j)
        out << log.user_ids[u] << ',' << log.begin(u)[j] << ',' << j << '\n';
  });
}

EvalSet read_eval_data(const std::string& path, int64_t item_count) {
  EvalSet set;
  set.hist_offsets.push_back(0);
  set.eval_offsets.push_back(0);
  for (const auto& file : detail::data_files(path)) {
    const std::string text = read_file(file);
    for_each_line(text, [&](std::string_view line, int64_t number) {
      if (trim(line).empty()) return;
      const Where where{file, number};
      bool have_user = false, have_target = false;
      int64_t user = 0, target = 0;
      size_t pos = 0;
      while (pos < line.size()) {
        while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
        if (pos >= line.size()) break;
        size_t end = pos;
        while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
        const std::string_view token = line.substr(pos, end - pos);
        pos = end;
        const size_t colon = token.find(':');
        if (colon == std::string_view::npos) where.fail("expected slot:value, got", token);
        const std::string_view slot = token.substr(0, colon), value = token.substr(colon + 1);
        if (slot == "hist_item") {
          set.hist_items.push_back(check_item(parse_id(value, where, "hist_item"), token, item_count, where));
        } else if (slot == "eval_item") {
          set.eval_items.push_back(check_item(parse_id(value, where, "eval_item"), token, item_count, where));
        } else if (slot == "user_id") {
          if (have_user) where.fail("repeated slot", token);
          user = parse_id(value, where, "user_id");
          have_user = true;
        } else if (slot == "target_item") {
          if (have_target) where.fail("repeated slot", token);
          target = parse_id(value, where, "target_item");
          if (item_count > 0 && target >= item_count)
            where.fail("item id >= item_count (" + std::to_string(item_count) + "):", token);
          have_target = true;
        } else {
          where.fail("unknown slot (expected user_id, target_item, hist_item, eval_item):", token);
        }
      }
      if (!have_user) where.fail("missing user_id slot in line", line);
      set.user_ids.push_back(user);
      set.target_items.push_back(target);
      set.hist_offsets.push_back(static_cast<int64_t>(set.hist_items.size()));
      set.eval_offsets.push_back(static_cast<int64_t>(set.eval_items.size()));
    });
  }
  return set;
}

void write_eval_data(const std::string& file, const EvalSet& set) {
  write_file_atomic(file, [&](std::ostream& out) {
    for (int64_t u = 0; u < set.num_users(); ++u) {
      out << "user_id:" << set.user_ids[u] << " target_item:" << set.target_items[u];
      for (int64_t j = 0; j < set.hist_length(u); ++j) out << " hist_item:" << set.hist(u)[j];
      for (int64_t j = 0; j < set.eval_length(u); ++j) out << " eval_item:" << set.eval(u)[j];
      out << '\n';
    }
  });
}

void pack_histories(const std::vector<int64_t>& offsets, const std::vector<int64_t>& items,
                    int64_t first, int64_t count, int maxlen, int64_t* out_ids,
                    int32_t* out_lengths) {
  MINDREC_EXPECTS(first >= 0 && count >= 0 && first + count + 1 <= int64_t(offsets.size()),
                  "pack_histories: user range out of bounds");
  MINDREC_EXPECTS(maxlen >= 1, "pack_histories: maxlen must be >= 1");
  for (int64_t i = 0; i < count; ++i) {
    const int64_t b = offsets[first + i], e = offsets[first + i + 1];
    const int64_t n = std::min<int64_t>(e - b, maxlen);
    int64_t* row = out_ids + i * maxlen;
    std::copy(items.begin() + (e - n), items.begin() + e, row);
    std::fill(row + n, row + maxlen, 0);
    out_lengths[i] = static_cast<int32_t>(n);
  }
}

}  // namespace mindrec
