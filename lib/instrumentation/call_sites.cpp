#include <torch/csrc/jit/ir/constants.h>

#include <algorithm>

#include "instrumentation/graph_passes.h"
#include "model/model.h"

namespace qreport::instrumentation {

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

bool is_forward_method(const std::string& name) {
  // TorchScript compiles each @overload of forward (nn.LSTM, nn.GRU, nn.RNN) to forward__N, and
  // torch.jit.trace records the second and later calls of one submodule as forward1, forward2, ... (a
  // Dropout or activation module applied twice per block, as in Hugging Face's ViTLayer): each is a
  // call of that module, which PyTorch's ModelReport observes with the same observer as the first.
  if (name == "forward" || name.rfind("forward__", 0) == 0) return true;
  if (name.size() <= 7 || name.rfind("forward", 0) != 0) return false;
  return std::all_of(name.begin() + 7, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

namespace {

torch::jit::Value* single_output(torch::jit::Node* n) { return n->outputs().size() == 1 ? n->output() : nullptr; }

}  // namespace

std::vector<LeafCall> collect_leaf_calls(torch::jit::Graph& graph, std::vector<std::string>* unresolved) {
  std::vector<LeafCall> out;
  torch::jit::Value* self = graph.inputs().at(0);
  for_each_node(graph.block(), [&](torch::jit::Node* n) {
    if (n->kind() != c10::prim::CallMethod || !is_forward_method(n->s(c10::attr::name))) return;
    // A module interface left unresolved (resolve_interface_attributes warned): dispatch unknown, so
    // neither a call site of that attribute nor a fallback for its children.
    if (n->input(0)->type()->cast<c10::InterfaceType>()) return;
    auto fqn = receiver_fqn(n->input(0), self);
    if (fqn) {
      out.push_back({n, *fqn, n->inputs().size() > 1 ? n->input(1) : nullptr, single_output(n), ""});
    } else if (unresolved) {
      unresolved->push_back("a call of " + n->input(0)->type()->repr_str() +
                            ".forward could not be traced to a submodule (module interface or module value "
                            "passed around); it is not observed");
    }
  });
  return out;
}

std::vector<LeafCall> collect_functional_calls(torch::jit::Graph& graph, const std::vector<LeafCall>& calls) {
  static const c10::Symbol ops[] = {c10::Symbol::fromQualString("aten::linear"),
                                    c10::Symbol::fromQualString("aten::conv1d"),
                                    c10::Symbol::fromQualString("aten::conv2d"),
                                    c10::Symbol::fromQualString("aten::conv3d")};
  std::vector<LeafCall> out;
  torch::jit::Value* self = graph.inputs().at(0);
  for_each_node(graph.block(), [&](torch::jit::Node* n) {
    if (std::find(std::begin(ops), std::end(ops), n->kind()) == std::end(ops) || n->inputs().size() < 2) return;
    torch::jit::Node* w = n->input(1)->node();
    if (w->kind() != c10::prim::GetAttr || w->s(c10::attr::name) != "weight") return;
    auto cls = w->input(0)->type()->cast<c10::ClassType>();
    if (!cls || !cls->is_module()) return;
    auto kind = model::classify(model::demangle_type_name(cls->name()->qualifiedName()));
    if (!kind.is_linear_or_conv()) return;
    auto fqn = receiver_fqn(w->input(0), self);
    if (!fqn) return;
    for (const auto& c : calls)
      if (c.fqn == *fqn) return;  // the module has calls of its own: those are what it observes
    out.push_back({n, *fqn, n->input(0), n->output(), n->kind().toQualString()});
  });
  return out;
}

namespace {

// Whether `v` (or a view of it) is written in place by a node: an argument its schema marks as written.
bool written_in_place(torch::jit::Value* v, int depth = 0) {
  for (const torch::jit::Use& use : v->uses()) {
    const c10::FunctionSchema* schema = use.user->maybeSchema();
    if (!schema) continue;
    if (use.offset < schema->arguments().size()) {
      const auto* alias = schema->arguments()[use.offset].alias_info();
      if (alias && alias->isWrite()) return true;
    }
    // A view (select, slice, view: a result in the argument's alias set) written in place writes v.
    if (depth < 8 && !schema->returns().empty() && schema->returns()[0].alias_info() && use.user->outputs().size() == 1 &&
        written_in_place(use.user->output(), depth + 1))
      return true;
  }
  return false;
}

}  // namespace

std::set<std::string> written_attributes(torch::jit::Graph& graph, torch::jit::Value* self) {
  std::set<std::string> written;
  for_each_node(graph.block(), [&](torch::jit::Node* n) {
    if (n->kind() == c10::prim::SetAttr) {
      auto owner = receiver_fqn(n->input(0), self);
      const std::string name = n->s(c10::attr::name);
      if (owner) written.insert(owner->empty() ? name : *owner + "." + name);
    } else if (n->kind() == c10::prim::GetAttr && written_in_place(n->output())) {
      if (auto read = receiver_fqn(n->output(), self)) written.insert(*read);
    }
  });
  return written;
}

std::optional<c10::IValue> constant_or_attribute(torch::jit::Value* v, torch::jit::Value* self, const c10::IValue& root,
                                                 const std::set<std::string>& written) {
  torch::jit::Node* n = v->node();
  if (n->kind() == c10::prim::Constant) return torch::jit::toIValue(v);
  // An Optional[Tensor] refined by `if bias is not None` reaches the op through a cast of the same value.
  if (n->kind() == c10::prim::unchecked_cast) return constant_or_attribute(n->input(0), self, root, written);
  if (n->kind() == c10::prim::ListConstruct) {
    c10::List<int64_t> ints;
    for (torch::jit::Value* e : n->inputs()) {
      auto x = constant_or_attribute(e, self, root, written);
      if (!x || !x->isInt()) return std::nullopt;
      ints.push_back(x->toInt());
    }
    return c10::IValue(ints);
  }
  if (n->kind() != c10::prim::GetAttr) return std::nullopt;
  const auto path = receiver_fqn(v, self);
  if (!path || written.count(*path)) return std::nullopt;
  std::vector<std::string> names;
  while (v != self) {
    names.push_back(v->node()->s(c10::attr::name));
    v = v->node()->input(0);
  }
  c10::IValue cur = root;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!cur.isObject()) return std::nullopt;
    const auto obj = cur.toObject();
    if (!obj->type()->hasAttribute(*it)) return std::nullopt;
    cur = obj->getAttr(*it);
  }
  return cur;
}

bool same_arguments(const std::vector<c10::IValue>& a, const std::vector<c10::IValue>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].isTensor() || b[i].isTensor()) {
      if (!a[i].isTensor() || !b[i].isTensor() ||
          a[i].toTensor().unsafeGetTensorImpl() != b[i].toTensor().unsafeGetTensorImpl())
        return false;
    } else if (!(a[i] == b[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace qreport::instrumentation
