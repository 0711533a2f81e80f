// Internal to lib/pipeline: what the passes that run the whole model with quantized layers (--simulate,
// --sensitivity and --target-sqnr) need of a front end: a layer's call site, its weight swapped in place
// (every call of the layer then uses it), the input of a site's calls rewritten and its output observed,
// and a forward. script_run_host() is TorchScript's (the Instrumenter's qreport::rewrite op, a module's
// `weight` attribute); exported_run_host.cpp has the exported program's (Program::rewrite_input, the weight
// operand of the nodes that apply it). One interface, so both fronts run the same simulation and the same
// sensitivity walk.
#pragma once
#include <ATen/core/ivalue.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "instrumentation/instrumentation.h"
#include "model/model.h"

namespace qreport::pipeline {

class RunHost {
 public:
  virtual ~RunHost() = default;
  // The fqn whose calls carry layer `fqn` (itself, or the fused module around it); nullopt: never called.
  virtual std::optional<std::string> resolve(const std::string& fqn) const = 0;
  // Why layer fqn stays in float in every whole-model run, or "" when its weight can be swapped.
  virtual std::string kept_in_float(const std::string& fqn) const = 0;
  // The layer's weight as the model holds it (device, dtype); set_weight() swaps it for every call, and
  // set_weight(fqn, weight_of(fqn)) restores it.
  virtual at::Tensor weight_of(const std::string& fqn) = 0;
  virtual void set_weight(const std::string& fqn, const at::Tensor& weight) = 0;
  // Every call of `site`: its input through run()'s RewriteSink, its output to the ObserveSink, under id.
  virtual void rewrite_input(const std::string& site, int64_t id) = 0;
  virtual void observe_output(const std::string& site, int64_t id) = 0;
  // After the rewrites and observations: the site's calls may take their output from run()'s SkipSink.
  // False where the front cannot skip a call (the sink is then never asked, and every run is whole).
  virtual bool skippable(const std::string& site, int64_t id) = 0;
  // One forward on forward's arguments; the floating tensors of its result, in order.
  virtual std::vector<at::Tensor> run(const std::vector<c10::IValue>& args, const instrumentation::ObserveSink& sink,
                                      const instrumentation::RewriteSink& rewrite,
                                      const instrumentation::SkipSink& skip) = 0;
};

// TorchScript's host: a fresh instrumented copy of model's forward, weights swapped in module attributes.
std::unique_ptr<RunHost> script_run_host(const model::Model& model);

// Every weight swapped back on scope exit (an exception from the model included).
class SwappedWeights {
 public:
  explicit SwappedWeights(RunHost& host) : host_(host) {}
  ~SwappedWeights() { restore(); }
  SwappedWeights(const SwappedWeights&) = delete;
  SwappedWeights& operator=(const SwappedWeights&) = delete;
  void set(const std::string& fqn, const at::Tensor& weight, const at::Tensor& original) {
    host_.set_weight(fqn, weight);
    swapped_.emplace_back(fqn, original);
  }
  void restore() {
    for (auto& [fqn, w] : swapped_) host_.set_weight(fqn, w);
    swapped_.clear();
  }

 private:
  RunHost& host_;
  std::vector<std::pair<std::string, at::Tensor>> swapped_;
};

}  // namespace qreport::pipeline
