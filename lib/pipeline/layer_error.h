// Internal to lib/pipeline: each Linear/Conv layer's output SQNR, measured on data. A second pass over
// (the first --error-batches of) the calibration batches, after the input qparams are known: at every
// layer's call, the layer is applied to its fake-quantized input with its fake-quantized weight, as the
// decided mapping configures them, and compared with the float layer on the same float input. The model
// itself runs in float, so each layer's figure is its own error, not the error accumulated before it
// (that is --simulate's).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "detectors/detectors.h"
#include "report/report.h"
#include "schemes/schemes.h"

namespace qreport::pipeline {

class LayerCapture;

struct LayerErrorInput {
  const model::Model* model = nullptr;
  size_t batches = 0;        // how many batches the pass runs over
  size_t total_batches = 0;  // the calibration batches (for the report)
  // Forward's arguments for the pass's k-th batch, on the run's device (the same preparation as calibration).
  std::function<std::vector<c10::IValue>(size_t)> batch;
  std::function<void(size_t, size_t)> on_batch;
  // --schemes: each layer is also measured under these (lib/schemes) in the same pass. Empty: the pass
  // does exactly what it did without them (no extra work or allocation per batch). With smoothquant, the
  // batches run once more first, for the input's per-feature maxima that its smoothing factor needs.
  std::vector<schemes::Scheme> schemes;
  // The inputs calibration kept of the first `batches` batches (layer_capture.h), when it did: the sites
  // it holds are measured from those copies, and the model runs again only for the others (if any).
  const LayerCapture* captured = nullptr;
};

// Measures the layers of the quantization-error detector's result in `rep` (nothing when that detector
// did not run) with the mapping of `rep`, and completes that result (detectors::finish_quantization_error).
// Throws ModelError when forward fails, Interrupted on Ctrl-C.
void measure_layer_error(const LayerErrorInput& in, report::Report& rep);

// Completes the error detector's result without a measurement (qreport report: no data), saying why.
void finish_without_layer_error(const model::Model& model, const std::string& why, report::Report& rep);

}  // namespace qreport::pipeline
