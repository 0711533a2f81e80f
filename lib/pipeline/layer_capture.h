// Internal to lib/pipeline: the inputs (and, where the call is the layer's own, the outputs) of the layers
// whose output SQNR is measured (layer_error.h), kept during the first calibration batches. The
// measurement needs the input qparams, known only after the last batch; without these copies it ran the
// first batches through the model a second time and applied every layer in float once more. With them
// it applies only the quantized layer, to what the calibration forward already computed.
#pragma once
#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::pipeline {

// Whether keeping a layer's output beats applying the float layer again in the error pass. A kept value
// costs a copy and, in memory the process has not touched yet, a page fault per 4 KiB (about 2.5 ns a
// value in all on the 2-core benchmark machine); applying the layer again costs its multiply-adds per
// output value (a Conv's in_channels / groups x kernel size, a Linear's in_features: the weight's size
// over its first dimension), about 0.02 ns each there. A depthwise 3x3 Conv (9 per value) is cheaper to
// apply again; a Linear of 768 features is not. Either way the error pass's numbers are the same.
bool output_worth_keeping(const at::Tensor& weight);

class LayerCapture {
 public:
  using Key = std::pair<std::string, detectors::Side>;  // (call site, side)
  // The calls of observation points `ids` (each naming its call site and side) over the first `batches` batches,
  // while the copies total at most `budget_bytes` (outputs: half of it). A point whose copies do not all
  // fit keeps none: its layers are measured by running the model again, or the float layer again
  // (layer_error.cpp), as before.
  LayerCapture(const std::map<int64_t, Key>& ids, size_t batches, int64_t budget_bytes);

  // True while the run is inside the captured batches: the calibration sink calls offer() only then, so
  // the batches after them pay one branch per observation.
  bool active() const { return batch_ < batches_; }
  void offer(int64_t id, const at::Tensor& x);
  void batch_done();

  // The captured values of `site`'s calls: per batch, in call order. Null when not (wholly) captured.
  const std::vector<std::vector<at::Tensor>>* calls(const std::string& site, detectors::Side side) const;
  int64_t bytes() const { return bytes_; }
  // Frees the copies (after the measurement).
  void clear();

 private:
  struct Point {
    std::vector<std::vector<at::Tensor>> batches;
    bool output = false;
    bool dropped = false;
  };
  std::map<int64_t, Point> points_;
  std::map<Key, int64_t> by_key_;
  size_t batches_ = 0, batch_ = 0;
  int64_t budget_ = 0, bytes_ = 0;
};

// What capture_points() needs of a front end (TorchScript's Instrumenter, an exported Program).
struct CaptureSites {
  // The call site that observes a module (resolve() of pipeline::Front).
  std::function<std::optional<std::string>(const std::string& fqn)> resolve;
  // Whether the site's calls are the module's own (not a functional call inside a parent's).
  std::function<bool(const std::string& site)> own_call;
  // Observes the site's output under `id`; false when it has none to observe.
  std::function<bool(const std::string& site, int64_t id)> observe_output;
};

// The observation points the error pass keeps: the input of every Linear/Conv call site (the error detector
// observes each, so it is in `planned`, the plan's keys by id), and the output where the call is the
// layer's own and applying the layer costs more than keeping its output (output_worth_keeping), observed
// under new ids after the plan's where the plan does not observe it already.
std::map<int64_t, LayerCapture::Key> capture_points(const model::ModelView& model,
                                                    const std::vector<LayerCapture::Key>& planned,
                                                    const CaptureSites& front);

}  // namespace qreport::pipeline
