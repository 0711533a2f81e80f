// The whole data path: load, instrument, calibrate, detect, report. The CLI is a thin shell around this.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "calibration/calibration.h"
#include "detectors/detectors.h"
#include "distributed/distributed.h"
#include "report/report.h"
#include "schemes/schemes.h"

namespace qreport::pipeline {

struct AnalyzeOptions {
  std::string model_path;
  std::string calib_path;
  std::vector<std::string> detectors;  // PyTorch's names; empty means all four
  std::string device = "cpu";          // "cpu", "cuda" or "cuda:N"
  int threads = 0;                     // intra-op threads; 0 means one per core
  calibration::Options calibration;
  detectors::PerChannelOptions per_channel;
  detectors::DynamicStaticOptions dynamic_static;
  detectors::EqualizationOptions equalization;
  detectors::OutlierOptions outlier;
  detectors::QuantizationErrorOptions error;
  // Channel axis of activations for equalization and outliers: nullopt is auto (the axis each module's
  // weight consumes, detectors::ChannelAxes), N is PyTorch's behaviour with ch_axis=N.
  std::optional<int> ch_axis;
  // Floating calibration tensors of another dtype than the model's parameters are cast to it (one
  // warning); false (--no-cast) makes that an input error. Integer tensors (token ids) are never cast.
  bool cast_inputs = true;
  // The job this process is a rank of (distributed::detect()), or nullopt for a single process; waits
  // for other ranks are bounded by dist_timeout_s.
  std::optional<distributed::Env> job;
  int dist_timeout_s = 300;
  // --save-stats: where to write the statistics file (lib/stats), "" for none.
  std::string save_stats;
  // --error-memory: MiB of the first --error-batches batches' layer inputs and outputs that calibration may
  // keep for the error pass (layer_capture.h). 1 GiB holds a batch of 8 images through mobilenet_v2 or
  // resnet18, or a few thousand tokens through a BERT-base; beyond it, the pass runs the model again.
  int64_t error_memory_mib = 1024;
  // --simulate: a second pass with fake-quantized Linear/Conv inputs and weights (needs the error detector).
  bool simulate = false;
  // --schemes: each Linear/Conv layer is also measured under these torchao schemes (lib/schemes), in the
  // error detector's second pass (needs the error detector).
  std::vector<schemes::Scheme> schemes;
  // --sensitivity / --target-sqnr (pipeline/sensitivity.h): each Linear/Conv layer's enable-one and
  // disable-one model output SQNR under sensitivity_scheme on the first sensitivity_batches batches, and
  // with a target the keep plan (needs the error detector).
  bool sensitivity = false;
  schemes::Scheme sensitivity_scheme{schemes::Kind::Int8Static, 0, "int8-static"};
  int64_t sensitivity_batches = 4;
  // --sensitivity-runs enable-one: no disable-one runs (about half the pass); the plan then orders layers by
  // their enable-one figure.
  bool sensitivity_disable_one = true;
  std::optional<double> target_sqnr_db;
  std::function<void(size_t, size_t)> on_sensitivity_run;
  // Called after each calibration batch with (batches done, total), and after each --simulate batch.
  std::function<void(size_t, size_t)> on_batch;
  std::function<void(size_t, size_t)> on_simulate_batch;
  // The run's outputs, all or nothing: check_outputs before calibration (rank 0's, once its job has
  // formed), write_outputs with the report and the statistics file's bytes ("" without --save-stats) once
  // everything else succeeded. In a job, rank 0 calls them and the other ranks exit 4 if writing fails.
  std::function<void()> check_outputs;
  std::function<void(const report::Report&, const std::string& stats_bytes)> write_outputs;
};

// Builds the detectors named in options, validating their options (UsageError).
std::vector<std::unique_ptr<detectors::Detector>> make_detectors(const AnalyzeOptions& options);
// Whether `name` (a detector's report name) is among them.
bool has_detector(const std::vector<std::unique_ptr<detectors::Detector>>& dets, const std::string& name);
// The channel axes the options ask for, on this model and its instrumented forward.
detectors::ChannelAxes channel_axes(const AnalyzeOptions& options, const model::Model& model,
                                    const instrumentation::Instrumenter& instr);
// The same on any front end's module tree and layouts (pipeline/front.h).
class Front;
detectors::ChannelAxes channel_axes(const AnalyzeOptions& options, const Front& front);

// What analyze would observe, without calibration data (qreport inspect): the module tree, the call
// sites found and, per detector request, where it is observed. Throws as analyze does.
report::Inspection inspect(const AnalyzeOptions& options);

// Runs the analysis. Throws UsageError/InputError (exit 2), ModelError (exit 3) or InternalError.
report::Report analyze(const AnalyzeOptions& options);

// qreport report: the detectors of `options` on saved statistics (merged when several) and the model, no
// calibration. Thresholds may differ from the run that saved them; settings that change what is observed
// (--ch-axis, the outlier reference percentile, a detector not observed), another model, or files that
// do not merge are usage/input errors (exit 2). --simulate is not available (it needs the data).
report::Report report_from_stats(const AnalyzeOptions& options, const std::vector<std::string>& stats_paths);

}  // namespace qreport::pipeline
