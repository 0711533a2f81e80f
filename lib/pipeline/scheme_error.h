// Internal to lib/pipeline: one Linear/Conv layer measured under the --schemes schemes during the layer
// error pass (layer_error.cpp), beside its int8-static figure: the scheme's quantized weight and input,
// the layer applied to both against the float layer's output y on the same float input. Energies stay on
// the layer's device as float64 scalars and are read once, in finish().
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "detectors/detectors.h"
#include "schemes/schemes.h"

namespace qreport::pipeline {

class LayerSchemes {
 public:
  // weight: the layer's float weight (its original tensor, on the run's device); conv_dims 0 for Linear.
  LayerSchemes(const std::vector<schemes::Scheme>& schemes, int conv_dims, const at::Tensor& weight);
  // smoothquant needs the input's per-feature max |x| over the pass's batches before it can measure.
  bool needs_input_maxima() const { return smooth_ >= 0; }
  void observe_maxima(const at::Tensor& xf);
  // The layer applied to an input with a weight (the caller restores the module's own weight).
  using Apply = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& w)>;
  // One call: x the layer's input, y the float layer's output on it (float32).
  void measure(const at::Tensor& x, const at::Tensor& y, const Apply& apply);
  // Per scheme name (int8-static excluded: the error detector's own fields), after the pass.
  std::map<std::string, detectors::SchemeEnergy> finish() const;

 private:
  struct Energies {  // float64 scalars on the device
    at::Tensor input_signal, input_noise, output_noise;
  };
  struct Run {
    schemes::Scheme scheme;
    std::string not_applicable;
    bool hidden = false;  // int8-dynamic measured only as smoothquant's reference
    at::Tensor weight;  // quantized, in the layer's dtype
    double weight_signal = 0.0, weight_noise = 0.0;
    Energies e;
  };
  Energies zeros() const;
  void add(Energies& e, const at::Tensor& xs, const at::Tensor& xq, const at::Tensor& y, const at::Tensor& yq) const;
  void measure_smoothquant(const at::Tensor& xf, const at::Tensor& y, const Apply& apply, at::ScalarType dtype);

  at::Tensor original_;               // the float weight
  std::vector<Run> runs_;
  at::Tensor output_signal_;          // sum y^2 over the calls
  int smooth_ = -1;                   // index of smoothquant in runs_, or -1
  int reference_ = -1;                // int8-dynamic without smoothing, the smoothquant gain's reference
  at::Tensor x_abs_max_;              // per input feature, after observe_maxima
  std::vector<at::Tensor> factor_, inverse_;  // smoothquant's s and 1 / s per alpha, made lazily
  std::vector<Energies> alpha_;       // per alpha
};

}  // namespace qreport::pipeline
