// The interpreter: the compiled steps in graph order on one environment of IValues, each ATen node one
// boxed dispatcher call (the same kernels torch.export's module() runs in Python), observers at the
// boundaries of module calls.
#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "common/errors.h"
#include "exported/impl.h"

namespace qreport::exported {
namespace {

std::string shape_text(const std::vector<int64_t>& sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + (sizes[i] < 0 ? std::string("batch") : std::to_string(sizes[i]));
  return s + "]";
}

void check_inputs(const Program::Impl& m, const std::vector<at::Tensor>& inputs) {
  if (inputs.size() != m.inputs.size())
    throw InputError("the exported program takes " + std::to_string(m.inputs.size()) + " input(s), got " +
                     std::to_string(inputs.size()));
  int64_t batch = -1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const InputSpec& spec = m.inputs[i];
    const at::Tensor& t = inputs[i];
    auto bad = [&](const std::string& why) {
      throw InputError("input '" + spec.name + "' " + why + " (the program was exported for " +
                       c10::toString(spec.dtype) + " " + shape_text(spec.sizes) + ")");
    };
    if (!t.defined()) bad("is not a tensor");
    if (t.scalar_type() != spec.dtype) bad(std::string("is ") + c10::toString(t.scalar_type()));
    if (t.dim() != static_cast<int64_t>(spec.sizes.size())) bad("has " + std::to_string(t.dim()) + " dimensions");
    for (size_t d = 0; d < spec.sizes.size(); ++d) {
      const int64_t n = t.size(static_cast<int64_t>(d));
      if (spec.sizes[d] >= 0 && n != spec.sizes[d])
        bad("has size " + std::to_string(n) + " in dimension " + std::to_string(d));
      if (spec.sizes[d] >= 0) continue;
      if (n < spec.batch_min || n > spec.batch_max)
        bad("has batch size " + std::to_string(n) + ", outside the exported range " + std::to_string(spec.batch_min) +
            ".." + (spec.batch_max == INT64_MAX ? std::string("inf") : std::to_string(spec.batch_max)));
      if (batch >= 0 && n != batch) bad("has batch size " + std::to_string(n) + ", another input " + std::to_string(batch));
      batch = n;
    }
  }
}

c10::IValue value_of(const Operand& o, const std::vector<c10::IValue>& env) {
  switch (o.kind) {
    case Operand::Constant: return o.constant;
    case Operand::Value: return o.wrap_number ? c10::IValue(wrapped_number(env[o.slot])) : env[o.slot];
    case Operand::TensorList: {
      c10::List<at::Tensor> l;
      l.reserve(o.slots.size());
      for (Slot s : o.slots) l.push_back(env[s].toTensor());
      return l;
    }
    case Operand::OptionalTensorList: {
      c10::List<c10::optional<at::Tensor>> l;
      for (Slot s : o.slots) l.push_back(s < 0 ? c10::optional<at::Tensor>() : env[s].toTensor());
      return l;
    }
    case Operand::IntList: {
      std::vector<int64_t> v(o.ints);
      for (size_t i = 0; i < o.slots.size(); ++i)
        if (o.slots[i] >= 0) v[i] = env[o.slots[i]].toInt();
      return v;
    }
  }
  throw InternalError("unknown operand kind");
}

c10::IValue arith(const std::string& op, int64_t a, int64_t b) {
  if (op == "add") return a + b;
  if (op == "sub") return a - b;
  if (op == "mul") return a * b;
  if ((op == "floordiv" || op == "mod") && b == 0) throw std::runtime_error("integer division by zero in a size");
  if (op == "floordiv") return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));  // Python's floor division
  if (op == "mod") return ((a % b) + b) % b;
  if (op == "eq") return a == b;
  if (op == "ne") return a != b;
  if (op == "lt") return a < b;
  if (op == "le") return a <= b;
  if (op == "gt") return a > b;
  return a >= b;  // "ge", the last of kSymArith
}

int64_t as_int(const c10::IValue& v) { return v.isBool() ? v.toBool() : v.toInt(); }

