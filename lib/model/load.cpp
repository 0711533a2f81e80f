#include <sys/stat.h>
#include <torch/script.h>

#include <fstream>

#include <caffe2/serialize/inline_container.h>

#include "common/errors.h"
#include "common/version.h"
#include "common/pickle.h"
#include <algorithm>

#include "model/model.h"

namespace qreport::model {

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_readable_file(const std::string& path, const char* what) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw InputError(std::string(what) + " '" + path + "' does not exist");
  if (S_ISDIR(st.st_mode)) throw InputError(std::string(what) + " '" + path + "' is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(std::string(what) + " '" + path + "' cannot be read");
  if (st.st_size == 0) throw InputError(std::string(what) + " '" + path + "' is empty");
}

std::string newer_pytorch_message(const std::string& path, const std::string& detail) {
  return "model '" + path + "' was saved by a newer PyTorch than this qreport's LibTorch " + libtorch_version() +
         " reads (" + detail + "); qreport's default build (scripts/build) uses PyTorch 2.x's LibTorch, or build "
         "against the LibTorch of the PyTorch that saved it (README, \"Two builds\")";
}

// A class outside torch.nn that nn.Linear's or nn.ConvNd's constructor built: the constants they declare
// (in_features/out_features; in_channels/out_channels/kernel_size) and a tensor weight of the rank that
// goes with them (2; N + 2). Transposed convolutions are not ConvNd subclasses.
Kind classify_subclass(const torch::jit::Module& m, Kind kind) {
  const c10::ClassTypePtr& cls = m.type();
  if (!m.hasattr("weight") || !m.attr("weight").isTensor()) return kind;
  const int64_t rank = m.attr("weight").toTensor().dim();
  if (cls->hasConstant("in_features") && cls->hasConstant("out_features") && rank == 2) {
    kind.base = "Linear";
    kind.is_linear = kind.is_subclass = true;
  } else if (cls->hasConstant("in_channels") && cls->hasConstant("out_channels") && cls->hasConstant("kernel_size") &&
             rank >= 3 && rank <= 5 && !(m.hasattr("transposed") && m.attr("transposed").isBool() &&
                                         m.attr("transposed").toBool())) {
    kind.conv_dims = static_cast<int>(rank - 2);
    kind.base = "Conv" + std::to_string(kind.conv_dims) + "d";
    kind.is_subclass = true;
  }
  return kind;
}

std::vector<ModuleNode> build_nodes(const torch::jit::Module& root) {
  std::vector<ModuleNode> nodes;
  for (const auto& nm : root.named_modules()) {
    ModuleNode n;
    n.fqn = nm.name;
    n.type_name = demangle_type_name(nm.value.type()->name()->qualifiedName());
    n.kind = classify(n.type_name);
    if (n.kind.base == "Other" && !n.kind.is_observer) n.kind = classify_subclass(nm.value, n.kind);
    nodes.push_back(std::move(n));
  }
  for (size_t i = 1; i < nodes.size(); ++i) {
    std::string parent = parent_fqn(nodes[i].fqn);
    for (size_t j = 0; j < nodes.size(); ++j) {
      if (nodes[j].fqn == parent && j != i) {
        nodes[i].parent = static_cast<int>(j);
        nodes[j].children.push_back(static_cast<int>(i));
        break;
      }
    }
  }
  return nodes;
}

std::optional<torch::jit::Module> find_module(const torch::jit::Module& root, const std::string& fqn) {
  for (const auto& nm : root.named_modules())
    if (nm.name == fqn) return nm.value;
  return std::nullopt;
}

// torch::jit::load unpickles the model's .pkl records (constants, attributes) and its .debug_pkl records
// (source ranges for error messages) with the same trusting unpickler as torch.save archives, so the same
// check (common/pickle.h) runs on each first: a .debug_pkl memo id of 1.9e9 made 1.13 ask for 30 GB. A file that is not a
// zip is left to torch::jit::load, which rejects it with its own message.
void check_pickles(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    // The zip's file-format version is past what this LibTorch reads: a newer PyTorch saved it.
    if (std::string(e.what()).find("maximum supported version") != std::string::npos) {
      std::string detail = first_line(e.what());  // LibTorch's first sentence says which versions
      if (auto end = detail.find(". "); end != std::string::npos) detail.resize(end);
      throw InputError(newer_pytorch_message(path, detail));
    }
    return;  // not a zip at all: torch::jit::load reports it in its own words
  }
  std::vector<std::pair<std::string, std::string>> pickles;  // (record, bytes)
  try {
    const std::vector<std::string> records = reader->getAllRecords();
    // A torch.save archive (data.pkl, no code/): LibTorch's loader would say "checkpoint corrupted".
    const bool has_code = std::any_of(records.begin(), records.end(),
                                      [](const std::string& r) { return r.rfind("code/", 0) == 0; });
    if (!has_code && reader->hasRecord("data.pkl") && !reader->hasRecord("constants.pkl"))
      throw InputError("model '" + path + "' is a torch.save archive, not a TorchScript model (it has data.pkl and "
                       "no code/): save the model with torch.jit.save(torch.jit.script(model), path)");
    for (const auto& name : records) {
      if (!ends_with(name, ".pkl") && !ends_with(name, ".debug_pkl")) continue;
      auto [data, size] = reader->getRecord(name);
      pickles.emplace_back(name, std::string(static_cast<const char*>(data.get()), size));
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    // A zip whose records do not read back (e.g. one outside the archive's folder): torch::jit::load
    // has been seen to ask for tens of gigabytes on such files.
    throw InputError("model '" + path + "' is corrupt: " + first_line(e.what()));
  }
  for (const auto& [name, pickle] : pickles)
    if (std::string problem = pickle_problem(pickle); !problem.empty())
      throw InputError("model '" + path + "' is corrupt: its " + name + " " + problem);
}

// torch.jit.freeze (and optimize_for_inference, which freezes first) inlines every submodule and turns
// every parameter into a constant of forward's graph: no submodules, no parameters, tensor constants.
bool looks_frozen(const torch::jit::Module& module) {
  if (module.children().size() != 0 || module.parameters().size() != 0) return false;
  for (const torch::jit::Node* n : module.get_method("forward").graph()->nodes())
    if (n->kind() == c10::prim::Constant && n->output()->type()->isSubtypeOf(*c10::TensorType::get())) return true;
  return false;
}

std::string frozen_message(const std::string& path) {
  return "model '" + path + "' is frozen (torch.jit.freeze or optimize_for_inference): its modules are gone and "
         "its weights are graph constants, so there is nothing to observe; analyze the scripted model before "
         "freezing (torch.jit.save(torch.jit.script(model)))";
}

// optimize_for_inference on a CPU with MKLDNN stores its weights as prim::ConstantMKLDNNTensor, which
// LibTorch cannot load back: say what the file is rather than relay the loader's complaint.
bool has_mkldnn_constants(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto& name : reader.getAllRecords()) {
      if (name.rfind("code/", 0) != 0 || !ends_with(name, ".py")) continue;
      auto [data, size] = reader.getRecord(name);
      if (std::string(static_cast<const char*>(data.get()), size).find("ConstantMKLDNNTensor") != std::string::npos)
        return true;
    }
  } catch (const std::exception&) {
  }
  return false;
}

