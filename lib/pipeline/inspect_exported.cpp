// qreport inspect on a torch.export program: the module tree, the module calls the interpreter finds
// (lib/exported) and what each detector observes where, through the same plan as analyze.
#include <algorithm>
#include <map>

#include "common/errors.h"
#include "exported/exported.h"
#include "model/model.h"
#include "pipeline/front.h"
#include "pipeline/analyze.h"
#include "pipeline/exported_front.h"

namespace qreport::pipeline {

report::Inspection inspect_exported(const AnalyzeOptions& o) {
  auto dets = make_detectors(o);  // the same option checks as for TorchScript
  exported::Program program = exported::Program::load(o.model_path);
  const exported::ExportedModel view(program);
  const ExportedFront front(program, view);
  const detectors::ChannelAxes axes = channel_axes(o, front);
  report::Inspection out;
  out.model_path = o.model_path;
  out.call_sites = front.call_sites();
  std::map<std::string, int> calls;
  for (const auto& site : out.call_sites) ++calls[site];
  std::map<std::string, bool> leaf;
  std::map<std::string, std::string> functional;
  for (const auto& c : program.calls()) {
    if (!c.functional.empty()) functional[c.fqn] = c.functional;
    leaf[c.fqn] = leaf[c.fqn] || c.leaf;
  }
  for (const auto& node : view.tree().nodes()) {
    report::Inspection::Module row;
    row.fqn = node.fqn;
    row.type_name = !node.type_name.empty() ? node.type_name : "(never called)";
    row.kind = node.kind.base;
    if (functional.count(node.fqn)) row.functional = functional[node.fqn];
    row.depth = 0;
    for (size_t i = 0; !node.fqn.empty() && i <= node.fqn.size(); ++i)
      row.depth += i == node.fqn.size() || node.fqn[i] == '.';
    row.call_sites = calls.count(node.fqn) ? calls[node.fqn] : 0;
    // A module never called is a leaf when it has no submodules, as TorchScript's tree judges it, so that
    // the table marks it NEVER CALLED.
    row.leaf = leaf.count(node.fqn) ? leaf[node.fqn] || view.tree().is_call_leaf(node) : !node.has_children();
    out.modules.push_back(std::move(row));
  }
  list_observations(dets, front, axes, out);
  out.ch_axis = o.ch_axis ? std::to_string(*o.ch_axis) : "auto";
  out.warnings.push_back("torch.export program (schema " + program.schema_version() + ", PyTorch " +
                         program.torch_version() + ")");
  return out;
}

}  // namespace qreport::pipeline
