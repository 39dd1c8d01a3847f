// ComiRec preparation on a log small enough to work out by hand.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "mindrec/data.hpp"
#include "detail/file_util.hpp"
#include "mindrec/error.hpp"
#include "mindrec/log.hpp"
#include "mindrec/prepare.hpp"
#include "test_util.hpp"

using namespace mindrec;

// Clicks: item a x6, b x5, d x5, c x4 (c fails the 5-core item filter).
// U1: a b d a b c -> kept a b d a b (5);  U2: a b d c -> 3 kept: dropped;
// U3: a b d a d c c -> kept a b d a d (5);  U4: a b d -> 3: dropped.
// Popularity among kept clicks: a 4, b 3, d 3 (b seen first) -> a=1, b=2, d=3; item_count 4.
// U1 in line order a@50 b@10 d@30 a@20 b@40 -> sorted by time: b(10) a(20) d(30) b(40) a(50).

static const char* kRaw =
    "# user,item,timestamp\n"
    "U1,a,50\nU1,b,10\nU1,d,30\nU1,a,20\nU1,b,40\nU1,c,60\n"
    "U2,a,1\nU2,b,2\nU2,d,3\nU2,c,4\n"
    "U3,a,1\nU3,b,2\nU3,d,3\nU3,a,4\nU3,d,4\nU3,c,5\nU3,c,6\n"
    "U4,a,1\nU4,b,2\nU4,d,3\n";

TEST_CASE("prepare: 5-core filter - popularity ids - time order - split files") {
  test::TempDir tmp;
  for (const bool spaces : {false, true}) {
    std::string raw = kRaw;
    if (spaces) std::replace(raw.begin(), raw.end(), ',', ' ');
    const auto in = tmp.write("raw.txt", raw);
    const std::string out = tmp.file(spaces ? "ws" : "csv");
    PrepareOptions o;
    o.seed = 1;
    const PrepareReport r = prepare_dataset(in, out, o);
    CHECK(r.lines == 20);
    CHECK(r.clicks_kept == 10);
    CHECK(r.items == 3);
    CHECK(r.item_count == 4);
    CHECK(r.users == 2);
    CHECK(r.train_users == 1);  // int(0.8 * 2)
    CHECK(r.valid_users == 0);  // int(0.1 * 2)
    CHECK(r.test_users == 1);
    const std::string items = read_file(out + "/item_map.csv");
    CHECK(items == "raw_id,id\na,1\nb,2\nd,3\n");
    CHECK(read_file(out + "/user_map.csv") == "raw_id,id\nU1,0\nU3,1\n");
    // U1 in time order: b a d b a = 2 1 3 2 1; U3: a b d a d (t=4 tie keeps file order) = 1 2 3 1 3.
    const ClickLog train = read_train_data(out + "/train", 4);
    const EvalSet test = read_eval_data(out + "/test", 4);
    REQUIRE(train.num_users() == 1);
    REQUIRE(test.num_users() == 1);
    const std::vector<int64_t> u1 = {2, 1, 3, 2, 1}, u3 = {1, 2, 3, 1, 3};
    const auto& train_seq = train.user_ids[0] == 0 ? u1 : u3;
    const auto& test_seq = train.user_ids[0] == 0 ? u3 : u1;
    CHECK(train.items == train_seq);
    // Test user: first int(0.8 * 5) = 4 items are history, the last is the ground truth.
    CHECK(std::vector<int64_t>(test.hist(0), test.hist(0) + 4) ==
          std::vector<int64_t>(test_seq.begin(), test_seq.begin() + 4));
    CHECK(test.eval_length(0) == 1);
    CHECK(test.eval(0)[0] == test_seq[4]);
    CHECK(read_file(out + "/dataset.json").find("\"item_count\": 4") != std::string::npos);
  }
}

