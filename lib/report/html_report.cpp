// The HTML report: one self-contained file (inline CSS and SVG, no script, no external resource), so it
// can be archived as a CI artifact and opened anywhere, offline.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "common/text.h"
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

// Per-module charts only for modules with a finding, at most kMaxCharts per detector: the rest are listed
// in a table, and a page of hundreds of charts is neither readable nor small.
constexpr size_t kMaxCharts = 12;

// A finding's text for the page: lists of channel numbers with their consecutive runs as ranges ("0, 1,
// 2, 3, 7" -> "0–3, 7"; an equalization finding on a 3072-feature layer lists every channel), and at most
// kMaxDetail characters: the text and JSON reports have the whole of it.
std::string compact_detail(const std::string& text) {
  constexpr size_t kMaxDetail = 400;
  std::string out;
  size_t i = 0;
  auto digits_at = [&](size_t p) {
    size_t e = p;
    while (e < text.size() && text[e] >= '0' && text[e] <= '9') ++e;
    return e;
  };
  while (i < text.size()) {
    const bool starts = text[i] >= '0' && text[i] <= '9' && (i == 0 || text[i - 1] == ' ');
    if (!starts) {
      out += text[i++];
      continue;
    }
    // A list: numbers joined by ", ".
    std::vector<long long> nums;
    size_t p = i, end = i;
    while (true) {
      size_t e = digits_at(p);
      if (e == p || e - p > 12 || (e < text.size() && text[e] != ',' && text[e] != ';' && text[e] != ' ' &&
                                   text[e] != ')'))
        break;
      nums.push_back(std::stoll(text.substr(p, e - p)));
      end = e;
      if (text.compare(e, 2, ", ") != 0) break;
      p = e + 2;
    }
    if (nums.size() < 3) {
      out += text[i++];
      continue;
    }
    for (size_t a = 0; a < nums.size();) {
      size_t b = a;
      while (b + 1 < nums.size() && nums[b + 1] == nums[b] + 1) ++b;
      out += (a ? ", " : "") + std::to_string(nums[a]);
      if (b >= a + 2) out += "–" + std::to_string(nums[b]);
      else if (b == a + 1) out += ", " + std::to_string(nums[b]);
      a = b + 1;
    }
    i = end;
  }
  if (out.size() > kMaxDetail) {
    size_t cut = kMaxDetail;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "… (the text and JSON reports have all of it)";
  }
  return out;
}

// The finding of `kind` for module fqn, or nullptr.
const Finding* finding_of(const std::vector<Finding>& found, const std::string& kind, const std::string& fqn) {
  for (const auto& f : found)
    if (f.kind == kind && f.fqn == fqn) return &f;
  return nullptr;
}

