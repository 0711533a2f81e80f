// An exported program as the detectors see a model (model::ModelView): the module tree with kinds, and
// weights by eager fqn. The names are the eager model's, so a report on the .pt2 of a model and one on its
// scripted .pt name the same modules (docs/differences.md, "Exported programs").
#include <ATen/ATen.h>

#include <map>

#include "exported/exported.h"

namespace qreport::exported {
namespace {

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

}  // namespace

std::string functional_type_name(const std::string& fqn, const std::string& op, const std::string& parent_type) {
  const bool mha = ends_with(parent_type, ".MultiheadAttention");
  if (op == "aten::linear") {
    if (mha && ends_with(fqn, ".out_proj")) return "torch.nn.modules.linear.NonDynamicallyQuantizableLinear";
    return "torch.nn.modules.linear.Linear";
  }
  if (op == "aten::conv1d" || op == "aten::conv2d" || op == "aten::conv3d")
    return "torch.nn.modules.conv.Conv" + op.substr(10);
  return "";
}

ExportedModel::ExportedModel(const Program& program) : program_(program) {
  std::map<std::string, std::string> functional;
  for (const ModuleCall& c : program.calls())
    if (!c.functional.empty()) functional[c.fqn] = c.functional;
  std::vector<model::ModuleNode> nodes;
  std::map<std::string, int> index;
  for (const Module& m : program.modules()) {
    model::ModuleNode n;
    n.fqn = m.fqn;
    n.type_name = m.type_name;
    // The nearest listed ancestor is the parent (a pseudo-module's is its MultiheadAttention).
    for (std::string p = m.fqn; !p.empty();) {
      p = model::parent_fqn(p);
      auto it = index.find(p);
      if (it != index.end()) {
        n.parent = it->second;
        break;
      }
    }
    auto f = functional.find(m.fqn);
    if (n.type_name.empty() && f != functional.end())
      n.type_name = functional_type_name(m.fqn, f->second, n.parent >= 0 ? nodes[n.parent].type_name : "");
    n.kind = model::classify(n.type_name);
    index[n.fqn] = static_cast<int>(nodes.size());
    if (n.parent >= 0) nodes[n.parent].children.push_back(static_cast<int>(nodes.size()));
    nodes.push_back(std::move(n));
  }
  tree_ = std::make_unique<model::ModuleTree>(std::move(nodes));
}

std::string ExportedModel::weight_name(const std::string& fqn) const {
  const std::string own = fqn.empty() ? "weight" : fqn + ".weight";
  if (program_.state(own).defined()) return own;
  // "<mha>.in_proj" -> "<mha>.in_proj_weight", the packed parameter the pseudo-module stands for.
  if (ends_with(fqn, ".in_proj") && program_.state(fqn + "_weight").defined()) return fqn + "_weight";
  return "";
}

at::Tensor ExportedModel::weight(const std::string& fqn) const {
  const std::string name = weight_name(fqn);
  if (name.empty()) return {};
  return program_.state(name).detach().to(at::kCPU, at::kFloat);
}

}  // namespace qreport::exported
