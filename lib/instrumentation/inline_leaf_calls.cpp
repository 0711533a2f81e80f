#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/inliner.h>

#include "instrumentation/graph_passes.h"
#include "model/model.h"

namespace qreport::instrumentation {

bool is_leaf_module_class(const c10::ClassTypePtr& cls) {
  auto kind = model::classify(model::demangle_type_name(cls->name()->qualifiedName()));
  if (kind.is_fused || kind.is_qat || kind.is_observer) return true;
  for (size_t i = 0; i < cls->numAttributes(); ++i) {
    // A submodule typed by a module interface is a submodule too (resolve_interface_attributes).
    if (auto iface = cls->getAttribute(i)->cast<c10::InterfaceType>(); iface && iface->is_module()) return false;
    auto sub = cls->getAttribute(i)->cast<c10::ClassType>();
    if (!sub || !sub->is_module()) continue;
    auto sub_kind = model::classify(model::demangle_type_name(sub->name()->qualifiedName()));
    if (!sub_kind.is_observer) return false;
  }
  return true;
}

namespace {

bool inline_in_block(torch::jit::Block* block) {
  bool changed = false;
  for (auto it = block->nodes().begin(); it != block->nodes().end();) {
    torch::jit::Node* n = *it;
    ++it;  // inlineCallTo destroys n
    for (torch::jit::Block* b : n->blocks()) changed |= inline_in_block(b);
    if (n->kind() == c10::prim::CallMethod) {
      auto cls = n->input(0)->type()->cast<c10::ClassType>();
      if (!cls || !cls->is_module() || is_leaf_module_class(cls)) continue;
    } else if (n->kind() != c10::prim::CallFunction) {
      continue;
    }
    torch::jit::GraphFunction* fn = torch::jit::tryToGraphFunction(n);
    if (!fn) continue;
    // A function call's first input is the function constant; the callee's inputs are the rest.
    if (n->kind() == c10::prim::CallFunction) n->removeInput(0);
    // use_graph=false: inline the callee's unoptimized graph, whose own method calls are still calls.
    torch::jit::inlineCallTo(n, fn, /*use_graph=*/false);
    changed = true;
  }
  return changed;
}

}  // namespace

int expand_calls(const std::shared_ptr<torch::jit::Graph>& graph, const torch::jit::Module& root,
                 std::vector<std::string>* warnings) {
  int passes = 0;
  while (true) {
    // Methods inlined by the last pass may hold forks of their own.
    run_forks_in_place(*graph);
    resolve_interface_attributes(*graph, root, warnings);
    if (!inline_in_block(graph->block())) break;
    ++passes;
  }
  return passes;
}

}  // namespace qreport::instrumentation
