// Program::load: the archive's model JSON, its signature (parameters and buffers under the eager model's
// fqns), the user inputs' shapes, then the nodes and module calls.
#include <ATen/ATen.h>
#include <torch/version.h>

#include "common/errors.h"
#include "exported/impl.h"

namespace qreport::exported {

Program::Program() : impl_(std::make_unique<Impl>()) {}
Program::~Program() = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;

const std::vector<Module>& Program::modules() const { return impl_->modules; }
const std::vector<ModuleCall>& Program::calls() const { return impl_->calls; }
const std::vector<std::string>& Program::input_names() const { return impl_->input_names; }
const std::string& Program::schema_version() const { return impl_->schema_version; }
const std::string& Program::torch_version() const { return impl_->torch_version; }

at::Tensor Program::state(const std::string& fqn) const {
  auto it = impl_->state.find(fqn);
  return it == impl_->state.end() ? at::Tensor() : it->second;
}

std::vector<std::string> Program::node_targets() const {
  std::vector<std::string> out;
  for (const Step& s : impl_->steps) out.push_back(s.target);
  return out;
}

namespace {

// The schema major version qreport's reader follows; minor versions only add optional fields.
constexpr int64_t kSchemaMajor = 8;

// The symbol a size is, when it is exactly one symbol: "s77" (older writers) or
// "Symbol('s77', positive=True, integer=True)". "" for expressions ("Mul(Integer(2), ...)").
std::string plain_symbol(const std::string& expr) {
  std::string name = expr;
  const std::string head = "Symbol('";
  if (expr.compare(0, head.size(), head) == 0) {
    const size_t end = expr.find('\'', head.size());
    if (end == std::string::npos || expr.find("Symbol(", 1) != std::string::npos || expr.back() != ')') return "";
    name = expr.substr(head.size(), end - head.size());
  }
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return "";
  return name;
}

std::string model_record(const Archive& ar) {
  if (ar.has("serialized_exported_program.json"))
    ar.fail("it has the layout of PyTorch before 2.8 (serialized_exported_program.json), which qreport does not "
            "read; load it with torch.export.load and save it again with a current PyTorch");
  if (ar.text("archive_format") != "pt2") ar.fail("archive_format is not 'pt2'");
  if (ar.has("models/model.json")) return "model";
  std::vector<std::string> names;
  for (const auto& r : ar.records())
    if (r.rfind("models/", 0) == 0 && r.size() > 12 && r.compare(r.size() - 5, 5, ".json") == 0)
      names.push_back(r.substr(7, r.size() - 12));
  if (names.empty()) ar.fail("it has no models/<name>.json record");
  if (names.size() != 1) ar.fail(std::to_string(names.size()) + " models (models/*.json) and none named 'model'");
  return names[0];
}

void read_user_input(const Json& graph, const std::string& name, const Json& ranges, Program::Impl& impl, Slot slot) {
  InputSpec in;
  in.name = name;
  in.slot = slot;
  const Json meta = graph["tensor_values"][name.c_str()];
  in.dtype = scalar_type(meta["dtype"]);
  const Json sizes = meta["sizes"];
  for (size_t d = 0; d < sizes.size(); ++d) {
    Json v(nullptr, "");
    const std::string kind = sizes.at(d).union_kind(&v);
    if (kind == "as_int") {
      in.sizes.push_back(v.int64());
      continue;
    }
    const std::string expr = v["expr_str"].str(), sym = plain_symbol(expr);
    // A dynamic batch runs; any other dynamic dimension would need its guards checked, which qreport does
    // not do yet: refused here rather than run on shapes the program was never checked for.
    if (d != 0 || sym.empty())
      sizes.at(d).fail("input '" + name + "' has a symbolic size (" + expr + ") in dimension " + std::to_string(d) +
                       "; qreport runs exported programs whose only dynamic dimension is the batch (dimension 0): "
                       "export with dynamic_shapes={0: Dim(\"batch\")} on each input, or with static shapes");
    in.sizes.push_back(-1);
    if (ranges.has(sym.c_str())) {
      const Json r = ranges[sym.c_str()];
      if (!r["min_val"].is_null()) in.batch_min = r["min_val"].int64();
      if (!r["max_val"].is_null()) in.batch_max = r["max_val"].int64();
    }
  }
  impl.input_names.push_back(name);
  impl.inputs.push_back(std::move(in));
}

std::string dims_text(at::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

// The stored tensor must be what the graph declares for its placeholder: a weight record of another dtype
// or shape (a hand-edited or mixed-up archive) would otherwise fail deep inside a kernel at run time, as
// an internal error, or run on the wrong values.
void check_stored(const Json& graph, const std::string& graph_name, const std::string& fqn, const at::Tensor& t,
                  const Json& where) {
  const Json values = graph["tensor_values"];
  if (!values.has(graph_name.c_str())) return;
  const Json meta = values[graph_name.c_str()];
  const c10::ScalarType dtype = scalar_type(meta["dtype"]);
  const Json sizes = meta["sizes"];
  std::vector<int64_t> want;
  for (size_t d = 0; d < sizes.size(); ++d) {
    Json v(nullptr, "");
    if (sizes.at(d).union_kind(&v) != "as_int") return;  // symbolic: checked when it runs
    want.push_back(v.int64());
  }
  if (t.scalar_type() != dtype || t.sizes() != at::IntArrayRef(want))
    where.fail("'" + fqn + "' is stored as " + c10::toString(t.scalar_type()) + " " + dims_text(t.sizes()) +
               " but the graph declares " + c10::toString(dtype) + " " + dims_text(want));
}

Slot state_slot(Program::Impl& impl, const Json& graph, const std::string& graph_name, const std::string& fqn,
                const Json& where) {
  auto it = impl.state.find(fqn);
  if (it == impl.state.end()) where.fail("'" + fqn + "' has no stored tensor in the archive");
  check_stored(graph, graph_name, fqn, it->second, where);
  if (impl.slot_of.count(graph_name)) where.fail("'" + graph_name + "' is declared twice");
  const Slot s = static_cast<Slot>(impl.slot_count++);
  impl.slot_of[graph_name] = s;
  impl.slot_tensor.push_back(true);
  impl.slot_state.push_back(true);
  impl.state_slots.emplace_back(s, it->second);
  impl.state_name[s] = fqn;
  return s;
}

void read_signature(const Json& gm, const Json& ranges, Program::Impl& impl) {
  const Json graph = gm["graph"], specs = gm["signature"]["input_specs"];
  for (size_t i = 0; i < specs.size(); ++i) {
    Json v(nullptr, "");
    const std::string kind = specs.at(i).union_kind(&v);
    if (kind == "parameter") {
      state_slot(impl, graph, v["arg"]["name"].str(), v["parameter_name"].str(), v);
    } else if (kind == "buffer") {
      state_slot(impl, graph, v["arg"]["name"].str(), v["buffer_name"].str(), v);
    } else if (kind == "tensor_constant") {
      state_slot(impl, graph, v["arg"]["name"].str(), v["tensor_constant_name"].str(), v);
    } else if (kind == "user_input") {
      Json arg(nullptr, "");
      if (v["arg"].union_kind(&arg) != "as_tensor")
        v.fail("a user input that is not a tensor; qreport runs programs whose inputs are tensors");
      const std::string name = arg["name"].str();
      if (impl.slot_of.count(name)) v.fail("'" + name + "' is declared twice");
      const Slot s = static_cast<Slot>(impl.slot_count++);
      impl.slot_of[name] = s;
      impl.slot_tensor.push_back(true);
      impl.slot_state.push_back(false);
      read_user_input(graph, name, ranges, impl, s);
    } else {
      v.fail("an input of kind '" + kind + "', which qreport does not run");
    }
  }
}

void read_outputs(const Json& gm, Program::Impl& impl) {
  const Json specs = gm["signature"]["output_specs"];
  for (size_t i = 0; i < specs.size(); ++i) {
    Json v(nullptr, ""), arg(nullptr, "");
    const std::string kind = specs.at(i).union_kind(&v);
    if (kind != "user_output")
      v.fail("an output of kind '" + kind + "' (a program that mutates its buffers or inputs, or trains): export "
             "the model in eval mode");
    if (v["arg"].union_kind(&arg) != "as_tensor") v.fail("a user output that is not a tensor");
    auto it = impl.slot_of.find(arg["name"].str());
    if (it == impl.slot_of.end()) arg.fail("returns '" + arg["name"].str() + "', which nothing defines");
    impl.outputs.push_back(it->second);
  }
}

// Each step forgets the values it used last, so a run holds only live activations.
void plan_releases(Program::Impl& impl) {
  std::vector<int> last(impl.slot_count, -1);
  for (size_t i = 0; i < impl.steps.size(); ++i) {
    const Step& s = impl.steps[i];
    for (const Operand& o : s.args) {
      if (o.kind == Operand::Value) last[o.slot] = static_cast<int>(i);
      for (Slot x : o.slots)
        if (x >= 0) last[x] = static_cast<int>(i);
    }
  }
  for (Slot o : impl.outputs) last[o] = -1;
  for (size_t s = 0; s < impl.slot_count; ++s)
    if (last[s] >= 0 && !impl.slot_state[s]) impl.steps[last[s]].release.push_back(static_cast<Slot>(s));
}

}  // namespace

Program Program::load(const std::string& path) {
  Program p;
  Impl& impl = *p.impl_;
  impl.path = path;
  Archive ar(path);
  const std::string model = model_record(ar);
  const std::string record = "models/" + model + ".json";
  const nlohmann::json doc = parse_json(ar.text(record), "model '" + path + "': " + record);
  const Json root(&doc, "model '" + path + "': " + record + ": $");
  const Json version = root["schema_version"];
  impl.schema_version = std::to_string(version["major"].int64()) + "." + std::to_string(version["minor"].int64());
  if (root.has("torch_version")) impl.torch_version = root["torch_version"].str();
  if (version["major"].int64() != kSchemaMajor)
    version.fail("schema version " + impl.schema_version + " (written by PyTorch " + impl.torch_version +
                 "); qreport reads version " + std::to_string(kSchemaMajor) + ".x");
  if (!supported())
    throw InputError("model '" + path + "' is a torch.export program (PyTorch " + impl.torch_version +
                     "), which this qreport's LibTorch " TORCH_VERSION " predates; qreport's default build "
                     "(scripts/build) uses PyTorch 2.x's LibTorch and reads it");
  impl.state = read_payloads(ar, "data/weights/" + model + "_weights_config.json", "data/weights/");
  for (auto& [fqn, t] : read_payloads(ar, "data/constants/" + model + "_constants_config.json", "data/constants/"))
    if (!impl.state.emplace(fqn, t).second) ar.fail("'" + fqn + "' is both a weight and a constant");
  const Json gm = root["graph_module"];
  read_signature(gm, root["range_constraints"], impl);
  compile_nodes(gm["graph"], impl);
  read_outputs(gm, impl);
  find_module_calls(gm["graph"], gm["module_call_graph"], impl);
  plan_releases(impl);
  return p;
}

}  // namespace qreport::exported
