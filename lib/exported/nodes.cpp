// Graph nodes compiled against this LibTorch's operator schemas: each ATen node becomes a dispatcher
// call with its arguments in schema order (defaults filled in), so that running it needs no lookups.
// Everything that cannot run is refused here, at load, naming the node and its target.
#include <ATen/ATen.h>
#include <torch/version.h>

#include <set>

#include "common/errors.h"
#include "exported/impl.h"

namespace qreport::exported {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// The integer operators export writes for symbolic sizes (torch/_export/serde/serialize.py, _SYM_OPS),
// those a dynamic batch dimension needs.
const std::set<std::string> kSymArith = {"add", "sub", "mul", "floordiv", "mod", "eq", "ne", "lt", "le", "gt", "ge"};

class NodeCompiler {
 public:
  NodeCompiler(Program::Impl& impl, const Json& node) : impl_(impl), node_(node) {
    step_.name = node["name"].str();
    step_.target = node["target"].str();
  }

  Step compile() {
    const std::string& t = step_.target;
    if (starts_with(t, "torch.ops.higher_order."))
      reject("a higher-order operator (control flow or a wrapped region), which qreport cannot run");
    if (t == "torch.ops.aten.sym_size.int") {
      step_.kind = Step::SymSize;
      step_.args = {plain_operand("self"), plain_operand("dim")};
    } else if (starts_with(t, "_operator.") && kSymArith.count(t.substr(10))) {
      step_.kind = Step::SymArith;
      step_.arith = t.substr(10);
      step_.args = {plain_operand("a"), plain_operand("b")};
    } else if (starts_with(t, "torch.ops.")) {
      dispatch_call();
      return std::move(step_);
    } else {
      reject("not an operator qreport can run");
    }
    define_results(1);
    return std::move(step_);
  }

 private:
  [[noreturn]] void reject(const std::string& why) const {
    throw InputError("model '" + impl_.path + "': node '" + step_.name + "' (" + step_.target + "): " + why);
  }

  Json input_named(const std::string& name) const {
    const Json inputs = node_["inputs"];
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs.at(i)["name"].str() == name) return inputs.at(i)["arg"];
    reject("argument '" + name + "' is missing");
  }

  Slot use(const std::string& name) const {
    auto it = impl_.slot_of.find(name);
    if (it == impl_.slot_of.end()) reject("uses '" + name + "', which no earlier node or input defines");
    return it->second;
  }

  Slot define(const std::string& name, bool tensor) {
    if (impl_.slot_of.count(name)) reject("defines '" + name + "' a second time");
    const Slot s = static_cast<Slot>(impl_.slot_count++);
    impl_.slot_of[name] = s;
    impl_.slot_tensor.push_back(tensor);
    impl_.slot_state.push_back(false);
    return s;
  }

  Operand plain_operand(const std::string& name) { return operand(input_named(name), nullptr); }

