// Stage 1: the TorchScript model. Loads a `torch.jit.save` file and describes its module tree:
// fully-qualified names (fqn), kinds recognised from TorchScript's qualified type names, leaves.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torch { namespace jit { struct Module; } }
namespace at { class Tensor; }

namespace qreport::model {

// What a module is, as far as the detectors care. Derived from the type name only, so it also works
// for models scripted from subclasses PyTorch knows about (NonDynamicallyQuantizableLinear, QAT, fused).
struct Kind {
  std::string base;            // "Linear", "Conv1d", "Conv2d", "Conv3d", "Fused", "Other", ...
  bool is_linear = false;      // isinstance(m, nn.Linear)
  int conv_dims = 0;           // N when isinstance(m, nn.ConvNd), else 0
  bool exact_iwe = false;      // type(m) is one of nn.Linear/ConvNd or their QAT classes (PyTorch's IWE rule)
  bool is_qat = false;         // a QAT module (torch.nn.qat, torch.ao.nn.qat, intrinsic.qat)
  bool is_fused = false;       // an intrinsic fused module (torch.nn.intrinsic / torch.ao.nn.intrinsic)
  bool is_observer = false;    // an observer or fake-quantize module (activation post process)
  bool is_quantized = false;   // a converted (already quantized) module: torch.ao.nn.quantized, intrinsic.quantized
  // A user's subclass of nn.Linear or nn.ConvNd (`class MyLinear(nn.Linear)`), recognised by the
  // constants those constructors leave (TorchScript keeps no base classes). PyTorch's isinstance rules
  // (per-channel, dynamic-static) take it; the equalization detector's exact-type rule does not.
  bool is_subclass = false;
  bool is_linear_or_conv() const { return is_linear || conv_dims > 0; }
};

// `__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d` -> `torch.nn.modules.conv.Conv2d`.
std::string demangle_type_name(const std::string& qualified_name);
// Kind of a demangled type name.
Kind classify(const std::string& type_name);

struct ModuleNode {
  std::string fqn;          // "" for the root
  std::string type_name;    // demangled
  Kind kind;
  int parent = -1;          // index into ModuleTree::nodes, -1 for the root
  std::vector<int> children;
  // PyTorch's outlier rule: no children at all.
  bool has_children() const { return !children.empty(); }
};

// Modules in TorchScript's named_modules() order (registration order), root first.
class ModuleTree {
 public:
  explicit ModuleTree(std::vector<ModuleNode> nodes);
  const std::vector<ModuleNode>& nodes() const { return nodes_; }
  const ModuleNode* find(const std::string& fqn) const;
  // Whether instrumentation treats calls of this module as leaf call sites (not inlined):
  // fused and QAT modules, and modules whose only children are observers or fake-quantizers.
  bool is_call_leaf(const ModuleNode& node) const;
  size_t size() const { return nodes_.size(); }

 private:
  std::vector<ModuleNode> nodes_;
};

// Parent of a dotted fqn: "a.b.c" -> "a.b", "a" -> "" (the root).
std::string parent_fqn(const std::string& fqn);

// The model as the detectors and the observation plan see it, whichever front end read it: the module
// tree (fqn, kind) and each module's weight. model::Model (TorchScript) and exported::ExportedModel (a
// torch.export program) implement it; nothing below lib/pipeline knows which one it has.
class ModelView {
 public:
  virtual ~ModelView() = default;
  virtual const ModuleTree& tree() const = 0;
  // The module's `weight` as a float32 CPU tensor; an undefined tensor when it has no tensor `weight`.
  virtual at::Tensor weight(const std::string& fqn) const = 0;
  // For a QAT module: whether its own weight fake-quantizer is per-channel; nullopt for float modules.
  virtual std::optional<bool> qat_weight_per_channel(const std::string& fqn) const = 0;
};

class Model : public ModelView {
 public:
  // Loads and puts the module in eval mode. Throws InputError for a missing, unreadable or
  // non-TorchScript file.
  static Model load(const std::string& path);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModuleTree& tree() const override { return *tree_; }
  torch::jit::Module& module() const { return *module_; }
  // Names of forward's arguments after self, and how many of them have no default.
  const std::vector<std::string>& forward_arg_names() const { return arg_names_; }
  size_t forward_required_args() const { return required_args_; }

  // The module named `fqn` (a handle into the loaded model); throws InternalError for an unknown name.
  torch::jit::Module submodule(const std::string& fqn) const;
  at::Tensor weight(const std::string& fqn) const override;
  std::optional<bool> qat_weight_per_channel(const std::string& fqn) const override;

 private:
  Model() = default;
  std::unique_ptr<torch::jit::Module> module_;
  std::unique_ptr<ModuleTree> tree_;
  std::vector<std::string> arg_names_;
  size_t required_args_ = 0;
};

}  // namespace qreport::model
