#include "pipeline/quantized_runs.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>
#include <map>

#include "common/errors.h"
#include "common/text.h"
#include "model/model.h"
#include "pipeline/fake_quant.h"

namespace qreport::pipeline {
namespace {

using detectors::Value;

at::Tensor energy(const at::Tensor& t) { return at::sum(at::square(t.to(at::kDouble))); }

}  // namespace

QuantizedRuns::QuantizedRuns(const model::ModelView& model, RunHost& host, const report::Report& rep,
                             const schemes::Scheme& scheme, std::vector<std::string>* not_quantized,
                             std::vector<std::string>* warnings)
    : host_(host), scheme_(scheme) {
  const detectors::DetectorResult* r = nullptr;
  for (const auto& res : rep.results)
    if (res.name == "quantization_error_detector") r = &res;
  if (!r) return;
  const Value* qmax_v = detectors::find_field(r->options, "activation_quant_max");
  qmax_ = qmax_v && qmax_v->type == Value::Type::Int ? qmax_v->i : 255;
  std::map<std::string, const detectors::QConfigEntry*> entry_of;
  for (const auto& e : rep.qconfig) entry_of[e.fqn] = &e;
  std::map<std::string, size_t> site_index;
  // Why each left-out layer stays in float, one warning per reason.
  std::map<std::string, std::vector<std::string>> left_out;
  for (const auto& m : r->modules) {
    const at::Tensor w = model.weight(m.fqn);
    std::string why = host_.kept_in_float(m.fqn);
    // A weight no whole-model run can quantize (the .pt2's in_proj) is no Linear/Conv weight of the
    // quantized model's either: the fraction counts the weights torchao and the mappings can quantize.
    if (w.defined() && why.empty()) all_numel_ += w.numel();
    const model::ModuleNode* node = model.tree().find(m.fqn);
    const int conv_dims = node ? node->kind.conv_dims : 0;
    const auto site = host_.resolve(m.fqn);
    Layer l;
    if (why.empty() && !site) why = "its input is not observed at any call site";
    else if (why.empty() && (!w.defined() || w.dim() < 1 || w.numel() == 0)) why = "it has no tensor weight";
    if (why.empty() && scheme.kind == schemes::Kind::Int8Static) {
      const auto it = entry_of.find(detectors::fused_ancestor(model, m.fqn));
      const detectors::QConfigEntry* entry = it == entry_of.end() ? nullptr : it->second;
      const std::string activation = entry ? entry->activation : "default_observer";
      std::optional<observers::QParams> q = reported_input_qparams(m.fields, "minmax", qmax_);
      if (activation == "default_histogram_observer")
        if (auto h = reported_input_qparams(m.fields, "histogram", qmax_)) q = h;
      if (!q) {
        why = "its input has no qparams (never observed, or invalid statistics)";
      } else {
        l.q = *q;
        l.input = activation == "default_dynamic_quant_observer" ? Input::DynamicAffine : Input::Static;
        const bool per_channel = entry && entry->weight == "default_per_channel_weight_observer";
        l.quantized = observers::fake_quantize_weight(w.to(at::kFloat), per_channel);
      }
    } else if (why.empty()) {
      if (auto na = schemes::not_applicable(scheme, conv_dims, w)) {
        why = *na;
      } else {
        l.quantized = schemes::quantize_weight(scheme, w.to(at::kFloat));
        l.input = scheme.weight_only() ? Input::None : Input::Scheme;
        if (scheme.kind == schemes::Kind::Int4WeightOnly)
          l.int8 = schemes::quantize_weight({schemes::Kind::Int8WeightOnly, 0, "int8-weight-only"}, w.to(at::kFloat));
      }
    }
    if (!why.empty()) {
      not_quantized->push_back(m.fqn);
      left_out[why].push_back(m.fqn);
      continue;
    }
    l.fqn = m.fqn;
    l.original = host_.weight_of(m.fqn);
    l.quantized = l.quantized.to(l.original.options());
    if (l.int8.defined()) l.int8 = l.int8.to(l.original.options());
    l.weight_numel = w.numel();
    auto [it, inserted] = site_index.try_emplace(*site, at_site_.size());
    if (inserted) {
      at_site_.emplace_back();
      host_.rewrite_input(*site, static_cast<int64_t>(it->second));
      host_.observe_output(*site, static_cast<int64_t>(it->second));
    }
    l.site = it->second;
    at_site_[it->second].push_back(layers_.size());
    layers_.push_back(std::move(l));
  }
  // After every site's rewrite and observe op: wrapping a call moves it into an If's branch.
  size_t reusable = 0;
  for (const auto& [site, id] : site_index) reusable += host_.skippable(site, static_cast<int64_t>(id)) ? 1 : 0;
  skips_ = reusable > 0;
  spdlog::debug("sensitivity: {} of {} call sites can reuse an earlier run's outputs", reusable, site_index.size());
  for (const auto& [why, fqns] : left_out) {
    std::string names;
    for (size_t i = 0; i < fqns.size() && i < 3; ++i) names += (i ? ", '" : "'") + fqns[i] + "'";
    if (fqns.size() > 3) names += ", ...";
    warnings->push_back("sensitivity: " + std::to_string(fqns.size()) + " layer" + (fqns.size() == 1 ? "" : "s") +
                        " (" + names + ") " + (fqns.size() == 1 ? "stays" : "stay") + " in float in every run under " +
                        scheme.name + ": " + why);
  }
}

at::Tensor QuantizedRuns::quantize_input(const Layer& l, const at::Tensor& x) const {
  const at::Tensor xf = x.to(at::kFloat);
  switch (l.input) {
    case Input::Static: return observers::fake_quantize(xf, l.q).to(x.scalar_type());
    case Input::DynamicAffine: return fake_quantize_dynamic(xf, qmax_).to(x.scalar_type());
    case Input::Scheme: {
      auto q = schemes::quantize_input(scheme_, xf);
      return q ? q->to(x.scalar_type()) : x;
    }
    case Input::None: break;
  }
  return x;
}

std::vector<at::Tensor> QuantizedRuns::forward(size_t k, const std::vector<State>& state, Outputs* capture,
                                               const Outputs* base, const std::vector<State>* base_state) {
  if (interrupt_requested()) throw Interrupted("interrupted during the sensitivity pass; no report written");
  bool diverged = base == nullptr;
  std::vector<size_t> seen(at_site_.size(), 0);
  if (capture) capture->assign(at_site_.size(), {});
  const instrumentation::ObserveSink keep_output = [&](int64_t id, const at::Tensor& y) {
    // A clone: a later in-place op (ReLU(inplace=True)) would change y.
    if (capture) (*capture)[static_cast<size_t>(id)].push_back(y.detach().clone());
  };
  const instrumentation::RewriteSink rewrite = [&](int64_t id, const at::Tensor& x) -> at::Tensor {
    const auto& at_site = at_site_[static_cast<size_t>(id)];
    for (size_t i : at_site)
      if (!diverged && state[i] != (*base_state)[i]) diverged = true;
    if (!x.is_floating_point()) return x;
    for (size_t i : at_site)
      if (state[i] == State::Scheme) return quantize_input(layers_[i], x);
    return x;
  };
  const instrumentation::SkipSink skip = [&](int64_t id) -> at::Tensor {
    const size_t site = static_cast<size_t>(id), call = seen[site]++;
    if (diverged || call >= (*base)[site].size()) return at::Tensor();
    return (*base)[site][call].clone();  // a clone: the same in-place ops may follow
  };
  SwappedWeights swapped(host_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    if (state[i] == State::Scheme) swapped.set(l.fqn, l.quantized, l.original);
    if (state[i] == State::Int8) swapped.set(l.fqn, l.int8.defined() ? l.int8 : l.original, l.original);
  }
  return host_.run(args_[k], keep_output, rewrite, base ? skip : instrumentation::SkipSink());
}

bool QuantizedRuns::add_noise(size_t k, const std::vector<at::Tensor>& got, at::Tensor& noise) const {
  if (got.size() != float_out_[k].size()) return false;
  for (size_t j = 0; j < got.size(); ++j) {
    if (got[j].sizes() != float_out_[k][j].sizes()) return false;
    at::Tensor e = energy(float_out_[k][j].to(at::kDouble) - got[j].to(at::kDouble));
    noise = noise.defined() ? noise + e : e;
  }
  return true;
}

std::optional<double> QuantizedRuns::db(const at::Tensor& noise, bool paired) const {
  if (!paired || !noise.defined()) return std::nullopt;
  const double n = noise.item<double>();
  // Undefined (null): a zero or non-finite float output, or NaN noise. Zero noise is +inf (the output did
  // not change, the best figure there is), infinite noise -inf: both are figures a target can be judged by.
  if (!(signal_ > 0.0) || !std::isfinite(signal_) || std::isnan(n)) return std::nullopt;
  if (n == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal_ / n);
}

QuantizedRuns::Figures QuantizedRuns::sensitivity(std::vector<std::vector<c10::IValue>> args, State keep,
                                                  bool disable_one) {
  args_ = std::move(args);
  float_out_.clear();
  signal_ = 0.0;
  const size_t n = layers_.size();
  const std::vector<State> none(n, State::Float), all(n, State::Scheme);
  std::vector<at::Tensor> enable_noise(n), skip_noise(n);
  at::Tensor all_noise;
  std::vector<bool> enable_paired(n, true), skip_paired(n, true);
  bool all_paired = true;
  // The call outputs the enable-one (disable-one) runs reuse, where the host can skip calls.
  Outputs float_calls, quantized_calls;
  Outputs* float_kept = skips_ ? &float_calls : nullptr;
  Outputs* quantized_kept = skips_ && disable_one ? &quantized_calls : nullptr;
  try {
    for (size_t k = 0; k < args_.size(); ++k) {
      std::vector<at::Tensor> ref = forward(k, none, float_kept, nullptr, nullptr);
      for (auto& t : ref) {
        t = t.detach().clone();
        signal_ += energy(t).item<double>();
      }
      float_out_.push_back(std::move(ref));
      std::vector<State> s = none;
      for (size_t i = 0; i < n; ++i) {
        s[i] = State::Scheme;
        if (enable_paired[i]) enable_paired[i] = add_noise(k, forward(k, s, nullptr, float_kept, &none), enable_noise[i]);
        s[i] = State::Float;
      }
      float_calls.clear();  // the all-quantized run's outputs take its memory
      if (all_paired) all_paired = add_noise(k, forward(k, all, quantized_kept, nullptr, nullptr), all_noise);
      s = all;
      for (size_t i = 0; i < n && disable_one; ++i) {
        s[i] = keep;
        if (skip_paired[i]) skip_paired[i] = add_noise(k, forward(k, s, nullptr, quantized_kept, &all), skip_noise[i]);
        s[i] = State::Scheme;
      }
      quantized_calls.clear();
    }
  } catch (const c10::Error& e) {
    throw ModelError("the model's forward failed during the sensitivity pass: " + root_cause_line(e.what()));
  }
  forwards_ += 2 + (disable_one ? 2 : 1) * n;
  Figures f;
  for (size_t i = 0; i < n; ++i) {
    f.enable.push_back(db(enable_noise[i], enable_paired[i]));
    f.skip.push_back(disable_one ? db(skip_noise[i], skip_paired[i]) : std::nullopt);
  }
  f.all = n > 0 ? db(all_noise, all_paired) : std::nullopt;
  return f;
}

std::optional<double> QuantizedRuns::run(const std::vector<State>& state) {
  at::Tensor noise;
  bool paired = true;
  try {
    for (size_t k = 0; k < args_.size() && paired; ++k) paired = add_noise(k, forward(k, state, nullptr, nullptr, nullptr), noise);
  } catch (const c10::Error& e) {
    throw ModelError("the model's forward failed during the sensitivity pass: " + root_cause_line(e.what()));
  }
  ++forwards_;
  return db(noise, paired);
}

}  // namespace qreport::pipeline
