// Data readers and writers: the bundled sample's counts (checked independently with awk:
// `awk -F, '{u[$1];i[$2]} END{print NR, length(u), length(i)}'` gives 20000 1467 17049, and
// 9 of the 499 validation lines have more than 20 eval_item tokens), ordering, and refusals.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "mindrec/data.hpp"
#include "mindrec/error.hpp"
#include "test_util.hpp"

using namespace mindrec;
using mindrec::test::TempDir;


TEST_CASE("the bundled training sample has the counts awk finds") {
  const ClickLog log = read_train_data(test::data_dir() + "/amazonbook-sample/train", 367983);
  CHECK(log.num_clicks() == 20000);
  CHECK(log.num_users() == 1467);
  CHECK(log.num_distinct_items() == 17049);
  CHECK(log.offsets.front() == 0);
  CHECK(log.offsets.back() == 20000);
  CHECK(std::is_sorted(log.user_ids.begin(), log.user_ids.end()));
  // First lines of demo.txt: user 0 clicked 17978, 901, 97224, 774, 85757 at orders 0..4.
  REQUIRE(log.user_ids[0] == 0);
  CHECK(std::vector<int64_t>(log.begin(0), log.begin(0) + 5) ==
        std::vector<int64_t>{17978, 901, 97224, 774, 85757});
}

TEST_CASE("the bundled validation sample: 499 users - 9 with more than 20 eval items") {
  const EvalSet set = read_eval_data(test::data_dir() + "/amazonbook-sample/valid", 367983);
  REQUIRE(set.num_users() == 499);
  int over20 = 0;
  for (int64_t u = 0; u < set.num_users(); ++u) over20 += set.eval_length(u) > 20;
  CHECK(over20 == 9);
  // First line: user 482936, 13 hist items starting 5175 14966, eval 57177 ... 126551.
  CHECK(set.user_ids[0] == 482936);
  CHECK(set.target_items[0] == 0);
  CHECK(set.hist_length(0) == 13);
  CHECK(set.hist(0)[0] == 5175);
  CHECK(set.hist(0)[1] == 14966);
  CHECK(std::vector<int64_t>(set.eval(0), set.eval(0) + set.eval_length(0)) ==
        std::vector<int64_t>{57177, 22266, 61335, 126551});
  // The file has no final newline; the last user must still be complete (ends eval_item:501).
  CHECK(set.eval(498)[set.eval_length(498) - 1] == 501);
}

TEST_CASE("training lines are ordered by the order column - per user") {
  TempDir tmp;
  const auto f = tmp.write("t.txt", "7,30,2\n5,11,1\n7,10,0\r\n5,12,0\n\n7,20,1");
  const ClickLog log = read_train_data(f, 100);
  CHECK(log.user_ids == std::vector<int64_t>{5, 7});
  CHECK(log.offsets == std::vector<int64_t>{0, 2, 5});
  CHECK(log.items == std::vector<int64_t>{12, 11, 10, 20, 30});
}

TEST_CASE("a folder of training files is read in name order - write/read round trip") {
  TempDir tmp;
  std::filesystem::create_directory(tmp.path() / "d");
  tmp.write("d/b.txt", "2,5,0\n");
  tmp.write("d/a.txt", "1,4,0\n1,3,1\n");
  tmp.write("d/.hidden", "garbage");
  const ClickLog log = read_train_data(tmp.file("d"));
  CHECK(log.items == std::vector<int64_t>{4, 3, 5});
  write_train_data(tmp.file("out.txt"), log);
  const ClickLog again = read_train_data(tmp.file("out.txt"));
  CHECK(again.user_ids == log.user_ids);
  CHECK(again.offsets == log.offsets);
  CHECK(again.items == log.items);
}

TEST_CASE("a file that is not text (one line of 70 MiB) is refused naming file and line - memory stays bounded") {
  // Review F30: the line buffer doubled up to the file's size for a file without newlines.
  test::TempDir tmp;
  {
    std::ofstream out(tmp.file("blob.bin"), std::ios::binary);
    out << "1,5,1\n";
    const std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 70; ++i) out << chunk;
  }
  const std::string m = test::error_of([&] { read_train_data(tmp.file("blob.bin")); });
  CHECK(m.find("blob.bin:2: a line longer than 64 MiB") != std::string::npos);
  CHECK_THROWS_AS(read_train_data(tmp.file("blob.bin")), FormatError);
}

