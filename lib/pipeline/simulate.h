// --simulate (internal to lib/pipeline): a second pass over the calibration batches with every Linear and
// Conv input and weight fake-quantized, once with default_qconfig and once with the recommended mapping,
// compared with the float model's outputs at every call site and at the model's output.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "detectors/detectors.h"
#include "report/report.h"

namespace qreport::pipeline {

class RunHost;

struct SimulationInput {
  const model::ModelView* model = nullptr;
  RunHost* host = nullptr;                               // the front end's (run_host.h), made for this pass
  const detectors::StatsLookup* stats = nullptr;         // the calibration pass's statistics (histograms)
  const std::vector<detectors::QConfigEntry>* mapping = nullptr;
  std::string backend = "x86";                           // dynamic activations: reduce_range as the backend
  size_t batches = 0;
  // Forward's arguments for batch i, on the run's device (the same preparation as calibration); an
  // exported program's host takes them as tensors.
  std::function<std::vector<c10::IValue>(size_t)> batch;
  std::function<void(size_t, size_t)> on_batch;
};

// Throws ModelError when forward fails; warnings (modules that cannot be simulated) go to *warnings.
report::Simulation simulate(const SimulationInput& in, std::vector<std::string>* warnings);

}  // namespace qreport::pipeline
