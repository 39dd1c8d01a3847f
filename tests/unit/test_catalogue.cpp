// The catalogue (catalogue.hpp): raw <-> dense ids against a std::map oracle, the file format
// written by hand, every refusal with its file, line and field, the prefix fingerprint.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "detail/random.hpp"
#include "mindrec/catalogue.hpp"
#include "mindrec/file_io.hpp"
#include "test_util.hpp"

using namespace mindrec;

TEST_CASE("catalogue: random raw ids map both ways exactly as a std::map does - and survive a save and load") {
  test::TempDir tmp;
  detail::Rng rng(7);
  Catalogue c;
  std::map<std::string, int64_t> oracle;
  for (int i = 0; i < 5000; ++i) {
    std::string raw = "B" + std::to_string(rng.below(1000000));
    if (i % 7 == 0) raw += "-\xc3\xa9t\xc3\xa9";  // UTF-8 "été"
    if (i % 11 == 0) raw = "\"q\" " + raw;         // a quote: written quoted, read back the same
    if (oracle.count(raw)) {
      CHECK_THROWS_AS(c.add(raw), InvalidArgument);
      continue;
    }
    const int64_t id = c.add(raw, i % 5 == 0 ? ItemStatus::retired : ItemStatus::active, i);
    oracle[raw] = id;
  }
  CHECK(c.size() == int64_t(oracle.size()));
  CHECK(c.item_count() == int64_t(oracle.size()) + 1);
  for (const auto& [raw, id] : oracle) {
    CHECK(c.to_dense(raw) == id);
    CHECK(c.to_raw(id) == raw);
  }
  CHECK(c.to_dense("nope") == 0);
  CHECK(c.to_dense("") == 0);
  const std::string path = tmp.file("cat.csv");
  c.save(path);
  const Catalogue d = Catalogue::load(path);
  CHECK(d.source() == path);
  CHECK(d.size() == c.size());
  CHECK(d.fingerprint() == c.fingerprint());
  for (const auto& [raw, id] : oracle) {
    CHECK(d.to_dense(raw) == id);
    CHECK(d.status(id) == c.status(id));
    CHECK(d.clicks(id) == c.clicks(id));
  }
  CHECK(d.active_count() == c.active_count());
}

TEST_CASE("catalogue: the file as written by hand - gaps - numeric ids - extra columns") {
  test::TempDir tmp;
  const Catalogue c = Catalogue::load(tmp.write("a.csv", "id,raw_id,status,clicks,title\r\n1,B001,active,5,Dune\n\n3,007,retired,0,x\n4,\" sp \",active,2,y\n"));
  CHECK(c.size() == 3);
  CHECK(c.item_count() == 5);
  CHECK(c.has_id(1));
  CHECK_FALSE(c.has_id(2));
  CHECK(c.to_dense("007") == 3);
  CHECK(c.to_dense("7") == 0);  // string ids: digits stay text
  CHECK(c.to_dense(" sp ") == 4);
  CHECK(c.status(3) == ItemStatus::retired);
  CHECK(c.clicks(1) == 5);
  CHECK(c.active_count() == 2);
  CHECK(test::error_of([&] { (void)c.to_raw(2); }).find("item id 2 is not in the catalogue") != std::string::npos);
  c.save(tmp.file("b.csv"));
  CHECK(read_file(tmp.file("b.csv")) == "id,raw_id,status,clicks\n1,B001,active,5\n3,007,retired,0\n4,\" sp \",active,2\n");

  const Catalogue n = Catalogue::load(tmp.write("n.csv", "id,raw_id:int64\n1,007\n2,-5\n3,9223372036854775807\n"));
  CHECK(n.numeric());
  CHECK(n.to_dense("7") == 1);
  CHECK(n.to_dense("0007") == 1);
  CHECK(n.to_dense("-5") == 2);
  CHECK(n.to_dense("abc") == 0);
  CHECK(n.to_raw(1) == "7");
  CHECK(n.status(1) == ItemStatus::active);  // no status column: active
  CHECK(n.fingerprint() != Catalogue::load(tmp.write("s.csv", "id,raw_id\n1,7\n2,-5\n3,9223372036854775807\n")).fingerprint());
}

