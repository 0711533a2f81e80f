#include <nlohmann/json.hpp>

#include "report/json_writer.h"
#include "report/report.h"

namespace qreport::report {

using ojson = nlohmann::ordered_json;

std::string to_json(const Inspection& in) {
  ojson j;
  j["schema_version"] = 1;
  j["kind"] = "inspection";
  j["model"] = {{"path", in.model_path}, {"modules", in.modules.size()}};
  ojson mods = ojson::array();
  for (const auto& m : in.modules)
    mods.push_back({{"fqn", m.fqn}, {"type", m.type_name}, {"kind", m.kind}, {"call_leaf", m.leaf},
                    {"call_sites", m.call_sites},
                    {"functional_op", m.functional.empty() ? ojson(nullptr) : ojson(m.functional)}});
  j["modules"] = mods;
  j["call_sites"] = in.call_sites;
  ojson obs = ojson::array();
  for (const auto& o : in.observations)
    obs.push_back({{"detector", o.detector}, {"fqn", o.fqn}, {"side", o.side}, {"statistics", o.statistics},
                   {"observed", o.observed || o.weight_only},
                   {"site", o.observed ? ojson(o.site) : ojson(nullptr)},
                   {"parent_fallback", o.fallback},
                   {"axis_rule", o.axis_rule.empty() ? ojson(nullptr) : ojson(o.axis_rule)}});
  j["observations"] = obs;
  j["ch_axis"] = in.ch_axis;
  j["fast_paths"] = in.fast_paths;
  j["warnings"] = ojson::array();
  for (const auto& w : in.warnings) j["warnings"].push_back(w);
  return write_json(j);
}

std::string to_text(const Inspection& in) {
  std::string out = "Model " + in.model_path + ": " + std::to_string(in.modules.size()) + " modules, " +
                    std::to_string(in.call_sites.size()) + " leaf call sites\n\n== module tree ==\n";
  // Nearest ancestor that forward calls as a leaf: the children of fused modules run inside it.
  auto runs_inside = [&](const std::string& fqn) -> std::string {
    for (std::string p = fqn; !p.empty();) {
      auto dot = p.rfind('.');
      p = dot == std::string::npos ? "" : p.substr(0, dot);
      for (const auto& a : in.modules)
        if (a.fqn == p && a.call_sites > 0) return p.empty() ? "(root)" : p;
    }
    return {};
  };
  for (const auto& m : in.modules) {
    out += std::string(2 * m.depth, ' ') + (m.fqn.empty() ? "(root)" : m.fqn.substr(m.fqn.rfind('.') + 1)) +
           "  " + m.type_name + " [" + m.kind + "]";
    if (m.call_sites > 0) {
      out += "  called " + std::to_string(m.call_sites) + "x";
      if (!m.functional.empty()) out += " through " + m.functional + " (functional call site)";
    } else if (m.leaf) {
      std::string parent = runs_inside(m.fqn);
      out += parent.empty() ? "  NEVER CALLED" : "  runs inside '" + parent + "'";
    }
    out += "\n";
  }
  if (!in.fast_paths.empty()) {
    out += "\n== fused fast paths (bypassed: the slow path runs, so the modules inside are observed) ==\n";
    for (const auto& f : in.fast_paths) out += "  " + f + "\n";
  }
  out += "\nchannel axis: " + in.ch_axis + "\n";
  std::string current;
  for (const auto& o : in.observations) {
    if (o.detector != current) {
      current = o.detector;
      out += "\n== " + current + " ==\n";
    }
    out += "  " + (o.fqn.empty() ? std::string("(root)") : o.fqn) + " " + o.side + " (" + o.statistics + "): ";
    if (o.weight_only)
      out += "read from the model, nothing observed\n";
    else if (!o.observed)
      out += "NOT OBSERVED: no call site for it or any ancestor\n";
    else if (o.fallback)
      out += "observed at parent call site '" + o.site + "' (parent-fqn fallback)\n";
    else
      out += "observed at its own call site\n";
    if (!o.axis_rule.empty()) out += "    axis: " + o.axis_rule + "\n";
  }
  if (!in.warnings.empty()) {
    out += "\n== warnings ==\n";
    for (const auto& w : in.warnings) out += "- " + w + "\n";
  }
  return out;
}

}  // namespace qreport::report
