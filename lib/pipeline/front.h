// Internal to lib/pipeline: what the observation plan needs of a front end, so that one plan, one set of
// observers, detectors and reports serve both. TorchScript (lib/model + lib/instrumentation) and
// torch.export programs (lib/exported) each implement it (docs/design.md, "Two front ends").
#pragma once
#include <optional>
#include <string>

#include "instrumentation/instrumentation.h"
#include "model/model.h"

namespace qreport::pipeline {

class Front {
 public:
  virtual ~Front() = default;
  // Module tree and weights, as the detectors read them.
  virtual const model::ModelView& model() const = 0;
  // The fqn whose calls observe `fqn`: itself, else its nearest ancestor with a call of its own (the
  // children of a fused module observe it); nullopt: never called.
  virtual std::optional<std::string> resolve(const std::string& fqn) const = 0;
  // The layout of module fqn's input (--ch-axis auto for modules without a weight).
  virtual instrumentation::LayoutGuess input_layout(const std::string& fqn) const = 0;
};

// The TorchScript front end: a loaded model and the instrumented copy of its forward.
class ScriptFront : public Front {
 public:
  ScriptFront(const model::Model& model, const instrumentation::Instrumenter& instr) : model_(model), instr_(instr) {}
  const model::ModelView& model() const override { return model_; }
  std::optional<std::string> resolve(const std::string& fqn) const override { return instr_.resolve(fqn); }
  instrumentation::LayoutGuess input_layout(const std::string& fqn) const override {
    auto site = instr_.resolve(fqn);
    return site ? instr_.input_layout(*site) : instrumentation::LayoutGuess{};
  }

 private:
  const model::Model& model_;
  const instrumentation::Instrumenter& instr_;
};

}  // namespace qreport::pipeline
