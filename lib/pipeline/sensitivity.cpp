#include "pipeline/sensitivity.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "common/text.h"
#include "pipeline/quantized_runs.h"

namespace qreport::pipeline {
namespace {

using State = QuantizedRuns::State;
using detectors::Value;

// What the report shows of a figure: finite dB, else null (JSON has no infinities).
std::optional<double> shown(const std::optional<double>& v) {
  return v && std::isfinite(*v) ? v : std::nullopt;
}
Value db_value(const std::optional<double>& v) { return shown(v) ? Value::number(*v) : Value::null(); }

// +inf (the output did not change at all) sorts above every number; an undefined figure (null: a NaN or
// zero output) below every one, so the plan never counts on it.
double rank(const std::optional<double>& v) { return v ? *v : -std::numeric_limits<double>::infinity(); }

}  // namespace

void measure_sensitivity(const SensitivityInput& in, report::Report& rep) {
  report::Sensitivity& sens = rep.sensitivity;
  sens.ran = true;
  sens.scheme = in.scheme.name;
  sens.batches = in.batches;
  c10::InferenceMode inference;
  QuantizedRuns runs(*in.model, *in.host, rep, in.scheme, &sens.not_quantized, &rep.warnings);
  const size_t n = runs.size();
  const bool int4 = in.scheme.kind == schemes::Kind::Int4WeightOnly;
  // Under int4, a kept layer is kept at int8-weight-only (the rule: what people fall back to).
  const State keep = int4 ? State::Int8 : State::Float;
  sens.disable_one = in.disable_one;
  size_t planned = 2 + (in.disable_one ? 2 : 1) * n;
  auto progress = [&] {
    if (in.on_run) in.on_run(runs.forwards(), std::max(planned, runs.forwards()));
  };

  std::vector<std::vector<c10::IValue>> args;
  for (size_t k = 0; k < in.batches; ++k) args.push_back(in.batch(k));
  QuantizedRuns::Figures fig = runs.sensitivity(std::move(args), keep, in.disable_one);
  progress();
  const std::vector<std::optional<double>>& enable = fig.enable;
  const std::vector<std::optional<double>>& skip = fig.skip;
  const std::optional<double> all = fig.all;
  sens.all_quantized_db = shown(all);
  sens.forwards = runs.forwards();

  // The per-layer keys in the error detector's modules (null for a layer that is not a candidate).
  for (auto& r : rep.results) {
    if (r.name != "quantization_error_detector") continue;
    for (auto& m : r.modules) {
      std::optional<double> e, k;
      for (size_t i = 0; i < n; ++i)
        if (runs.fqn(i) == m.fqn) e = enable[i], k = skip[i];
      // Before --schemes' object, which stays last.
      auto at = std::find_if(m.fields.begin(), m.fields.end(), [](const auto& f) { return f.first == "schemes"; });
      at = m.fields.emplace(at, "sensitivity_skip_output_sqnr_db", db_value(k));
      m.fields.emplace(at, "sensitivity_output_sqnr_db", db_value(e));
    }
  }
  for (size_t i = 0; i < n; ++i) sens.layers.push_back({runs.fqn(i), shown(enable[i]), shown(skip[i])});
  if (!in.target_sqnr_db) return;

  // The plan: keep layers in the order of their disable-one figure, highest first (what keeping each one
  // buys when everything else is quantized, which is the situation the list grows from); ties by the
  // enable-one figure, lowest first, then graph order. Without disable-one runs every skip figure is null and
  // ties, so the order is the enable-one figure's, lowest first: the same order where the layers' output
  // noises add up (the disable-one noise is then the all-quantized noise less the layer's own). Each step is
  // one real run; the last is the plan's.
  report::KeepPlan& plan = rep.plan;
  plan.ran = true;
  plan.scheme = in.scheme.name;
  plan.keep_as = int4 ? "int8-weight-only" : "float";
  plan.target_sqnr_db = *in.target_sqnr_db;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (rank(skip[a]) != rank(skip[b])) return rank(skip[a]) > rank(skip[b]);
    return rank(enable[a]) < rank(enable[b]);
  });
  const double target = *in.target_sqnr_db;
  // An undefined figure reaches nothing: a gate must not pass on a model whose output SQNR cannot be had.
  auto reaches = [&](const std::optional<double>& v) { return v && *v >= target; };
  std::vector<State> state(n, State::Scheme);
  size_t kept = 0;
  plan.curve.push_back({0, "", shown(all)});
  std::optional<double> last = all;
  // The best a single quantized layer can do is its enable-one figure (all else in float): under a scheme
  // that keeps in float, a target above every enable-one figure is out of reach, and the walk is not run.
  const auto best_one = std::max_element(enable.begin(), enable.end(), [](const auto& a, const auto& b) {
    return rank(a) < rank(b);
  });
  const bool hopeless = n == 0 || (!int4 && !reaches(*best_one));
  if (!hopeless) {
    planned = runs.forwards() + n - 1;
    while (!reaches(last) && kept + 1 < n) {
      state[order[kept]] = keep;
      ++kept;
      last = runs.run(state);
      plan.curve.push_back({kept, runs.fqn(order[kept - 1]), shown(last)});
      progress();
    }
  }
  plan.reached = n > 0 && reaches(last) && !hopeless;
  if (!plan.reached && n > 0 && !int4 && reaches(*best_one)) {
    // The greedy order missed the single layer that reaches the target alone: keep every other one.
    const size_t best = static_cast<size_t>(best_one - enable.begin());
    std::fill(state.begin(), state.end(), keep);
    state[best] = State::Scheme;
    last = enable[best];
    plan.reached = true;
    plan.note = "The greedy order did not reach the target before its last layer; the layer whose enable-one "
                "figure reaches it alone is the one quantized";
  }
  if (!plan.reached && n > 0) {
    // Out of reach: the plan is the best configuration with one layer quantized, said so.
    std::fill(state.begin(), state.end(), keep);
    size_t best = static_cast<size_t>(best_one - enable.begin());
    last = enable[best];
    if (int4) {  // the others at int8, not float: its own run
      state[best] = State::Scheme;
      last = runs.run(state);
    }
    state[best] = State::Scheme;
    plan.note = "The target is out of reach: with every layer " + std::string(int4 ? "at int8" : "in float") +
                " but the best one ('" + runs.fqn(best) + "', " + (shown(last) ? format_db(*last) + " dB" : "null") +
                "), the model output SQNR stays below " + format_db(target) + " dB";
  }
  if (n == 0)
    plan.note = "The scheme quantizes none of the model's Linear/Conv layers (sensitivity.not_quantized, and the "
                "warnings, say why): there is nothing to plan";
  else if (!plan.reached && !all)
    plan.note = "The model output SQNR is undefined (the float output is zero or not finite, or the quantized "
                "output is NaN): no configuration can be judged to reach the target";
  int64_t quantized = 0;
  for (size_t i = 0; i < n; ++i) {
    if (state[i] == State::Scheme) quantized += runs.weight_numel(i);
    else plan.keep_float.push_back(runs.fqn(i));
  }
  plan.achieved_output_sqnr_db = shown(last);
  plan.quantized_weight_fraction =
      runs.all_weight_numel() > 0 ? static_cast<double>(quantized) / static_cast<double>(runs.all_weight_numel()) : 0.0;
  if (plan.note.empty() && plan.reached)
    plan.note = kept == 0 ? "Every layer quantized already reaches the target"
                          : in.disable_one ? "Greedy by disable-one gain; each point of the curve is one simulated run"
                                           : "Greedy by enable-one figure, lowest first (--sensitivity-runs enable-one); "
                                             "each point of the curve is one simulated run";
  sens.forwards = runs.forwards();
}

}  // namespace qreport::pipeline
