// Internal to lib/pipeline (sensitivity.cpp): the model's output under a chosen set of quantized Linear/Conv
// layers. One float run of the batches keeps their outputs; each run() then swaps the chosen layers'
// weights for their quantized ones (an O(1) attribute write, always restored) and fake-quantizes their
// inputs where their calls take them (qreport::rewrite, as --simulate does), and returns the model output
// SQNR against the float run, energies summed over the batches. Both front ends, through RunHost.
#pragma once
#include <ATen/core/ivalue.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "instrumentation/instrumentation.h"
#include "observers/observers.h"
#include "pipeline/run_host.h"
#include "report/report.h"
#include "schemes/schemes.h"

namespace qreport::pipeline {

class QuantizedRuns {
 public:
  enum class State : uint8_t { Float, Scheme, Int8 };  // Int8: int8-weight-only (a layer kept under int4)

  // The candidate layers: the error detector's Linear/Conv modules that the scheme quantizes (the others,
  // named in *not_quantized with the reason in *warnings, stay in float in every run).
  // `host` (run_host.h) is the front end's, made for these runs; it outlives this object.
  QuantizedRuns(const model::ModelView& model, RunHost& host, const report::Report& rep,
                const schemes::Scheme& scheme, std::vector<std::string>* not_quantized,
                std::vector<std::string>* warnings);
  size_t size() const { return layers_.size(); }
  const std::string& fqn(size_t i) const { return layers_[i].fqn; }
  int64_t weight_numel(size_t i) const { return layers_[i].weight_numel; }
  int64_t all_weight_numel() const { return all_numel_; }  // every Linear/Conv weight, candidates or not

  // Enable-one (only layer i quantized), disable-one (every layer but i quantized, i in `keep`) and every
  // layer quantized, on the batches args (forward's arguments), batch by batch: the float run and the
  // all-quantized run keep every candidate call's output of the batch, and each enable-one (disable-one)
  // run takes the float (all-quantized) outputs for the calls before its first call that differs, without
  // running them. Also keeps the float model outputs for run(). Without disable_one the disable-one runs
  // are left out (skip stays null): about half the cost, since each run costs the model from its layer on.
  struct Figures {
    std::vector<std::optional<double>> enable, skip;
    std::optional<double> all;
  };
  Figures sensitivity(std::vector<std::vector<c10::IValue>> args, State keep, bool disable_one = true);
  // The model output SQNR with layer i in state[i] (after sensitivity(), on its batches): +inf where the
  // output did not change at all, -inf where the noise is infinite, null where the figure is undefined (the
  // float output is zero or not finite, the noise is NaN, or the outputs do not pair with the float run's).
  // The same for Figures' entries. The report shows only finite figures; the plan judges all three kinds.
  std::optional<double> run(const std::vector<State>& state);
  size_t forwards() const { return forwards_; }  // whole runs over the batches so far, the float one included

 private:
  enum class Input { None, Static, DynamicAffine, Scheme };
  struct Layer {
    std::string fqn;
    size_t site = 0;
    at::Tensor original, quantized, int8;
    int64_t weight_numel = 0;
    Input input = Input::None;
    observers::QParams q;  // Static
  };
  at::Tensor quantize_input(const Layer& l, const at::Tensor& x) const;
  // Per site, this batch's call outputs in call order.
  using Outputs = std::vector<std::vector<at::Tensor>>;
  // One forward of batch k with layer i in state[i]; capture: keep the call outputs; base: reuse the
  // outputs of the run in base_state until the first call whose layers' state differs from it.
  std::vector<at::Tensor> forward(size_t k, const std::vector<State>& state, Outputs* capture, const Outputs* base,
                                  const std::vector<State>* base_state);
  std::optional<double> db(const at::Tensor& noise, bool paired) const;
  // Adds the squared difference of got and batch k's float outputs to noise; false where they do not pair.
  bool add_noise(size_t k, const std::vector<at::Tensor>& got, at::Tensor& noise) const;

  RunHost& host_;
  schemes::Scheme scheme_;
  int64_t qmax_ = 255;  // int8-static's activation range
  bool skips_ = false;  // the host can skip calls: keep call outputs for reuse
  std::vector<Layer> layers_;
  std::vector<std::vector<size_t>> at_site_;  // site id -> its layers
  std::vector<std::vector<c10::IValue>> args_;
  std::vector<std::vector<at::Tensor>> float_out_;
  double signal_ = 0.0;
  int64_t all_numel_ = 0;
  size_t forwards_ = 0;
};

}  // namespace qreport::pipeline