// Charts for the modules with a finding of `kind`, at most kMaxCharts; the rest as a table of their
// findings, so that the page's height is bounded whatever the model.
std::string plots(const detectors::DetectorResult& res, const std::vector<Finding>& found) {
  std::string out, rest;
  size_t charts = 0, skipped = 0;
  auto room = [&](const Finding* f) {
    if (!f) return false;
    if (charts < kMaxCharts) return ++charts, true;
    ++skipped;
    rest += "<tr><td><code>" + escape(f->fqn) + "</code></td><td>" + escape(compact_detail(f->detail)) + "</td></tr>";
    return false;
  };
  if (res.name == "dynamic_vs_static_detector") {
    svg::BarChart ch;
    ch.title = "S = average batch range / epoch range, per module (input activation)";
    ch.y_label = "S";
    ch.x_label = "modules";
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
      if (!room(finding_of(found, "equalization", m.fqn))) continue;
      svg::RangeSeries in{"input activation", "#1f77b4",
                          numbers(find_field(m.fields, "input_activation_per_channel_min")),
                          numbers(find_field(m.fields, "input_activation_per_channel_max"))};
      svg::RangeSeries w{"weight", "#ff7f0e", numbers(find_field(m.fields, "weight_per_channel_min")),
                         numbers(find_field(m.fields, "weight_per_channel_max"))};
      out += "<figure>" + svg::range_chart(m.fqn + ": per-channel ranges", {in, w}) + "</figure>";
    }
  } else if (res.name == "outlier_detector") {
    for (const auto& m : res.modules) {
      // Only modules with outliers that count: sparse channels alone (reference percentile 0) are notes.
      if (!room(finding_of(found, "outliers", m.fqn))) continue;
      svg::BarChart ch;
      ch.title = m.fqn + ": max / reference percentile, per channel";
      ch.y_label = "ratio (log)";
      ch.x_label = "channels";
      ch.log_scale = true;
      ch.threshold = number(find_field(res.options, "ratio_threshold"));
      ch.threshold_label = "ratio threshold";
      ch.values = numbers(find_field(m.fields, "outlier_detection_percentile_ratios"));
      // A sparse channel's ratio (about FLT_MAX) is max / 0: drawn as inf, so it does not scale the axis.
      const auto used = numbers(find_field(m.fields, "outlier_detection_batches_used"));
      for (size_t c = 0; c < ch.values.size() && c < used.size(); ++c)
        if (ch.values[c] && used[c] && detectors::is_sparse_channel(*ch.values[c], static_cast<int64_t>(*used[c])))
          ch.values[c] = INFINITY;
      ch.inf_note = "reference percentile 0, not gated";
      for (size_t c = 0; c < ch.values.size(); ++c) ch.labels.push_back("ch " + std::to_string(c));
      out += "<figure>" + svg::bar_chart(ch) + "</figure>";
    }
  }
  if (skipped)
    out += "<p class=\"none\">" + std::to_string(skipped) + " more module" + (skipped == 1 ? "" : "s") +
           " with findings, not plotted:</p><div class=\"scroll\"><table class=\"rest\"><thead><tr><th>module</th>"
           "<th>finding</th></tr></thead><tbody>" + rest + "</tbody></table></div>";
  return out;
}

// The first lines of a detector's report text: the outlier detector's runs to a line per channel (a
// megabyte on resnet50). The whole text is in the text and JSON reports.
std::string head_lines(const std::string& text) {
  constexpr size_t kMaxLines = 60;
  size_t pos = 0, lines = 0;
  while (lines < kMaxLines && (pos = text.find('\n', pos)) != std::string::npos) ++pos, ++lines;
  if (pos == std::string::npos || pos >= text.size()) return text;
  size_t rest = 0;
  for (size_t i = pos; i < text.size(); ++i) rest += text[i] == '\n';
  return text.substr(0, pos) + "… " + std::to_string(rest + 1) +
         " more lines (the whole text is in the text and JSON reports)\n";
}

const char* detector_of(const std::string& kind) {
  if (kind == "per_channel") return "per_channel_detector";
  if (kind == "dynamic") return "dynamic_vs_static_detector";
  if (kind == "equalization") return "input_weight_equalization_detector";
  if (kind == "outliers") return "outlier_detector";
  return "quantization_error_detector";
}

std::string db(const std::optional<double>& v) { return v ? format_db(*v) : "–"; }

// Linear/Conv layers in graph order: by the first call site that observes them (the module itself or
// its nearest called ancestor), module order among equals and for the never-called.
std::vector<std::string> graph_order(const std::vector<std::string>& fqns, const std::vector<std::string>& calls) {
  auto position = [&](const std::string& fqn) {
    for (std::string f = fqn;;) {
      auto it = std::find(calls.begin(), calls.end(), f);
      if (it != calls.end()) return static_cast<size_t>(it - calls.begin());
      if (f.empty()) return calls.size();
      auto dot = f.rfind('.');
      f = dot == std::string::npos ? std::string() : f.substr(0, dot);
    }
  };
  std::vector<std::pair<size_t, size_t>> keyed;
  for (size_t i = 0; i < fqns.size(); ++i) keyed.emplace_back(position(fqns[i]), i);
  std::stable_sort(keyed.begin(), keyed.end());
  std::vector<std::string> out;
  for (const auto& [pos, i] : keyed) out.push_back(fqns[i]);
  return out;
}

const detectors::DetectorResult* result_named(const Report& r, const std::string& name) {
  for (const auto& res : r.results)
    if (res.name == name) return &res;
  return nullptr;
}

