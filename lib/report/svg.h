// Internal: small inline-SVG charts for the HTML report. Output is deterministic text (fixed precision)
// and needs no script: the charts are readable as static images.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace qreport::report::svg {

// One series of per-channel [lo, hi] ranges; nullopt entries are skipped.
struct RangeSeries {
  std::string name, color;
  std::vector<std::optional<double>> lo, hi;
};

// Range bars per channel, several series side by side (equalization: input vs weight ranges).
std::string range_chart(const std::string& title, const std::vector<RangeSeries>& series);

// One bar per item with an optional horizontal threshold line; bars above the threshold are drawn in the
// alarm colour when above_is_bad, below it otherwise. log_scale for ratios spanning decades.
struct BarChart {
  std::string title, y_label;
  std::string x_label = "items";  // what the bars are, in the count shown when labels do not fit
  std::vector<std::string> labels;
  std::vector<std::optional<double>> values;
  std::optional<double> threshold;
  std::string threshold_label;
  bool above_is_bad = true;
  bool log_scale = false;
  // +inf values are drawn as a marker at the top, written "inf", and never scale the axis; the note says
  // why they are infinite, in their hover text and the chart's legend.
  std::string inf_note;
};
std::string bar_chart(const BarChart& chart);

// The overview of the HTML report: one column per observed layer in graph order, its SQNR (weight and
// input, the default quantizer hollow, the recommended one filled, joined by a line) and, under the plot,
// one row of markers per finding kind. Each column's hover text is `hover`.
struct OverviewLayer {
  std::string name;   // written under the column
  std::string hover;
  std::optional<double> weight_default, weight_best, input_default, input_best;
  std::vector<bool> markers;  // one per OverviewChart::marker_names
};
struct OverviewChart {
  std::string title;
  std::vector<std::string> marker_names;
  std::vector<OverviewLayer> layers;
};
std::string overview_chart(const OverviewChart& chart);

std::string escape(const std::string& text);  // &, <, >, " for HTML/SVG text and attributes

}  // namespace qreport::report::svg
