#include "common/errors.h"
#include "model/model.h"

namespace qreport::model {

ModuleTree::ModuleTree(std::vector<ModuleNode> nodes) : nodes_(std::move(nodes)) {}

const ModuleNode* ModuleTree::find(const std::string& fqn) const {
  for (const auto& n : nodes_)
    if (n.fqn == fqn) return &n;
  return nullptr;
}

bool ModuleTree::is_call_leaf(const ModuleNode& node) const {
  if (node.kind.is_fused || node.kind.is_qat || node.kind.is_observer) return true;
  for (int c : node.children)
    if (!nodes_[c].kind.is_observer) return false;
  return true;
}

std::string parent_fqn(const std::string& fqn) {
  auto pos = fqn.rfind('.');
  return pos == std::string::npos ? std::string() : fqn.substr(0, pos);
}

}  // namespace qreport::model