// The overview: every Linear/Conv layer with its SQNR and finding markers, chart first, table folded.
std::string overview(const Report& r, const std::vector<Finding>& found) {
  const auto* err = result_named(r, "quantization_error_detector");
  std::vector<std::string> fqns;
  std::map<std::string, const detectors::Fields*> fields;
  if (err) {
    for (const auto& m : err->modules) fqns.push_back(m.fqn), fields[m.fqn] = &m.fields;
  } else {
    for (const char* name : {"per_channel_detector", "dynamic_vs_static_detector", "input_weight_equalization_detector"})
      if (const auto* res = result_named(r, name))
        for (const auto& m : res->modules)
          if (std::find(fqns.begin(), fqns.end(), m.fqn) == fqns.end()) fqns.push_back(m.fqn);
  }
  fqns = graph_order(fqns, r.call_order);
  const auto& kinds = finding_kinds();
  std::map<std::string, std::vector<std::string>> kinds_of;
  for (const auto& f : found) kinds_of[f.fqn].push_back(f.kind);

  svg::OverviewChart ch;
  ch.title = err ? "SQNR per layer: weight and input, default quantizer to recommended; findings below"
                 : "Findings per layer (run the error detector for SQNR)";
  ch.marker_names = kinds;
  // --schemes: one row per scheme, in the report's order (every module carries the same names).
  if (err && !err->modules.empty())
    if (const Value* sc = find_field(err->modules.front().fields, "schemes"))
      for (const auto& [name, v] : sc->members) ch.scheme_names.push_back(name);
  // --sensitivity: the bars, on the scale of the Sensitivity section's chart; --target-sqnr: its line.
  std::map<std::string, const SensitivityLayer*> sens_of;
  if (r.sensitivity.ran) {
    ch.sensitivity_label = r.sensitivity.scheme;
    ch.sensitivity_top = sensitivity_scale_db(r);
    ch.disable_one = r.sensitivity.disable_one;
    for (const auto& l : r.sensitivity.layers) sens_of[l.fqn] = &l;
  }
  if (r.plan.ran) {
    ch.target_db = r.plan.target_sqnr_db;
    ch.width_budget = 700;  // the plan's curve (330 px) sits beside the chart, in the page's 1100 px
  }
  const std::set<std::string> kept(r.plan.keep_float.begin(), r.plan.keep_float.end());
  std::string rows;
  size_t index = 0;
  for (const auto& fqn : fqns) {
    svg::OverviewLayer l;
    const detectors::Fields* f = fields.count(fqn) ? fields[fqn] : nullptr;
    auto get = [&](const char* key) { return f ? number(find_field(*f, key)) : std::nullopt; };
    l.weight_default = get("weight_sqnr_per_tensor_db");
    l.input_default = get("input_sqnr_minmax_db");
    const Value* wo = f ? find_field(*f, "recommended_weight_observer") : nullptr;
    const Value* ao = f ? find_field(*f, "recommended_activation_observer") : nullptr;
    l.weight_best = wo && wo->s == "default_per_channel_weight_observer" ? get("weight_sqnr_per_channel_db")
                                                                          : l.weight_default;
    l.input_best = ao && ao->s == "default_histogram_observer" ? get("input_sqnr_histogram_db") : l.input_default;
    std::string marks;
    for (const auto& k : kinds) {
      const auto& ks = kinds_of[fqn];
      const bool has = std::find(ks.begin(), ks.end(), k) != ks.end();
      l.markers.push_back(has);
      if (has) marks += (marks.empty() ? "" : ", ") + k;
    }
    std::string more;
    if (!ch.scheme_names.empty()) {
      const Value* sc = f ? find_field(*f, "schemes") : nullptr;
      for (const auto& name : ch.scheme_names) {
        std::optional<double> v;
        if (sc)
          for (const auto& [k, entry] : sc->members)
            if (k == name)
              for (const auto& [field, x] : entry.members)
                if (field == "output_sqnr_db") v = number(&x);
        l.schemes.push_back(v);
        more += (more.empty() ? "; local output SQNR: " : ", ") + name + " " + db(v);
      }
    }
    if (const auto it = sens_of.find(fqn); it != sens_of.end()) {
      l.sensitivity = true;
      l.enable_db = it->second->enable_db;
      l.skip_db = it->second->skip_db;
      more += "; model output SQNR with only it quantized " + db(l.enable_db) + " dB";
      if (r.sensitivity.disable_one) more += ", all but it " + db(l.skip_db) + " dB";
    }
    l.kept = kept.count(fqn) > 0;
    if (l.kept) more += "; kept by the plan";
    l.name = fqn;
    l.hover = fqn + ": weight " + db(l.weight_default) + " → " + db(l.weight_best) + " dB, input " +
              db(l.input_default) + " → " + db(l.input_best) + " dB" + (marks.empty() ? "" : "; findings: " + marks) +
              more;
    rows += "<tr><td>" + std::to_string(++index) + "</td><td><code>" + escape(fqn) + "</code></td><td>" +
            db(l.weight_default) + " → " + db(l.weight_best) + "</td><td>" + db(l.input_default) + " → " +
            db(l.input_best) + "</td><td>" + db(get("sqnr_db")) + "</td><td>" + escape(marks) + "</td></tr>";
    ch.layers.push_back(std::move(l));
  }
  std::string out = "<section id=\"overview\"><h2>Overview</h2><p class=\"lead\">" + std::to_string(fqns.size()) +
                    " Linear/Conv layers; " + std::to_string(found.size()) + " finding" +
                    (found.size() == 1 ? "" : "s") + ".";
  if (r.simulation.ran && r.simulation.configs.size() == 2)
    out += " Simulated model output SQNR: <b>" + db(r.simulation.configs[0].output_sqnr_db) +
           " dB</b> with default_qconfig, <b>" + db(r.simulation.configs[1].output_sqnr_db) +
           " dB</b> with the recommended mapping.";
  out += "</p>";
  if (!ch.layers.empty()) {
    const std::string curve = plan_curve_html(r);
    if (curve.empty())
      out += "<figure class=\"scroll\">" + svg::overview_chart(ch) + "</figure>";
    else
      out += "<div class=\"beside\"><figure class=\"scroll\">" + svg::overview_chart(ch) + "</figure><figure>" + curve +
             "</figure></div>";
  }
  out += "<details><summary>Per-layer table</summary><div class=\"scroll\"><table><thead><tr><th>#</th><th>layer</th>"
         "<th>weight SQNR dB (per-tensor → recommended)</th><th>input SQNR dB (min/max → recommended)</th>"
         "<th>layer SQNR dB</th><th>findings</th></tr></thead><tbody>" +
         rows + "</tbody></table></div></details></section>";
  return out;
}

