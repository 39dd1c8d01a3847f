// Dataset preparation (mind-spec.md, "Data formats": ComiRec's preparation) from a raw
// `user,item,timestamp` log with arbitrary string or integer ids.
#pragma once

#include <cstdint>
#include <string>

#include "mindrec/export.hpp"

namespace mindrec {

struct MINDREC_API PrepareOptions {
  int min_count = 5;    ///< keep items with >= min_count clicks, then users with >= min_count of those
  uint64_t seed = 2021; ///< shuffles users before the 80/10/10 split
  /// Which fields are user, item and time: "user=1,item=2,time=4" (1-based) or header names
  /// ("user=customer_id,item=sku,time=ts": the first line is then the header). "" = the
  /// line's 3 fields in that order.
  std::string columns;
  /// The previous catalogue (catalogue.hpp), e.g. yesterday's DIR/catalogue.csv: every item it
  /// knows keeps its id, new items get ids after its largest (by falling popularity), no id is
  /// reused, and its items without clicks in today's data (after the k-core filter) are marked
  /// retired (they keep their id and row). "" = number the items 1..n afresh.
  std::string catalogue;
  /// Raw item ids are int64 numbers ("007" is 7; the catalogue's `raw_id:int64`). Taken from
  /// the previous catalogue when there is one (a conflict is an InvalidArgument).
  bool numeric_ids = false;
};

struct MINDREC_API PrepareReport {
  int64_t lines = 0, clicks_kept = 0;
  int64_t items = 0;       ///< kept items (active in the catalogue): 1..items by falling popularity without a previous catalogue
  int64_t item_count = 0;  ///< the catalogue's largest id + 1: the config's hyper_parameters.item_count
  /// With a previous catalogue: its items kept with their id and clicks today, the items it did
  /// not know (new ids), and its items now retired (no clicks today; retired before included).
  int64_t kept = 0, added = 0, retired = 0;
  int64_t users = 0, train_users = 0, valid_users = 0, test_users = 0;
};

/// Reads `input` line by line: comma-separated (RFC 4180 quoting: `"B 00011, red"`, `""` for
/// a quote) or whitespace-separated fields, `user item timestamp` or the fields
/// options.columns names; timestamps are numbers (epoch seconds) or ISO-8601 dates and times
/// (`2024-01-01T10:00:00Z`, a zone offset or none: UTC). Blank lines, lines starting with '#'
/// and a first line whose timestamp cannot be read (a header) are skipped; any other malformed
/// line is refused with its number and what is wrong. Then it
/// filters, renumbers, splits users 80/10/10 after a seeded shuffle, sorts each user's clicks
/// by time (ties keep file order) and writes into `out_dir`: train/data.txt
/// (`user_id,item_id,order`), valid/data.txt and test/data.txt (`slot:value`, first 80% of
/// each sequence as history), catalogue.csv (catalogue.hpp: every item's id, raw id, status
/// and clicks), item_map.csv and user_map.csv (`raw_id,id`, raw ids quoted when they hold a
/// comma or a quote), and dataset.json with the counts. Every file is written atomically.
/// Item raw ids must be catalogue raw ids (1-256 bytes of UTF-8, no comma or control
/// character): any other is refused naming its line.
MINDREC_API PrepareReport prepare_dataset(const std::string& input, const std::string& out_dir,
                              const PrepareOptions& options);

}  // namespace mindrec