TEST_CASE("catalogue: bad files are refused naming the file - the line and the field") {
  test::TempDir tmp;
  auto error = [&](const std::string& text) {
    return test::error_of([&] { (void)Catalogue::load(tmp.write("bad.csv", text)); });
  };
  CHECK(error("").find("bad.csv: empty") != std::string::npos);
  CHECK(error("raw_id,id\nB1,1\n").find("bad.csv:1: not a catalogue") != std::string::npos);
  CHECK(error("id,raw_id\n1,a\n1,b\n").find("bad.csv:3: field id: 1 appears twice") != std::string::npos);
  CHECK(error("id,raw_id\n2,a\n1,b\n").find("bad.csv:3: field id: 1 is out of order") != std::string::npos);
  CHECK(error("id,raw_id\n1,a\n2,a\n").find("bad.csv:3: field raw_id: 'a' appears twice (items 1 and 2)") != std::string::npos);
  CHECK(error("id,raw_id\n0,a\n").find("bad.csv:2: field id: 0 is the padding id") != std::string::npos);
  CHECK(error("id,raw_id\nx,a\n").find("bad.csv:2: field id: 'x' is not a non-negative integer") != std::string::npos);
  CHECK(error("id,raw_id\n1,\"a,b\"\n").find("bad.csv:2: field raw_id: raw id 'a,b' holds a comma") != std::string::npos);
  CHECK(error("id,raw_id\n1,a\xff\n").find("bad.csv:2: field raw_id: raw id 'a\xff' is not valid UTF-8 (at byte 1)") != std::string::npos);
  CHECK(error("id,raw_id\n1,\xed\xa0\x80\n").find("is not valid UTF-8") != std::string::npos);  // a surrogate
  CHECK(error("id,raw_id\n1,\xc0\xaf\n").find("is not valid UTF-8") != std::string::npos);      // overlong
  CHECK(error("id,raw_id\n1,a\tb\n").find("holds a control character") != std::string::npos);
  CHECK(error("id,raw_id\n1," + std::string(257, 'x') + "\n").find("is 257 bytes long (at most 256)") != std::string::npos);
  CHECK(error("id,raw_id\n1,\n").find("bad.csv:2: field raw_id: raw id '' is empty") != std::string::npos);
  CHECK(error("id,raw_id,status\n1,a,gone\n").find("bad.csv:2: field status: 'gone' is neither active nor retired") != std::string::npos);
  CHECK(error("id,raw_id:int64\n1,12a\n").find("bad.csv:2: field raw_id: raw id '12a' is not an int64 number") != std::string::npos);
  CHECK(error("id,raw_id:int64\n1,9223372036854775808\n").find("is not an int64 number") != std::string::npos);
  CHECK(error("id,raw_id:int64\n1,7\n2,007\n").find("'7' appears twice") != std::string::npos);
  CHECK(error("id,raw_id\n1,a\n5000000,b\n").find("bad.csv:3: field id: 5000000 would leave a gap of 4999998 ids after 1 items") !=
        std::string::npos);  // found by fuzz_catalogue: 8 GB for a two-line file
  CHECK(error("id,raw_id,status\n1\n").find("bad.csv:2: expected at least 3 fields, got 1") != std::string::npos);
  CHECK(test::error_of([] { (void)Catalogue::load("/nonexistent/c.csv"); }).find("cannot open catalogue '/nonexistent/c.csv'") !=
        std::string::npos);
  // a failed add changes nothing
  Catalogue c;
  c.add("a");
  const uint64_t fp = c.fingerprint();
  CHECK_THROWS_AS(c.add("a"), InvalidArgument);
  CHECK_THROWS_AS(c.add("x,y"), InvalidArgument);
  CHECK_THROWS_AS(c.insert(1, "z"), InvalidArgument);
  CHECK(c.size() == 1);
  CHECK(c.fingerprint() == fp);
}

TEST_CASE("catalogue: the fingerprint covers the id <-> raw id pairs below a count - not status or clicks") {
  Catalogue a, b;
  for (const char* r : {"x", "y", "z"}) a.add(r), b.add(r);
  CHECK(a.fingerprint() == b.fingerprint());
  b.set_status(2, ItemStatus::retired);
  b.set_clicks(1, 99);
  CHECK(a.fingerprint() == b.fingerprint());
  const uint64_t before = a.fingerprint(), prefix = a.fingerprint(a.item_count());
  CHECK(before == prefix);
  a.add("new");  // served catalogues grow: the trained prefix still pairs
  CHECK(a.fingerprint(4) == before);
  CHECK(a.fingerprint() != before);
  Catalogue swapped;
  for (const char* r : {"y", "x", "z"}) swapped.add(r);
  CHECK(swapped.fingerprint() != b.fingerprint());
  CHECK(a.fingerprint() != 0);
}
