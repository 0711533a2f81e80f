// qreport diff: two saved reports (this commit's model against the last good one), compared by what a CI
// gate acts on. Findings are matched by (kind, module); modules by name (renames are not guessed: a
// removal and an addition); options and calibration settings by value, with a warning when they differ;
// the simulated model output SQNR; and every SQNR figure by module (is_sqnr_key: SQNRs, not gains, since
// a gain that shrinks is not a loss of accuracy), listed when it moved by more than --min-change.
// Both reports go through the same schema walk (saved_report.h); everything after it is linear or
// n log n in the report's size.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "common/errors.h"
#include "report/json_text.h"
#include "report/report.h"
#include "report/saved_report.h"

namespace qreport::report {
namespace {

using ojson = nlohmann::ordered_json;
using Figures = std::map<std::tuple<std::string, std::string, std::string>, std::optional<double>>;

std::set<std::string> module_names(const Report& r) {
  std::set<std::string> out;
  for (const auto& res : r.results)
    for (const auto& m : res.modules) out.insert(m.fqn);
  return out;
}

// (detector, module, key) -> value, for every SQNR figure: the detectors' per-module keys that name an
// SQNR (is_sqnr_key), and each simulated configuration's layer outputs.
Figures sqnr_figures(const Report& r) {
  Figures out;
  for (const auto& res : r.results)
    for (const auto& m : res.modules)
      for (const auto& [k, v] : m.fields)
        if (is_sqnr_key(k))  // the reader made these Float or Null
          out[{res.name, m.fqn, k}] = v.type == detectors::Value::Type::Float ? std::optional<double>(v.f) : std::nullopt;
  for (const auto& c : r.simulation.configs)
    for (const auto& [site, v] : c.layers) out[{"simulation." + c.name, site, "layers_output_sqnr_db"}] = v;
  return out;
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}
std::string fmt(const std::optional<double>& v) { return v ? fmt(*v) : std::string("null"); }

// "fc1 sqnr_db (quantization_error_detector)", or "model output_sqnr_db (simulation.recommended)".
std::string figure_name(const std::string& source, const std::string& fqn, const std::string& key) {
  return (fqn.empty() ? std::string("model") : fqn) + " " + key + " (" + source + ")";
}

// "31.25 -> 22.75 (-8.50 dB)", "31.25 -> null".
std::string change_text(const std::optional<double>& a, const std::optional<double>& b) {
  std::string s = fmt(a) + " -> " + fmt(b);
  if (a && b) s += " (" + std::string(*b >= *a ? "+" : "") + fmt(*b - *a) + " dB)";
  return s;
}

std::optional<std::string> drop_line(const std::string& name, const std::optional<double>& a,
                                     const std::optional<double>& b, double max_drop) {
  char bound[32];
  std::snprintf(bound, sizeof bound, "%g", max_drop);
  if (a && !b)
    return name + " became null (" + fmt(a) + " -> null: not measurable, the new report's warnings say why), "
                                               "gated by --max-sqnr-drop " + bound;
  if (a && b && *a - *b > max_drop)
    return name + " dropped by " + fmt(*a - *b) + " dB (" + fmt(a) + " -> " + fmt(b) + "), more than --max-sqnr-drop " +
           bound;
  return std::nullopt;
}

}  // namespace

bool listed(const ReportDiff& d, const DecibelChange& c) {
  return !c.old_db || !c.new_db || std::fabs(*c.new_db - *c.old_db) > d.min_change_db;
}

ReportDiff diff_reports(const std::string& old_text, const std::string& new_text, const std::string& old_name,
                        const std::string& new_name, const DiffOptions& options) {
  const SavedReport a = read_saved_report(old_text, old_name), b = read_saved_report(new_text, new_name);
  ReportDiff d;
  d.old_name = old_name;
  d.new_name = new_name;
  d.old_sha256 = a.report.model_sha256;
  d.new_sha256 = b.report.model_sha256;
  d.min_change_db = options.min_change_db;

  const auto ma = module_names(a.report), mb = module_names(b.report);
  std::set_difference(mb.begin(), mb.end(), ma.begin(), ma.end(), std::back_inserter(d.modules_added));
  std::set_difference(ma.begin(), ma.end(), mb.begin(), mb.end(), std::back_inserter(d.modules_removed));

  const std::map<std::string, std::string> sa(a.settings.begin(), a.settings.end()),
      sb(b.settings.begin(), b.settings.end());
  std::set<std::string> keys;
  for (const auto& [k, v] : sa) keys.insert(k);
  for (const auto& [k, v] : sb) keys.insert(k);
  for (const auto& k : keys) {
    auto ia = sa.find(k), ib = sb.find(k);
    const std::string va = ia == sa.end() ? "(absent)" : ia->second;
    const std::string vb = ib == sb.end() ? "(absent)" : ib->second;
    if (va != vb) d.settings_changed.push_back({k, va, vb});
  }
  if (!d.settings_changed.empty())
    d.warnings.push_back("the two reports used different settings (" + std::to_string(d.settings_changed.size()) +
                         " changed): differences below may come from the settings, not the model");

  // Findings by (kind, module), in the new report's order (then the old one's for the disappeared); the
  // index keeps this linear in the number of findings.
  const auto fa = findings(a.report), fb = findings(b.report);
  auto index = [](const std::vector<Finding>& fs) {
    std::unordered_map<std::string, const Finding*> out;
    out.reserve(fs.size());
    for (const auto& f : fs) out.emplace(f.kind + '\n' + f.fqn, &f);  // kinds hold no newline
    return out;
  };
  const auto ia = index(fa), ib = index(fb);
  for (const auto& f : fb) {
    auto it = ia.find(f.kind + '\n' + f.fqn);
    if (it == ia.end())
      d.appeared.push_back(f);
    else if (it->second->detail != f.detail)
      d.changed.push_back({f.kind, f.fqn, it->second->detail, f.detail});
  }
  for (const auto& f : fa)
    if (!ib.count(f.kind + '\n' + f.fqn)) d.disappeared.push_back(f);

  // The model's output SQNR, for every configuration either report simulated.
  auto config = [&](const std::string& name) -> ModelOutputSqnr& {
    for (auto& m : d.model_output)
      if (m.config == name) return m;
    d.model_output.push_back({name});
    return d.model_output.back();
  };
  for (const auto& c : b.report.simulation.configs) {
    auto& m = config(c.name);
    m.in_new = true;
    m.new_db = c.output_sqnr_db;
  }
  for (const auto& c : a.report.simulation.configs) {
    auto& m = config(c.name);
    m.in_old = true;
    m.old_db = c.output_sqnr_db;
  }

  const Figures da = sqnr_figures(a.report), db = sqnr_figures(b.report);
  for (const auto& [key, vb] : db) {
    auto it = da.find(key);
    if (it == da.end() || it->second == vb) continue;
    d.decibels.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), it->second, vb});
  }
  return d;
}

