// ComiRec preparation on a log small enough to work out by hand.
#include <doctest/doctest.h>

#include "mindrec/data.hpp"
#include "detail/file_util.hpp"
#include "mindrec/error.hpp"
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
  CHECK(test::error_of([&] { prepare_dataset(bad_t, tmp.file("d"), o); }).find("bad_t.csv:3: timestamp is not a number: 'yesterday'") != std::string::npos);
  CHECK_THROWS_AS(prepare_dataset(tmp.file("missing"), tmp.file("d"), o), IoError);
}