TEST_CASE("bad training lines are refused with file - line and token") {
  TempDir tmp;
  auto err = [&](const std::string& text, int64_t item_count = 100) {
    const auto f = tmp.write("bad.txt", text);
    return test::error_of([&] { read_train_data(f, item_count); });
  };
  std::string e = err("1,2,0\n1,x3,1\n");
  CHECK(e.find("bad.txt:2:") != std::string::npos);
  CHECK(e.find("'x3'") != std::string::npos);
  CHECK(err("1,2,0\n1,2\n").find("bad.txt:2: expected 3 fields") != std::string::npos);
  CHECK(err("1,2,0,4\n").find("bad.txt:1: expected 3 fields") != std::string::npos);
  CHECK(err("1,-2,0\n").find("item_id is negative: '-2'") != std::string::npos);
  CHECK(err("-1,2,0\n").find("user_id is negative") != std::string::npos);
  CHECK(err("1,100,0\n").find("item id >= item_count (100): '100'") != std::string::npos);
  CHECK(err("1,0,0\n").find("padding id") != std::string::npos);
  CHECK(err("1,2,1.5\n").find("order is not an integer: '1.5'") != std::string::npos);
  e = err("1,2,0\n2,3,0\n1,4,0\n");
  CHECK(e.find("bad.txt:3: duplicate order 0 for user 1 (first at ") != std::string::npos);
  CHECK(e.find("bad.txt:1)") != std::string::npos);
  CHECK_THROWS_AS(read_train_data(tmp.file("missing.txt")), IoError);
}

TEST_CASE("bad validation lines are refused with file - line and token") {
  TempDir tmp;
  auto err = [&](const std::string& text) {
    const auto f = tmp.write("v.txt", text);
    return test::error_of([&] { read_eval_data(f, 50); });
  };
  CHECK(err("user_id:1 hist_item:3\nuser_id:2 hist_item:x\n").find("v.txt:2: hist_item is not an integer: 'x'") != std::string::npos);
  CHECK(err("user_id:1 foo:3\n").find("unknown slot") != std::string::npos);
  CHECK(err("hist_item:3 eval_item:4\n").find("v.txt:1: missing user_id") != std::string::npos);
  CHECK(err("user_id:1 user_id:2\n").find("repeated slot 'user_id:2'") != std::string::npos);
  CHECK(err("user_id:1 eval_item:50\n").find("item_count (50): 'eval_item:50'") != std::string::npos);
  CHECK(err("user_id:1 hist_item\n").find("expected slot:value") != std::string::npos);
  CHECK(err("user_id:1 hist_item:-4\n").find("negative") != std::string::npos);
}

TEST_CASE("validation write/read round trip") {
  TempDir tmp;
  const auto f = tmp.write("v.txt", "user_id:9 target_item:0 hist_item:3 hist_item:4 eval_item:5\n"
                                    "user_id:8 target_item:0 eval_item:6 eval_item:7");
  const EvalSet a = read_eval_data(f);
  CHECK(a.hist_offsets == std::vector<int64_t>{0, 2, 2});
  CHECK(a.eval_items == std::vector<int64_t>{5, 6, 7});
  write_eval_data(tmp.file("w.txt"), a);
  const EvalSet b = read_eval_data(tmp.file("w.txt"));
  CHECK(b.user_ids == a.user_ids);
  CHECK(b.hist_items == a.hist_items);
  CHECK(b.eval_offsets == a.eval_offsets);
}

TEST_CASE("pack_histories keeps the last maxlen items - right-padded") {
  const std::vector<int64_t> offsets = {0, 5, 7, 7};
  const std::vector<int64_t> items = {1, 2, 3, 4, 5, 6, 7};
  std::vector<int64_t> ids(3 * 3, -9);
  std::vector<int32_t> lens(3, -9);
  pack_histories(offsets, items, 0, 3, 3, ids.data(), lens.data());
  CHECK(ids == std::vector<int64_t>{3, 4, 5, 6, 7, 0, 0, 0, 0});
  CHECK(lens == std::vector<int32_t>{3, 2, 0});
  CHECK_THROWS_AS(pack_histories(offsets, items, 2, 2, 3, ids.data(), lens.data()), InvalidArgument);
  // the same users as lists of ids
  std::fill(ids.begin(), ids.end(), -9);
  std::fill(lens.begin(), lens.end(), -9);
  pack_histories({{1, 2, 3, 4, 5}, {6, 7}, {}}, 3, ids.data(), lens.data());
  CHECK(ids == std::vector<int64_t>{3, 4, 5, 6, 7, 0, 0, 0, 0});
  CHECK(lens == std::vector<int32_t>{3, 2, 0});
  CHECK_THROWS_AS(pack_histories({{1}}, 0, ids.data(), lens.data()), InvalidArgument);
}

