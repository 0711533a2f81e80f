#include "instrumentation/graph_passes.h"

namespace qreport::instrumentation {
namespace {

// Follows a module value back through prim::GetAttr to graph input 0 ("self"); nullopt when it comes
// from anywhere else.
std::optional<std::string> receiver_fqn(torch::jit::Value* v, torch::jit::Value* self) {
  std::vector<std::string> parts;
  while (v != self) {
    torch::jit::Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return std::nullopt;
    parts.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  std::string fqn;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) fqn += (fqn.empty() ? "" : ".") + *it;
  return fqn;
}

void collect(torch::jit::Block* block, torch::jit::Value* self, std::vector<LeafCall>& out,
             std::vector<std::string>* unresolved) {
  for (torch::jit::Node* n : block->nodes()) {
    for (torch::jit::Block* b : n->blocks()) collect(b, self, out, unresolved);
    if (n->kind() != c10::prim::CallMethod || n->s(c10::attr::name) != "forward") continue;
    auto fqn = receiver_fqn(n->input(0), self);
    if (fqn) {
      out.push_back({n, *fqn});
    } else if (unresolved) {
      unresolved->push_back("a call of " + n->input(0)->type()->repr_str() +
                            ".forward could not be traced to a submodule (module interface or module value "
                            "passed around); it is not observed");
    }
  }
}

}  // namespace

std::vector<LeafCall> collect_leaf_calls(torch::jit::Graph& graph, std::vector<std::string>* unresolved) {
  std::vector<LeafCall> out;
  collect(graph.block(), graph.inputs().at(0), out, unresolved);
  return out;
}

}  // namespace qreport::instrumentation
