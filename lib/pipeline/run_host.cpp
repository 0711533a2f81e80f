// TorchScript's RunHost (run_host.h): the Instrumenter's rewrite, observe and skip ops on a fresh copy of
// forward, and each layer's `weight` attribute swapped (an O(1) slot write).
#include "pipeline/run_host.h"

#include <torch/script.h>

#include <map>

#include "pipeline/fake_quant.h"

namespace qreport::pipeline {
namespace {

class ScriptRunHost : public RunHost {
 public:
  explicit ScriptRunHost(const model::Model& model) : model_(model), instr_(model) {}
  std::optional<std::string> resolve(const std::string& fqn) const override { return instr_.resolve(fqn); }
  std::string kept_in_float(const std::string&) const override { return ""; }
  at::Tensor weight_of(const std::string& fqn) override { return module(fqn).attr("weight").toTensor(); }
  void set_weight(const std::string& fqn, const at::Tensor& weight) override { module(fqn).setattr("weight", weight); }
  void rewrite_input(const std::string& site, int64_t id) override { instr_.rewrite_input(site, id); }
  void observe_output(const std::string& site, int64_t id) override {
    instr_.observe(site, instrumentation::Side::Output, id);
  }
  bool skippable(const std::string& site, int64_t id) override { return instr_.skippable(site, id) > 0; }
  std::vector<at::Tensor> run(const std::vector<c10::IValue>& args, const instrumentation::ObserveSink& sink,
                              const instrumentation::RewriteSink& rewrite,
                              const instrumentation::SkipSink& skip) override {
    std::vector<at::Tensor> out;
    flatten_floating(skip ? instr_.run(args, sink, rewrite, skip) : instr_.run(args, sink, rewrite), out);
    return out;
  }

 private:
  torch::jit::Module& module(const std::string& fqn) {
    auto it = modules_.find(fqn);
    if (it == modules_.end()) it = modules_.emplace(fqn, model_.submodule(fqn)).first;
    return it->second;
  }
  const model::Model& model_;
  instrumentation::Instrumenter instr_;
  std::map<std::string, torch::jit::Module> modules_;
};

}  // namespace

std::unique_ptr<RunHost> script_run_host(const model::Model& model) { return std::make_unique<ScriptRunHost>(model); }

}  // namespace qreport::pipeline
