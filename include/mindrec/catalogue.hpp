// The catalogue: a shop's own item ids (raw ids: SKUs such as "B00123XYZ", or 64-bit numbers)
// against the dense row ids 1..N-1 that the model, the training data and the stores use.
// Dense inside, raw at the edges: the CLI, mindrec-serve and the Python package translate
// through one Catalogue, once, where an id enters or leaves.
//
// The file (catalogue.csv, written by `mindrec prepare` beside its splits and by `mindrec
// train` beside its weights) is CSV, one item per line, ordered by id:
//
//     id,raw_id,status,clicks
//     1,B00123XYZ,active,532
//     2,0441172717,retired,0
//
//   - id: the dense id, 1..N-1, increasing, each once (gaps allowed: an id without a row is no
//     item; the largest id at most 2 x rows + 1,048,576, as every id up to it costs memory).
//   - raw_id: 1-256 bytes of UTF-8, each raw id once; no comma (the CLI separates ids with
//     commas), no control character (newline, tab, ...). Written quoted (RFC 4180) when it
//     holds a quote or begins or ends with a space. A header `raw_id:int64` makes the raw
//     ids numbers: decimal int64, compared as numbers ("007" is 7); otherwise digits-only
//     ids stay strings ("007" and "7" are two items).
//   - status: `active` or `retired` (an item without clicks in the latest data: it keeps its
//     id and its model row, and `mindrec index` leaves it out of the store).
//   - clicks: the item's clicks in the data the catalogue was made from.
//   Further columns are ignored. Blank lines are skipped.
//
// The fingerprint (recorded in every weights file `mindrec train` writes, with the number of
// ids it covers) hashes the id <-> raw id pairs below that count and the id type, not status
// or clicks: a catalogue that gained items after the model was trained (mindrec-serve's
// /rec/items) still pairs with it; one that maps any trained id to another raw id does not.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mindrec/export.hpp"

namespace mindrec {

struct MindWeights;

enum class ItemStatus : uint8_t { active = 0, retired = 1 };

class MINDREC_API Catalogue {
 public:
  static constexpr size_t kMaxRawIdBytes = 256;

  /// An empty catalogue (no items; item_count() == 1); `numeric` raw ids are int64 numbers.
  explicit Catalogue(bool numeric = false);
  ~Catalogue();
  Catalogue(const Catalogue& other);
  Catalogue& operator=(const Catalogue& other);
  Catalogue(Catalogue&&) noexcept;
  Catalogue& operator=(Catalogue&&) noexcept;

  /// Reads a catalogue file. Throws IoError (cannot read) or FormatError naming the file, the
  /// line and the field: a bad header, id or status, an invalid raw id, a duplicate id or raw id.
  static Catalogue load(const std::string& path);
  /// Writes the file atomically (a temporary name, then renamed).
  void save(const std::string& path) const;

  /// Adds an item with the next id (item_count()) and returns that id. Throws InvalidArgument
  /// if the raw id is invalid or already known.
  int64_t add(std::string_view raw, ItemStatus status = ItemStatus::active, int64_t clicks = 0);
  /// Adds an item with a given id (>= 1, not yet used). Throws InvalidArgument as add().
  void insert(int64_t id, std::string_view raw, ItemStatus status = ItemStatus::active, int64_t clicks = 0);

  /// The dense id of a raw id, or 0 if unknown (numeric catalogues: 0 also for text that is no
  /// int64). Never throws.
  int64_t to_dense(std::string_view raw) const;
  /// to_dense of `n` raw ids into `out` (0 for unknown ones), their memory reads overlapped:
  /// what the edges use for a history (a 20-id history costs about one lookup's latency).
  void to_dense(const std::string_view* raws, size_t n, int64_t* out) const;
  bool contains(std::string_view raw) const { return to_dense(raw) != 0; }
  /// Whether `id` has a row.
  bool has_id(int64_t id) const;
  /// Room for `items` items without regrowing (a load reserves what the file holds).
  void reserve(int64_t items);

  /// The raw id of a dense id; throws InvalidArgument if the id has no row. The view is valid
  /// until the catalogue is changed or destroyed.
  std::string_view to_raw(int64_t id) const;

  ItemStatus status(int64_t id) const;
  void set_status(int64_t id, ItemStatus status);
  int64_t clicks(int64_t id) const;
  void set_clicks(int64_t id, int64_t clicks);

  /// Items (rows).
  int64_t size() const;
  /// The largest id + 1: the model's item_count for this catalogue.
  int64_t item_count() const;
  int64_t active_count() const;
  bool numeric() const;
  /// The file it was loaded from or last saved to ("" if none).
  const std::string& source() const;

  /// A 64-bit fingerprint of the id type and the (id, raw id) pairs with id < `below`
  /// (default: every id). Never 0.
  uint64_t fingerprint(int64_t below = -1) const;

  /// Bytes held beyond the raw ids' own bytes (the per-item overhead the README quotes).
  size_t overhead_bytes() const;

  /// The form a raw id is stored and compared in: itself for string catalogues; for numeric
  /// ones its decimal int64 text ("007" -> "7"). Throws InvalidArgument (prefixed with
  /// `where`) naming what is wrong with an invalid raw id.
  std::string canonical(std::string_view raw, const std::string& where = "") const;

 private:
  struct Data;  // the raw ids' arena, offsets, status, clicks and hash slots (catalogue.cpp)
  std::unique_ptr<Data> d_;

  int64_t find(std::string_view key) const;
  int64_t find_hashed(std::string_view key, uint64_t hash) const;
  void append(int64_t id, std::string_view key, ItemStatus status, int64_t clicks, uint64_t hash);
  void grow_to(int64_t item_count);
  void rehash(size_t slots);
  void check_id(int64_t id, const char* who) const;
};

/// The catalogue file that goes with a weights file: `override_path` when given, else
/// catalogue.csv in the weights' folder when it exists, else "".
MINDREC_API std::string catalogue_path_for(const std::string& weights_path, const std::string& override_path = "");

/// Checks that `catalogue` is the one the weights' item rows belong to: its fingerprint of the
/// ids below the weights' item_count must be the one the weights record. A mismatch throws
/// ConfigError naming both files and both fingerprints, unless `allow_mismatch` (a warning
/// then); weights that record none pass with a warning. A catalogue with fewer ids than the
/// weights' item_count is always refused (ConfigError): rows without a raw id.
MINDREC_API void check_catalogue_pairing(const MindWeights& weights, const Catalogue& catalogue,
                                         const std::string& weights_name, const std::string& catalogue_name,
                                         bool allow_mismatch = false);

/// What every tool does after loading weights: loads the catalogue at
/// catalogue_path_for(weights_path, override_path) and checks it (check_catalogue_pairing).
/// Null when there is none; weights that record a catalogue whose file is missing log a
/// warning (dense ids only) unless `required`, which throws ConfigError saying what to pass.
MINDREC_API std::shared_ptr<Catalogue> load_weights_catalogue(const std::string& weights_path, const MindWeights& weights,
                                                              const std::string& override_path = "",
                                                              bool allow_mismatch = false, bool required = false);

}  // namespace mindrec
