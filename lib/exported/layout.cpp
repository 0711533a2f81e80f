// Activation layouts on an exported graph (--ch-axis auto for modules without a weight): the same rules as
// the TorchScript path's instrumentation/feature_layout.cpp, on the graph's ATen ops. A weight is applied
// along one axis of its input, so the op that made an activation (looking through element-wise ops and
// weightless module calls) says which axis holds its features, else the op that reads it.
#include <ATen/core/Tensor.h>

#include <set>

#include "exported/impl.h"

namespace qreport::exported {
namespace {

constexpr int kMaxSteps = 64;
enum { kUnknown = 0, kFeatures = 1, kChannels = 2 };

int layout_of_op(const std::string& op) {
  static const std::set<std::string> features = {"aten::linear", "aten::matmul", "aten::addmm", "aten::layer_norm",
                                                 "aten::embedding", "aten::lstm", "aten::gru", "aten::rnn_tanh",
                                                 "aten::rnn_relu"};
  static const std::set<std::string> channels = {
      "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::_convolution", "aten::convolution", "aten::batch_norm",
      "aten::_native_batch_norm_legit_no_training", "aten::instance_norm", "aten::group_norm",
      "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d"};
  if (features.count(op)) return kFeatures;
  if (channels.count(op)) return kChannels;
  return kUnknown;
}

bool keeps_layout(const std::string& op) {
  static const std::set<std::string> ops = {
      "relu", "relu_", "relu6", "gelu", "silu", "silu_", "sigmoid", "tanh", "hardtanh", "hardtanh_",
      "hardswish", "hardswish_", "hardsigmoid", "leaky_relu", "leaky_relu_", "elu", "selu", "celu", "mish",
      "softplus", "dropout", "dropout_", "feature_dropout", "alpha_dropout", "add", "add_", "sub", "sub_", "mul",
      "mul_", "div", "div_", "softmax", "log_softmax", "clamp", "clamp_", "contiguous", "clone", "neg", "abs",
      "pow", "sqrt", "rsqrt", "exp", "detach", "to", "masked_fill", "masked_fill_", "glu", "_to_copy", "alias"};
  return op.rfind("aten::", 0) == 0 && ops.count(op.substr(6));
}

// Weightless modules whose output has another layout than their input (feature_layout.cpp's list).
bool changes_layout(const std::string& type_name) {
  return type_name == "torch.nn.modules.flatten.Flatten" || type_name == "torch.nn.modules.flatten.Unflatten" ||
         type_name == "torchvision.ops.misc.Permute";
}

struct Graph {
  std::vector<int> def_step;
  std::vector<std::vector<std::pair<size_t, size_t>>> users;  // slot -> (step, operand index)
  std::vector<int> leaf_call;                                 // step -> its innermost leaf module call, or -1
};

Graph graph_of(const Program::Impl& m) {
  Graph g;
  g.def_step.assign(m.slot_count, -1);
  g.users.resize(m.slot_count);
  g.leaf_call.assign(m.steps.size(), -1);
  for (size_t i = 0; i < m.steps.size(); ++i) {
    for (const Result& r : m.steps[i].results) {
      if (r.kind == Result::Value) g.def_step[r.slot] = static_cast<int>(i);
      for (Slot s : r.slots)
        if (s >= 0) g.def_step[s] = static_cast<int>(i);
    }
    for (size_t a = 0; a < m.steps[i].args.size(); ++a) {
      const Operand& o = m.steps[i].args[a];
      if (o.kind == Operand::Value) g.users[o.slot].emplace_back(i, a);
    }
  }
  for (size_t c = 0; c < m.calls.size(); ++c)
    if (m.calls[c].leaf && m.calls[c].functional.empty())
      for (size_t i : m.calls[c].nodes) g.leaf_call[i] = static_cast<int>(c);
  return g;
}

std::string op_name(const Step& s) { return s.kind == Step::Dispatch && s.op ? s.op->schema().name() : ""; }

std::string type_of(const Program::Impl& m, const std::string& fqn) {
  for (const Module& mod : m.modules)
    if (mod.fqn == fqn) return mod.type_name;
  return "";
}

bool weightless(const Program::Impl& m, const std::string& fqn) { return !m.state.count(fqn + ".weight"); }

int producer(const Program::Impl& m, const Graph& g, Slot v) {
  bool features_only = false;  // after a batch/sequence transpose only the last axis stays the last
  for (int steps = 0; v >= 0 && steps < kMaxSteps; ++steps) {
    const int d = g.def_step[v];
    if (d < 0) return kUnknown;
    const Step& s = m.steps[d];
    const std::string op = op_name(s);
    if (int l = layout_of_op(op); l != kUnknown) return features_only && l != kFeatures ? kUnknown : l;
    const int c = g.leaf_call[d];
    if (c >= 0 && !m.calls[c].inputs.empty() && weightless(m, m.calls[c].fqn)) {
      // A weightless module (pooling, activation): look through it to its input.
      if (changes_layout(type_of(m, m.calls[c].fqn))) return kUnknown;
      const Slot in = m.slot_of.at(m.calls[c].inputs[0]);
      if (in == v) return kUnknown;
      v = in;
      continue;
    }
    if (keeps_layout(op)) {
      Slot next = -1;
      for (const Operand& o : s.args)
        if (o.kind == Operand::Value && m.slot_tensor[o.slot]) {
          next = o.slot;
          break;
        }
      v = next;
      continue;
    }
    if (op == "aten::transpose" && s.args.size() == 3 && s.args[1].kind == Operand::Constant &&
        s.args[2].kind == Operand::Constant) {
      const int64_t a = s.args[1].constant.toInt(), b = s.args[2].constant.toInt();
      if (a >= 0 && b >= 0 && a <= 1 && b <= 1) {
        features_only = true;
        v = s.args[0].kind == Operand::Value ? s.args[0].slot : -1;
        continue;
      }
    }
    return kUnknown;
  }
  return kUnknown;
}

int consumer(const Program::Impl& m, const Graph& g, Slot start) {
  std::vector<Slot> frontier = {start};
  for (int steps = 0; !frontier.empty() && steps < kMaxSteps; ++steps) {
    std::vector<Slot> next;
    for (Slot v : frontier)
      for (const auto& [i, a] : g.users[v]) {
        const Step& s = m.steps[i];
        const std::string op = op_name(s);
        if (int l = layout_of_op(op); l != kUnknown && a == 0) return l;
        if (keeps_layout(op) && s.results.size() == 1 && s.results[0].kind == Result::Value)
          next.push_back(s.results[0].slot);
      }
    frontier = std::move(next);
  }
  return kUnknown;
}

}  // namespace

int Program::input_layout(const std::string& fqn) const {
  const Impl& m = *impl_;
  for (const ModuleCall& c : m.calls) {
    if (c.fqn != fqn || c.inputs.empty()) continue;
    const Graph g = graph_of(m);
    const Slot v = m.slot_of.at(c.inputs[0]);
    const int l = producer(m, g, v);
    return l != kUnknown ? l : consumer(m, g, v);
  }
  return kUnknown;
}

}  // namespace qreport::exported
