// Stage 3: instrumentation. Finds every leaf-module call reached from forward on a *copy* of forward's
// graph (partial inlining), names each call by its receiver's prim::GetAttr chain, and inserts observe
// ops at the call sites that detectors target. The loaded module's own graphs are never mutated.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace at { class Tensor; }
namespace c10 { class IValue; }
namespace qreport::model { class Model; }

namespace qreport::instrumentation {

enum class Side { Input, Output };
const char* side_name(Side side);  // "input" / "output"

// Receives every observed tensor with the id given to Instrumenter::observe().
using ObserveSink = std::function<void(int64_t id, const at::Tensor& value)>;

class Instrumenter {
 public:
  // Copies forward's graph and inlines method calls until only leaf-module calls remain.
  explicit Instrumenter(const model::Model& model);
  ~Instrumenter();
  Instrumenter(const Instrumenter&) = delete;
  Instrumenter& operator=(const Instrumenter&) = delete;

  // fqn of every leaf call site, in graph order; a module called twice appears twice.
  const std::vector<std::string>& call_sites() const;
  bool has_call_site(const std::string& fqn) const;
  // The fqn whose call site observes `fqn`: itself, else its nearest ancestor with a call site
  // (PyTorch's _get_targeting_node: the children x.0, x.1 of a fused x observe x). nullopt: none.
  std::optional<std::string> resolve(const std::string& fqn) const;

  // Observes `side` of every call of `site_fqn` (a value returned by resolve) under `id`. Returns
  // the number of call sites instrumented; sites whose value is not a Tensor are skipped with a warning.
  int observe(const std::string& site_fqn, Side side, int64_t id);

  // IR of the instrumented copy, for tests and --verbose.
  std::string graph_text() const;
  // Problems found while inlining or instrumenting (interface calls, non-tensor values, ...).
  const std::vector<std::string>& warnings() const;

  // Runs the instrumented forward on the model with forward's arguments (self excluded), sending every
  // observation to `sink`. Exceptions from the model propagate as thrown by LibTorch.
  void run(std::vector<c10::IValue> args, const ObserveSink& sink);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qreport::instrumentation
