// qreport inspect: the instrumentation plan without running anything. Uses the same Instrumenter and
// detector requests as analyze, so what it shows is what analyze does.
#include <map>
#include <sstream>

#include "instrumentation/instrumentation.h"
#include "model/model.h"
#include "pipeline/analyze.h"
#include "pipeline/exported_front.h"
#include "pipeline/front.h"
#include "exported/exported.h"

namespace qreport::pipeline {
namespace {

std::string axis_name(int axis) { return axis == -1 ? "last" : std::to_string(axis); }

std::string describe(const detectors::ObservationRequest& r) {
  std::ostringstream s;
  std::string sep;
  if (r.range) {
    s << "range";
    sep = ", ";
  }
  if (r.minmax_axis) {
    s << sep << "min/max ch_axis=" << axis_name(*r.minmax_axis);
    sep = ", ";
  }
  if (r.percentile) {
    s << sep << "percentile q=" << r.percentile->second << " ch_axis=" << axis_name(r.percentile->first);
    sep = ", ";
  }
  if (r.histogram) s << sep << "histogram (2048 bins), sum of squares";
  return s.str();
}

int depth_of(const std::string& fqn) {
  if (fqn.empty()) return 0;
  int d = 1;
  for (char c : fqn) d += c == '.';
  return d;
}

}  // namespace

void list_observations(const std::vector<std::unique_ptr<detectors::Detector>>& dets, const Front& front,
                       const detectors::ChannelAxes& axes, report::Inspection& out) {
  for (const auto& det : dets) {
    for (const auto& fqn : det->weight_only_modules(front.model())) {  // judged from weights, nothing observed
      report::Inspection::Observation ob;
      ob.detector = det->name();
      ob.fqn = fqn;
      ob.side = "weight";
      ob.statistics = "weight only";
      ob.weight_only = true;
      out.observations.push_back(std::move(ob));
    }
    for (const auto& req : det->requests(front.model(), axes)) {
      report::Inspection::Observation ob;
      ob.detector = det->name();
      ob.fqn = req.fqn;
      ob.side = instrumentation::side_name(req.side);
      ob.statistics = describe(req);
      if (req.minmax_axis || req.percentile) ob.axis_rule = axes.of(req.fqn).rule;
      if (auto site = front.resolve(req.fqn)) {
        ob.observed = true;
        ob.site = *site;
        ob.fallback = *site != req.fqn;
      }
      out.observations.push_back(std::move(ob));
    }
  }
}

report::Inspection inspect(const AnalyzeOptions& o) {
  if (exported::is_pt2_archive(o.model_path)) return inspect_exported(o);
  auto dets = make_detectors(o);
  model::Model model = model::Model::load(o.model_path);
  instrumentation::Instrumenter instr(model);
  const detectors::ChannelAxes axes = channel_axes(o, model, instr);

  report::Inspection out;
  out.model_path = o.model_path;
  out.call_sites = instr.call_sites();
  std::map<std::string, int> calls;
  for (const auto& site : out.call_sites) ++calls[site];
  for (const auto& node : model.tree().nodes()) {
    report::Inspection::Module m;
    m.fqn = node.fqn;
    m.type_name = node.type_name;
    m.kind = node.kind.base;
    m.depth = depth_of(node.fqn);
    auto it = calls.find(node.fqn);
    m.call_sites = it == calls.end() ? 0 : it->second;
    m.leaf = model.tree().is_call_leaf(node);
    if (m.call_sites > 0) m.functional = instr.functional_op(node.fqn);
    out.modules.push_back(std::move(m));
  }
  list_observations(dets, ScriptFront(model, instr), axes, out);
  out.fast_paths = instr.fast_paths();
  out.ch_axis = o.ch_axis ? std::to_string(*o.ch_axis) : "auto";
  out.warnings = instr.warnings();
  return out;
}

}  // namespace qreport::pipeline
