// Stage 1, beside lib/model: torch.export programs (the PT2 archive that torch.export.save writes).
// Reads the serialized ExportedProgram (graph, signature, tensor metadata, range constraints) and its
// weights and constants, rejects at load what it cannot run, and runs the graph by calling each node's
// ATen operator by name through the c10 dispatcher (docs/design.md, "Exported programs"). Module calls
// come from each node's nn_module_stack metadata; observers are attached at their boundaries.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace at { class Tensor; }

namespace qreport::exported {

// Whether `path` is a PT2 archive, judged by content (never by extension): a zip whose records sit under
// one root folder holding `archive_format` = "pt2" (Program::load then wants a `models/<name>.json`), or
// the pre-2.8 layout's serialized_exported_program.json. False for anything else, including unreadable
// files (the TorchScript loader then says why).
bool is_pt2_archive(const std::string& path);

// Whether this build runs exported programs. The 1.13 build (Debian's LibTorch) recognises them but
// cannot run graphs written by PyTorch 2.x, whose operators and schemas it predates.
bool supported();

// A module of the eager model, in its named_modules() order (the program's module_call_graph).
struct Module {
  std::string fqn;        // "" for the root
  std::string type_name;  // as nn_module_stack writes it, "torch.nn.modules.linear.Linear"; "" if never called
};

// One call of a module: the nodes whose nn_module_stack holds that call's entry (its own nodes and its
// children's). Its observed values are the tensors that cross the group's boundary.
struct ModuleCall {
  std::string fqn;
  bool leaf = false;                 // no module call nested inside (the TorchScript path's leaf call site)
  // A module applied without a call of its own (MultiheadAttention's out_proj): the op that applies its
  // weight, "aten::linear" or "aten::convNd", as the TorchScript path's functional call sites; "" otherwise.
  std::string functional;
  std::vector<size_t> nodes;         // indices into the graph's nodes, in graph order
  std::vector<std::string> inputs;   // tensors used inside and made outside (parameters, buffers and
                                     // constants excluded), in order of first use: the activation first
  std::vector<std::string> outputs;  // tensors made inside and used after it or returned, in graph order
};

enum class Side { Input, Output };

// Receives every observed tensor with the id given to Program::observe().
using ObserveSink = std::function<void(int64_t id, const at::Tensor& value)>;
// Returns the tensor that replaces the input of a call rewritten by Program::rewrite_input() (id as given
// there), for that call's first reading node only.
using RewriteSink = std::function<at::Tensor(int64_t id, const at::Tensor& value)>;
// Returns the output of a call made skippable by Program::skippable() (id as given there), which then does
// not run, or an undefined tensor: the call runs.
using SkipSink = std::function<at::Tensor(int64_t id)>;

class Program {
 public:
  // Reads and checks the archive. Throws InputError (exit 2) for anything that is not a PT2 archive this
  // build can run: corrupt zip or JSON, missing records, weights that do not match their metadata, an
  // unknown schema major version, nodes it cannot run (naming node and target), symbolic shapes other
  // than a dynamic batch dimension.
  static Program load(const std::string& path);
  ~Program();
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;

  const std::vector<Module>& modules() const;
  // Every module call in graph order (a module called twice appears twice); nested calls included.
  const std::vector<ModuleCall>& calls() const;
  // Names of the user inputs, in forward's order.
  const std::vector<std::string>& input_names() const;
  // The parameter, buffer or constant of that eager fqn ("fc.weight"); an undefined tensor if none.
  // Parameters require grad as the eager ones did (detach before computing with them outside run()).
  at::Tensor state(const std::string& fqn) const;
  // The graph's targets ("aten::linear.default"), one per node, for messages and tests.
  std::vector<std::string> node_targets() const;
  // "major.minor" of the serialized schema, and the PyTorch version that wrote it.
  const std::string& schema_version() const;
  const std::string& torch_version() const;

  // The fqn whose calls observe `fqn`: itself when it has a leaf call, else its nearest ancestor with one
  // (the parent-fqn fallback of the TorchScript path's Instrumenter::resolve); "" with found=false: none.
  std::string resolve(const std::string& fqn, bool* found) const;

  // Observes `side` of every call of `fqn` (the first input, or the first output) under `id`. Returns the
  // number of calls instrumented.
  int observe(const std::string& fqn, Side side, int64_t id);

  // Which axis of the first input of fqn's first call holds its features, judged from the graph as the
  // TorchScript path's feature_layout.cpp does: the op that produced it (through layout-preserving ops and
  // weightless module calls), else the op that consumes it. 1: the last axis (linear, layer_norm, embedding),
  // 2: axis 1 (convolutions, batch/group norms), 0: the graph does not tell.
  int input_layout(const std::string& fqn) const;

