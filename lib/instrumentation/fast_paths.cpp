// Fused fast paths. nn.MultiheadAttention and nn.TransformerEncoderLayer hand their weights to one fused
// op (aten::_native_multi_head_attention, aten::_transformer_encoder_layer_fwd) when grad mode is off, as
// it is under inference mode. The Linear modules inside are then never called and nothing observes them.
// These passes find such ops by what they do (compute with a Linear/Conv module's weight outside that
// module's call) rather than by name, and turn off the grad-mode test that selects them.
#include "instrumentation/graph_passes.h"
#include "model/model.h"

namespace qreport::instrumentation {
namespace {

// aten::linear/convNd apply one module's weight like the module itself (collect_functional_calls).
bool is_functional_layer(const torch::jit::Node* n) {
  const std::string op = n->kind().toQualString();
  return op == "aten::linear" || op == "aten::conv1d" || op == "aten::conv2d" || op == "aten::conv3d";
}

}  // namespace

std::vector<FusedUse> find_fused_weight_uses(torch::jit::Graph& graph) {
  std::vector<FusedUse> out;
  torch::jit::Value* self = graph.inputs().at(0);
  for_each_node(graph.block(), [&](torch::jit::Node* n) {
    if (!n->kind().is_aten() || is_functional_layer(n)) return;
    // Only ops that compute tensors: the fast-path checks also pass weights to prim ops (requires_grad).
    bool computes = false;
    for (auto* o : n->outputs()) computes |= o->type()->isSubtypeOf(*c10::TensorType::get());
    if (!computes) return;
    FusedUse use{n, n->kind().toQualString(), {}};
    for (torch::jit::Value* in : n->inputs()) {
      torch::jit::Node* w = in->node();
      if (w->kind() != c10::prim::GetAttr || w->s(c10::attr::name) != "weight") continue;
      auto cls = w->input(0)->type()->cast<c10::ClassType>();
      if (!cls || !cls->is_module()) continue;
      if (!model::classify(model::demangle_type_name(cls->name()->qualifiedName())).is_linear_or_conv()) continue;
      if (auto fqn = receiver_fqn(w->input(0), self)) use.modules.push_back(*fqn);
    }
    if (!use.modules.empty()) out.push_back(std::move(use));
  });
  return out;
}

int force_slow_paths(torch::jit::Graph& graph) {
  static const c10::Symbol is_grad_enabled = c10::Symbol::fromQualString("aten::is_grad_enabled");
  std::vector<torch::jit::Node*> queries;
  for_each_node(graph.block(), [&](torch::jit::Node* n) {
    if (n->kind() == is_grad_enabled || n->kind() == c10::prim::requires_grad) queries.push_back(n);
  });
  for (torch::jit::Node* n : queries) {
    torch::jit::WithInsertPoint guard(n);
    n->output()->replaceAllUsesWith(graph.insertConstant(true));
    n->destroy();
  }
  return static_cast<int>(queries.size());
}

}  // namespace qreport::instrumentation