std::string worst_layers(const Report& r) {
  const auto* err = result_named(r, "quantization_error_detector");
  if (!err) return "";
  const Value* worst = find_field(err->summary, "worst_layers");
  std::string out = "\n<section id=\"worst\"><h2>Worst layers</h2>";
  if (!worst || worst->list.empty()) return out + "<p class=\"none\">No layer could be measured.</p></section>";
  out += "<table><thead><tr><th>rank</th><th>layer</th><th>SQNR dB</th><th>limited by</th><th>per-channel weights gain "
         "dB</th><th>histogram range gain dB</th></tr></thead><tbody>";
  size_t rank = 0;
  for (const auto& w : worst->list) {
    auto member = [&](const char* key) -> const Value* {
      for (const auto& [k, v] : w.members)
        if (k == key) return &v;
      return nullptr;
    };
    const Value* fqn = member("fqn");
    if (!fqn) continue;
    const detectors::Fields* f = nullptr;
    for (const auto& m : err->modules)
      if (m.fqn == fqn->s) f = &m.fields;
    auto get = [&](const char* key) { return f ? number(find_field(*f, key)) : std::nullopt; };
    const Value* by = member("limited_by");
    out += "<tr><td>" + std::to_string(++rank) + "</td><td><code>" + escape(fqn->s) + "</code></td><td>" +
           db(number(member("sqnr_db"))) + "</td><td>" + (by ? escape(by->s) : "") + "</td><td>" +
           db(get("weight_per_channel_gain_db")) + "</td><td>" + db(get("input_histogram_gain_db")) + "</td></tr>";
  }
  return out + "</tbody></table></section>";
}

