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
// one row of markers per finding kind, one row of cells per requested scheme (the layer's local output
// SQNR, coloured by band and written in the cell where it fits), and the sensitivity bars (the model output
// SQNR with only this layer quantized; the disable-one figure a tick; kept layers marked). The layer names
// are written under all of it. Each column's hover text is `hover`.
struct OverviewLayer {
  std::string name;   // written under the column
  std::string hover;
  std::optional<double> weight_default, weight_best, input_default, input_best;
  std::vector<bool> markers;                   // one per OverviewChart::marker_names
  std::vector<std::optional<double>> schemes;  // one per OverviewChart::scheme_names; null: not quantized
  bool sensitivity = false;                    // a candidate of --sensitivity's scheme (quantized in its runs)
  std::optional<double> enable_db, skip_db;    // its enable-one and disable-one figures (null: no noise)
  bool kept = false;                           // in the plan's keep list
};
struct OverviewChart {
  std::string title;
  std::vector<std::string> marker_names;
  std::vector<std::string> scheme_names;  // the rows of local output SQNR (none without --schemes)
  std::string sensitivity_label;          // the bars' row label ("" without --sensitivity)
  double sensitivity_top = 50;            // the bars' dB scale, 0 to this
  bool disable_one = true;                // the disable-one runs ran: draw their ticks
  std::optional<double> target_db;        // --target-sqnr, a dashed line across the bars
  double width_budget = 1040;             // the chart's width before it grows past kMinSlot per layer
  std::vector<OverviewLayer> layers;
};
std::string overview_chart(const OverviewChart& chart);

// &, <, >, " for HTML/SVG text and attributes; a byte that is not UTF-8 as U+FFFD and a control character
// (other than tab, newline, carriage return) as its Control Pictures symbol, so the page is valid UTF-8 HTML
// whatever bytes a module name or path holds.
std::string escape(const std::string& text);

}  // namespace qreport::report::svg