TEST_CASE("prepare: the split is seeded and malformed lines are refused") {
  test::TempDir tmp;
  std::string raw;
  for (int u = 0; u < 50; ++u)
    for (int i = 0; i < 6; ++i) raw += "user" + std::to_string(u) + ",item" + std::to_string((u + i) % 7) + "," + std::to_string(i) + "\n";
  const auto in = tmp.write("raw.csv", raw);
  PrepareOptions o;
  o.seed = 3;
  const auto r = prepare_dataset(in, tmp.file("a"), o);
  CHECK(r.train_users == 40);
  CHECK(r.valid_users == 5);
  CHECK(r.test_users == 5);
  prepare_dataset(in, tmp.file("b"), o);
  CHECK(read_file(tmp.file("a/valid/data.txt")) == read_file(tmp.file("b/valid/data.txt")));
  o.seed = 4;
  prepare_dataset(in, tmp.file("c"), o);
  CHECK(read_file(tmp.file("a/valid/data.txt")) != read_file(tmp.file("c/valid/data.txt")));

  const auto bad = tmp.write("bad.csv", "u1,i1,1\nu1,i2\n");
  CHECK(test::error_of([&] { prepare_dataset(bad, tmp.file("d"), o); }).find("bad.csv:2: expected 3 fields") != std::string::npos);
  const auto bad_t = tmp.write("bad_t.csv", "user,item,time\nu1,i1,1\nu1,i1,yesterday\n");
  CHECK(test::error_of([&] { prepare_dataset(bad_t, tmp.file("d"), o); }).find("bad_t.csv:3: timestamp 'yesterday' is neither a number") != std::string::npos);
  CHECK_THROWS_AS(prepare_dataset(tmp.file("missing"), tmp.file("d"), o), IoError);
}