// --schemes: one table of every layer's local output SQNR per scheme (the summary), then, folded, a table
// per layer with the scheme's weight, input and output SQNR (and SmoothQuant's alpha and gain).
std::string schemes_section(const Report& r) {
  const auto* err = result_named(r, "quantization_error_detector");
  if (!err || err->modules.empty() || !find_field(err->modules.front().fields, "schemes")) return "";
  const Value* first = find_field(err->modules.front().fields, "schemes");
  auto get = [](const Value& v, const char* key) -> std::optional<double> {
    for (const auto& [k, m] : v.members)
      if (k == key) return number(&m);
    return std::nullopt;
  };
  std::string out = "\n<section id=\"schemes\"><h2>Schemes</h2><p>Each layer's local output SQNR in dB under each "
                    "scheme (torchao 0.18.0 numerics: the layer on its quantized input and weight against the float "
                    "layer); – where the scheme leaves the layer in float.</p><div class=\"scroll\"><table><thead>"
                    "<tr><th>layer</th>";
  for (const auto& [name, v] : first->members) out += "<th>" + escape(name) + "</th>";
  out += "</tr></thead><tbody>";
  std::string details;
  for (const auto& m : err->modules) {
    const Value* sc = find_field(m.fields, "schemes");
    if (!sc) continue;
    out += "<tr><td><code>" + escape(m.fqn) + "</code></td>";
    details += "<h4><code>" + escape(m.fqn) + "</code></h4><table><thead><tr><th>scheme</th><th>weight dB</th>"
               "<th>input dB</th><th>output dB</th><th>SmoothQuant</th></tr></thead><tbody>";
    for (const auto& [name, v] : sc->members) {
      out += "<td>" + db(get(v, "output_sqnr_db")) + "</td>";
      const auto alpha = get(v, "alpha");
      char note[64] = "";
      if (alpha) std::snprintf(note, sizeof note, "alpha %.1f, gain %s dB", *alpha, db(get(v, "gain_db")).c_str());
      details += "<tr><td>" + escape(name) + "</td><td>" + db(get(v, "weight_sqnr_db")) + "</td><td>" +
                 db(get(v, "input_sqnr_db")) + "</td><td>" + db(get(v, "output_sqnr_db")) + "</td><td>" + note +
                 "</td></tr>";
    }
    out += "</tr>";
    details += "</tbody></table>";
  }
  return out + "</tbody></table></div><details><summary>Per layer: weight, input and output SQNR</summary>" +
         details + "</details></section>";
}

std::string simulation(const Report& r) {
  if (!r.simulation.ran || r.simulation.configs.size() != 2) return "";
  const auto& d = r.simulation.configs[0];
  const auto& q = r.simulation.configs[1];
  std::string out = "\n<section id=\"simulation\"><h2>Simulation</h2><p>Model output SQNR against the float model: "
                    "default_qconfig " + db(d.output_sqnr_db) + " dB, recommended mapping " + db(q.output_sqnr_db) +
                    " dB.</p><details><summary>Output SQNR after each observed layer</summary><table><thead><tr>"
                    "<th>call site</th><th>default_qconfig dB</th><th>recommended dB</th></tr></thead><tbody>";
  for (size_t i = 0; i < d.layers.size() && i < q.layers.size(); ++i)
    out += "<tr><td><code>" + escape(d.layers[i].first) + "</code></td><td>" + db(d.layers[i].second) + "</td><td>" +
           db(q.layers[i].second) + "</td></tr>";
  return out + "</tbody></table></details></section>";
}

// Findings with the same kind and text in one row that lists their modules (a transformer's 36 layers
// with one per-channel sentence make one row), in the order of each group's first module.
std::string grouped_table(const std::vector<Finding>& items) {
  std::vector<std::pair<const Finding*, std::vector<std::string>>> groups;
  for (const auto& f : items) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) {
      return g.first->kind == f.kind && g.first->detail == f.detail;
    });
    if (it == groups.end()) groups.push_back({&f, {}}), it = groups.end() - 1;
    it->second.push_back(f.fqn.empty() ? "(root)" : f.fqn);
  }
  std::string out = "<table class=\"findings\"><thead><tr><th>kind</th><th>modules</th><th>detail</th></tr></thead><tbody>";
  for (const auto& [f, fqns] : groups) {
    std::string cell = fqns.size() > 1 ? std::to_string(fqns.size()) + " modules: " : "";
    for (size_t i = 0; i < fqns.size(); ++i) cell += (i ? ", " : "") + std::string("<code>") + escape(fqns[i]) + "</code>";
    out += "<tr><td>" + escape(f->kind) + "</td><td>" + cell + "</td><td>" + escape(compact_detail(f->detail)) +
           "</td></tr>";
  }
  return out + "</tbody></table>";
}

