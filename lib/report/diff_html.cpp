// The diff as one self-contained HTML page (no script, no external resource), like the report's.
#include <cstdio>
#include <optional>

#include "report/report.h"
#include "report/svg.h"

namespace qreport::report {
namespace {

using svg::escape;

constexpr const char* kDiffStyle =
    "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#f4f4f4}"
    ".added{color:#b00020}.removed{color:#1b5e20}code{font-size:95%}";

std::string table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows,
                  const std::string& row_class) {
  if (rows.empty()) return "<p>none</p>\n";
  std::string out = "<table><thead><tr>";
  for (const auto& h : head) out += "<th>" + escape(h) + "</th>";
  out += "</tr></thead><tbody>";
  for (const auto& r : rows) {
    out += "<tr" + (row_class.empty() ? std::string() : " class=\"" + row_class + "\"") + ">";
    for (const auto& c : r) out += "<td>" + escape(c) + "</td>";
    out += "</tr>";
  }
  return out + "</tbody></table>\n";
}

std::string number(const std::optional<double>& v) {
  if (!v) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", *v);
  return b;
}

std::string change(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b) return "";
  char s[32];
  std::snprintf(s, sizeof s, "%+.2f", *b - *a);
  return s;
}

}  // namespace

std::string to_html(const ReportDiff& d) {
  std::string out = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>qreport diff</title><style>" +
                    std::string(kDiffStyle) + "</style></head><body>\n<h1>qreport diff</h1>\n";
  out += "<p><code>" + escape(d.old_name) + "</code> &rarr; <code>" + escape(d.new_name) + "</code>: model " +
         (d.old_sha256 == d.new_sha256 ? "unchanged" : "changed") + "</p>\n";
  for (const auto& w : d.warnings) out += "<p><strong>warning:</strong> " + escape(w) + "</p>\n";
  std::vector<std::vector<std::string>> outputs;
  for (const auto& m : d.model_output)
    outputs.push_back({m.config, m.in_old ? number(m.old_db) : "(absent)", m.in_new ? number(m.new_db) : "(absent)",
                       m.in_old && m.in_new ? change(m.old_db, m.new_db) : ""});
  out += "<section id=\"model_output\"><h2>Model output SQNR (simulation)</h2>" +
         (outputs.empty() ? std::string("<p>Neither report has one (<code>qreport analyze --simulate</code>).</p>\n")
                          : table({"configuration", "before (dB)", "after (dB)", "change (dB)"}, outputs, "")) +
         "</section>\n";
  auto findings_rows = [](const std::vector<Finding>& fs) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : fs) rows.push_back({f.kind, f.fqn, f.detail});
    return rows;
  };
  out += "<section id=\"findings\"><h2>Findings</h2><h3>Appeared</h3>" +
         table({"kind", "module", "detail"}, findings_rows(d.appeared), "added") + "<h3>Disappeared</h3>" +
         table({"kind", "module", "detail"}, findings_rows(d.disappeared), "removed");
  std::vector<std::vector<std::string>> changed;
  for (const auto& c : d.changed) changed.push_back({c.kind, c.fqn, c.old_detail, c.new_detail});
  out += "<h3>Changed</h3>" + table({"kind", "module", "before", "after"}, changed, "") + "</section>\n";
  std::vector<std::vector<std::string>> dbs;
  size_t hidden = 0;
  for (const auto& c : d.decibels) {
    if (!listed(d, c)) {
      ++hidden;
      continue;
    }
    dbs.push_back({c.fqn, c.key, c.detector, number(c.old_db), number(c.new_db), change(c.old_db, c.new_db)});
  }
  char threshold[32];
  std::snprintf(threshold, sizeof threshold, "%.2f", d.min_change_db);
  out += "<section id=\"db\"><h2>SQNR changes</h2>" +
         table({"module", "value", "source", "before (dB)", "after (dB)", "change (dB)"}, dbs, "") +
         (hidden ? "<p>" + std::to_string(hidden) + " smaller than " + threshold + " dB not listed.</p>\n"
                 : std::string()) +
         "</section>\n";
  std::vector<std::vector<std::string>> added, removed, settings;
  for (const auto& m : d.modules_added) added.push_back({m});
  for (const auto& m : d.modules_removed) removed.push_back({m});
  for (const auto& s : d.settings_changed) settings.push_back({s.key, s.old_value, s.new_value});
  out += "<section id=\"modules\"><h2>Modules</h2><h3>Added</h3>" + table({"module"}, added, "added") +
         "<h3>Removed</h3>" + table({"module"}, removed, "removed") + "</section>\n";
  out += "<section id=\"settings\"><h2>Settings</h2>" + table({"setting", "before", "after"}, settings, "") +
         "</section>\n</body></html>\n";
  return out;
}

}  // namespace qreport::report
