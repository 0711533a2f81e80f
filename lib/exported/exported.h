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

  // Runs the graph on the user inputs, sending observed values to `sink` (may be empty); callers hold a
  // c10::InferenceMode guard, as for any inference (the parameters require grad). Throws
  // InputError for inputs that do not fit the program's shapes and dtypes; an operator's own exception
  // propagates as thrown (the caller turns it into a ModelError).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const ObserveSink& sink = {}) const;

  struct Impl;

 private:
  Program();
  std::unique_ptr<Impl> impl_;
};

}  // namespace qreport::exported
