// CI gates (--fail-on): a gate must be able to fail. A kind whose detector does not run, an sqnr gate
// without its bound, or a detector that judged no module would let every build pass without a word, so
// each of these is a usage error instead (exit 2), before calibration where the options already say it.
#include <algorithm>

#include "common/errors.h"
#include "report/report.h"
#include "report/saved_report.h"

namespace qreport::report {
namespace {

struct GateKind {
  const char* kind;      // the --fail-on kind
  const char* detector;  // the detector whose results it reads
  const char* option;    // that detector's --detectors name
};
constexpr GateKind kGates[] = {
    {"per_channel", "per_channel_detector", "per_channel"},
    {"dynamic", "dynamic_vs_static_detector", "dynamic_static"},
    {"equalization", "input_weight_equalization_detector", "equalization"},
    {"outliers", "outlier_detector", "outlier"},
    {"sqnr", "quantization_error_detector", "error"},
};

const GateKind* gate(const std::string& kind) {
  for (const auto& g : kGates)
    if (kind == g.kind) return &g;
  return nullptr;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool is_number(const detectors::Value* v) { return v && v->type == detectors::Value::Type::Float; }

// Whether the detector judged the module: the sqnr gate needs a measured sqnr_db; every other detector
// lists only the modules it judged.
bool judged(const std::string& kind, const detectors::ModuleFindings& m) {
  return kind != "sqnr" || is_number(detectors::find_field(m.fields, "sqnr_db"));
}

}  // namespace

void check_gates_runnable(const std::string& fail_on_arg, const std::vector<std::string>& kinds,
                          const std::vector<std::string>& detectors, const std::string& detectors_arg,
                          bool has_min_sqnr) {
  std::vector<std::string> missing;
  for (const auto& kind : kinds) {
    const GateKind* g = gate(kind);
    if (g && !detectors.empty() && std::find(detectors.begin(), detectors.end(), g->detector) == detectors.end() &&
        std::find(missing.begin(), missing.end(), g->option) == missing.end())
      missing.push_back(g->option);
  }
  if (!missing.empty())
    throw UsageError("--fail-on " + fail_on_arg + " needs the " + joined(missing) + " detector" +
                     (missing.size() == 1 ? "" : "s") + ", which --detectors " + detectors_arg + " leaves out");
  if (std::find(kinds.begin(), kinds.end(), "sqnr") != kinds.end() && !has_min_sqnr)
    throw UsageError(fail_on_arg == "sqnr"
                         ? "--fail-on sqnr needs --min-sqnr DB (the bound a layer's SQNR must reach)"
                         : "--fail-on " + fail_on_arg +
                               " includes sqnr, which needs --min-sqnr DB (the bound a layer's SQNR must reach)");
}

std::string unevaluated_gates(const Report& report, const std::vector<std::string>& kinds) {
  std::vector<std::string> why;
  for (const auto& kind : kinds) {
    const GateKind* g = gate(kind);
    if (!g) continue;
    const detectors::DetectorResult* res = nullptr;
    for (const auto& r : report.results)
      if (r.name == g->detector) res = &r;
    if (!res) {  // check_gates_runnable refuses this before calibration; a report without it is no gate either
      why.push_back("--fail-on " + kind + " cannot be evaluated: the report has no " + g->detector);
      continue;
    }
    if (std::any_of(res->modules.begin(), res->modules.end(),
                    [&](const detectors::ModuleFindings& m) { return judged(kind, m); }))
      continue;
    std::string reason;
    if (!res->warnings.empty()) {
      reason = res->warnings.front();
      const std::string prefix = res->name + ": ";  // the detector is named once already
      if (reason.compare(0, prefix.size(), prefix) == 0) reason.erase(0, prefix.size());
      if (res->warnings.size() > 1) reason += "; " + std::to_string(res->warnings.size() - 1) + " more in the report";
    } else if (res->modules.empty()) {
      reason = "the model has no module it applies to";
    } else {
      reason = "no layer's SQNR could be measured (sqnr_db is null for every layer)";
    }
    why.push_back("--fail-on " + kind + " cannot be evaluated: " + g->detector + " judged no module (" + reason + ")");
  }
  return joined(why);
}

std::string sqnr_drop_unevaluable(const Report& report, const std::string& name) {
  for (const auto& r : report.results)
    if (r.name == "quantization_error_detector" && !r.modules.empty()) return "";
  if (report.simulation.ran && !report.simulation.configs.empty()) return "";
  return "--max-sqnr-drop needs SQNR figures, and " + name +
         " has none (no quantization_error_detector modules, no simulation): analyze with the error detector";
}

}  // namespace qreport::report
