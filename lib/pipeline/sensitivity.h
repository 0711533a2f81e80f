// --sensitivity and --target-sqnr (internal to lib/pipeline; docs/quantization-error.md, "Sensitivity and
// the plan"): the model run on the first --sensitivity-batches batches with a chosen set of Linear/Conv
// layers quantized under one scheme (weights swapped, inputs fake-quantized at their call sites, as
// --simulate does), against the float model's outputs. Enable-one: one layer quantized; disable-one: every
// layer but one. With a target, a greedy keep list from the disable-one gains (from the enable-one figures
// when only those ran), each step one real run.
#pragma once
#include <functional>
#include <optional>
#include <vector>

#include "report/report.h"
#include "schemes/schemes.h"

namespace qreport::pipeline {

class RunHost;

struct SensitivityInput {
  const model::ModelView* model = nullptr;
  RunHost* host = nullptr;  // the front end's (run_host.h), made for this pass
  schemes::Scheme scheme;
  size_t batches = 0;
  // Forward's arguments for the pass's k-th batch, on the run's device (the same preparation as calibration).
  std::function<std::vector<c10::IValue>(size_t)> batch;
  std::optional<double> target_sqnr_db;  // --target-sqnr: also the plan
  bool disable_one = true;                // false: enable-one runs only (--sensitivity-runs enable-one)
  // After each whole run over the batches: (runs done, runs planned so far).
  std::function<void(size_t, size_t)> on_run;
};

// Needs the error detector's result in `rep` (int8-static takes its input qparams and the recommended
// mapping from it); fills rep.sensitivity, rep.plan and the detector's modules' sensitivity keys. Throws
// ModelError when forward fails, Interrupted on Ctrl-C.
void measure_sensitivity(const SensitivityInput& in, report::Report& rep);

}  // namespace qreport::pipeline
