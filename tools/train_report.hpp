// The training report of `mindrec train`: a CSV of loss and metrics per epoch and an SVG plot
// of loss and Recall@50 against epoch.
#pragma once

#include <string>
#include <vector>

namespace mindrec::tools {

struct EpochRow {
  int epoch = 0;
  double loss = 0, seconds = 0, samples_per_s = 0;
  bool has_eval = false;
  double recall20 = 0, ndcg20 = 0, hitrate20 = 0, recall50 = 0, ndcg50 = 0, hitrate50 = 0;
};

/// Writes the CSV atomically (header + one row per epoch).
void write_csv(const std::string& path, const std::vector<EpochRow>& rows);
/// Reads a CSV written by write_csv (for --resume); rows past `max_epoch` are dropped.
std::vector<EpochRow> read_csv(const std::string& path, int max_epoch);
/// Writes an SVG line chart: loss (left axis) and Recall@50 (right axis) against epoch.
void write_svg(const std::string& path, const std::vector<EpochRow>& rows, const std::string& title);

}  // namespace mindrec::tools
