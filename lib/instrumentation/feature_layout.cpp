// Which axis of an activation holds its features. A weight is applied along one axis of its input:
// the last for Linear, LayerNorm and recurrent layers, axis 1 for convolutions and batch norms. So the
// layer that produced an activation (through ops that keep the layout), else the layer that consumes it,
// says which axis is which, whatever the rank: [B, T, F] transformer activations and [B, C, L] Conv1d
// activations are both rank 3 and only the graph tells them apart.
#include "instrumentation/graph_passes.h"
#include "model/model.h"

#include <set>

namespace qreport::instrumentation {
namespace {

constexpr int kMaxSteps = 64;

std::string last_component(const std::string& s) {
  auto pos = s.rfind('.');
  return pos == std::string::npos ? s : s.substr(pos + 1);
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// Ops whose result has its input's layout: element-wise math, activations, dropout, casts.
bool keeps_layout(const std::string& op) {
  static const std::set<std::string> ops = {
      "relu", "relu_", "relu6", "gelu", "silu", "silu_", "sigmoid", "tanh", "hardtanh", "hardtanh_",
      "hardswish", "hardswish_", "hardsigmoid", "leaky_relu", "leaky_relu_", "elu", "selu", "celu", "mish",
      "softplus", "dropout", "dropout_", "feature_dropout", "alpha_dropout", "add", "add_", "sub", "sub_", "mul",
      "mul_", "div", "div_", "softmax", "log_softmax", "clamp", "clamp_", "contiguous", "clone", "neg", "abs",
      "pow", "sqrt", "rsqrt", "exp", "detach", "to", "masked_fill", "masked_fill_", "glu"};
  return starts_with(op, "aten::") && ops.count(op.substr(6));
}

// Weightless modules whose output has another layout than their input: the walk stops there, as at
// aten::permute or aten::flatten. torchvision's Permute moves channels last and back (Swin, ConvNeXt);
// Flatten turns [B, C, 1, 1] into [B, C], whose last axis is the channels.
bool changes_layout(const std::string& type_name) {
  static const std::set<std::string> modules = {"torch.nn.modules.flatten.Flatten", "torch.nn.modules.flatten.Unflatten",
                                                "torchvision.ops.misc.Permute"};
  return modules.count(type_name) > 0;
}

// An embedding's output is [..., embedding_dim]: features last, whatever its input (token ids) was.
bool is_embedding(const std::string& type_name) {
  return type_name == "torch.nn.modules.sparse.Embedding" || type_name == "torch.nn.modules.sparse.EmbeddingBag";
}

Layout layout_of_op(const std::string& op) {
  static const std::set<std::string> features = {"aten::linear", "aten::matmul", "aten::addmm", "aten::layer_norm"};
  static const std::set<std::string> channels = {"aten::conv1d",       "aten::conv2d",         "aten::conv3d",
                                                 "aten::_convolution", "aten::convolution",    "aten::batch_norm",
                                                 "aten::instance_norm", "aten::group_norm",    "aten::conv_transpose1d",
                                                 "aten::conv_transpose2d", "aten::conv_transpose3d"};
  if (features.count(op)) return Layout::Features;
  if (channels.count(op)) return Layout::Channels;
  return Layout::Unknown;
}

std::string module_type(torch::jit::Value* module) {
  auto cls = module->type()->cast<c10::ClassType>();
  return cls ? model::demangle_type_name(cls->name()->qualifiedName()) : std::string();
}

std::string describe_call(torch::jit::Node* call, torch::jit::Value* self) {
  auto fqn = receiver_fqn(call->input(0), self);
  return (fqn ? *fqn : std::string("a module")) + " (" + last_component(module_type(call->input(0))) + ")";
}

bool is_forward_call(torch::jit::Node* n) {
  return n->kind() == c10::prim::CallMethod && is_forward_method(n->s(c10::attr::name));
}

torch::jit::Value* first_tensor_input(torch::jit::Node* n) {
  for (auto* v : n->inputs())
    if (v->type()->isSubtypeOf(*c10::TensorType::get())) return v;
  return nullptr;
}

LayoutGuess producer(torch::jit::Value* v, torch::jit::Value* self, int steps) {
  for (; v && steps < kMaxSteps; ++steps) {
    torch::jit::Node* n = v->node();
    const std::string op = n->kind().toQualString();
    if (is_forward_call(n)) {
      Layout l = layout_of_module_type(module_type(n->input(0)));
      if (l == Layout::Unknown && is_embedding(module_type(n->input(0)))) l = Layout::Features;
      if (l != Layout::Unknown) return {l, "produced by " + describe_call(n, self)};
      if (changes_layout(module_type(n->input(0)))) return {};
      v = n->inputs().size() > 1 ? n->input(1) : nullptr;  // a weightless module: look through it
      continue;
    }
    if (Layout l = layout_of_op(op); l != Layout::Unknown) return {l, "produced by " + op};
    if (keeps_layout(op)) {
      v = first_tensor_input(n);
      continue;
    }
    if (n->kind() == c10::prim::If) {  // either branch: the first that tells
      size_t i = v->offset();
      for (torch::jit::Block* b : n->blocks()) {
        LayoutGuess g = producer(b->outputs().at(i), self, steps + 1);
        if (g.layout != Layout::Unknown) return g;
      }
      return {};
    }
    if (n->kind() == c10::prim::TupleUnpack || n->kind() == c10::prim::ListUnpack) {
      torch::jit::Node* src = n->input(0)->node();
      if (src->kind() == c10::prim::TupleConstruct || src->kind() == c10::prim::ListConstruct) {
        v = src->input(v->offset());
        continue;
      }
      if (is_forward_call(src)) {  // (output, state) of a recurrent layer
        Layout l = layout_of_module_type(module_type(src->input(0)));
        if (l != Layout::Unknown) return {l, "produced by " + describe_call(src, self)};
        // A weightless or unknown module returning a tuple: look through it, as through a single
        // output. A traced Hugging Face LlamaRMSNorm returns (normalized, input cast to float).
        v = src->inputs().size() > 1 ? src->input(1) : nullptr;
        continue;
      }
      return {};
    }
    if (n->kind() == c10::prim::TupleIndex && n->input(0)->node()->kind() == c10::prim::TupleConstruct) {
      auto idx = torch::jit::constant_as<int64_t>(n->input(1));
      if (!idx) return {};
      v = n->input(0)->node()->input(*idx);
      continue;
    }
    if (op == "aten::transpose") {
      // The batch/sequence swap of sequence-first attention (transpose(1, 0)) keeps the last axis last.
      auto a = torch::jit::constant_as<int64_t>(n->input(1)), b = torch::jit::constant_as<int64_t>(n->input(2));
      if (a && b && *a >= 0 && *b >= 0 && *a <= 1 && *b <= 1) {
        LayoutGuess g = producer(n->input(0), self, steps + 1);
        return g.layout == Layout::Features ? g : LayoutGuess{};
      }
      return {};
    }
    return {};
  }
  return {};
}

LayoutGuess consumer(torch::jit::Value* start, torch::jit::Value* self) {
  std::vector<torch::jit::Value*> frontier = {start};
  for (int steps = 0; !frontier.empty() && steps < kMaxSteps; ++steps) {
    std::vector<torch::jit::Value*> next;
    for (torch::jit::Value* v : frontier) {
      for (const torch::jit::Use& use : v->uses()) {
        torch::jit::Node* n = use.user;
        const std::string op = n->kind().toQualString();
        if (is_forward_call(n) && use.offset == 1) {
          Layout l = layout_of_module_type(module_type(n->input(0)));
          if (l != Layout::Unknown) return {l, "consumed by " + describe_call(n, self)};
          if (n->outputs().size() == 1 && !changes_layout(module_type(n->input(0)))) next.push_back(n->output());
        } else if (n->kind() == c10::prim::TupleUnpack) {
          // The tuple a weightless or unknown module returned (a traced LlamaRMSNorm's): its elements.
          for (torch::jit::Value* o : n->outputs()) next.push_back(o);
        } else if (Layout l = layout_of_op(op); l != Layout::Unknown && use.offset == 0) {
          return {l, "consumed by " + op};
        } else if (keeps_layout(op) && n->outputs().size() == 1) {
          next.push_back(n->output());
        }
      }
    }
    frontier = std::move(next);
  }
  return {};
}

}  // namespace

Layout layout_of_module_type(const std::string& type_name) {
  if (!starts_with(type_name, "torch.nn.") && !starts_with(type_name, "torch.ao.nn.")) return Layout::Unknown;
  const std::string cls = last_component(type_name);
  static const std::set<std::string> features = {"Linear",  "NonDynamicallyQuantizableLinear", "LSTM", "GRU", "RNN",
                                                 "LayerNorm", "Bilinear", "LinearReLU", "LinearBn1d"};
  if (features.count(cls)) return Layout::Features;
  if (starts_with(cls, "Conv") || starts_with(cls, "BatchNorm") || starts_with(cls, "InstanceNorm") ||
      cls == "GroupNorm" || starts_with(cls, "BNReLU"))
    return Layout::Channels;
  return Layout::Unknown;
}

LayoutGuess infer_layout(torch::jit::Value* value, torch::jit::Value* self) {
  if (!value) return {};
  LayoutGuess g = producer(value, self, 0);
  if (g.layout != Layout::Unknown) return g;
  return consumer(value, self);
}

}  // namespace qreport::instrumentation
