// Readers and writers for PaddleRec's training and evaluation files (mind-spec.md).
#include "mindrec/data.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <string_view>
#include <unordered_set>

#include "detail/file_util.hpp"
#include "mindrec/error.hpp"

namespace mindrec {
namespace {

// The longest line read (a history of millions of ids still fits).
constexpr size_t kMaxLine = size_t(64) << 20;

// Calls fn(line, line_number) for each line of the file (without '\n' and a trailing '\r'),
// reading it in blocks so that memory stays bounded whatever the file's size (FormatError for a
// line over kMaxLine).
template <class Fn>
void for_each_file_line(const std::string& file, Fn&& fn) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) throw IoError("cannot open '" + file + "': " + std::strerror(errno));
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{f};
  std::vector<char> buf(size_t(8) << 20);
  size_t have = 0;  // bytes in buf, starting with the unfinished line of the last block
  int64_t number = 0;
  bool eof = false;
  while (!eof) {
    if (have == buf.size()) {  // a line longer than the buffer
      // A text log's lines are short; a binary file given as one would grow this to its size.
      if (buf.size() >= kMaxLine)
        throw FormatError(file + ":" + std::to_string(number + 1) + ": a line longer than " +
                          std::to_string(kMaxLine >> 20) + " MiB (not a text file?)");
      buf.resize(buf.size() * 2);
    }
    const size_t got = std::fread(buf.data() + have, 1, buf.size() - have, f);
    if (got < buf.size() - have) {
      if (std::ferror(f)) throw IoError("cannot read '" + file + "': " + std::strerror(errno));
      eof = true;
    }
    have += got;
    const char* p = buf.data();
    const char* end = buf.data() + have;
    for (;;) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
      if (!nl) {
        if (eof && p < end) nl = end;  // the last line has no newline
        else break;
      }
      std::string_view line(p, size_t(nl - p));
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      fn(line, ++number);
      p = nl == end ? end : nl + 1;
      if (p >= end) break;
    }
    have = size_t(end - p);
    std::memmove(buf.data(), p, have);
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

namespace {

// One `user_id,item_id,order` line. The common shape (digits and commas only) is parsed
// inline; anything else goes through the general parser, which trims blanks and names the
// offending token in its error.
struct Click {
  int64_t user, item, order;
};

bool parse_digits(const char*& p, const char* end, int64_t& v) {
  const char* s = p;
  int64_t x = 0;
  while (p < end && unsigned(*p - '0') < 10u) {
    if (p - s == 18) return false;  // 18 digits cannot overflow; longer ones take the slow path
    x = x * 10 + (*p++ - '0');
  }
  v = x;
  return p > s;
}

bool parse_click_fast(std::string_view line, Click& c) {
  const char* p = line.data();
  const char* end = p + line.size();
  if (!parse_digits(p, end, c.user) || p == end || *p++ != ',') return false;
  if (!parse_digits(p, end, c.item) || p == end || *p++ != ',') return false;
  return parse_digits(p, end, c.order) && p == end;
}

Click parse_click(std::string_view line, const Where& where, int64_t item_count) {
  Click c;
  if (!parse_click_fast(line, c)) {
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
    c.user = parse_id(fields[0], where, "user_id");
    c.item = check_item(parse_id(fields[1], where, "item_id"), trim(fields[1]), item_count, where);
    c.order = parse_id(fields[2], where, "order");
    return c;
  }
  if (c.item == 0 || (item_count > 0 && c.item >= item_count)) {
    const size_t a = line.find(','), b = line.find(',', a + 1);
    check_item(c.item, line.substr(a + 1, b - a - 1), item_count, where);
  }
  return c;
}

// Lines per byte of the first block of `file`, to size the item array once (a doubling
// vector would briefly hold 3x its size while it moves).
int64_t estimate_lines(const std::vector<std::string>& files) {
  uint64_t total = 0;
  for (const auto& f : files) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(f, ec);
    if (!ec) total += n;
  }
  std::FILE* f = std::fopen(files.front().c_str(), "rb");
  if (!f) return 0;
  std::vector<char> buf(size_t(1) << 20);
  const size_t got = std::fread(buf.data(), 1, buf.size(), f);
  std::fclose(f);
  const int64_t lines = std::count(buf.data(), buf.data() + got, '\n');
  if (got == 0 || lines == 0) return 0;
  return int64_t(double(total) / (double(got) / double(lines)) * 1.02) + 1024;
}

// Reads a log whose lines come grouped by user in ascending user id, each user's lines in
// ascending order (what write_train_data, PaddleRec and `prepare` write): straight into the
// compact arrays, 8 bytes per click. Returns false at the first line out of that order.
bool read_sorted(const std::vector<std::string>& files, int64_t item_count, ClickLog& log) {
  log.items.reserve(static_cast<size_t>(estimate_lines(files)));
  log.offsets.push_back(0);
  int64_t last_order = 0;
  for (const auto& file : files) {
    bool in_order = true;
    for_each_file_line(file, [&](std::string_view line, int64_t number) {
      if (!in_order) return;
      if (line.empty() || trim(line).empty()) return;
      const Click c = parse_click(line, Where{file, number}, item_count);
      if (!log.user_ids.empty() && c.user == log.user_ids.back()) {
        if (c.order <= last_order) in_order = false;
      } else if (!log.user_ids.empty() && c.user < log.user_ids.back()) {
        in_order = false;
      } else {
        if (!log.user_ids.empty()) log.offsets.push_back(static_cast<int64_t>(log.items.size()));
        log.user_ids.push_back(c.user);
      }
      last_order = c.order;
      log.items.push_back(c.item);
    });
    if (!in_order) return false;
  }
  if (!log.user_ids.empty()) log.offsets.push_back(static_cast<int64_t>(log.items.size()));
  return true;
}

// Any order: every click with its line, sorted by (user, order); 40 bytes per click while
// reading.
ClickLog read_unsorted(const std::vector<std::string>& files, int64_t item_count) {
  struct Line {
    int64_t user, order, item;
    int64_t line;
    uint32_t file;
  };
  std::vector<Line> clicks;
  for (uint32_t f = 0; f < files.size(); ++f)
    for_each_file_line(files[f], [&](std::string_view line, int64_t number) {
      if (line.empty() || trim(line).empty()) return;
      const Click c = parse_click(line, Where{files[f], number}, item_count);
      clicks.push_back(Line{c.user, c.order, c.item, number, f});
    });
  std::stable_sort(clicks.begin(), clicks.end(), [](const Line& a, const Line& b) {
    return a.user != b.user ? a.user < b.user : a.order < b.order;
  });
  ClickLog log;
  log.items.reserve(clicks.size());
  log.offsets.push_back(0);
  for (size_t i = 0; i < clicks.size(); ++i) {
    const Line& c = clicks[i];
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

}  // namespace

ClickLog read_train_data(const std::string& path, int64_t item_count) {
  const auto files = detail::data_files(path);
  {
    ClickLog log;
    if (read_sorted(files, item_count, log)) return log;
  }
  return read_unsorted(files, item_count);
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
    for_each_file_line(file, [&](std::string_view line, int64_t number) {
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

void pack_histories(const std::vector<std::vector<int64_t>>& histories, int maxlen, int64_t* out_ids,
                    int32_t* out_lengths) {
  MINDREC_EXPECTS(maxlen >= 1, "pack_histories: maxlen must be >= 1");
  for (size_t i = 0; i < histories.size(); ++i) {
    const auto& h = histories[i];
    const size_t n = std::min(h.size(), size_t(maxlen));
    int64_t* row = out_ids + i * size_t(maxlen);
    std::copy(h.end() - n, h.end(), row);
    std::fill(row + n, row + maxlen, 0);
    out_lengths[i] = static_cast<int32_t>(n);
  }
}

}  // namespace mindrec