  // One argument as the serializer wrote it, for an argument of `type` (nullptr: no schema).
  Operand operand(const Json& arg, const c10::TypePtr& type) {
    Json v(nullptr, "");
    const std::string kind = arg.union_kind(&v);
    Operand o;
    // A number where the schema wants a Tensor (aten.add.Tensor(x, sym_size)): Python wraps it in a
    // 0-dim "wrapped number" tensor, which type promotion ignores; the boxed call must get the same.
    o.wrap_number = type && type->kind() == c10::TypeKind::TensorType;
    if (kind == "as_none") {
      o.wrap_number = false;
    } else if (kind == "as_tensor") {
      o.kind = Operand::Value;
      o.slot = use(v["name"].str());
      o.wrap_number = false;
    } else if (kind == "as_tensors" || kind == "as_optional_tensors") {
      o.kind = kind == "as_tensors" ? Operand::TensorList : Operand::OptionalTensorList;
      for (size_t i = 0; i < v.size(); ++i) {
        Json e = v.at(i), inner(nullptr, "");
        if (kind == "as_tensors") {
          o.slots.push_back(use(e["name"].str()));
        } else {
          const std::string k = e.union_kind(&inner);
          o.slots.push_back(k == "as_tensor" ? use(inner["name"].str()) : -1);
        }
      }
      o.wrap_number = false;
    } else if (kind == "as_optional_tensor") {
      Json inner(nullptr, "");
      if (v.union_kind(&inner) == "as_tensor") {
        o.kind = Operand::Value;
        o.slot = use(inner["name"].str());
      }
      o.wrap_number = false;
    } else if (kind == "as_int") {
      o.constant = v.int64();
    } else if (kind == "as_float") {
      o.constant = v.number();
    } else if (kind == "as_bool") {
      o.constant = v.boolean();
    } else if (kind == "as_sym_int" || kind == "as_sym_float" || kind == "as_sym_bool") {
      Json inner(nullptr, "");
      const std::string k = v.union_kind(&inner);
      if (k == "as_name") {
        o.kind = Operand::Value;
        o.slot = use(inner.str());
      } else if (k == "as_int") {
        o.constant = inner.int64();
      } else if (k == "as_float") {
        o.constant = inner.number();
      } else {
        o.constant = inner.boolean();
      }
    } else if (kind == "as_ints" || kind == "as_sym_ints") {
      o.kind = Operand::IntList;
      for (size_t i = 0; i < v.size(); ++i) {
        Json e = v.at(i), inner(nullptr, "");
        const bool sym = kind == "as_sym_ints" && e.union_kind(&inner) == "as_name";
        o.slots.push_back(sym ? use(inner.str()) : -1);
        o.ints.push_back(sym ? 0 : (kind == "as_ints" ? e.int64() : inner.int64()));
      }
      o.wrap_number = false;
    } else {
      o.wrap_number = false;
      o.constant = constant(kind, v);
    }
    if (o.wrap_number && o.kind == Operand::Constant) {  // a constant number: wrap it once, here
      o.constant = wrapped_number(o.constant);
      o.wrap_number = false;
    }
    return o;
  }

  c10::IValue constant(const std::string& kind, const Json& v) const {
    if (kind == "as_floats") {
      std::vector<double> out;
      for (size_t i = 0; i < v.size(); ++i) out.push_back(v.at(i).number());
      return out;
    }
    if (kind == "as_bools") {
      c10::List<bool> out;
      for (size_t i = 0; i < v.size(); ++i) out.push_back(v.at(i).boolean());
      return out;
    }
    if (kind == "as_string") return v.str();
    if (kind == "as_strings") {
      std::vector<std::string> out;
      for (size_t i = 0; i < v.size(); ++i) out.push_back(v.at(i).str());
      return out;
    }
    if (kind == "as_scalar_type") return scalar_type(v);
    if (kind == "as_memory_format") {
      switch (v.int64()) {  // schema.py, MemoryFormat
        case 1: return c10::MemoryFormat::Contiguous;
        case 2: return c10::MemoryFormat::ChannelsLast;
        case 3: return c10::MemoryFormat::ChannelsLast3d;
        case 4: return c10::MemoryFormat::Preserve;
        default: v.fail("unknown memory format");
      }
    }
    if (kind == "as_layout") {
      if (v.int64() != 7) v.fail("a layout other than strided");
      return c10::kStrided;
    }
    if (kind == "as_device") {
      std::string dev = v["type"].str();
      if (v.has("index") && !v["index"].is_null()) dev += ":" + std::to_string(v["index"].int64());
      try {
        return c10::Device(dev);
      } catch (const std::exception&) {
        v.fail("device '" + dev + "' is not one this LibTorch knows");
      }
    }
    reject("an argument of kind " + kind + ", which qreport does not run");
  }