void execute(const Step& step, std::vector<c10::IValue>& env) {
  if (step.kind == Step::SymSize) {
    env[step.results[0].slot] = env[step.args[0].slot].toTensor().size(value_of(step.args[1], env).toInt());
    return;
  }
  if (step.kind == Step::SymArith) {
    env[step.results[0].slot] = arith(step.arith, as_int(value_of(step.args[0], env)), as_int(value_of(step.args[1], env)));
    return;
  }
  torch::jit::Stack stack;
  stack.reserve(step.args.size());
  for (const Operand& o : step.args) stack.push_back(value_of(o, env));
  step.op->callBoxed(stack);
  if (stack.size() != step.results.size())
    throw InternalError("node '" + step.name + "' returned " + std::to_string(stack.size()) + " values, expected " +
                        std::to_string(step.results.size()));
  for (size_t i = 0; i < stack.size(); ++i) {
    const Result& r = step.results[i];
    if (r.kind == Result::Value) env[r.slot] = std::move(stack[i]);
    if (r.kind != Result::List) continue;
    std::vector<at::Tensor> list = stack[i].toTensorVector();
    if (list.size() != r.slots.size())
      throw std::runtime_error("node '" + step.name + "' returned " + std::to_string(list.size()) +
                               " tensors, the program expects " + std::to_string(r.slots.size()));
    for (size_t k = 0; k < list.size(); ++k)
      if (r.slots[k] >= 0) env[r.slots[k]] = std::move(list[k]);
  }
}

}  // namespace

std::vector<at::Tensor> Program::run(const std::vector<at::Tensor>& inputs, const ObserveSink& sink) const {
  return run(inputs, sink, RewriteSink());
}

std::vector<at::Tensor> Program::run(const std::vector<at::Tensor>& inputs, const ObserveSink& sink,
                                     const RewriteSink& rewrite, const SkipSink& skip) const {
  const Impl& m = *impl_;
  check_inputs(m, inputs);
  std::vector<c10::IValue> env(m.slot_count);
  for (const auto& [slot, t] : m.state_slots) env[slot] = t;
  for (size_t i = 0; i < inputs.size(); ++i) env[m.inputs[i].slot] = inputs[i];
  for (size_t i = 0; i < m.steps.size(); ++i) {
    const Step& step = m.steps[i];
    if (sink)
      for (const auto& [slot, id] : step.observe_before) sink(id, env[slot].toTensor());
    const bool skippable = skip && step.skip_id >= 0;
    if ((rewrite && !step.rewrite_before.empty()) || step.weight_swap.defined() || skippable) {
      // This node alone reads the rewritten input or swapped weight: the slot holds it while the node
      // runs, then the original again for later readers (graphs are SSA: a node never writes the slots it
      // reads). Restored in reverse, so a slot replaced twice ends as it began.
      std::vector<std::pair<Slot, c10::IValue>> kept;
      if (rewrite)
        for (const auto& [slot, id] : step.rewrite_before) {
          kept.emplace_back(slot, env[slot]);
          env[slot] = rewrite(id, kept.back().second.toTensor());
        }
      if (step.weight_swap.defined()) {
        const Slot w = step.args[1].slot;
        kept.emplace_back(w, env[w]);
        env[w] = step.weight_swap;
      }
      // Asked after the rewrite, which tells the sensitivity pass whether this run still equals the one
      // it reuses (TorchScript's rewrite op also runs before the If around the call).
      at::Tensor given = skippable ? skip(step.skip_id) : at::Tensor();
      if (given.defined()) {
        for (auto it = kept.rbegin(); it != kept.rend(); ++it) env[it->first] = std::move(it->second);
        env[step.skip_output] = given;
        // The call's nodes do not run: its output's observers see the given value, and the values whose
        // last use was inside the call are released as they would have been.
        for (size_t j = i; j < step.skip_end; ++j) {
          if (sink)
            for (const auto& [slot, id] : m.steps[j].observe_after)
              if (slot == step.skip_output) sink(id, given);
          for (Slot s : m.steps[j].release) env[s] = c10::IValue();
        }
        i = step.skip_end - 1;
        continue;
      }
      execute(step, env);
      for (auto it = kept.rbegin(); it != kept.rend(); ++it) env[it->first] = std::move(it->second);
    } else {
      execute(step, env);
    }
    if (sink)
      for (const auto& [slot, id] : step.observe_after) sink(id, env[slot].toTensor());
    for (Slot s : step.release) env[s] = c10::IValue();
  }
  std::vector<at::Tensor> out;
  for (Slot s : m.outputs) out.push_back(env[s].toTensor());
  return out;
}

