// InputWeightEqualizationDetector (spec §4.3): compares each input channel's share of the input range
// with the matching weight channel's share of the weight range; s_c near 1 suggests equalization.
#include <algorithm>
#include <cmath>

#include "common/errors.h"
#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {
namespace {

// Each channel's range as a fraction of the global range, in float32; nullopt when the global range is 0.
std::optional<std::vector<float>> range_ratios(const std::vector<float>& mn, const std::vector<float>& mx, float* gmin,
                                               float* gmax) {
  *gmax = *std::max_element(mx.begin(), mx.end());
  *gmin = *std::min_element(mn.begin(), mn.end());
  float global = *gmax - *gmin;
  if (global == 0.0f) return std::nullopt;
  std::vector<float> out(mn.size());
  for (size_t c = 0; c < mn.size(); ++c) out[c] = (mx[c] - mn[c]) / global;
  return out;
}

class EqualizationDetector : public Detector {
 public:
  explicit EqualizationDetector(EqualizationOptions o) : o_(o) {}
  std::string name() const override { return "input_weight_equalization_detector"; }

  std::vector<ObservationRequest> requests(const model::ModelView& model, const ChannelAxes& axes) const override {
    std::vector<ObservationRequest> out;
    for (const auto& node : model.tree().nodes()) {
      if (!node.kind.exact_iwe) continue;
      ObservationRequest q;
      q.fqn = node.fqn;
      q.side = Side::Input;
      q.minmax_axis = axes.of(node.fqn).input_axis;
      out.push_back(q);
    }
    return out;
  }

  DetectorResult report(const model::ModelView& model, const StatsLookup& stats, const ChannelAxes& axes) const override {
    DetectorResult r;
    r.name = name();
    r.options = {{"ratio_threshold", Value::number(o_.ratio_threshold)}, {"ch_axis", axes.option_value()}};
    std::string lines;
    for (const auto& node : model.tree().nodes()) {
      if (node.kind.is_subclass)
        r.warnings.push_back(name() + ": '" + node.fqn + "' (" + node.type_name + ") skipped: PyTorch's equalization "
                             "detector takes only the exact types nn.Linear and nn.Conv1d/2d/3d, not subclasses");
      if (!node.kind.exact_iwe) continue;
      const AxisChoice axis = axes.of(node.fqn);
      const auto* point = stats.find(node.fqn, Side::Input);
      const observers::MinMaxSummary* in = point ? point->minmax(axis.input_axis) : nullptr;
      if (!in) continue;
      auto warn = [&](const std::string& what) { r.warnings.push_back(name() + ": '" + node.fqn + "' skipped: " + what); };
      if (!in->invalid.empty() || in->min.empty()) {
        warn("input statistics unavailable: " + (in->invalid.empty() ? std::string("no data") : in->invalid));
        continue;
      }
      auto w = observers::channel_min_max(model.weight(node.fqn), axis.weight_axis);
      if (!w || w->first.empty()) {
        warn("no weight with channel axis " + std::to_string(axis.weight_axis));
        continue;
      }
      float w_gmin, w_gmax, i_gmin, i_gmax;
      auto w_ratio = range_ratios(w->first, w->second, &w_gmin, &w_gmax);
      auto i_ratio = range_ratios(in->min, in->max, &i_gmin, &i_gmax);
      Value metrics = Value::null();
      std::vector<bool> rec;
      const bool input_non_finite = point->non_finite().any();
      if (input_non_finite) {
        // NaN/inf made inside the model: the ranges are not numbers, and not 0.
        r.warnings.push_back(name() + ": comparison metrics of '" + node.fqn + "' are null: its input contains " +
                             point->non_finite().describe() + ", made inside the model");
      } else if (!w_ratio || !i_ratio) {
        r.warnings.push_back(name() + ": comparison metrics of '" + node.fqn + "' are null: the range of the " +
                             (!w_ratio ? "weight" : "input") + " data is 0 (a constant value channel)");
      } else if (i_ratio->size() % w_ratio->size() != 0) {
        warn("input channels (" + std::to_string(i_ratio->size()) + ") are not a multiple of weight channels (" +
             std::to_string(w_ratio->size()) + ")");
        continue;
      } else {
        // Grouped convolutions: tile the weight ratios over the input channels, as PyTorch does.
        std::vector<float> s(i_ratio->size());
        for (size_t c = 0; c < s.size(); ++c)
          s[c] = std::sqrt((*w_ratio)[c % w_ratio->size()]) / std::sqrt((*i_ratio)[c]);
        for (float v : s) rec.push_back(double(v) >= o_.ratio_threshold && double(v) <= 1.0 / o_.ratio_threshold);
        metrics = float_list(s);
        const auto constant = std::count_if(s.begin(), s.end(), [](float v) { return !std::isfinite(v); });
        if (constant > 0)
          r.warnings.push_back(name() + ": " + std::to_string(constant) + " comparison metric(s) of '" + node.fqn +
                               "' are null: those input channels have a range of 0 (constant), so s_c is infinite");
      }
      r.modules.push_back({node.fqn,
                           fields({{"input_weight_equalization_recommended", bool_list(rec)},
                                   {"input_weight_channel_comparison_metrics", std::move(metrics)},
                            {"input_weight_threshold", Value::number(o_.ratio_threshold)},
                            {"input_weight_channel_axis", Value::integer(in->axis)},
                            {"input_activation_per_channel_max", float_list(in->max)},
                            {"input_activation_per_channel_min", float_list(in->min)},
                            {"input_activation_global_max", Value::number(i_gmax)},
                            {"input_activation_global_min", Value::number(i_gmin)},
                            {"weight_per_channel_max", float_list(w->second)},
                            {"weight_per_channel_min", float_list(w->first)},
                            {"weight_global_max", Value::number(w_gmax)},
                            {"weight_global_min", Value::number(w_gmin)}})});
      size_t k = std::count(rec.begin(), rec.end(), true);
      const bool module_recommended = !rec.empty() && double(k) / double(rec.size()) >= kEqualizationChannelShare;
      r.qconfig_info.push_back({node.fqn, false, false, module_recommended});
      lines += "For Module " + node.fqn + " looked at with axis " + std::to_string(in->axis) + ": \n";
      if (rec.empty()) {
        lines += "\tInput-weight equalization cannot be evaluated because a range is 0 (see warnings).\n";
      } else if (module_recommended) {
        lines += "\tWe suggest to use input weight equalization because " + std::to_string(k) + "/" +
                 std::to_string(rec.size()) +
                 " channels would benefit and we expect significant reduction in quantization error.\n";
      } else {
        lines += "\tWe suggest to not use input weight equalization because we don't expect much improvement from "
                 "input-weight equalization based on " +
                 std::to_string(k) + "/" + std::to_string(rec.size()) +
                 " channels benefitting from input-weight equalization being applied.\n";
      }
    }
    r.text = "Input-Weight Equalization suggestions: \n" +
             (r.modules.empty() ? std::string("No applicable layers for suggestions. Only linear and conv valid.\n") : lines);
    return r;
  }

 private:
  EqualizationOptions o_;
};

}  // namespace

std::unique_ptr<Detector> make_equalization(const EqualizationOptions& options) {
  if (!(options.ratio_threshold > 0.0 && options.ratio_threshold < 1.0))
    throw UsageError("--equalization-threshold must be > 0 and < 1");
  return std::make_unique<EqualizationDetector>(options);
}

}  // namespace qreport::detectors
