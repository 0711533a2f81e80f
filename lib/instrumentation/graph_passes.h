// Internal: graph passes behind Instrumenter, each small and testable on IR.
#pragma once
#include <torch/csrc/jit/ir/ir.h>

#include <string>
#include <vector>

namespace qreport::instrumentation {

// Whether a call on a module of this class is a leaf call site: fused and QAT modules, and modules
// without submodules other than observers and fake-quantizers.
bool is_leaf_module_class(const c10::ClassTypePtr& cls);

// Inlines prim::CallMethod nodes on non-leaf modules, repeatedly, until only leaf calls remain. Uses each
// callee's unoptimized graph so that its own calls survive. Returns the number of calls inlined.
int inline_non_leaf_calls(torch::jit::Graph& graph);

struct LeafCall {
  torch::jit::Node* node;  // the prim::CallMethod["forward"]
  std::string fqn;
};

// Every prim::CallMethod["forward"] left in the graph (nested blocks included) whose receiver is reached
// from graph input 0 through prim::GetAttr nodes. Calls that cannot be named go to *unresolved.
std::vector<LeafCall> collect_leaf_calls(torch::jit::Graph& graph, std::vector<std::string>* unresolved);

// Registers the qreport::observe(Tensor x, int id) -> () op (once) and returns its symbol.
c10::Symbol observe_symbol();
// Routes observe-op calls to `sink` until the returned guard dies.
struct SinkGuard {
  explicit SinkGuard(const void* sink);
  ~SinkGuard();
  const void* previous;
};

}  // namespace qreport::instrumentation
