// Internal: graph passes behind Instrumenter, each small and testable on IR.
#pragma once
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "instrumentation/instrumentation.h"

namespace qreport::instrumentation {

// The ids of the observe ops whose observed value no later op writes (nor anything that may alias it),
// and that cannot alias the graph's inputs: values a reader may take after the forward has moved on,
// without a copy (stable_values.cpp). An id observed at several calls is listed only if all of them are.
std::set<int64_t> observed_values_never_written_after(torch::jit::Graph& instrumented);

// Pairs (earlier id, later id) of observe ops that read the same value back to back, in one run of
// consecutive observe ops, each id having no other observe op in the graph: the two always see the same
// tensor, unchanged (shared_values.cpp).
std::vector<std::pair<int64_t, int64_t>> observations_of_one_value(torch::jit::Graph& instrumented);

// Calls fn on every node of the block and of the blocks nested in it (an if's branches, a loop's body),
// inner blocks before the node that holds them.
template <class F>
void for_each_node(torch::jit::Block* block, F&& fn) {
  for (torch::jit::Node* n : block->nodes()) {
    for (torch::jit::Block* b : n->blocks()) for_each_node(b, fn);
    fn(n);
  }
}

// Whether a call on a module of this class is a leaf call site: fused and QAT modules, and modules
// without submodules other than observers and fake-quantizers.
bool is_leaf_module_class(const c10::ClassTypePtr& cls);


// Follows a module (or attribute) value back through prim::GetAttr to `self`: "layers.0.fc" for
// self.layers.0.fc. nullopt when the value comes from anywhere else.
std::optional<std::string> receiver_fqn(torch::jit::Value* value, torch::jit::Value* self);

// Gives each module attribute typed by a module interface (`blk: BlockIface`) the class of the module it
// holds in the loaded model, so that its calls are inlined or named like any other module's: instances
// are known at load time, and TorchScript cannot reassign a submodule. An attribute that cannot be
// resolved keeps its interface type and a warning goes to *warnings. Returns how many were resolved.
int resolve_interface_attributes(torch::jit::Graph& graph, const torch::jit::Module& root,
                                 std::vector<std::string>* warnings);

// Moves the work of every torch.jit.fork into the graph at the fork (a direct call, in program order)
// and leaves a fork that only returns the computed value, so futures and waits keep working. Returns
// the number of forks moved.
int run_forks_in_place(torch::jit::Graph& graph);

// Inlines prim::CallMethod nodes on non-leaf modules and every prim::CallFunction (TorchScript functions
// such as F.multi_head_attention_forward, whose aten::linear calls may be a module's only call site), using
// each callee's unoptimized graph so that its own calls survive. Repeats, to a fixpoint: forks run in place (torch.jit.fork(self.a, x) becomes a direct call), interface
// attributes resolved, non-leaf calls inlined. Returns the number of passes that inlined something.
int expand_calls(const std::shared_ptr<torch::jit::Graph>& graph, const torch::jit::Module& root,
                 std::vector<std::string>* warnings);

// Whether a method name is forward, one of its TorchScript overloads ("forward__0", as nn.LSTM's) or a
// traced later call of the same submodule ("forward1").
bool is_forward_method(const std::string& name);

struct LeafCall {
  torch::jit::Node* node;  // the prim::CallMethod (forward or an overload), or the functional op
  std::string fqn;
  torch::jit::Value* input;   // the first argument after self (functional: the op's input); may be null
  torch::jit::Value* output;  // the single result; null when the call has several
  std::string functional;     // "" for a module call, else the op that applies the module's weight
};

// Every forward call left in the graph (nested blocks included) whose receiver is reached from graph
// input 0 through prim::GetAttr nodes. Calls that cannot be named go to *unresolved.
std::vector<LeafCall> collect_leaf_calls(torch::jit::Graph& graph, std::vector<std::string>* unresolved);

// aten::linear and aten::conv1d/2d/3d ops whose weight is the `weight` attribute of a Linear or Conv
// module (a prim::GetAttr chain from self), for modules without a call of their own in `calls`:
// nn.MultiheadAttention's out_proj, or a user's F.linear(x, self.proj.weight).
std::vector<LeafCall> collect_functional_calls(torch::jit::Graph& graph, const std::vector<LeafCall>& calls);

// The paths of the attributes forward changes (reached from `self`: "fc.bias"): a prim::SetAttr of one, or
// an op that writes in place to a read of one or to a view of it. One walk of the graph, for all queries.
std::set<std::string> written_attributes(torch::jit::Graph& graph, torch::jit::Value* self);
// The value of `v` where the graph fixes it: a constant, a list of int constants, or an attribute reached
// from `self` through prim::GetAttr that is not in `written` (written_attributes), read from `root` (the
// module object `self` stands for); nullopt where it is computed at run time.
std::optional<c10::IValue> constant_or_attribute(torch::jit::Value* v, torch::jit::Value* self, const c10::IValue& root,
                                                 const std::set<std::string>& written);
// Whether two such argument lists are the same: tensors by identity, the rest by value.
bool same_arguments(const std::vector<c10::IValue>& a, const std::vector<c10::IValue>& b);

// A fused op that computes with a module's weight outside that module's call, e.g.
// aten::_transformer_encoder_layer_fwd using linear1.weight: calls through it are never observed.
struct FusedUse {
  torch::jit::Node* node;
  std::string op;                    // "aten::_native_multi_head_attention"
  std::vector<std::string> modules;  // fqns of the Linear/Conv modules whose weights it reads
};
std::vector<FusedUse> find_fused_weight_uses(torch::jit::Graph& graph);

// PyTorch's fused fast paths (MultiheadAttention, TransformerEncoderLayer, ...) are taken only when
// torch.is_grad_enabled() is false or no argument requires grad; their slow path runs the modules that
// carry the observers. Makes every such query in the graph answer true, so the slow path runs even under
// inference mode and no autograd history is recorded. Returns the number of queries replaced.
int force_slow_paths(torch::jit::Graph& graph);

// The axis that holds an activation's features or channels, judged from the graph: the layer that
// produced the value (through layout-preserving ops), else the layer that consumes it.
LayoutGuess infer_layout(torch::jit::Value* value, torch::jit::Value* self);


// Registers the qreport::observe(Tensor x, int id) -> () op (once) and returns its symbol.
c10::Symbol observe_symbol();
// qreport::rewrite(Tensor x, int id) -> Tensor: the current RewriteSink's result, or x itself.
c10::Symbol rewrite_symbol();
struct RewriteGuard {
  explicit RewriteGuard(const void* sink);
  ~RewriteGuard();
  const void* previous;
};
// Routes observe-op calls to `sink` until the returned guard dies.
struct SinkGuard {
  explicit SinkGuard(const void* sink);
  ~SinkGuard();
  const void* previous;
};

// skip_calls.cpp: `call` (its single Tensor result `output`) becomes the else branch of
//   prim::If(qreport::skip_call(id)) -> (qreport::skipped_output(id)) | (the call)
// so that the current SkipSink can supply the call's output. Returns the If's result, which replaces
// `output` everywhere after it.
torch::jit::Value* wrap_skippable(torch::jit::Graph& graph, torch::jit::Node* call, torch::jit::Value* output, int64_t id);
struct SkipGuard {
  explicit SkipGuard(const void* sink);
  ~SkipGuard();
  const void* previous;
};

}  // namespace qreport::instrumentation