std::vector<std::string> drops_beyond(const ReportDiff& d, double max_drop) {
  std::vector<std::string> out;
  for (const auto& m : d.model_output)
    if (m.in_old && m.in_new)
      if (auto line = drop_line(figure_name("simulation." + m.config, "", "output_sqnr_db"), m.old_db, m.new_db, max_drop))
        out.push_back(*line);
  for (const auto& c : d.decibels)
    if (auto line = drop_line(figure_name(c.detector, c.fqn, c.key), c.old_db, c.new_db, max_drop)) out.push_back(*line);
  return out;
}

std::string to_text(const ReportDiff& d) {
  std::string out = "qreport diff " + d.old_name + " -> " + d.new_name + "\n";
  out += d.old_sha256 == d.new_sha256 ? "model: the same file (sha256)\n" : "model: changed (sha256 differs)\n";
  // The model's output SQNR first: it is the figure that says whether the model still works quantized.
  out += "\n== model output SQNR (simulation) ==\n";
  if (d.model_output.empty()) out += "  neither report has one (qreport analyze --simulate)\n";
  for (const auto& m : d.model_output)
    out += "  " + m.config + ": " + (m.in_old ? fmt(m.old_db) : "(absent)") + " -> " +
           (m.in_new ? fmt(m.new_db) : "(absent)") +
           (m.in_old && m.in_new && m.old_db && m.new_db
                ? " (" + std::string(*m.new_db >= *m.old_db ? "+" : "") + fmt(*m.new_db - *m.old_db) + " dB)"
                : std::string()) +
           "\n";
  auto section = [&](const std::string& title, size_t n) { out += "\n== " + title + " (" + std::to_string(n) + ") ==\n"; };
  section("settings changed", d.settings_changed.size());
  for (const auto& s : d.settings_changed) out += "  " + s.key + ": " + s.old_value + " -> " + s.new_value + "\n";
  section("modules added", d.modules_added.size());
  for (const auto& m : d.modules_added) out += "  + " + m + "\n";
  section("modules removed", d.modules_removed.size());
  for (const auto& m : d.modules_removed) out += "  - " + m + "\n";
  section("findings appeared", d.appeared.size());
  for (const auto& f : d.appeared) out += "  + " + f.kind + " " + f.fqn + ": " + f.detail + "\n";
  section("findings disappeared", d.disappeared.size());
  for (const auto& f : d.disappeared) out += "  - " + f.kind + " " + f.fqn + ": " + f.detail + "\n";
  section("findings changed", d.changed.size());
  for (const auto& c : d.changed) out += "  ~ " + c.kind + " " + c.fqn + ": " + c.old_detail + " -> " + c.new_detail + "\n";
  size_t shown = 0;
  for (const auto& c : d.decibels) shown += listed(d, c);
  out += "\n== SQNR changes (" + std::to_string(shown) + ") ==\n";
  if (shown < d.decibels.size())
    out += "  (" + std::to_string(d.decibels.size() - shown) + " smaller than " + fmt(d.min_change_db) +
           " dB not listed: --min-change)\n";
  for (const auto& c : d.decibels)
    if (listed(d, c)) out += "  " + figure_name(c.detector, c.fqn, c.key) + ": " + change_text(c.old_db, c.new_db) + "\n";
  if (!d.warnings.empty()) {
    out += "\n== warnings ==\n";
    for (const auto& w : d.warnings) out += "- " + w + "\n";
  }
  return out;
}

