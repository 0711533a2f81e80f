// Internal to lib/pipeline: saved statistics against what the model says they must be.
#pragma once
#include <string>
#include <vector>

#include "pipeline/plan.h"

namespace qreport::pipeline {

// The channel counts the detectors will read, against the model's own: a Linear's input has its weight's
// in_features features on the last axis, a convolution's input groups x weight.size(1) channels on axis 1
// (groups dividing the output channels). A file that says otherwise was edited or made for another
// model: InputError naming `source` (the statistics' file names) and the module.
void check_channels_against_model(const model::ModelView& model, const std::vector<detectors::ObservationRequest>& requests,
                                  const Plan& plan, const std::string& source);

}  // namespace qreport::pipeline
