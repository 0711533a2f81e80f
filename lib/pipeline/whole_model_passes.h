// Internal to lib/pipeline: the passes that run the whole model again after the error pass (--simulate,
// --sensitivity/--target-sqnr), the same for both front ends; each gets a fresh RunHost from make_host.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "pipeline/analyze.h"
#include "pipeline/run_host.h"
#include "pipeline/stage_clock.h"

namespace qreport::pipeline {

struct WholeModelPasses {
  const model::ModelView* model = nullptr;
  std::function<std::unique_ptr<RunHost>()> make_host;
  const detectors::StatsLookup* stats = nullptr;  // the calibration pass's statistics
  size_t simulate_batches = 0;                    // --simulate runs archive batches 0 .. n-1
  std::vector<size_t> sensitivity_batches;        // archive indices the sensitivity pass may take, in order
  // Forward's arguments of archive batch i, prepared as in calibration (device, dtype, checked).
  std::function<std::vector<c10::IValue>(size_t)> args_of;
  std::function<void(size_t)> release;  // archive batch i is no longer needed
};

void run_whole_model_passes(const WholeModelPasses& in, const AnalyzeOptions& o, report::Report& rep,
                            StageClock& clock);

}  // namespace qreport::pipeline