std::string to_json(const ReportDiff& d) {
  auto num = [](const std::optional<double>& v) { return v ? ojson(*v) : ojson(nullptr); };
  auto change = [](const std::optional<double>& a, const std::optional<double>& b) {
    return a && b ? ojson(*b - *a) : ojson(nullptr);
  };
  ojson j;
  j["schema_version"] = 1;
  j["kind"] = "diff";
  j["old"] = {{"report", json_bytes(d.old_name)}, {"sha256", d.old_sha256}};
  j["new"] = {{"report", json_bytes(d.new_name)}, {"sha256", d.new_sha256}};
  j["model_changed"] = d.old_sha256 != d.new_sha256;
  ojson mo = ojson::array();
  for (const auto& m : d.model_output)
    mo.push_back({{"config", m.config}, {"in_old", m.in_old}, {"in_new", m.in_new}, {"old", num(m.old_db)},
                  {"new", num(m.new_db)}, {"change", change(m.old_db, m.new_db)}});
  j["model_output_sqnr"] = mo;
  ojson s = ojson::array();
  for (const auto& c : d.settings_changed)
    s.push_back({{"setting", c.key}, {"old", ojson::parse(c.old_value == "(absent)" ? "null" : c.old_value)},
                 {"new", ojson::parse(c.new_value == "(absent)" ? "null" : c.new_value)}});
  j["settings_changed"] = s;
  j["modules_added"] = d.modules_added;
  j["modules_removed"] = d.modules_removed;
  auto list = [](const std::vector<Finding>& fs) {
    ojson a = ojson::array();
    for (const auto& f : fs) a.push_back({{"kind", f.kind}, {"module", f.fqn}, {"detail", f.detail}});
    return a;
  };
  j["findings_appeared"] = list(d.appeared);
  j["findings_disappeared"] = list(d.disappeared);
  ojson ch = ojson::array();
  for (const auto& c : d.changed) ch.push_back({{"kind", c.kind}, {"module", c.fqn}, {"old", c.old_detail}, {"new", c.new_detail}});
  j["findings_changed"] = ch;
  j["min_change_db"] = d.min_change_db;
  ojson dbs = ojson::array();
  size_t hidden = 0;
  for (const auto& c : d.decibels) {
    if (!listed(d, c)) {
      ++hidden;
      continue;
    }
    dbs.push_back({{"detector", c.detector}, {"module", c.fqn}, {"key", c.key}, {"old", num(c.old_db)},
                   {"new", num(c.new_db)}, {"change", change(c.old_db, c.new_db)}});
  }
  j["db_changes"] = dbs;
  j["db_changes_not_listed"] = hidden;
  j["warnings"] = ojson::array();
  for (const auto& w : d.warnings) j["warnings"].push_back(json_bytes(w));
  return indent_json(j.dump()) + "\n";
}

}  // namespace qreport::report