TEST_CASE("a log sorted by user and order and the same log shuffled read the same (oracle: std::map)") {
  // ~12 MB: lines cross the reader's 8 MB block boundary.
  TempDir tmp;
  std::mt19937_64 rng(7);
  std::map<int64_t, std::map<int64_t, int64_t>> oracle;  // user -> order -> item
  std::vector<std::string> lines;
  for (int64_t u = 1; u <= 40000; ++u) {
    const int m = 1 + int(rng() % 30);
    int64_t order = int64_t(rng() % 5);
    for (int j = 0; j < m; ++j) {
      order += 1 + int64_t(rng() % 3);  // gaps in the order column are allowed
      const int64_t item = 1 + int64_t(rng() % 99999);
      oracle[u * 1000][order] = item;
      lines.push_back(std::to_string(u * 1000) + "," + std::to_string(item) + "," + std::to_string(order));
    }
  }
  std::string sorted_text, shuffled_text;
  for (const auto& l : lines) sorted_text += l + "\n";
  std::shuffle(lines.begin(), lines.end(), rng);
  for (const auto& l : lines) shuffled_text += l + "\r\n";
  REQUIRE(sorted_text.size() > (size_t(9) << 20));
  const ClickLog a = read_train_data(tmp.write("sorted.txt", sorted_text), 100000);
  const ClickLog b = read_train_data(tmp.write("shuffled.txt", shuffled_text), 100000);
  std::vector<int64_t> users, offsets = {0}, items;
  for (const auto& [u, seq] : oracle) {
    users.push_back(u);
    for (const auto& [o, item] : seq) items.push_back(item);
    offsets.push_back(int64_t(items.size()));
  }
  CHECK(a.user_ids == users);
  CHECK(a.offsets == offsets);
  CHECK(a.items == items);
  CHECK(b.user_ids == users);
  CHECK(b.offsets == offsets);
  CHECK(b.items == items);
}

TEST_CASE("a log that turns unsorted late - or sorted but split over files - is still read whole") {
  TempDir tmp;
  // Sorted up to the last line, which belongs to the first user.
  ClickLog log = read_train_data(tmp.write("late.txt", "1,5,0\n1,6,1\n2,7,0\n3,8,0\n1,9,2"));
  CHECK(log.user_ids == std::vector<int64_t>{1, 2, 3});
  CHECK(log.offsets == std::vector<int64_t>{0, 3, 4, 5});
  CHECK(log.items == std::vector<int64_t>{5, 6, 9, 7, 8});
  // A user continued in the next file stays one user.
  std::filesystem::create_directory(tmp.path() / "d");
  tmp.write("d/a.txt", "4,1,0\n5,2,0\n");
  tmp.write("d/b.txt", "5,3,1\n6,4,0");
  log = read_train_data(tmp.file("d"));
  CHECK(log.user_ids == std::vector<int64_t>{4, 5, 6});
  CHECK(log.items == std::vector<int64_t>{1, 2, 3, 4});
  // Blank-padded fields take the general parser; an empty file is an empty log.
  log = read_train_data(tmp.write("blank.txt", " 1 , 5 ,\t0\n"));
  CHECK(log.items == std::vector<int64_t>{5});
  log = read_train_data(tmp.write("empty.txt", ""));
  CHECK(log.num_users() == 0);
  CHECK(log.offsets == std::vector<int64_t>{0});
  // A number too long for int64 is refused, not wrapped.
  CHECK(test::error_of([&] { read_train_data(tmp.write("big.txt", "1,99999999999999999999,0\n")); })
            .find("item_id is not an integer") != std::string::npos);
}