TEST_CASE("prepare: ISO-8601 times - RFC 4180 quoting - --columns by number or header name - the same split as the plain log") {
  // Oracle: the plain numeric log kRaw; each variant below writes the same clicks otherwise
  // (times as ISO-8601 instants 2024-01-01T00:00:00Z + t, 1704067200 + t in epoch seconds),
  // so its train/valid/test files must be byte for byte the plain log's.
  test::TempDir tmp;
  PrepareOptions o;
  o.seed = 1;
  prepare_dataset(tmp.write("plain.csv", kRaw), tmp.file("plain"), o);
  struct Click { std::string user, item; int t; };
  std::vector<Click> clicks;
  {
    std::stringstream ss(kRaw);
    std::string line;
    while (std::getline(ss, line)) {
      if (line.empty() || line[0] == '#') continue;
      const size_t a = line.find(','), b = line.find(',', a + 1);
      clicks.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), std::stoi(line.substr(b + 1))});
    }
  }
  auto iso = [](int t, int zone_hours) {  // 2024-01-01T00:00:00Z + t seconds, written in UTC+zone
    char buf[64];
    const int s = t + zone_hours * 3600;
    std::snprintf(buf, sizeof buf, "2024-01-01T%02d:%02d:%02d%s", s / 3600, s / 60 % 60, s % 60,
                  zone_hours == 0 ? "Z" : zone_hours > 0 ? "+01:00" : "");
    return std::string(buf);
  };
  std::string utc, mixed, quoted, named;
  named = "customer;sku;stars;when\n";
  for (size_t i = 0; i < clicks.size(); ++i) {
    const auto& c = clicks[i];
    utc += c.user + "," + c.item + "," + iso(c.t, 0) + "\n";
    // every other line in epoch seconds, the others as the same instant at UTC+1, or a date
    // and time with a space and no zone (UTC)
    mixed += c.user + "," + c.item + "," +
             (i % 3 == 0 ? std::to_string(1704067200 + c.t) : i % 3 == 1 ? iso(c.t, 1) : "2024-01-01 " + iso(c.t, 0).substr(11, 8)) + "\n";
    // quoted ids with quotes (and commas in user ids), a rating column: --columns user=1,item=2,time=4
    quoted += "\"" + c.user + ", x\",\"" + c.item + " \"\"red\"\"\", 5 ," + std::to_string(c.t) + "\n";
    named += c.user + " " + c.item + " 4 " + std::to_string(1704067200 + c.t) + "\n";
  }
  named[8] = named[12] = named[18] = ' ';  // the header: "customer sku stars when"
  auto same_split = [&](const std::string& dir) {
    for (const char* f : {"/train/data.txt", "/test/data.txt", "/valid/data.txt"}) {
      CAPTURE(f);
      CHECK(read_file(tmp.file(dir) + f) == read_file(tmp.file("plain") + f));
    }
  };
  prepare_dataset(tmp.write("utc.csv", utc), tmp.file("utc"), o);
  same_split("utc");
  prepare_dataset(tmp.write("mixed.csv", mixed), tmp.file("mixed"), o);
  same_split("mixed");
  PrepareOptions q = o;
  q.columns = "user=1,item=2,time=4";
  prepare_dataset(tmp.write("quoted.csv", quoted), tmp.file("quoted"), q);
  same_split("quoted");
  // the raw ids come back quoted (RFC 4180), so the map reads back as it was written
  CHECK(read_file(tmp.file("quoted/item_map.csv")) ==
        "raw_id,id\n\"a \"\"red\"\"\",1\n\"b \"\"red\"\"\",2\n\"d \"\"red\"\"\",3\n");
  // an item id with a comma cannot be a catalogue raw id: refused with its line
  CHECK(test::error_of([&] { prepare_dataset(tmp.write("comma.csv", "u,\"i,1\",5\n"), tmp.file("comma"), o); })
            .find("comma.csv:1: item: raw id 'i,1' holds a comma") != std::string::npos);
  PrepareOptions n = o;
  n.columns = "user=customer,item=sku,time=when";
  prepare_dataset(tmp.write("named.txt", named), tmp.file("named"), n);
  same_split("named");

  // what still cannot be read: said, with the line and the fix
  auto error = [&](const std::string& text, const std::string& columns = "") {
    PrepareOptions e = o;
    e.columns = columns;
    return test::error_of([&] { prepare_dataset(tmp.write("e.csv", text), tmp.file("e"), e); });
  };
  CHECK(error("u,i,r,1\n").find("e.csv:1: expected 3 fields user,item,timestamp, got 4") != std::string::npos);
  CHECK(error("u,i,r,1\n").find("--columns user=1,item=2,time=4") != std::string::npos);
  CHECK(error("u,i,1\nu,i,2024-13-01\n").find("e.csv:2: timestamp '2024-13-01' is neither a number") != std::string::npos);
  CHECK(error("u,i,1\nu,\"i,2\n").find("e.csv:2: a quoted field is not closed") != std::string::npos);
  // a quote inside an unquoted field pairs up with an opening one (found by fuzz_catalogue)
  CHECK(error("u,i,1\nu\"x,\"q \"\"y,3\n").find("e.csv:2: a quoted field is not closed") != std::string::npos);
  CHECK(error("u,i,1\n", "user=1,item=2").find("'time=' is missing") != std::string::npos);
  CHECK(error("a,b,c\nu,i,1\n", "user=a,item=x,time=c").find("e.csv:1: --columns item=x: no such field") != std::string::npos);
  CHECK(error("u,i,1\n", "user=1,item=2,time=9").find("e.csv:1: has 3 fields, --columns needs 9") != std::string::npos);
}

