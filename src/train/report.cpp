#include "train/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include "mindrec/file_io.hpp"
#include "mindrec/error.hpp"

namespace mindrec::train {

// The popularity columns were added after the first version: read_csv accepts files without them.
static const char* kHeaderV1 =
    "epoch,loss,seconds,samples_per_s,recall@20,ndcg@20,hitrate@20,recall@50,ndcg@50,hitrate@50";
static const char* kHeader =
    "epoch,loss,seconds,samples_per_s,recall@20,ndcg@20,hitrate@20,recall@50,ndcg@50,hitrate@50,"
    "pop_recall@20,pop_ndcg@20,pop_hitrate@20,pop_recall@50,pop_ndcg@50,pop_hitrate@50";

// The evaluation columns after the first four, in file order (the last six: the baseline's).
static double EpochRecord::* const kEvalColumns[] = {
    &EpochRecord::recall20,     &EpochRecord::ndcg20,     &EpochRecord::hitrate20,     &EpochRecord::recall50,
    &EpochRecord::ndcg50,       &EpochRecord::hitrate50,  &EpochRecord::pop_recall20,  &EpochRecord::pop_ndcg20,
    &EpochRecord::pop_hitrate20, &EpochRecord::pop_recall50, &EpochRecord::pop_ndcg50, &EpochRecord::pop_hitrate50};
static constexpr size_t kColumns = 4 + std::size(kEvalColumns);

void write_csv(const std::string& path, const std::vector<EpochRecord>& rows) {
  write_file_atomic(path, [&](std::ostream& out) {
    out << kHeader << '\n';
    char buf[512];
    for (const auto& r : rows) {
      std::snprintf(buf, sizeof buf, "%d,%.6f,%.3f,%.1f", r.epoch, r.loss, r.seconds, r.samples_per_s);
      out << buf;
      for (auto column : kEvalColumns) {
        if (r.has_eval) std::snprintf(buf, sizeof buf, ",%.6f", r.*column);
        out << (r.has_eval ? buf : ",");
      }
      out << '\n';
    }
  });
}

std::vector<EpochRecord> read_csv(const std::string& path, int max_epoch) {
  std::vector<EpochRecord> rows;
  std::ifstream in(path);
  if (!in) return rows;
  std::string line;
  std::getline(in, line);
  const bool v1 = line == kHeaderV1;
  if (!v1 && line != kHeader) return rows;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    while (f.size() < kColumns) f.emplace_back();
    EpochRecord r;
    try {
      r.epoch = std::stoi(f[0]);
      r.loss = std::stod(f[1]);
      r.seconds = std::stod(f[2]);
      r.samples_per_s = std::stod(f[3]);
      if (!f[4].empty()) {
        r.has_eval = true;
        const size_t n = v1 ? 6 : std::size(kEvalColumns);  // v1: no baseline columns
        for (size_t c = 0; c < n; ++c) r.*kEvalColumns[c] = std::stod(f[4 + c]);
      }
    } catch (const std::exception&) {
      throw FormatError(path + ": malformed line '" + line + "'");
    }
    if (r.epoch <= max_epoch) rows.push_back(r);
  }
  return rows;
}

