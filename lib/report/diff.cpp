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
#include <exception>
#include <future>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/errors.h"
#include "report/json_writer.h"
#include "report/report.h"
#include "report/saved_report.h"

namespace qreport::report {
namespace {

using ojson = nlohmann::ordered_json;
// Every module name of a report's detectors, once (views into the report).
std::unordered_set<std::string_view> module_names(const Report& r) {
  std::unordered_set<std::string_view> out;
  for (const auto& res : r.results)
    for (const auto& m : res.modules) out.insert(m.fqn);
  return out;
}

// The names of `of` that `other` lacks, sorted.
std::vector<std::string> missing_from(const std::unordered_set<std::string_view>& of,
                                      const std::unordered_set<std::string_view>& other) {
  std::vector<std::string> out;
  for (auto n : of)
    if (!other.count(n)) out.emplace_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<double> db_value(const detectors::Value& v) {  // the reader made SQNR figures Float or Null
  return v.type == detectors::Value::Type::Float ? std::optional<double>(v.f) : std::nullopt;
}

// The SQNR figures (is_sqnr_key: the detectors' per-module keys that name an SQNR, and each simulated
// configuration's layer outputs) present in both reports with different values, sorted by (source,
// module, key). Each new module is looked up once in an index of the old report's modules of the same
// detector, and its handful of fields compared in place: linear in the reports' size, and only the
// figures that differ are copied. Without disable-one runs in either report (--sensitivity-runs
// enable-one), their figures are not compared: null there means "not run", not "not measurable".
std::vector<DecibelChange> changed_figures(const Report& a, const Report& b, bool without_disable_one) {
  std::vector<DecibelChange> out;
  for (const auto& rb : b.results) {
    const detectors::DetectorResult* ra = nullptr;
    for (const auto& r : a.results)
      if (r.name == rb.name) ra = &r;
    if (!ra) continue;
    std::unordered_map<std::string_view, const detectors::Fields*> old_modules;
    old_modules.reserve(ra->modules.size());
    for (const auto& m : ra->modules) old_modules.emplace(m.fqn, &m.fields);
    for (const auto& m : rb.modules) {
      auto it = old_modules.find(m.fqn);
      if (it == old_modules.end()) continue;
      for (const auto& [k, v] : m.fields) {
        if (!is_sqnr_key(k) || (without_disable_one && k == "sensitivity_skip_output_sqnr_db")) continue;
        const detectors::Value* old = detectors::find_field(*it->second, k);
        if (!old) continue;
        const auto va = db_value(*old), vb = db_value(v);
        if (va != vb) out.push_back({rb.name, m.fqn, k, va, vb});
      }
    }
  }
  for (const auto& cb : b.simulation.configs) {
    const SimulatedConfig* ca = nullptr;
    for (const auto& c : a.simulation.configs)
      if (c.name == cb.name) ca = &c;
    if (!ca) continue;
    std::unordered_map<std::string_view, std::optional<double>> old_layers(ca->layers.begin(), ca->layers.end());
    for (const auto& [site, vb] : cb.layers) {
      auto it = old_layers.find(site);
      if (it != old_layers.end() && it->second != vb)
        out.push_back({"simulation." + cb.name, site, "layers_output_sqnr_db", it->second, vb});
    }
  }
  std::sort(out.begin(), out.end(), [](const DecibelChange& x, const DecibelChange& y) {
    return std::tie(x.detector, x.fqn, x.key) < std::tie(y.detector, y.fqn, y.key);
  });
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
  // The two reports are independent: the old one is read (and its findings made) on a thread of its own.
  // Its error, if any, is the one reported, as if the two were read in order.
  std::vector<Finding> fa;
  auto read_old = std::async(std::launch::async, [&] {
    SavedReport r = read_saved_report(old_text, old_name);
    fa = findings(r.report);
    return r;
  });
  SavedReport b;
  std::vector<Finding> fb;
  std::exception_ptr new_error;
  try {
    b = read_saved_report(new_text, new_name);
    fb = findings(b.report);
  } catch (...) {
    new_error = std::current_exception();
  }
  const SavedReport a = read_old.get();
  if (new_error) std::rethrow_exception(new_error);
  if (options.gate_sqnr_drop)  // a drop gate over reports without SQNR figures could never fail
    for (const SavedReport* r : std::initializer_list<const SavedReport*>{&a, &b})
      if (std::string why = sqnr_drop_unevaluable(r->report, r->name); !why.empty()) throw UsageError(why);
  ReportDiff d;
  d.old_name = old_name;
  d.new_name = new_name;
  d.old_sha256 = a.report.model_sha256;
  d.new_sha256 = b.report.model_sha256;
  d.min_change_db = options.min_change_db;

  const auto ma = module_names(a.report), mb = module_names(b.report);
  d.modules_added = missing_from(mb, ma);
  d.modules_removed = missing_from(ma, mb);

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
  // index (kind -> module -> finding) keeps this linear in the number of findings.
  using Index = std::unordered_map<std::string_view, std::unordered_map<std::string_view, const Finding*>>;
  auto index = [](const std::vector<Finding>& fs) {
    Index out;
    for (const auto& f : fs) out[f.kind].emplace(f.fqn, &f);
    return out;
  };
  auto lookup = [](const Index& in, const Finding& f) -> const Finding* {
    auto k = in.find(f.kind);
    if (k == in.end()) return nullptr;
    auto m = k->second.find(f.fqn);
    return m == k->second.end() ? nullptr : m->second;
  };
  const Index ia = index(fa), ib = index(fb);
  for (const auto& f : fb) {
    const Finding* old = lookup(ia, f);
    if (!old)
      d.appeared.push_back(f);
    else if (old->detail != f.detail)
      d.changed.push_back({f.kind, f.fqn, old->detail, f.detail});
  }
  for (const auto& f : fa)
    if (!lookup(ib, f)) d.disappeared.push_back(f);

  // The model's output SQNR, for every configuration either report simulated.
  auto config = [&](const std::string& name) -> ModelOutputSqnr& {
    for (auto& m : d.model_output)
      if (m.config == name) return m;
    ModelOutputSqnr m;
    m.config = name;
    d.model_output.push_back(m);
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

  auto enable_one_only = [](const SavedReport& r) {
    return std::find(r.settings.begin(), r.settings.end(),
                     std::pair<std::string, std::string>("sensitivity.runs", "\"enable-one\"")) != r.settings.end();
  };
  d.decibels = changed_figures(a.report, b.report, enable_one_only(a) || enable_one_only(b));
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
  j["old"] = {{"report", d.old_name}, {"sha256", d.old_sha256}};
  j["new"] = {{"report", d.new_name}, {"sha256", d.new_sha256}};
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
  for (const auto& w : d.warnings) j["warnings"].push_back(w);
  return write_json(j);
}

}  // namespace qreport::report