  void dispatch_call() {
    // "torch.ops.aten.conv2d.default" -> operator "aten::conv2d", overload "" (default).
    const std::string rest = step_.target.substr(10);
    const size_t a = rest.find('.'), b = rest.rfind('.');
    if (a == std::string::npos || a == b) reject("not an operator name of the form torch.ops.NS.OP.OVERLOAD");
    const std::string ns = rest.substr(0, a), name = ns + "::" + rest.substr(a + 1, b - a - 1);
    const std::string overload = rest.substr(b + 1) == "default" ? "" : rest.substr(b + 1);
    // c10::optional, which 1.13 does not alias to std::optional: copied out rather than assigned.
    if (auto found = c10::Dispatcher::singleton().findSchema({name, overload})) step_.op = *found;
    if (!step_.op)
      reject(ns == "aten" || ns == "prims"
                 ? "an operator this LibTorch " TORCH_VERSION " does not have (the program was saved by PyTorch " +
                       impl_.torch_version + ")"
                 : "a custom operator with no kernel in qreport (only PyTorch's own operators run)");
    const c10::FunctionSchema& schema = step_.op->schema();
    const Json inputs = node_["inputs"];
    std::set<std::string> given;
    for (size_t i = 0; i < inputs.size(); ++i)
      if (!given.insert(inputs.at(i)["name"].str()).second)
        reject("argument '" + inputs.at(i)["name"].str() + "' given twice");
    for (const c10::Argument& arg : schema.arguments()) {
      if (given.erase(arg.name())) {
        step_.args.push_back(operand(input_named(arg.name()), arg.type()));
        refuse_training(arg.name(), step_.args.back());
      } else if (arg.default_value()) {
        Operand o;
        o.constant = *arg.default_value();
        step_.args.push_back(std::move(o));
      } else {
        reject("argument '" + arg.name() + "' of " + schema.name() + " is missing");
      }
    }
    if (!given.empty())
      reject("argument '" + *given.begin() + "' is not in this LibTorch's schema of " + schema.name() +
             " (the program was saved by PyTorch " + impl_.torch_version + ")");
    define_results(schema.returns().size());
  }

  // A program exported in train mode (2.x writes no buffer mutation for it) keeps dropout's and batch
  // norm's training flags: the first draws a random mask on every run, the second normalizes by the batch,
  // so no two runs would agree and nothing measured would be the eval model's. Refused, naming the node.
  void refuse_training(const std::string& name, const Operand& o) const {
    if ((name == "train" || name == "training") && o.kind == Operand::Constant && o.constant.isBool() &&
        o.constant.toBool())
      reject("runs in training mode (" + name + "=True): call model.eval() before torch.export.export");
  }

  void define_results(size_t expected) {
    const Json outputs = node_["outputs"];
    if (outputs.size() != expected)
      reject(std::to_string(outputs.size()) + " outputs where the operator returns " + std::to_string(expected));
    for (size_t i = 0; i < outputs.size(); ++i) {
      Json v(nullptr, "");
      const std::string kind = outputs.at(i).union_kind(&v);
      Result r;
      if (kind == "as_tensor") {
        r.kind = Result::Value;
        r.slot = define(v["name"].str(), true);
      } else if (kind == "as_tensors" || kind == "as_optional_tensors") {
        r.kind = Result::List;
        for (size_t k = 0; k < v.size(); ++k) {
          Json e = v.at(k), inner(nullptr, "");
          if (kind == "as_tensors") r.slots.push_back(define(e["name"].str(), true));
          else r.slots.push_back(e.union_kind(&inner) == "as_tensor" ? define(inner["name"].str(), true) : -1);
        }
      } else if (kind == "as_sym_int" || kind == "as_sym_bool" || kind == "as_sym_float") {
        Json inner(nullptr, "");
        if (v.union_kind(&inner) != "as_name") reject("a constant where a symbolic output was expected");
        r.kind = Result::Value;
        r.slot = define(inner.str(), false);
      } else if (kind != "as_none") {
        reject("an output of kind " + kind + ", which qreport does not run");
      }
      step_.results.push_back(std::move(r));
    }
  }

  Program::Impl& impl_;
  const Json& node_;
  Step step_;
};

}  // namespace

at::Tensor wrapped_number(const c10::IValue& v) {
  at::Tensor t = v.isDouble() ? at::scalar_tensor(v.toDouble(), at::kDouble)
                 : v.isBool() ? at::scalar_tensor(v.toBool(), at::kBool)
                              : at::scalar_tensor(v.toInt(), at::kLong);
  t.unsafeGetTensorImpl()->set_wrapped_number(true);
  return t;
}

void compile_nodes(const Json& graph, Program::Impl& impl) {
  const Json nodes = graph["nodes"];
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Json node = nodes.at(i);
    impl.steps.push_back(NodeCompiler(impl, node).compile());
  }
}

}  // namespace qreport::exported