  // Makes every call of `fqn` take its first input through the RewriteSink of run() under `id`: the
  // operand of the call's first node that reads it is replaced for that node alone (other readers of the
  // same value, a residual branch, keep the original), as the TorchScript path's qreport::rewrite op
  // before a module call (--simulate, --sensitivity). Returns the number of calls rewritten.
  int rewrite_input(const std::string& fqn, int64_t id);

  // Makes every call of `fqn` skippable under `id`: at the call's first node, after its input's rewrite,
  // run()'s SkipSink is asked for the call's output; a defined answer becomes that output, the call's
  // other nodes do not run, and observers of the output see the answer (the sensitivity pass reuses the
  // outputs of an earlier run identical up to the layer it changes, as TorchScript's skip_calls.cpp). All
  // of fqn's calls or none: each must be one contiguous run of nodes whose first node reads its input and
  // which makes one value read after it. Call after rewrite_input() and observe(). Returns the number of
  // calls made skippable (0: none).
  int skippable(const std::string& fqn, int64_t id);

  // Removes every observation added by observe(), every rewrite added by rewrite_input() and every skip
  // added by skippable().
  void clear_observations();

  // Runs use `value` as the weight of every node that applies `weight_fqn` as a Linear/Conv weight (the
  // nodes apply_weight_op() finds), and there alone: another reader of the same tensor (an Embedding whose
  // weight is tied to it, which export makes read the same placeholder) keeps the original, as when a
  // TorchScript module's `weight` attribute is swapped (--simulate, --sensitivity). An undefined value, or
  // the stored tensor itself (state(weight_fqn), which never changes), restores it. Returns the number of
  // nodes; throws InternalError when none applies it.
  int swap_weight(const std::string& weight_fqn, const at::Tensor& value);

  // The Linear/Conv op that applies the tensor `weight_fqn` ("fc.weight", "attn.in_proj_weight"), called
  // on `x` in place of its input and `weight` in place of that tensor, its other arguments as in the graph
  // (the error detector's per-layer measurement). Throws InternalError when no such op exists.
  at::Tensor apply_weight_op(const std::string& weight_fqn, const at::Tensor& x, const at::Tensor& weight) const;
  // The op that keeps apply_weight_op(weight_fqn, ...) from applying the layer as the program does: a node
  // applying it with an argument computed at run time (a bias scaled in forward), or with other arguments
  // than the first such node; "" when there is none.
  std::string weight_op_not_fixed(const std::string& weight_fqn) const;
  // Where no node applies `weight_fqn` as a Linear/Conv weight but some node reads it (a program after
  // run_decompositions(): aten.permute, then aten.addmm), that node's target; else "".
  std::string unapplied_weight_reader(const std::string& weight_fqn) const;

  // Runs the graph on the user inputs, sending observed values to `sink` (may be empty); callers hold a
  // c10::InferenceMode guard, as for any inference (the parameters require grad). Throws
  // InputError for inputs that do not fit the program's shapes and dtypes; an operator's own exception
  // propagates as thrown (the caller turns it into a ModelError).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const ObserveSink& sink = {}) const;
  // The same, with rewritten inputs going through `rewrite` (an empty one leaves them unchanged) and
  // skippable calls asking `skip` (an empty one runs them all).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const ObserveSink& sink,
                              const RewriteSink& rewrite, const SkipSink& skip = {}) const;

  struct Impl;

 private:
  Program();
  std::unique_ptr<Impl> impl_;
};

// The program's modules and weights as the detectors read them (model::ModelView, the same interface as a
// TorchScript model's): module_call_graph's modules in named_modules() order with kinds from the class
// nn_module_stack records, the pseudo-module "<mha>.in_proj" after each MultiheadAttention whose packed
// in-projection runs, and weights by eager fqn from the graph signature's parameters.
class ExportedModel : public model::ModelView {
 public:
  explicit ExportedModel(const Program& program);  // keeps a reference: the program outlives it
  const model::ModuleTree& tree() const override { return *tree_; }
  at::Tensor weight(const std::string& fqn) const override;
  // The eager fqn of the tensor fqn's weight is ("fc.weight", "attn.in_proj_weight"); "" if none.
  std::string weight_name(const std::string& fqn) const;
  // Exported programs of QAT models are not read (their fake-quantizers export as ops, not modules).
  std::optional<bool> qat_weight_per_channel(const std::string&) const override { return std::nullopt; }

 private:
  const Program& program_;
  std::unique_ptr<model::ModuleTree> tree_;
};

// The class of a module export recorded no class for (it has no call of its own), from the op that applies
// its weight ("aten::linear", "aten::conv2d") and its place: MultiheadAttention's out_proj is always a
// NonDynamicallyQuantizableLinear, the in_proj pseudo-module a Linear. "" where neither tells.
std::string functional_type_name(const std::string& fqn, const std::string& op, const std::string& parent_type);

}  // namespace qreport::exported
