// The HTML report: one self-contained file (inline CSS and SVG, no script, no external resource), so it
// can be archived as a CI artifact and opened anywhere, offline.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "report/report.h"
#include "report/svg.h"

namespace qreport::report {
namespace {

using detectors::Value;
using svg::escape;

using detectors::find_field;

std::optional<double> number(const Value* v) {
  if (!v) return std::nullopt;
  if (v->type == Value::Type::Float) return v->f;
  if (v->type == Value::Type::Int) return static_cast<double>(v->i);
  return std::nullopt;
}

std::vector<std::optional<double>> numbers(const Value* v) {
  std::vector<std::optional<double>> out;
  if (v && v->type == Value::Type::List)
    for (const auto& x : v->list) out.push_back(number(&x));
  return out;
}

std::string show(const Value& v) {
  char buf[40];
  switch (v.type) {
    case Value::Type::Null: return "null";
    case Value::Type::Bool: return v.b ? "true" : "false";
    case Value::Type::Int: return std::to_string(v.i);
    case Value::Type::Float:
      if (!std::isfinite(v.f)) return "null";
      std::snprintf(buf, sizeof buf, "%.6g", v.f);
      return buf;
    case Value::Type::String: return v.s;
    case Value::Type::List: return "[" + std::to_string(v.list.size()) + " values]";
    case Value::Type::Object: return "{" + std::to_string(v.members.size()) + " keys}";
  }
  return "";
}

// A table of the module fields that are scalars (lists are plotted instead).
std::string modules_table(const detectors::DetectorResult& res) {
  std::vector<std::string> keys;
  for (const auto& m : res.modules)
    for (const auto& [k, v] : m.fields)
      if (v.type != Value::Type::List && std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  if (res.modules.empty()) return "<p class=\"none\">No module is in this detector's scope.</p>";
  std::string out = "<div class=\"scroll\"><table><thead><tr><th>module</th>";
  for (const auto& k : keys) out += "<th>" + escape(k) + "</th>";
  out += "</tr></thead><tbody>";
  for (const auto& m : res.modules) {
    out += "<tr><td><code>" + escape(m.fqn) + "</code></td>";
    for (const auto& k : keys) {
      const Value* v = find_field(m.fields, k);
      // Highlight the recommendations, not every true flag (such as "supported").
      bool advice = k.find("recommended") != std::string::npos || k.find("detected") != std::string::npos;
      std::string cls = v && v->type == Value::Type::Bool && advice ? (v->b ? " class=\"yes\"" : " class=\"no\"") : "";
      out += "<td" + cls + ">" + (v ? escape(show(*v)) : "") + "</td>";
    }
    out += "</tr>";
  }
  return out + "</tbody></table></div>";
}

std::string plots(const detectors::DetectorResult& res) {
  std::string out;
  if (res.name == "dynamic_vs_static_detector") {
    svg::BarChart ch;
    ch.title = "S = average batch range / epoch range, per module (input activation)";
    ch.y_label = "S";
    ch.threshold = number(find_field(res.options, "tolerance"));
    ch.threshold_label = "tolerance";
    ch.above_is_bad = false;  // S <= tolerance: non-stationary, dynamic recommended
    for (const auto& m : res.modules) {
      ch.labels.push_back(m.fqn);
      ch.values.push_back(number(find_field(m.fields, "input_activation_dynamic_static_comp_stat")));
    }
    if (!ch.values.empty()) out += "<figure>" + svg::bar_chart(ch) + "</figure>";
  } else if (res.name == "input_weight_equalization_detector") {
    for (const auto& m : res.modules) {
      svg::RangeSeries in{"input activation", "#1f77b4",
                          numbers(find_field(m.fields, "input_activation_per_channel_min")),
                          numbers(find_field(m.fields, "input_activation_per_channel_max"))};
      svg::RangeSeries w{"weight", "#ff7f0e", numbers(find_field(m.fields, "weight_per_channel_min")),
                         numbers(find_field(m.fields, "weight_per_channel_max"))};
      out += "<figure>" + svg::range_chart(m.fqn + ": per-channel ranges", {in, w}) + "</figure>";
    }
  } else if (res.name == "outlier_detector") {
    for (const auto& m : res.modules) {
      svg::BarChart ch;
      ch.title = m.fqn + ": max / reference percentile, per channel";
      ch.y_label = "ratio (log)";
      ch.log_scale = true;
      ch.threshold = number(find_field(res.options, "ratio_threshold"));
      ch.threshold_label = "ratio threshold";
      ch.values = numbers(find_field(m.fields, "outlier_detection_percentile_ratios"));
      for (size_t c = 0; c < ch.values.size(); ++c) ch.labels.push_back("ch " + std::to_string(c));
      out += "<figure>" + svg::bar_chart(ch) + "</figure>";
    }
  }
  return out;
}

const char* kStyle =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}"
    "h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}"
    "table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;"
    "text-align:left}th{background:#f3f3f3}td.yes{background:#fde2e1}td.no{color:#777}"
    "pre{background:#f7f7f7;padding:.8em;white-space:pre-wrap;font-size:.85em}"
    "figure{margin:.5em 0}.ct{font-size:13px;font-weight:600}.tk{font-size:10px;fill:#444}.na{font-size:9px;fill:#999}"
    ".none{color:#777}.warn li{color:#8a5a00}.scroll{overflow-x:auto}";

}  // namespace

std::string to_html(const Report& r) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>qreport: " +
                    escape(r.model_path) + "</title><style>" + kStyle + "</style></head><body>\n";
  out += "<h1>qreport " QREPORT_VERSION "</h1><table id=\"summary\"><tbody>";
  out += "<tr><th>model</th><td><code>" + escape(r.model_path) + "</code> (" + std::to_string(r.model_modules) +
         " modules)</td></tr><tr><th>sha256</th><td><code>" + r.model_sha256 + "</code></td></tr>";
  out += "<tr><th>calibration</th><td><code>" + escape(r.calib_path) + "</code>, " + std::to_string(r.batches) +
         " batches on " + escape(r.device) + "</td></tr></tbody></table>\n";

  auto found = findings(r);
  out += "<h2 id=\"findings\">Findings</h2>";
  if (found.empty()) {
    out += "<p class=\"none\">No findings.</p>";
  } else {
    out += "<table><thead><tr><th>kind</th><th>module</th><th>detail</th></tr></thead><tbody>";
    for (const auto& f : found)
      out += "<tr><td>" + escape(f.kind) + "</td><td><code>" + escape(f.fqn) + "</code></td><td>" + escape(f.detail) +
             "</td></tr>";
    out += "</tbody></table>";
  }
  for (const auto& res : r.results) {
    out += "\n<section id=\"" + escape(res.name) + "\"><h2>" + escape(res.name) + "</h2>";
    out += "<table class=\"options\"><tbody>";
    for (const auto& [k, v] : res.options) out += "<tr><th>" + escape(k) + "</th><td>" + escape(show(v)) + "</td></tr>";
    out += "</tbody></table>";
    out += plots(res);
    out += modules_table(res);
    out += "<details><summary>PyTorch's report text</summary><pre>" + escape(res.text) + "</pre></details></section>";
  }
  if (!r.warnings.empty()) {
    out += "\n<h2 id=\"warnings\">Warnings</h2><ul class=\"warn\">";
    for (const auto& w : r.warnings) out += "<li>" + escape(w) + "</li>";
    out += "</ul>";
  }
  return out + "\n</body></html>\n";
}

}  // namespace qreport::report