std::string Program::resolve(const std::string& fqn, bool* found) const {
  for (std::string at = fqn;;) {
    for (const ModuleCall& c : impl_->calls)
      if (c.leaf && c.fqn == at) {
        *found = true;
        return at;
      }
    if (at.empty()) break;
    const size_t dot = at.rfind('.');
    at = dot == std::string::npos ? "" : at.substr(0, dot);
  }
  *found = false;
  return "";
}

namespace {

// Whether `step` applies the state tensor `weight_fqn` as its weight: (input, weight, bias, ...) in
// linear's and convNd's schemas, so the weight operand is the second.
bool applies_weight(const Program::Impl& m, const Step& step, const std::string& weight_fqn) {
  if (step.kind != Step::Dispatch || step.args.size() < 2) return false;
  const Operand& w = step.args[1];
  if (w.kind != Operand::Value) return false;
  auto name = m.state_name.find(w.slot);
  return name != m.state_name.end() && name->second == weight_fqn;
}

// The step of `call` where its first input is first read (input) or its first output made (output), with
// that value's slot; nullptr when the call has no such value.
Step* boundary_step(Program::Impl& m, const ModuleCall& call, Side side, Slot* slot) {
  const auto& names = side == Side::Input ? call.inputs : call.outputs;
  if (names.empty()) return nullptr;
  *slot = m.slot_of.at(names[0]);
  for (size_t i : call.nodes) {
    Step& step = m.steps[i];
    bool here = false;
    if (side == Side::Input) {
      for (const Operand& o : step.args)
        here = here || (o.kind == Operand::Value && o.slot == *slot) ||
               std::find(o.slots.begin(), o.slots.end(), *slot) != o.slots.end();
    } else {
      for (const Result& r : step.results)
        here = here || (r.kind == Result::Value && r.slot == *slot) ||
               std::find(r.slots.begin(), r.slots.end(), *slot) != r.slots.end();
    }
    if (here) return &step;
  }
  return nullptr;
}

}  // namespace

int Program::observe(const std::string& fqn, Side side, int64_t id) {
  Impl& m = *impl_;
  int count = 0;
  for (const ModuleCall& call : m.calls) {
    if (call.fqn != fqn) continue;
    Slot slot = -1;
    // inputs: before the call's first node that reads it; outputs: after the node that makes it
    Step* step = boundary_step(m, call, side, &slot);
    if (!step) continue;
    (side == Side::Input ? step->observe_before : step->observe_after).emplace_back(slot, id);
    ++count;
  }
  return count;
}

int Program::rewrite_input(const std::string& fqn, int64_t id) {
  Impl& m = *impl_;
  int count = 0;
  for (const ModuleCall& call : m.calls) {
    if (call.fqn != fqn) continue;
    Slot slot = -1;
    Step* step = boundary_step(m, call, Side::Input, &slot);
    if (!step) continue;
    step->rewrite_before.emplace_back(slot, id);
    ++count;
  }
  return count;
}

int Program::skippable(const std::string& fqn, int64_t id) {
  Impl& m = *impl_;
  struct Mark {
    size_t first, end;
    Slot output;
  };
  std::vector<Mark> marks;
  for (const ModuleCall& call : m.calls) {
    if (call.fqn != fqn) continue;
    if (call.nodes.empty() || call.outputs.size() != 1) return 0;
    const size_t first = call.nodes.front(), end = call.nodes.back() + 1;
    if (end - first != call.nodes.size() || m.steps[first].skip_id >= 0) return 0;  // interleaved, or taken
    Slot in = -1;
    if (boundary_step(m, call, Side::Input, &in) != &m.steps[first]) return 0;  // asked before its rewrite
    const Slot out = m.slot_of.at(call.outputs[0]);
    std::set<Slot> made;
    for (size_t j = first; j < end; ++j)
      for (Slot s : defs(m.steps[j])) made.insert(s);
    if (made.erase(out) == 0) return 0;
    // Nothing else the call makes may be read after it (a size, a second tensor), or returned.
    for (size_t j = end; j < m.steps.size(); ++j)
      for (Slot s : uses(m.steps[j]))
        if (made.count(s)) return 0;
    for (Slot s : m.outputs)
      if (made.count(s)) return 0;
    marks.push_back({first, end, out});
  }
  for (const Mark& k : marks) {
    Step& step = m.steps[k.first];
    step.skip_id = id;
    step.skip_end = k.end;
    step.skip_output = k.output;
  }
  return static_cast<int>(marks.size());
}

