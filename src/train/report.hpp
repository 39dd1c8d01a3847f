// The training report written by run_training (train.hpp): a CSV of loss and metrics per epoch
// (metrics.csv) and an SVG plot of loss and Recall@50 against epoch (metrics.svg).
#pragma once

#include <string>
#include <vector>

#include "mindrec/train.hpp"

namespace mindrec::train {

/// Writes the CSV atomically (header + one row per epoch).
void write_csv(const std::string& path, const std::vector<EpochRecord>& rows);
/// Reads a CSV written by write_csv (for --resume); rows past `max_epoch` are dropped.
std::vector<EpochRecord> read_csv(const std::string& path, int max_epoch);
/// Writes an SVG line chart: loss (left axis) and Recall@50 (right axis) against epoch.
void write_svg(const std::string& path, const std::vector<EpochRecord>& rows, const std::string& title);

}  // namespace mindrec::train