TEST_CASE("prepare with the previous catalogue: kept ids - new ids after the largest - retired items keep theirs") {
  test::TempDir tmp;
  PrepareOptions o;
  o.seed = 1;
  prepare_dataset(tmp.write("day1.txt", kRaw), tmp.file("day1"), o);  // a=1 b=2 d=3 (c filtered out)
  CHECK(read_file(tmp.file("day1/catalogue.csv")) == "id,raw_id,status,clicks\n1,a,active,4\n2,b,active,3\n3,d,active,3\n");
  // Day 2: b is gone; e (10 clicks) and f (5) are new; a, d, f tie at 5 (first appearance: a, d, f).
  std::string day2;
  for (int u = 0; u < 5; ++u)
    for (const char* it : {"e", "e", "a", "d", "f"}) day2 += "V" + std::to_string(u) + "," + it + "," + std::to_string(day2.size()) + "\n";
  o.catalogue = tmp.file("day1/catalogue.csv");
  const PrepareReport r2 = prepare_dataset(tmp.write("day2.txt", day2), tmp.file("day2"), o);
  CHECK(r2.kept == 2);
  CHECK(r2.added == 2);
  CHECK(r2.retired == 1);
  CHECK(r2.items == 4);
  CHECK(r2.item_count == 6);
  CHECK(read_file(tmp.file("day2/catalogue.csv")) ==
        "id,raw_id,status,clicks\n1,a,active,5\n2,b,retired,0\n3,d,active,5\n4,e,active,10\n5,f,active,5\n");
  const ClickLog train = read_train_data(tmp.file("day2/train"), 6);
  for (const int64_t id : train.items) CHECK((id == 1 || id == 3 || id == 4 || id == 5));
  CHECK(read_file(tmp.file("day2/dataset.json")).find("\"new\": 2") != std::string::npos);
  // Day 3 = day 1's log again: b comes back with its id, e and f retire; nothing is renumbered.
  o.catalogue = tmp.file("day2/catalogue.csv");
  const PrepareReport r3 = prepare_dataset(tmp.file("day1.txt"), tmp.file("day3"), o);
  CHECK(r3.kept == 3);
  CHECK(r3.added == 0);
  CHECK(r3.retired == 2);
  CHECK(r3.item_count == 6);
  CHECK(read_file(tmp.file("day3/catalogue.csv")) ==
        "id,raw_id,status,clicks\n1,a,active,4\n2,b,active,3\n3,d,active,3\n4,e,retired,0\n5,f,retired,0\n");
  // the same split as day 1 (ids a, b, d unchanged): the data files are identical
  for (const char* f : {"/train/data.txt", "/valid/data.txt", "/test/data.txt"})
    CHECK(read_file(tmp.file("day3") + f) == read_file(tmp.file("day1") + f));

  // a previous catalogue that shares nothing with the log: a warning with the counts
  std::string warned;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::warn) warned += std::string(m);
  });
  std::string other = day2;
  for (auto& ch : other)
    if (ch >= 'a' && ch <= 'f') ch = char(ch - 'a' + 'p');
  o.catalogue = tmp.file("day1/catalogue.csv");
  const PrepareReport r4 = prepare_dataset(tmp.write("other.txt", other), tmp.file("other"), o);
  set_log_sink(nullptr);
  set_log_level(LogLevel::warn);
  CHECK(r4.kept == 0);
  CHECK(r4.added == 4);
  CHECK(r4.item_count == 8);  // never reuses 1..3
  CHECK(warned.find("day1/catalogue.csv' (3 items) shares no item id with") != std::string::npos);
  CHECK(warned.find("(4 items kept)") != std::string::npos);

  // numeric ids: "007" and "7" are one item; asking for numbers with a string catalogue is refused
  PrepareOptions n;
  n.numeric_ids = true;
  std::string nums;
  for (int u = 0; u < 5; ++u)
    for (const char* it : {"007", "7", "8", "08", "9"}) nums += "W" + std::to_string(u) + "," + it + "," + std::to_string(nums.size()) + "\n";
  const PrepareReport rn = prepare_dataset(tmp.write("nums.txt", nums), tmp.file("nums"), n);
  CHECK(rn.items == 3);
  CHECK(read_file(tmp.file("nums/catalogue.csv")) == "id,raw_id:int64,status,clicks\n1,7,active,10\n2,8,active,10\n3,9,active,5\n");
  n.catalogue = tmp.file("day1/catalogue.csv");
  CHECK(test::error_of([&] { prepare_dataset(tmp.file("nums.txt"), tmp.file("nums2"), n); })
            .find("the previous catalogue") != std::string::npos);
}