int Program::swap_weight(const std::string& weight_fqn, const at::Tensor& value) {
  Impl& m = *impl_;
  const at::Tensor stored = state(weight_fqn);
  const bool restore = !value.defined() || (stored.defined() && value.is_same(stored));
  int count = 0;
  for (Step& step : m.steps)
    if (applies_weight(m, step, weight_fqn)) {
      step.weight_swap = restore ? at::Tensor() : value;
      ++count;
    }
  if (count == 0) throw InternalError("no Linear/Conv node of the exported program applies '" + weight_fqn + "'");
  return count;
}

}  // namespace qreport::exported

namespace qreport::exported {

void Program::clear_observations() {
  for (Step& step : impl_->steps) {
    step.observe_before.clear();
    step.observe_after.clear();
    step.rewrite_before.clear();
    step.skip_id = -1;
  }
}

std::string Program::unapplied_weight_reader(const std::string& weight_fqn) const {
  const Impl& m = *impl_;
  std::string reader;
  for (const Step& step : m.steps) {
    if (applies_weight(m, step, weight_fqn)) return "";
    if (!reader.empty()) continue;
    for (Slot s : uses(step)) {
      auto name = m.state_name.find(s);
      if (name != m.state_name.end() && name->second == weight_fqn) reader = step.target;
    }
  }
  return reader;
}

namespace {

// Whether an argument of a weight-applying node is known without running the program: a constant, a list of
// constant ints, or a stored tensor (the bias).
bool fixed_operand(const Program::Impl& m, const Operand& o) {
  if (o.kind == Operand::Constant) return true;
  if (o.kind == Operand::IntList) return std::all_of(o.slots.begin(), o.slots.end(), [](Slot s) { return s < 0; });
  return o.kind == Operand::Value && m.state_name.count(o.slot) > 0;
}

// Whether two fixed operands are the same argument (the same constant, the same stored tensor).
bool same_operand(const Program::Impl& m, const Operand& a, const Operand& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == Operand::IntList) return a.ints == b.ints;
  if (a.kind == Operand::Value) return m.state_name.at(a.slot) == m.state_name.at(b.slot);
  if (a.constant.isTensor() || b.constant.isTensor()) return a.constant.isSameIdentity(b.constant);
  return a.constant == b.constant;
}

}  // namespace

std::string Program::weight_op_not_fixed(const std::string& weight_fqn) const {
  const Impl& m = *impl_;
  const Step* first = nullptr;
  for (const Step& step : m.steps) {
    if (!applies_weight(m, step, weight_fqn)) continue;
    bool fixed = std::all_of(step.args.begin() + 2, step.args.end(), [&](const Operand& o) { return fixed_operand(m, o); });
    // apply_weight_op applies the first node's arguments to every call: they must be every node's.
    if (fixed && first) {
      fixed = step.target == first->target && step.args.size() == first->args.size();
      for (size_t i = 2; fixed && i < step.args.size(); ++i) fixed = same_operand(m, step.args[i], first->args[i]);
    }
    if (!fixed) return step.target;
    if (!first) first = &step;
  }
  return "";
}

at::Tensor Program::apply_weight_op(const std::string& weight_fqn, const at::Tensor& x, const at::Tensor& weight) const {
  const Impl& m = *impl_;
  for (const Step& step : m.steps) {
    if (!applies_weight(m, step, weight_fqn)) continue;
    torch::jit::Stack stack;
    stack.reserve(step.args.size());
    stack.push_back(x);
    stack.push_back(weight);
    for (size_t i = 2; i < step.args.size(); ++i) {
      const Operand& o = step.args[i];
      if (!fixed_operand(m, o))  // weight_op_not_fixed() keeps callers from here
        throw InternalError("node '" + step.name + "' takes a value computed at run time; it cannot be applied alone");
      if (o.kind == Operand::Constant) stack.push_back(o.constant);
      else if (o.kind == Operand::IntList) stack.push_back(o.ints);  // [1, 1] strides
      else stack.push_back(m.state.at(m.state_name.at(o.slot)));
    }
    step.op->callBoxed(stack);
    return stack.at(0).toTensor();
  }
  throw InternalError("no Linear/Conv node of the exported program applies '" + weight_fqn + "'");
}

}  // namespace qreport::exported
