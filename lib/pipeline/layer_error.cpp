#include "pipeline/layer_error.h"

#include <torch/script.h>

#include <cmath>
#include <limits>
#include <algorithm>
#include <map>
#include <memory>

#include "common/errors.h"
#include "common/text.h"
#include "instrumentation/instrumentation.h"
#include "model/model.h"
#include "observers/observers.h"
#include "observers/output_energy.h"
#include "pipeline/fake_quant.h"
#include "pipeline/layer_capture.h"
#include "pipeline/scheme_error.h"

namespace qreport::pipeline {
namespace {

using detectors::Side;
using detectors::Value;

detectors::DetectorResult* error_result(report::Report& rep) {
  for (auto& r : rep.results)
    if (r.name == "quantization_error_detector") return &r;
  return nullptr;
}

// How one layer's input is fake-quantized under the decided configuration.
struct InputQuantizer {
  bool dynamic = false;  // per call, from the call's own range (default_dynamic_quant_observer)
  observers::QParams q;  // static: the qparams the error detector reported (PyTorch's observers')
};

// One measured layer: how to apply it, its quantized weight, and its energies (on the layer's device, so
// the per-batch path never waits for the device; read once at the end).
struct Layer {
  std::string fqn;
  at::Tensor original, quantized;
  InputQuantizer input;
  at::Tensor signal, noise;  // float64 scalars
  int64_t calls = 0;
  std::unique_ptr<LayerSchemes> schemes;  // --schemes only
};

// TorchScript: the layer's module with its `weight` attribute swapped (an O(1) slot write), and restored.
class ScriptLayerHost : public LayerHost {
 public:
  ScriptLayerHost(const model::Model& model, std::function<std::vector<c10::IValue>(size_t)> batch,
                  const instrumentation::Instrumenter* calibrated)
      : model_(model), calibrated_(calibrated), batch_(std::move(batch)) {}
  std::optional<std::string> resolve(const std::string& fqn) const override { return queries().resolve(fqn); }
  void observe_input(const std::string& site, int64_t id) override { instr().observe(site, Side::Input, id); }
  at::Tensor weight_of(const std::string& fqn, std::string* why) override {
    torch::jit::Module m = model_.submodule(fqn);
    Applied& a = modules_[fqn];
    a.module = m;
    if (const std::string op = queries().functional_op(fqn); !op.empty()) {
      // Applied the way its call applies it, with the call's own bias, stride, padding (not the module's).
      auto applied = queries().functional_apply(fqn);
      if (!applied) {
        *why = cannot_apply_alone(op);
        return {};
      }
      a.functional = std::move(*applied);
    }
    a.original = m.attr("weight").toTensor();
    return a.original;
  }
  at::Tensor apply(const std::string& fqn, const at::Tensor& x, const at::Tensor& weight) override {
    Applied& l = modules_.at(fqn);
    l.module.setattr("weight", weight);
    at::Tensor y;
    try {
      y = l.functional ? l.functional(x, weight) : l.module.forward({x}).toTensor();
    } catch (...) {
      l.module.setattr("weight", l.original);
      throw;
    }
    l.module.setattr("weight", l.original);
    return y;
  }
  void run(size_t k, const instrumentation::ObserveSink& sink) override { instr().run(batch_(k), sink); }

