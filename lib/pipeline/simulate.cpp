#include "pipeline/simulate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <map>

#include "common/errors.h"
#include "common/text.h"
#include "instrumentation/instrumentation.h"
#include "model/model.h"
#include "observers/observers.h"
#include "pipeline/fake_quant.h"
#include "pipeline/run_host.h"

namespace qreport::pipeline {
namespace {

using detectors::Side;

// How one call site's input is fake-quantized in one configuration.
struct Activation {
  bool dynamic = false;     // per call, from the call's own range
  observers::QParams q;     // static
};

// One observed call site: its input quantizer per configuration, and the float outputs of the batch.
struct Site {
  std::string fqn;
  Activation act[2];
  std::vector<at::Tensor> float_outputs;  // this batch's, in call order
  size_t next = 0;                        // which float output the next quantized call pairs with
  double signal[2] = {0, 0}, noise[2] = {0, 0};
  bool mismatch = false;
};

// One Linear/Conv module: its weight as the model holds it, and the weight each configuration swaps in.
struct Weight {
  std::string fqn;
  at::Tensor original, quantized[2];
};

std::optional<double> db(double signal, double noise) {
  if (!(signal > 0.0) || !(noise > 0.0)) return std::nullopt;
  const double v = 10.0 * std::log10(signal / noise);
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}


void accumulate(const at::Tensor& ref, const at::Tensor& got, double& signal, double& noise) {
  at::Tensor r = ref.to(at::kDouble);
  signal += r.square().sum().item<double>();
  noise += (r - got.to(at::kDouble)).square().sum().item<double>();
}

}  // namespace

report::Simulation simulate(const SimulationInput& in, std::vector<std::string>* warnings) {
  const model::ModelView& model = *in.model;
  RunHost& host = *in.host;
  const int64_t dynamic_qmax = in.backend == "x86" || in.backend == "fbgemm" ? 127 : 255;
  std::map<std::string, const detectors::QConfigEntry*> entry_of;
  for (const auto& e : *in.mapping) entry_of[e.fqn] = &e;

  std::vector<Site> sites;
  std::map<std::string, size_t> site_index;
  std::vector<Weight> weights;
  // Every layer in graph order: a site's index, or none for a layer left in float (null in the report, so
  // that a layer that lost its figure shows as null, not as absent, to diff and to readers).
  std::vector<std::pair<std::string, std::optional<size_t>>> listed;
  for (const auto& node : model.tree().nodes()) {
    if (!node.kind.is_linear_or_conv()) continue;
    listed.emplace_back(node.fqn, std::nullopt);
    if (const std::string why = host.kept_in_float(node.fqn); !why.empty()) {
      warnings->push_back("--simulate: '" + node.fqn + "' is left in float: " + why);
      continue;
    }
    const auto site = host.resolve(node.fqn);
    const auto* point = in.stats->find(node.fqn, Side::Input);
    const auto* h = point ? point->histogram() : nullptr;
    if (point && point->non_finite().any()) {
      warnings->push_back("--simulate: '" + node.fqn + "' is left in float: its input contains " +
                          point->non_finite().describe() + ", made inside the model");
      continue;
    }
    if (!site || !h || h->batches == 0 || !h->invalid.empty()) {
      warnings->push_back("--simulate: '" + node.fqn + "' is left in float: " +
                          (h && !h->invalid.empty() ? "its input's statistics are invalid: " + h->invalid
                                                    : std::string("its input was not observed")));
      continue;
    }
    at::Tensor w = model.weight(node.fqn);
    if (!w.defined() || w.dim() < 1) {
      warnings->push_back("--simulate: '" + node.fqn + "' is left in float: " +
                          (w.defined() ? "its weight is a 0-dimensional tensor" : "it has no tensor weight"));
      continue;
    }
    const auto it = entry_of.find(detectors::fused_ancestor(model, node.fqn));
    const detectors::QConfigEntry* entry = it == entry_of.end() ? nullptr : it->second;

    Weight wt;
    wt.fqn = node.fqn;
    wt.original = host.weight_of(node.fqn);
    const bool per_channel = entry && entry->weight == "default_per_channel_weight_observer";
    wt.quantized[0] = observers::fake_quantize_weight(w, false).to(wt.original.options());
    wt.quantized[1] = observers::fake_quantize_weight(w, per_channel).to(wt.original.options());
    weights.push_back(std::move(wt));

    if (auto known = site_index.find(*site); known != site_index.end()) {  // children of one fused module
      listed.pop_back();                                                   // share its input: listed once
      continue;
    }
    listed.back() = {*site, sites.size()};
    Site s;
    s.fqn = *site;
    // default_observer (and default_histogram_observer) quantize to [0, 127] whatever the backend.
    s.act[0].q = observers::affine_qparams(h->data_min, h->data_max, 0, 127);
    s.act[1].q = s.act[0].q;
    if (entry && entry->activation == "default_histogram_observer") {
      if (auto range = observers::histogram_search_range(*h, 256))
        s.act[1].q = observers::affine_qparams(range->first, range->second, 0, 127);
    } else if (entry && entry->activation == "default_dynamic_quant_observer") {
      s.act[1].dynamic = true;
    }
    const int64_t id = static_cast<int64_t>(sites.size());
    host.rewrite_input(*site, id);
    host.observe_output(*site, id);
    site_index[*site] = sites.size();
    sites.push_back(std::move(s));
  }

  report::Simulation sim;
  sim.ran = true;
  double out_signal[2] = {0, 0}, out_noise[2] = {0, 0};
  // The first batch whose quantized run returned other outputs than the float run (their count or a
  // shape): the model's output SQNR cannot pair them, and is left null rather than computed on a part.
  std::optional<size_t> output_mismatch;
  int config = -1;  // -1: the float pass
  instrumentation::ObserveSink sink = [&](int64_t id, const at::Tensor& y) {
    Site& s = sites[static_cast<size_t>(id)];
    if (config < 0) {
      s.float_outputs.push_back(y.detach().clone());  // clone: a later in-place op may change y
      return;
    }
    if (s.next >= s.float_outputs.size() || !y.is_floating_point() ||
        y.sizes() != s.float_outputs[s.next].sizes()) {
      s.mismatch = true;
      return;
    }
    accumulate(s.float_outputs[s.next++], y, s.signal[config], s.noise[config]);
  };
  instrumentation::RewriteSink rewrite = [&](int64_t id, const at::Tensor& x) -> at::Tensor {
    if (config < 0 || !x.is_floating_point()) return x;
    const Activation& a = sites[static_cast<size_t>(id)].act[config];
    at::Tensor xf = x.to(at::kFloat);
    observers::QParams q = a.q;
    if (a.dynamic) {
      auto [mn, mx] = at::aminmax(xf);
      q = observers::affine_qparams(mn.item<float>(), mx.item<float>(), 0, dynamic_qmax);
    }
    return observers::fake_quantize(xf, q).to(x.scalar_type());
  };

  c10::InferenceMode inference;
  for (size_t i = 0; i < in.batches; ++i) {
    if (interrupt_requested()) throw Interrupted("interrupted during --simulate; no report written");
    const std::vector<c10::IValue> args = in.batch(i);
    for (auto& s : sites) {
      s.float_outputs.clear();
      s.next = 0;
    }
    std::vector<at::Tensor> float_out;
    try {
      config = -1;
      float_out = host.run(args, sink, rewrite, {});
      for (auto& t : float_out) t = t.detach().clone();
      for (int c = 0; c < 2; ++c) {
        config = c;
        for (auto& s : sites) s.next = 0;
        std::vector<at::Tensor> q_out;
        {
          SwappedWeights swapped(host);
          for (auto& w : weights) swapped.set(w.fqn, w.quantized[c], w.original);
          q_out = host.run(args, sink, rewrite, {});
        }
        bool paired = q_out.size() == float_out.size();
        for (size_t k = 0; paired && k < q_out.size(); ++k) paired = q_out[k].sizes() == float_out[k].sizes();
        if (!paired && !output_mismatch) output_mismatch = i;
        for (size_t k = 0; paired && k < q_out.size(); ++k)
          accumulate(float_out[k], q_out[k], out_signal[c], out_noise[c]);
        for (auto& s : sites)  // fewer quantized calls than float ones leave float outputs unpaired
          if (s.next != s.float_outputs.size()) s.mismatch = true;
      }
    } catch (const c10::Error& e) {
      throw ModelError("the model's forward failed during --simulate on batch " + std::to_string(i) + ": " +
                       root_cause_line(e.what()));
    }
    if (in.on_batch) in.on_batch(i + 1, in.batches);
  }
  for (const auto& s : sites)
    if (s.mismatch)
      warnings->push_back("--simulate: the calls of '" + s.fqn + "' differed between the float and the quantized "
                          "run; its per-layer SQNR covers the calls that paired");
  if (output_mismatch)
    warnings->push_back("--simulate: on batch " + std::to_string(*output_mismatch) + " the quantized model returned "
                        "other outputs than the float model (their number or shapes), so the model's output SQNR is "
                        "null; the per-layer figures stand");
  const char* names[2] = {"default_qconfig", "recommended"};
  for (int c = 0; c < 2; ++c) {
    report::SimulatedConfig rc;
    rc.name = names[c];
    if (!output_mismatch) rc.output_sqnr_db = db(out_signal[c], out_noise[c]);
    for (const auto& [fqn, site] : listed)
      rc.layers.emplace_back(fqn, site ? db(sites[*site].signal[c], sites[*site].noise[c]) : std::nullopt);
    sim.configs.push_back(std::move(rc));
  }
  return sim;
}

}  // namespace qreport::pipeline
