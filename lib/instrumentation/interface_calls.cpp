// Module interfaces. A submodule declared `blk: BlockIface` is a GetAttr of interface type in forward's
// graph, and a call on it is dynamic dispatch that the inliner cannot see into: its children would be
// observed at blk's own input and output. The loaded model holds one concrete module in that slot, so the
// graph value is typed with that module's class.
#include "instrumentation/graph_passes.h"

namespace qreport::instrumentation {
namespace {

// The object at a dotted path of module attributes, or nullopt.
std::optional<c10::IValue> attribute_at(const torch::jit::Module& root, const std::string& fqn) {
  c10::IValue v = root._ivalue();
  size_t start = 0;
  while (start <= fqn.size()) {
    size_t dot = fqn.find('.', start);
    std::string part = fqn.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!v.isObject()) return std::nullopt;
    auto obj = v.toObject();
    auto slot = obj->type()->findAttributeSlot(part);
    if (!slot) return std::nullopt;
    v = obj->getSlot(*slot);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

}  // namespace

int resolve_interface_attributes(torch::jit::Graph& graph, const torch::jit::Module& root,
                                 std::vector<std::string>* warnings) {
  int resolved = 0;
  torch::jit::Value* self = graph.inputs().at(0);
  // Outer GetAttrs come before the ones that read from them, so one walk resolves whole chains.
  for_each_node(graph.block(), [&](torch::jit::Node* n) {
    if (n->kind() != c10::prim::GetAttr) return;
    auto iface = n->output()->type()->cast<c10::InterfaceType>();
    if (!iface || !iface->is_module()) return;
    auto fqn = receiver_fqn(n->output(), self);
    auto value = fqn ? attribute_at(root, *fqn) : std::nullopt;
    if (value && value->isObject() && value->toObject()->type()->is_module()) {
      n->output()->setType(value->toObject()->type());
      ++resolved;
    } else if (warnings) {
      warnings->push_back("the module interface " + iface->repr_str() + (fqn ? " at '" + *fqn + "'" : std::string()) +
                          " could not be resolved to a module; calls through it are not observed");
    }
  });
  return resolved;
}

}  // namespace qreport::instrumentation
