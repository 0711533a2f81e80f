#include "pipeline/scheme_error.h"

#include <cmath>

namespace qreport::pipeline {
namespace {

using schemes::Kind;

// Sum of squares in float64, on the tensor's device.
at::Tensor energy(const at::Tensor& t) { return at::sum(at::square(t.to(at::kFloat)), at::kDouble); }

}  // namespace

LayerSchemes::LayerSchemes(const std::vector<schemes::Scheme>& list, int conv_dims, const at::Tensor& weight)
    : original_(weight.detach()) {  // the scheme's tensors are no autograd history (and mix with inference tensors)
  const at::Tensor wf = original_.to(at::kFloat);
  auto add_run = [&](const schemes::Scheme& s, bool hidden) {
    Run r;
    r.scheme = s;
    r.hidden = hidden;
    if (auto why = schemes::not_applicable(s, conv_dims, weight)) {
      r.not_applicable = *why;
    } else if (s.kind != Kind::SmoothQuant) {
      const at::Tensor wq = schemes::quantize_weight(s, wf);
      r.weight = wq.to(weight.options());
      // Read once per layer at set-up, never per batch.
      r.weight_signal = energy(wf).item<double>();
      r.weight_noise = energy(wq - wf).item<double>();
      r.e = zeros();
    }
    runs_.push_back(std::move(r));
  };
  for (const auto& s : list) {
    if (s.kind == Kind::Int8Static) continue;  // the error detector's own measurement
    add_run(s, false);
    if (s.kind == Kind::SmoothQuant && runs_.back().not_applicable.empty()) smooth_ = static_cast<int>(runs_.size()) - 1;
  }
  if (smooth_ >= 0) {
    for (size_t i = 0; i < runs_.size(); ++i)
      if (runs_[i].scheme.kind == Kind::Int8Dynamic && runs_[i].not_applicable.empty()) reference_ = static_cast<int>(i);
    if (reference_ < 0) {
      add_run({Kind::Int8Dynamic, 0, "int8-dynamic"}, true);
      reference_ = static_cast<int>(runs_.size()) - 1;
    }
    for (size_t k = 0; k < schemes::smoothquant_alphas().size(); ++k) alpha_.push_back(zeros());
  }
  output_signal_ = at::zeros({}, weight.options().dtype(at::kDouble));
}

LayerSchemes::Energies LayerSchemes::zeros() const {
  const auto o = original_.options().dtype(at::kDouble);
  return {at::zeros({}, o), at::zeros({}, o), at::zeros({}, o)};
}

void LayerSchemes::add(Energies& e, const at::Tensor& xs, const at::Tensor& xq, const at::Tensor& y,
                       const at::Tensor& yq) const {
  if (xq.defined()) {
    e.input_signal.add_(energy(xs));
    e.input_noise.add_(energy(xq - xs));
  }
  e.output_noise.add_(energy(yq - y));
}

void LayerSchemes::observe_maxima(const at::Tensor& xf) {
  if (xf.dim() < 1 || xf.numel() == 0) return;
  const at::Tensor m = std::get<0>(at::max(at::abs(xf.reshape({-1, xf.size(-1)})), 0));
  x_abs_max_ = x_abs_max_.defined() ? at::maximum(x_abs_max_, m) : m;
}

void LayerSchemes::measure(const at::Tensor& x, const at::Tensor& y, const Apply& apply) {
  const at::Tensor xf = x.to(at::kFloat);
  output_signal_.add_(energy(y));
  for (auto& r : runs_) {
    if (!r.not_applicable.empty() || r.scheme.kind == Kind::SmoothQuant) continue;
    const auto xq = schemes::quantize_input(r.scheme, xf);
    const at::Tensor yq = apply(xq ? xq->to(x.scalar_type()) : x, r.weight).to(at::kFloat);
    add(r.e, xf, xq ? *xq : at::Tensor(), y, yq);
  }
  if (smooth_ >= 0) measure_smoothquant(xf, y, apply, x.scalar_type());
}

// torchao's SmoothQuant on int8-dynamic: the input times act_pre_scale = 1.0 / s, the weight times s
// (per input feature), both quantized as int8-dynamic quantizes them.
void LayerSchemes::measure_smoothquant(const at::Tensor& xf, const at::Tensor& y, const Apply& apply,
                                       at::ScalarType dtype) {
  if (!x_abs_max_.defined()) return;
  const auto alphas = schemes::smoothquant_alphas();
  if (factor_.empty())
    for (double a : alphas) {
      factor_.push_back(schemes::smoothing_factor(x_abs_max_, original_, a));
      inverse_.push_back(at::reciprocal(factor_.back()));
    }
  const at::Tensor wf = original_.to(at::kFloat);
  for (size_t k = 0; k < alphas.size(); ++k) {
    // The smoothed weight is quantized per call rather than kept: 11 copies of every weight would not fit
    // a large model's memory, and its cost is small next to the layer's.
    const at::Tensor wq = schemes::int8_rows(wf * factor_[k]).to(original_.options());
    const at::Tensor xs = xf * inverse_[k];
    const at::Tensor xq = schemes::int8_rows(xs);
    add(alpha_[k], xs, xq, y, apply(xq.to(dtype), wq).to(at::kFloat));
  }
}

std::map<std::string, detectors::SchemeEnergy> LayerSchemes::finish() const {
  std::map<std::string, detectors::SchemeEnergy> out;
  const double signal = output_signal_.item<double>();
  auto fill = [&](const Run& r, const Energies& e, detectors::SchemeEnergy& s) {
    s.has_input = !r.scheme.weight_only();
    s.input_signal = e.input_signal.item<double>();
    s.input_noise = e.input_noise.item<double>();
    s.output_signal = signal;
    s.output_noise = e.output_noise.item<double>();
  };
  for (size_t i = 0; i < runs_.size(); ++i) {
    const Run& r = runs_[i];
    if (r.hidden) continue;
    detectors::SchemeEnergy s;
    s.not_applicable = r.not_applicable;
    if (!r.not_applicable.empty()) {
      out[r.scheme.name] = s;
      continue;
    }
    if (r.scheme.kind != Kind::SmoothQuant) {
      s.weight_signal = r.weight_signal;
      s.weight_noise = r.weight_noise;
      fill(r, r.e, s);
    } else if (!alpha_.empty() && !factor_.empty()) {
      // The alpha with the highest local output SQNR (the lowest noise; the first on a tie).
      const auto alphas = schemes::smoothquant_alphas();
      size_t best = 0;
      double best_noise = 0.0;
      for (size_t k = 0; k < alphas.size(); ++k) {
        const double n = alpha_[k].output_noise.item<double>();
        if (k == 0 || n < best_noise || (std::isnan(best_noise) && !std::isnan(n))) best = k, best_noise = n;
      }
      fill(r, alpha_[best], s);
      s.has_input = true;
      s.alpha = alphas[best];
      const at::Tensor ws = original_.to(at::kFloat) * factor_[best];
      s.weight_signal = energy(ws).item<double>();
      s.weight_noise = energy(schemes::int8_rows(ws) - ws).item<double>();
      s.reference_noise = runs_[static_cast<size_t>(reference_)].e.output_noise.item<double>();
    } else {
      s.not_applicable = "its input was never observed in the pass";
    }
    out[r.scheme.name] = s;
  }
  return out;
}

}  // namespace qreport::pipeline
