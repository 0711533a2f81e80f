// Internal to lib/pipeline: what the passes that run quantized layers share (the error pass, --simulate,
// --sensitivity): the input qparams the error detector reported, a dynamic per-tensor fake-quantizer, and
// the floating tensors of a forward's result.
#pragma once
#include <ATen/core/ivalue.h>

#include <optional>
#include <string>
#include <vector>

#include "detectors/detectors.h"
#include "observers/observers.h"

namespace qreport::pipeline {

// The static input qparams the error detector reported for a layer ("minmax" or "histogram"), in [0, qmax];
// nullopt when it reported none (an input never observed, or statistics it found invalid).
std::optional<observers::QParams> reported_input_qparams(const detectors::Fields& f, const std::string& kind,
                                                         int64_t qmax);

// PyTorch's _calculate_qparams for a per-tensor affine quantizer on the call's own range (what a
// dynamically quantized layer does with each call), on the tensor's device: no host round trip.
at::Tensor fake_quantize_dynamic(const at::Tensor& x, int64_t qmax);

// Every floating tensor of a forward result, in order (tuples, lists and dict values recursively).
void flatten_floating(const c10::IValue& v, std::vector<at::Tensor>& out);

}  // namespace qreport::pipeline