// What makes a model already quantized (converted): quantized modules, or quantize ops in forward.
// QAT models (fake-quantized, float weights) are not: they are analyzed.
std::string quantized_parts(const ModuleTree& tree, const torch::jit::Module& module) {
  std::vector<std::string> found;
  for (const auto& node : tree.nodes())
    if (node.kind.is_quantized && (node.parent < 0 || !tree.nodes()[node.parent].kind.is_quantized))
      found.push_back("module '" + node.fqn + "' (" + node.type_name + ")");
  for (const torch::jit::Node* n : module.get_method("forward").graph()->nodes()) {
    const std::string op = n->kind().toQualString();
    if (op.rfind("quantized::", 0) == 0 || op == "aten::quantize_per_tensor" || op == "aten::quantize_per_channel")
      if (std::find(found.begin(), found.end(), "op " + op) == found.end()) found.push_back("op " + op);
  }
  std::string out;
  for (size_t i = 0; i < found.size() && i < 3; ++i) out += (i ? ", " : "") + found[i];
  if (found.size() > 3) out += " and " + std::to_string(found.size() - 3) + " more";
  return out;
}

}  // namespace

Model Model::load(const std::string& path) {
  check_readable_file(path, "model");
  check_pickles(path);
  Model m;
  try {
    m.module_ = std::make_unique<torch::jit::Module>(torch::jit::load(path));
  } catch (const std::exception& e) {
    if (has_mkldnn_constants(path)) throw InputError(frozen_message(path));
    // Operators or types this LibTorch does not know: most often a model from a newer PyTorch. TorchScript's
    // compile errors begin with a newline, so the first line that says something is the message.
    std::string what = e.what();
    what.erase(0, what.find_first_not_of(" \n"));
    what = first_line(what);
    if (what.find("Unknown builtin op") != std::string::npos || what.find("Unknown type name") != std::string::npos)
      throw InputError(newer_pytorch_message(path, what));
    throw InputError("cannot load model '" + path + "' as TorchScript (save it with torch.jit.save): " + what);
  }
  m.module_->eval();
  if (!m.module_->find_method("forward"))
    throw InputError("model '" + path + "' has no forward method");
  if (looks_frozen(*m.module_)) throw InputError(frozen_message(path));
  m.tree_ = std::make_unique<ModuleTree>(build_nodes(*m.module_));
  if (std::string found = quantized_parts(*m.tree_, *m.module_); !found.empty())
    throw InputError("model '" + path + "' is already quantized (" + found + "); qreport analyzes the float "
                     "model, or a QAT model before convert");
  const auto& schema = m.module_->get_method("forward").function().getSchema();
  for (size_t i = 1; i < schema.arguments().size(); ++i) {
    const auto& arg = schema.arguments()[i];
    m.arg_names_.push_back(arg.name());
    if (!arg.default_value()) m.required_args_ = i;
  }
  return m;
}

torch::jit::Module Model::submodule(const std::string& fqn) const {
  auto mod = find_module(*module_, fqn);
  if (!mod) throw InternalError("no module named '" + fqn + "' in the model");
  return *mod;
}

at::Tensor Model::weight(const std::string& fqn) const {
  auto mod = find_module(*module_, fqn);
  if (!mod || !mod->hasattr("weight")) return {};
  auto w = mod->attr("weight");
  if (!w.isTensor()) return {};
  return w.toTensor().detach().to(at::kCPU, at::kFloat);
}

std::optional<bool> Model::qat_weight_per_channel(const std::string& fqn) const {
  const ModuleNode* node = tree_->find(fqn);
  if (!node || !node->kind.is_qat) return std::nullopt;
  auto mod = find_module(*module_, fqn);
  if (!mod || !mod->hasattr("weight_fake_quant")) return std::nullopt;
  auto fq = mod->attr("weight_fake_quant");
  if (!fq.isObject()) return std::nullopt;
  torch::jit::Module fq_mod(fq.toObject());
  if (fq_mod.hasattr("is_per_channel") && fq_mod.attr("is_per_channel").isBool())
    return fq_mod.attr("is_per_channel").toBool();
  return fq_mod.hasattr("ch_axis");
}

}  // namespace qreport::model


