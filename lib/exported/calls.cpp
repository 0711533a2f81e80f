// Module calls from the program's own metadata. Each node's nn_module_stack lists the module calls it
// sits in, outermost first, as "key,fqn,class" entries joined by ';' (a second call of one module gets
// the key "<key>@1"). A call is every node whose stack holds its key; its observed values are the tensors
// that cross that group's boundary. The module list comes from module_call_graph, which export writes in
// named_modules() order (uncalled modules included).
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/errors.h"
#include "exported/impl.h"

namespace qreport::exported {
namespace {

struct Entry {
  std::string key, fqn, type;
};

// "key,fqn,class" with commas inside brackets kept (the serializer's own reader splits the same way).
Entry split_entry(const std::string& item, const Json& where) {
  std::vector<std::string> parts;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i < item.size(); ++i) {
    const char c = item[i];
    if (c == '[' || c == '(') ++depth;
    else if (c == ']' || c == ')') --depth;
    else if (c == ',' && depth == 0) {
      parts.push_back(item.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(item.substr(start));
  if (parts.size() != 3) where.fail("an nn_module_stack entry that is not \"key,fqn,class\": '" + item + "'");
  return {parts[0], parts[1], parts[2]};
}

std::vector<Entry> module_stack(const Json& node) {
  std::vector<Entry> out;
  if (!node.has("metadata") || !node["metadata"].has("nn_module_stack")) return out;
  const Json s = node["metadata"]["nn_module_stack"];
  const std::string text = s.str();
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string::npos) end = text.size();
    Entry e = split_entry(text.substr(start, end - start), s);
    // Nodes export adds itself (sym_size of an input) carry a placeholder stack: no module.
    if (e.key != "_empty_nn_module_stack_from_metadata_hook") out.push_back(std::move(e));
    start = end + 1;
  }
  return out;
}

// Linear/Conv ops applying the weight of a module that is not the innermost call around them: that
// module has no call of its own (MultiheadAttention applies out_proj.weight with F.linear inside its own
// forward), so the op is its call, as on the TorchScript path (instrumentation's functional call sites).
// MultiheadAttention's packed in_proj_weight belongs to no submodule: its linear is the call of the
// pseudo-module "<mha>.in_proj", listed right after the MultiheadAttention in the module list.
// Tied weights: export gives tied parameters one placeholder that every reader uses, named after one of
// them (a head defined before the embedding tied to it: `head`'s linear reads `emb.weight`). A Linear/Conv
// node inside module m's own call whose weight is another name for m's own `weight` (the same tensor) reads
// m's slot instead, so the node is m's call, as TorchScript's `self.weight` is (else it would look like a
// functional call of the embedding, and m like a module never called).
void own_tied_weight(Program::Impl& impl, Step& step, const std::vector<Entry>& stack) {
  if (stack.empty()) return;
  const std::string own = stack.back().fqn.empty() ? "weight" : stack.back().fqn + ".weight";
  const std::string& read = impl.state_name.at(step.args[1].slot);
  if (read == own) return;
  const auto mine = impl.state.find(own), theirs = impl.state.find(read);
  if (mine == impl.state.end() || theirs == impl.state.end()) return;
  const at::Tensor &a = mine->second, &b = theirs->second;
  // One record viewed twice: the same bytes, read the same way (equal values would do, but tying is what
  // this is for, and a comparison of every weight is not).
  if (a.data_ptr() != b.data_ptr() || a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes() ||
      a.strides() != b.strides())
    return;
  for (const auto& [slot, fqn] : impl.state_name)
    if (fqn == own) {
      step.args[1].slot = slot;
      return;
    }
}

void add_functional_calls(const Json& nodes, Program::Impl& impl) {
  static const std::set<std::string> kOps = {"aten::linear", "aten::conv1d", "aten::conv2d", "aten::conv3d"};
  std::vector<ModuleCall> found;
  for (size_t i = 0; i < impl.steps.size(); ++i) {
    Step& step = impl.steps[i];
    if (!step.op || !kOps.count(step.op->schema().name()) || step.args.size() < 2) continue;
    const Operand& weight = step.args[1];  // (input, weight, bias, ...) in both schemas
    if (weight.kind != Operand::Value || !impl.state_name.count(weight.slot)) continue;
    const std::vector<Entry> stack = module_stack(nodes.at(i));
    own_tied_weight(impl, step, stack);
    const auto name = impl.state_name.find(weight.slot);
    std::string owner;
    if (name->second.size() > 15 && name->second.compare(name->second.size() - 15, 15, ".in_proj_weight") == 0) {
      // MultiheadAttention's packed in-projection: PT2E quantizers quantize this linear, so it is observed
      // as the pseudo-module "<mha>.in_proj" (docs/differences.md; TorchScript's report has no such row).
      if (step.op->schema().name() != "aten::linear") continue;
      owner = name->second.substr(0, name->second.size() - 15) + ".in_proj";
    } else if (name->second.size() > 7 && name->second.compare(name->second.size() - 7, 7, ".weight") == 0) {
      owner = name->second.substr(0, name->second.size() - 7);
    } else {
      continue;
    }
    if (!stack.empty() && stack.back().fqn == owner) continue;  // its own call
    ModuleCall call;
    call.fqn = owner;
    call.leaf = true;
    call.functional = step.op->schema().name();
    call.nodes = {i};
    found.push_back(std::move(call));
  }
  // The call a functional call sits in is no longer a leaf: on the TorchScript path its forward is
  // inlined and the functional call site observed instead.
  for (const ModuleCall& f : found)
    for (ModuleCall& c : impl.calls)
      if (std::find(c.nodes.begin(), c.nodes.end(), f.nodes[0]) != c.nodes.end()) c.leaf = false;
  for (ModuleCall& c : found) impl.calls.push_back(std::move(c));
  // Graph order: by first node (stable, so a call before the calls nested in it).
  std::stable_sort(impl.calls.begin(), impl.calls.end(),
                   [](const ModuleCall& a, const ModuleCall& b) { return a.nodes.front() < b.nodes.front(); });
}

}  // namespace

std::vector<Slot> uses(const Step& step) {
  std::vector<Slot> out;
  for (const Operand& o : step.args) {
    if (o.kind == Operand::Value) out.push_back(o.slot);
    for (Slot s : o.slots)
      if (s >= 0) out.push_back(s);
  }
  return out;
}

std::vector<Slot> defs(const Step& step) {
  std::vector<Slot> out;
  for (const Result& r : step.results) {
    if (r.kind == Result::Value) out.push_back(r.slot);
    for (Slot s : r.slots)
      if (s >= 0) out.push_back(s);
  }
  return out;
}

void find_module_calls(const Json& graph, const Json& module_call_graph, Program::Impl& impl) {
  const Json nodes = graph["nodes"];
  std::map<std::string, size_t> call_of_key;
  std::map<std::string, std::string> type_of;  // fqn -> class
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::vector<Entry> stack = module_stack(nodes.at(i));
    for (size_t k = 0; k < stack.size(); ++k) {
      const Entry& e = stack[k];
      type_of.emplace(e.fqn, e.type);
      if (e.fqn.empty()) continue;  // the root's forward is not a call site
      auto [it, fresh] = call_of_key.emplace(e.key, impl.calls.size());
      if (fresh) {
        impl.calls.push_back({});
        impl.calls.back().fqn = e.fqn;
        impl.calls.back().leaf = true;
      }
      ModuleCall& call = impl.calls[it->second];
      call.nodes.push_back(i);
      if (k + 1 < stack.size()) call.leaf = false;  // a module call nested inside this one
    }
  }