void write_svg(const std::string& path, const std::vector<EpochRecord>& rows, const std::string& title) {
  const double W = 720, Hh = 420, left = 70, right = 70, top = 50, bottom = 60;
  const double pw = W - left - right, ph = Hh - top - bottom;
  const int e0 = rows.empty() ? 0 : rows.front().epoch, e1 = rows.empty() ? 1 : rows.back().epoch;
  double lmin = 1e300, lmax = -1e300, rmax = 0;
  bool any_eval = false;
  for (const auto& r : rows) {
    lmin = std::min(lmin, r.loss);
    lmax = std::max(lmax, r.loss);
    if (r.has_eval) any_eval = true, rmax = std::max({rmax, r.recall50, r.pop_recall50});
  }
  if (rows.empty()) lmin = 0, lmax = 1;
  if (lmax - lmin < 1e-12) lmax = lmin + 1;
  const double lpad = 0.05 * (lmax - lmin);
  lmin -= lpad;
  lmax += lpad;
  if (rmax <= 0) rmax = 1;
  rmax *= 1.1;
  auto x = [&](int e) { return left + (e1 == e0 ? pw / 2 : pw * double(e - e0) / double(e1 - e0)); };
  auto yl = [&](double v) { return top + ph * (1 - (v - lmin) / (lmax - lmin)); };
  auto yr = [&](double v) { return top + ph * (1 - v / rmax); };
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << Hh
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << W / 2 << "\" y=\"25\" text-anchor=\"middle\" font-size=\"15\">" << title << "</text>\n"
    << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int i = 0; i <= 4; ++i) {  // grid and tick labels
    const double v = lmin + (lmax - lmin) * i / 4, y = yl(v);
    s << "<line x1=\"" << left << "\" x2=\"" << left + pw << "\" y1=\"" << y << "\" y2=\"" << y
      << "\" stroke=\"#ddd\"/>\n<text x=\"" << left - 6 << "\" y=\"" << y + 4
      << "\" text-anchor=\"end\" fill=\"#1f77b4\">" << v << "</text>\n";
    if (any_eval)
      s << "<text x=\"" << left + pw + 6 << "\" y=\"" << y + 4 << "\" fill=\"#d62728\">"
        << 100 * rmax * i / 4 << "%</text>\n";
  }
  const int step = std::max(1, (e1 - e0) / 10);
  for (int e = e0; e <= e1; e += step)
    s << "<text x=\"" << x(e) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">" << e << "</text>\n";
  s << "<text x=\"" << left + pw / 2 << "\" y=\"" << Hh - 15 << "\" text-anchor=\"middle\">epoch</text>\n"
    << "<text x=\"18\" y=\"" << top + ph / 2 << "\" transform=\"rotate(-90 18 " << top + ph / 2
    << ")\" text-anchor=\"middle\" fill=\"#1f77b4\">training loss</text>\n";
  if (any_eval)
    s << "<text x=\"" << W - 15 << "\" y=\"" << top + ph / 2 << "\" transform=\"rotate(90 "
      << W - 15 << " " << top + ph / 2 << ")\" text-anchor=\"middle\" fill=\"#d62728\">Recall@50</text>\n";
  auto polyline = [&](const char* color, auto&& ypos, bool eval_only) {
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const auto& r : rows)
      if (!eval_only || r.has_eval) s << x(r.epoch) << "," << ypos(r) << " ";
    s << "\"/>\n";
    for (const auto& r : rows)
      if (!eval_only || r.has_eval)
        s << "<circle cx=\"" << x(r.epoch) << "\" cy=\"" << ypos(r) << "\" r=\"3\" fill=\"" << color << "\"/>\n";
  };
  polyline("#1f77b4", [&](const EpochRecord& r) { return yl(r.loss); }, false);
  if (any_eval) {
    polyline("#d62728", [&](const EpochRecord& r) { return yr(r.recall50); }, true);
    // The popularity baseline's Recall@50 on the same users (dashed), and a legend.
    double pop = -1;
    for (const auto& r : rows)
      if (r.has_eval) pop = r.pop_recall50;
    if (pop > 0)
      s << "<line x1=\"" << left << "\" x2=\"" << left + pw << "\" y1=\"" << yr(pop) << "\" y2=\"" << yr(pop)
        << "\" stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n";
    s << "<text x=\"" << left + 8 << "\" y=\"" << top + 16 << "\" fill=\"#1f77b4\">training loss</text>\n"
      << "<text x=\"" << left + 8 << "\" y=\"" << top + 32 << "\" fill=\"#d62728\">validation Recall@50</text>\n";
    if (pop > 0)
      s << "<text x=\"" << left + 8 << "\" y=\"" << top + 48 << "\" fill=\"#d62728\">- - popularity baseline Recall@50 ("
        << 100 * pop << "%)</text>\n";
  }
  s << "</svg>\n";
  write_file_atomic(path, [&](std::ostream& out) { out << s.str(); });
}

}  // namespace mindrec::train
