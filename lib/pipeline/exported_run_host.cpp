// The exported program's RunHost (run_host.h): Program::rewrite_input, observe and skippable on its calls,
// weights swapped for the nodes that apply them (Program::swap_weight).
#include <ATen/ATen.h>

#include "pipeline/exported_front.h"
#include "pipeline/run_host.h"

namespace qreport::pipeline {
namespace {

class ExportedRunHost : public RunHost {
 public:
  ExportedRunHost(exported::Program& program, const exported::ExportedModel& model, const ExportedFront& front)
      : program_(program), model_(model), front_(front) {
    program_.clear_observations();  // the earlier passes' observations and rewrites
  }
  ~ExportedRunHost() override { program_.clear_observations(); }
  std::optional<std::string> resolve(const std::string& fqn) const override { return front_.resolve(fqn); }
  std::string kept_in_float(const std::string& fqn) const override {
    const std::string name = model_.weight_name(fqn);
    if (name.empty() || name == (fqn.empty() ? "weight" : fqn + ".weight")) return "";
    // The in_proj pseudo-module: eager-mode and FX mappings keep MultiheadAttention whole (a leaf), and
    // torchao's quantize_ replaces nn.Linear weights only, so neither quantizes the packed in-projection.
    return "it is MultiheadAttention's packed in-projection (in_proj_weight), which the QConfigMapping and "
           "torchao's quantize_ leave in float";
  }
  at::Tensor weight_of(const std::string& fqn) override { return program_.state(model_.weight_name(fqn)); }
  void set_weight(const std::string& fqn, const at::Tensor& weight) override {
    program_.swap_weight(model_.weight_name(fqn), weight);
  }
  void rewrite_input(const std::string& site, int64_t id) override { program_.rewrite_input(site, id); }
  void observe_output(const std::string& site, int64_t id) override {
    program_.observe(site, exported::Side::Output, id);
  }
  bool skippable(const std::string& site, int64_t id) override { return program_.skippable(site, id) > 0; }
  std::vector<at::Tensor> run(const std::vector<c10::IValue>& args, const instrumentation::ObserveSink& sink,
                              const instrumentation::RewriteSink& rewrite,
                              const instrumentation::SkipSink& skip) override {
    std::vector<at::Tensor> inputs;
    inputs.reserve(args.size());
    for (const auto& a : args) inputs.push_back(a.toTensor());
    std::vector<at::Tensor> out;
    for (auto& t : program_.run(inputs, sink, rewrite, skip))
      if (t.defined() && t.is_floating_point()) out.push_back(std::move(t));
    return out;
  }

 private:
  exported::Program& program_;
  const exported::ExportedModel& model_;
  const ExportedFront& front_;
};

}  // namespace

std::unique_ptr<RunHost> exported_run_host(exported::Program& program, const exported::ExportedModel& model,
                                           const ExportedFront& front) {
  return std::make_unique<ExportedRunHost>(program, model, front);
}

}  // namespace qreport::pipeline