const char* kStyle =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}"
    "h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}"
    "table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;"
    "text-align:left}th{background:#f3f3f3}td.yes{background:#fde2e1}td.no{color:#777}"
    "pre{background:#f7f7f7;padding:.8em;white-space:pre-wrap;font-size:.85em}"
    "figure{margin:.5em 0}.ct{font-size:13px;font-weight:600}.tk{font-size:10px;fill:#444}.na{font-size:9px;fill:#999}"
    ".none{color:#777}.warn li{color:#8a5a00}.scroll{overflow-x:auto}.lead{font-size:1.05em}"
    "details{margin:.4em 0}summary{cursor:pointer}section>details>summary{font-size:1.2em;font-weight:600}"
    ".col:hover{fill-opacity:.06}.cv{font-size:8px;fill:#222}"
    ".beside{display:flex;gap:12px;align-items:flex-start}.beside>figure:first-child{flex:1 1 auto;min-width:0}";

}  // namespace

std::string to_html(const Report& r) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>qreport: " +
                    escape(r.model_path) + "</title><style>" + kStyle + "</style></head><body>\n";
  // The heading names the model (a printed page or a tab among several says which model it is about).
  out += "<h1>Quantization report: <code>" + escape(r.model_path) + "</code></h1><p class=\"none\">qreport " +
         QREPORT_VERSION + "</p><table id=\"summary\"><tbody>";
  out += "<tr><th>model</th><td><code>" + escape(r.model_path) + "</code> (" + std::to_string(r.model_modules) +
         " modules)</td></tr><tr><th>sha256</th><td><code>" + r.model_sha256 + "</code></td></tr>";
  out += "<tr><th>calibration</th><td><code>" + escape(r.calib_path) + "</code>, " + std::to_string(r.batches) +
         " batches on " + escape(r.device) + "</td></tr></tbody></table>\n";

  auto found = findings(r);
  out += overview(r, found);
  out += worst_layers(r);
  out += schemes_section(r);
  out += simulation(r);
  out += sensitivity_html(r);
  out += pt2e_html(r);
  out += "\n<section id=\"findings\"><h2>Findings</h2>";
  out += found.empty() ? "<p class=\"none\">No findings.</p>" : grouped_table(found);
  const auto noted = notes(r);
  if (!noted.empty()) out += "<h3>Notes (no gate acts on these)</h3>" + grouped_table(noted);
  out += "</section>\n<h2>Detector details</h2>";
  for (const auto& res : r.results) {
    size_t n = 0;
    for (const auto& f : found) n += detector_of(f.kind) == res.name;
    out += "\n<section id=\"" + escape(res.name) + "\"><details><summary>" + escape(res.name) + " — " +
           std::to_string(res.modules.size()) + " module" + (res.modules.size() == 1 ? "" : "s") + ", " +
           std::to_string(n) + " finding" + (n == 1 ? "" : "s") + "</summary>";
    out += "<table class=\"options\"><tbody>";
    for (const auto& [k, v] : res.options) out += "<tr><th>" + escape(k) + "</th><td>" + escape(show(v)) + "</td></tr>";
    out += "</tbody></table>";
    out += plots(res, found);
    out += modules_table(res);
    if (res.name == "outlier_detector")
      if (const auto* llm = llm_int8_of(r)) out += llm_int8_html(*llm);
    std::string caveat = res.name == "per_channel_detector" ? per_channel_caveat(r) : "";
    out += "<details><summary>Report text</summary><pre>" + escape(head_lines(res.text)) +
           (caveat.empty() ? "" : "\n" + escape(caveat)) + "</pre></details></details></section>";
  }
  if (!r.warnings.empty()) {
    out += "\n<h2 id=\"warnings\">Warnings</h2><ul class=\"warn\">";
    for (const auto& w : r.warnings) out += "<li>" + escape(w) + "</li>";
    out += "</ul>";
  }
  return out + "\n</body></html>\n";
}

}  // namespace qreport::report