 private:
  struct Applied {
    torch::jit::Module module;
    // Empty for a module call; else the functional op that applies its weight, with the call's arguments.
    instrumentation::Instrumenter::LayerApply functional;
    at::Tensor original;
  };
  // Made on first use: a pass whose layers' inputs calibration kept never instruments a second copy.
  instrumentation::Instrumenter& instr() const {
    if (!instr_) instr_ = std::make_unique<instrumentation::Instrumenter>(model_);
    return *instr_;
  }
  const instrumentation::Instrumenter& queries() const { return calibrated_ ? *calibrated_ : instr(); }
  const model::Model& model_;
  const instrumentation::Instrumenter* calibrated_;
  mutable std::unique_ptr<instrumentation::Instrumenter> instr_;
  std::function<std::vector<c10::IValue>(size_t)> batch_;
  std::map<std::string, Applied> modules_;
};

}  // namespace

std::string cannot_apply_alone(const std::string& op) {
  return "it is applied by " + op + " with arguments computed at run time (or different ones per call), so it "
         "cannot be applied alone";
}

std::shared_ptr<LayerHost> script_layer_host(const model::Model& model,
                                             std::function<std::vector<c10::IValue>(size_t)> batch,
                                             const instrumentation::Instrumenter* calibrated) {
  return std::make_shared<ScriptLayerHost>(model, std::move(batch), calibrated);
}

void finish_without_layer_error(const model::ModelView& model, const std::string& why, report::Report& rep) {
  detectors::DetectorResult* r = error_result(rep);
  if (!r) return;
  detectors::LayerErrorMeasurement none;
  none.unavailable = why;
  for (auto& w : detectors::finish_quantization_error(*r, model, rep.qconfig, none)) rep.warnings.push_back(w);
}

void measure_layer_error(const LayerErrorInput& in, report::Report& rep) {
  detectors::DetectorResult* r = error_result(rep);
  if (!r) return;
  const model::ModelView& model = *in.model;
  LayerHost& host = *in.host;
  const Value* qmax_v = detectors::find_field(r->options, "activation_quant_max");
  const int64_t qmax = qmax_v && qmax_v->type == Value::Type::Int ? qmax_v->i : 255;
  std::map<std::string, const detectors::QConfigEntry*> entry_of;
  for (const auto& e : rep.qconfig) entry_of[e.fqn] = &e;

  std::vector<Layer> layers;
  std::vector<std::vector<size_t>> at_site;  // site id -> its layers (the children of one fused module share it)
  std::map<std::string, size_t> site_index;
  std::vector<const std::vector<std::vector<at::Tensor>>*> captured;  // site id -> calibration's copies, or null
  for (const auto& m : r->modules) {
    const auto site = host.resolve(m.fqn);
    const auto it = entry_of.find(detectors::fused_ancestor(model, m.fqn));
    const detectors::QConfigEntry* entry = it == entry_of.end() ? nullptr : it->second;
    const std::string activation = entry ? entry->activation : "default_observer";
    InputQuantizer iq;
    std::optional<observers::QParams> q = reported_input_qparams(m.fields, "minmax", qmax);
    if (activation == "default_histogram_observer")
      if (auto h = reported_input_qparams(m.fields, "histogram", qmax)) q = h;
    iq.dynamic = activation == "default_dynamic_quant_observer";
    // No qparams: the input was never observed, or its statistics are invalid (the detector says why).
    if (!site || !q) continue;
    iq.q = *q;
    const at::Tensor w = model.weight(m.fqn);
    if (!w.defined() || w.dim() < 1 || w.numel() == 0) continue;
    Layer l;
    l.fqn = m.fqn;
    std::string why;
    l.original = host.weight_of(m.fqn, &why);
    if (!l.original.defined()) {
      if (!why.empty()) r->null_reasons[m.fqn] = why;
      continue;
    }
    const bool per_channel = entry && entry->weight == "default_per_channel_weight_observer";
    l.quantized = observers::fake_quantize_weight(w, per_channel).to(l.original.options());
    l.input = iq;
    l.signal = at::zeros({}, l.original.options().dtype(at::kDouble));
    l.noise = at::zeros({}, l.original.options().dtype(at::kDouble));
    if (!in.schemes.empty()) {
      const model::ModuleNode* node = model.tree().find(m.fqn);
      l.schemes = std::make_unique<LayerSchemes>(in.schemes, node ? node->kind.conv_dims : 0, l.original);
    }
    auto [sit, inserted] = site_index.try_emplace(*site, at_site.size());
    if (inserted) {
      at_site.emplace_back();
      captured.push_back(in.captured ? in.captured->calls(*site, Side::Input) : nullptr);
      if (!captured.back()) host.observe_input(*site, static_cast<int64_t>(sit->second));
    }
    at_site[sit->second].push_back(layers.size());
    layers.push_back(std::move(l));
  }

  // One call of site `id` with input x: every layer of the site, float and quantized. `y_float`: the float
  // layer's output on x where calibration kept it (the site is that one layer's own call), else undefined.
  auto measure = [&](size_t id, const at::Tensor& x, const at::Tensor& y_float) {
    if (!x.is_floating_point()) return;
    const at::Tensor xf = x.to(at::kFloat);
    for (size_t k : at_site[id]) {
      Layer& l = layers[k];
      const at::Tensor xq =
          (l.input.dynamic ? fake_quantize_dynamic(xf, qmax) : observers::fake_quantize(xf, l.input.q)).to(x.scalar_type());
      const at::Tensor y = (y_float.defined() ? y_float : host.apply(l.fqn, x, l.original)).to(at::kFloat);
      const at::Tensor yq = host.apply(l.fqn, xq, l.quantized).to(at::kFloat);
      observers::add_output_energy(y, yq, l.signal, l.noise);
      ++l.calls;
      if (l.schemes) l.schemes->measure(x, y, [&](const at::Tensor& xs, const at::Tensor& ws) { return host.apply(l.fqn, xs, ws); });
    }
  };
  auto maxima_of = [&](size_t id, const at::Tensor& x) {
    if (!x.is_floating_point()) return;
    for (size_t k : at_site[id])
      if (layers[k].schemes) layers[k].schemes->observe_maxima(x.to(at::kFloat));
  };
  instrumentation::ObserveSink sink = [&](int64_t id, const at::Tensor& x) { measure(static_cast<size_t>(id), x, {}); };
  // smoothquant's smoothing factor needs each input feature's max |x| over the pass's batches first.
  const bool maxima = std::any_of(layers.begin(), layers.end(), [](const Layer& l) {
    return l.schemes && l.schemes->needs_input_maxima();
  });
  instrumentation::ObserveSink maxima_sink = [&](int64_t id, const at::Tensor& x) { maxima_of(static_cast<size_t>(id), x); };

  detectors::LayerErrorMeasurement measured;
  measured.total_batches = static_cast<int64_t>(in.total_batches);
  {
    c10::InferenceMode inference;
    // The sites whose inputs calibration kept: their layers are applied to those copies, in the order the
    // second pass would have met them per site (batch, then call), so the sums are the same.
    for (size_t id = 0; id < captured.size(); ++id) {
      if (!captured[id]) continue;
      if (interrupt_requested())
        throw Interrupted("interrupted while measuring the layers' output SQNR; no report written");
      const auto* outs = at_site[id].size() == 1 && in.captured
                             ? in.captured->calls(layers[at_site[id][0]].fqn, Side::Output)
                             : nullptr;
      for (int pass = maxima ? 0 : 1; pass < 2; ++pass)
        for (size_t b = 0; b < captured[id]->size(); ++b) {
          const auto& xs = (*captured[id])[b];
          const bool paired = outs && (*outs)[b].size() == xs.size();  // a call whose output was no tensor: none
          for (size_t c = 0; c < xs.size(); ++c)
            pass == 0 ? maxima_of(id, xs[c]) : measure(id, xs[c], paired ? (*outs)[b][c] : at::Tensor());
        }
    }
    const bool rerun = std::find(captured.begin(), captured.end(), nullptr) != captured.end();
    for (int pass = maxima ? 0 : 1; rerun && pass < 2; ++pass) {
      if (in.rewind) in.rewind();
      for (size_t k = 0; k < in.batches; ++k) {
        if (interrupt_requested())
          throw Interrupted("interrupted while measuring the layers' output SQNR; no report written");
        try {
          host.run(k, pass == 0 ? maxima_sink : sink);
        } catch (const c10::Error& e) {
          throw ModelError("the model's forward failed while measuring the layers' output SQNR on batch " +
                           std::to_string(k) + ": " + root_cause_line(e.what()));
        }
        if (pass == 1 && in.on_batch) in.on_batch(k + 1, in.batches);
      }
    }
  }
  if (in.restore) in.restore();  // the applications of a layer run its module, which may write buffers too
  measured.batches = static_cast<int64_t>(in.batches);
  if (measured.batches == 0) measured.unavailable = "there were no calibration batches to measure it on";
  for (const auto& l : layers) {
    detectors::LayerEnergy e;
    e.calls = l.calls;
    e.signal = l.signal.item<double>();
    e.noise = l.noise.item<double>();
    measured.layers[l.fqn] = e;
    if (l.schemes && l.calls > 0) measured.scheme_energy[l.fqn] = l.schemes->finish();
  }
  for (const auto& s : in.schemes) measured.schemes.push_back(s.name);
  for (auto& w : detectors::finish_quantization_error(*r, model, rep.qconfig, measured)) rep.warnings.push_back(w);
}

}  // namespace qreport::pipeline
