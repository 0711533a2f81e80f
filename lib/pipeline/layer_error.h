// Internal to lib/pipeline: each Linear/Conv layer's output SQNR, measured on data. A second pass over
// (the first --error-batches of) the calibration batches, after the input qparams are known: at every
// layer's call, the layer is applied to its fake-quantized input with its fake-quantized weight, as the
// decided mapping configures them, and compared with the float layer on the same float input. The model
// itself runs in float, so each layer's figure is its own error, not the error accumulated before it
// (that is --simulate's).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "detectors/detectors.h"
#include "instrumentation/instrumentation.h"
#include "report/report.h"
#include "schemes/schemes.h"

namespace qreport::pipeline {

class LayerCapture;

// What the pass needs of a front end: where a layer's input is observed, the layer applied alone, and a
// run of the model. script_layer_host() is TorchScript's; analyze_exported.cpp has the exported program's.
class LayerHost {
 public:
  virtual ~LayerHost() = default;
  virtual std::optional<std::string> resolve(const std::string& fqn) const = 0;
  virtual void observe_input(const std::string& site, int64_t id) = 0;
  // The layer's weight as the model holds it (device, dtype); undefined: it cannot be applied alone, and
  // *why says why where the report should (its call's arguments are computed at run time, say).
  virtual at::Tensor weight_of(const std::string& fqn, std::string* why) = 0;
  // Layer `fqn` applied to x with `weight` in place of its own.
  virtual at::Tensor apply(const std::string& fqn, const at::Tensor& x, const at::Tensor& weight) = 0;
  // Runs the pass's k-th batch, sending observed values to sink. The model's exceptions propagate.
  virtual void run(size_t k, const instrumentation::ObserveSink& sink) = 0;
};

// Why a layer's figure is null when `op`, which applies its weight, takes arguments computed at run time or
// different ones per call: both hosts' reason, word for word.
std::string cannot_apply_alone(const std::string& op);

// TorchScript's host: a fresh instrumented forward of `model`, made only if the pass runs the model;
// batch(k) gives forward's arguments for the pass's k-th batch, on the run's device (the same preparation
// as calibration). `calibrated` (optional): calibration's instrumented forward of the same model, which
// answers the read-only questions (call sites, functional layers) without a second instrumentation.
std::shared_ptr<LayerHost> script_layer_host(const model::Model& model,
                                             std::function<std::vector<c10::IValue>(size_t)> batch,
                                             const instrumentation::Instrumenter* calibrated = nullptr);

struct LayerErrorInput {
  const model::ModelView* model = nullptr;
  std::shared_ptr<LayerHost> host;
  size_t batches = 0;        // how many batches the pass runs over
  size_t total_batches = 0;  // the calibration batches (for the report)
  std::function<void(size_t, size_t)> on_batch;
  // --schemes: each layer is also measured under these (lib/schemes) in the same pass. Empty: the pass
  // does exactly what it did without them (no extra work or allocation per batch). With smoothquant, the
  // batches run once more first, for the input's per-feature maxima that its smoothing factor needs.
  std::vector<schemes::Scheme> schemes;
  // The inputs calibration kept of the first `batches` batches (layer_capture.h), when it did: the sites
  // it holds are measured from those copies, and the model runs again only for the others (if any).
  const LayerCapture* captured = nullptr;
  // A model whose forward writes its own buffers (a QAT model's fake-quantizers update their ranges on
  // every call, in eval mode too) computes other values when run again. `rewind`, called before each pass
  // that runs the model again, puts the buffers back as calibration found them, so that pass sees the
  // first batches as calibration did; `restore`, called at the end, puts them back as calibration left
  // them (applying a layer runs its module, which may write them too), so that what runs after the pass
  // (--simulate, --sensitivity) sees the same model whatever calibration kept. Empty: nothing to do.
  std::function<void()> rewind, restore;
};

// Measures the layers of the quantization-error detector's result in `rep` (nothing when that detector
// did not run) with the mapping of `rep`, and completes that result (detectors::finish_quantization_error).
// Throws ModelError when forward fails, Interrupted on Ctrl-C.
void measure_layer_error(const LayerErrorInput& in, report::Report& rep);

// Completes the error detector's result without a measurement (qreport report: no data), saying why.
void finish_without_layer_error(const model::ModelView& model, const std::string& why, report::Report& rep);

}  // namespace qreport::pipeline
