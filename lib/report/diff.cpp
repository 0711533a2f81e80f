// qreport diff: two saved reports (this commit's model against the last good one), compared by what a CI
// gate acts on. Findings are matched by (kind, module); modules by name (renames are not guessed: a
// removal and an addition); options and calibration settings by value, with a warning when they differ;
// and every per-module value measured in dB (the quantization error's SQNR keys, "*_db") by module.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "common/errors.h"
#include "report/json_text.h"
#include "report/report.h"
#include "report/saved_report.h"

namespace qreport::report {
namespace {

using ojson = nlohmann::ordered_json;

std::set<std::string> module_names(const ojson& j) {
  std::set<std::string> out;
  for (const auto& [det, body] : j["detectors"].items())
    if (body.contains("modules") && body["modules"].is_object())
      for (const auto& [fqn, fields] : body["modules"].items()) out.insert(fqn);
  return out;
}

// "detector.option" or "calibration.key" -> value, for the settings that change what a report says.
std::map<std::string, ojson> settings(const ojson& j) {
  std::map<std::string, ojson> out;
  for (const auto& [det, body] : j["detectors"].items())
    if (body.contains("options") && body["options"].is_object())
      for (const auto& [k, v] : body["options"].items()) out[det + "." + k] = v;
  if (j.contains("calibration") && j["calibration"].is_object())
    for (const char* k : {"batches", "device"})
      if (j["calibration"].contains(k)) out[std::string("calibration.") + k] = j["calibration"][k];
  return out;
}

// (detector, module, key) -> dB value, for every per-module number measured in decibels.
std::map<std::tuple<std::string, std::string, std::string>, double> decibels(const ojson& j) {
  std::map<std::tuple<std::string, std::string, std::string>, double> out;
  for (const auto& [det, body] : j["detectors"].items()) {
    if (!body.contains("modules") || !body["modules"].is_object()) continue;
    for (const auto& [fqn, fields] : body["modules"].items())
      for (const auto& [k, v] : fields.items())
        if (k.size() > 3 && k.compare(k.size() - 3, 3, "_db") == 0 && v.is_number())
          out[{det, fqn, k}] = v.get<double>();
  }
  return out;
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

}  // namespace

ReportDiff diff_reports(const std::string& old_text, const std::string& new_text, const std::string& old_name,
                        const std::string& new_name) {
  const ojson a = parse_saved_report(old_text, old_name), b = parse_saved_report(new_text, new_name);
  ReportDiff d;
  d.old_name = old_name;
  d.new_name = new_name;
  d.old_sha256 = a.contains("model") ? a["model"].value("sha256", "") : "";
  d.new_sha256 = b.contains("model") ? b["model"].value("sha256", "") : "";

  const auto ma = module_names(a), mb = module_names(b);
  std::set_difference(mb.begin(), mb.end(), ma.begin(), ma.end(), std::back_inserter(d.modules_added));
  std::set_difference(ma.begin(), ma.end(), mb.begin(), mb.end(), std::back_inserter(d.modules_removed));

  const auto sa = settings(a), sb = settings(b);
  std::set<std::string> keys;
  for (const auto& [k, v] : sa) keys.insert(k);
  for (const auto& [k, v] : sb) keys.insert(k);
  for (const auto& k : keys) {
    auto ia = sa.find(k), ib = sb.find(k);
    const std::string va = ia == sa.end() ? "(absent)" : ia->second.dump();
    const std::string vb = ib == sb.end() ? "(absent)" : ib->second.dump();
    if (va != vb) d.settings_changed.push_back({k, va, vb});
  }
  if (!d.settings_changed.empty())
    d.warnings.push_back("the two reports used different settings (" + std::to_string(d.settings_changed.size()) +
                         " changed): differences below may come from the settings, not the model");

  // Findings by (kind, module), in the new report's order (then the old one's for the disappeared).
  const auto fa = findings(report_from_json(a)), fb = findings(report_from_json(b));
  auto find = [](const std::vector<Finding>& fs, const Finding& f) {
    return std::find_if(fs.begin(), fs.end(), [&](const Finding& g) { return g.kind == f.kind && g.fqn == f.fqn; });
  };
  for (const auto& f : fb) {
    auto it = find(fa, f);
    if (it == fa.end())
      d.appeared.push_back(f);
    else if (it->detail != f.detail)
      d.changed.push_back({f.kind, f.fqn, it->detail, f.detail});
  }
  for (const auto& f : fa)
    if (find(fb, f) == fb.end()) d.disappeared.push_back(f);

  const auto da = decibels(a), db = decibels(b);
  for (const auto& [key, vb] : db) {
    auto it = da.find(key);
    if (it == da.end() || it->second == vb) continue;
    d.decibels.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), it->second, vb});
  }
  return d;
}

std::vector<const DecibelChange*> drops_beyond(const ReportDiff& d, double max_drop) {
  std::vector<const DecibelChange*> out;
  for (const auto& c : d.decibels)
    if (c.old_db - c.new_db > max_drop) out.push_back(&c);
  return out;
}

std::string to_text(const ReportDiff& d) {
  std::string out = "qreport diff " + d.old_name + " -> " + d.new_name + "\n";
  out += d.old_sha256 == d.new_sha256 ? "model: the same file (sha256)\n" : "model: changed (sha256 differs)\n";
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
  section("dB changes", d.decibels.size());
  for (const auto& c : d.decibels)
    out += "  " + c.fqn + " " + c.key + " (" + c.detector + "): " + fmt(c.old_db) + " -> " + fmt(c.new_db) + " (" +
           (c.new_db >= c.old_db ? "+" : "") + fmt(c.new_db - c.old_db) + " dB)\n";
  if (!d.warnings.empty()) {
    out += "\n== warnings ==\n";
    for (const auto& w : d.warnings) out += "- " + w + "\n";
  }
  return out;
}

std::string to_json(const ReportDiff& d) {
  ojson j;
  j["schema_version"] = 1;
  j["kind"] = "diff";
  j["old"] = {{"report", json_bytes(d.old_name)}, {"sha256", d.old_sha256}};
  j["new"] = {{"report", json_bytes(d.new_name)}, {"sha256", d.new_sha256}};
  j["model_changed"] = d.old_sha256 != d.new_sha256;
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
  ojson dbs = ojson::array();
  for (const auto& c : d.decibels)
    dbs.push_back({{"detector", c.detector}, {"module", c.fqn}, {"key", c.key}, {"old", c.old_db}, {"new", c.new_db},
                   {"change", c.new_db - c.old_db}});
  j["db_changes"] = dbs;
  j["warnings"] = ojson::array();
  for (const auto& w : d.warnings) j["warnings"].push_back(json_bytes(w));
  return indent_json(j.dump()) + "\n";
}

}  // namespace qreport::report