  add_functional_calls(nodes, impl);

  // Which step defines each slot and which steps use it, for the boundary of each call.
  std::vector<int> def_step(impl.slot_count, -1);
  std::vector<std::vector<size_t>> users(impl.slot_count);
  for (size_t i = 0; i < impl.steps.size(); ++i) {
    for (Slot s : defs(impl.steps[i])) def_step[s] = static_cast<int>(i);
    for (Slot s : uses(impl.steps[i])) users[s].push_back(i);
  }
  std::set<Slot> returned(impl.outputs.begin(), impl.outputs.end());
  std::vector<std::string> name_of(impl.slot_count);
  for (const auto& [name, slot] : impl.slot_of) name_of[slot] = name;
  for (ModuleCall& call : impl.calls) {
    const std::set<size_t> inside(call.nodes.begin(), call.nodes.end());
    std::set<Slot> seen;
    for (size_t i : call.nodes) {
      for (Slot s : uses(impl.steps[i]))
        if (impl.slot_tensor[s] && !impl.slot_state[s] && !inside.count(static_cast<size_t>(def_step[s])) &&
            seen.insert(s).second)
          call.inputs.push_back(name_of[s]);
      for (Slot s : defs(impl.steps[i])) {
        const bool escapes = returned.count(s) || std::any_of(users[s].begin(), users[s].end(),
                                                              [&](size_t u) { return !inside.count(u); });
        if (impl.slot_tensor[s] && escapes) call.outputs.push_back(name_of[s]);
      }
    }
  }

  // Modules: module_call_graph's order, then any called module it does not list.
  std::set<std::string> listed;
  auto add = [&](const std::string& fqn) {
    if (!listed.insert(fqn).second) return;
    auto t = type_of.find(fqn);
    impl.modules.push_back({fqn, t == type_of.end() ? "" : t->second});
  };
  std::map<std::string, std::vector<std::string>> pseudo;  // mha fqn -> its "<mha>.in_proj"
  for (const ModuleCall& c : impl.calls)
    if (c.fqn.size() > 8 && c.fqn.compare(c.fqn.size() - 8, 8, ".in_proj") == 0 && !c.functional.empty() &&
        type_of.find(c.fqn) == type_of.end())
      pseudo[c.fqn.substr(0, c.fqn.size() - 8)] = {c.fqn};
  auto add_with_pseudo = [&](const std::string& fqn) {
    add(fqn);
    auto p = pseudo.find(fqn);
    if (p != pseudo.end())
      for (const auto& q : p->second) add(q);
  };
  add_with_pseudo("");
  for (size_t i = 0; i < module_call_graph.size(); ++i) add_with_pseudo(module_call_graph.at(i)["fqn"].str());
  for (const ModuleCall& c : impl.calls) add(c.fqn);
}

}  // namespace qreport::exported
