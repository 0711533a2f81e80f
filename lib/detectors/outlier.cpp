// OutlierDetector (spec §4.4): per input channel of every leaf module, the average ratio of the max to
// the reference percentile; a ratio above the threshold flags outliers.
#include <cmath>
#include <limits>

#include "common/errors.h"
#include "common/text.h"
#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {
namespace {

class OutlierDetector : public Detector {
 public:
  explicit OutlierDetector(OutlierOptions o) : o_(o) {}
  std::string name() const override { return "outlier_detector"; }

  static bool targeted(const model::ModuleNode& node) { return !node.has_children() && !node.kind.is_observer; }

  std::vector<ObservationRequest> requests(const model::ModelView& model, const ChannelAxes& axes) const override {
    std::vector<ObservationRequest> out;
    for (const auto& node : model.tree().nodes()) {
      if (!targeted(node)) continue;
      const int axis = axes.of(node.fqn).input_axis;
      ObservationRequest q;
      q.fqn = node.fqn;
      q.side = Side::Input;
      q.minmax_axis = axis;
      q.percentile = std::make_pair(axis, static_cast<float>(o_.reference_percentile));
      // LLM.int8() statistics per input feature of every Linear, in the same kernel read (llm_int8_summary).
      if (node.kind.is_linear && axes.is_auto()) q.moments_axis = axis;
      out.push_back(q);
    }
    return out;
  }

  DetectorResult report(const model::ModelView& model, const StatsLookup& stats, const ChannelAxes& axes) const override {
    DetectorResult r;
    r.name = name();
    r.options = {{"ratio_threshold", Value::number(o_.ratio_threshold)},
                 {"reference_percentile", Value::number(o_.reference_percentile)},
                 {"fraction_batches_used_threshold", Value::number(o_.fraction_batches_used_threshold)},
                 {"ch_axis", axes.option_value()}};
    const float q = static_cast<float>(o_.reference_percentile);
    std::string lines;
    Value sparse = Value::object({});  // fqn -> its sparse channels (PyTorch flags them as outliers)
    for (const auto& node : model.tree().nodes()) {
      if (!targeted(node)) continue;
      const auto* point = stats.find(node.fqn, Side::Input);
      if (!point) continue;
      const int ch_axis = axes.of(node.fqn).input_axis;
      const auto* pct = point->percentile(ch_axis, q);
      const auto* mm = point->minmax(ch_axis);
      if (!pct || !mm) continue;
      std::string invalid = !pct->invalid.empty() ? pct->invalid : mm->invalid;
      if (!invalid.empty() || pct->batches == 0) {
        r.warnings.push_back(name() + ": '" + node.fqn + "' skipped: " + (invalid.empty() ? "no data" : invalid));
        continue;
      }
      const size_t channels = pct->avg_ratio.size();
      Value ratios;
      ratios.type = Value::Type::List;
      std::vector<bool> outliers(channels), sufficient(channels);
      Value sparse_here;
      sparse_here.type = Value::Type::List;
      for (size_t c = 0; c < channels; ++c) {
        if (pct->batches_used[c] == 0) {
          // Never usable: PyTorch turns the 0 into 1/0 = inf and flags it; there is no ratio to judge.
          ratios.list.push_back(Value::null());
          outliers[c] = false;
        } else {
          float p = pct->avg_ratio[c];
          if (p < 0) p = -p;
          if (p < 1) p = 1.0f / p;
          ratios.list.push_back(Value::number(p));
          outliers[c] = double(p) > o_.ratio_threshold;
          if (is_sparse_channel(p, pct->batches_used[c])) sparse_here.list.push_back(Value::integer(int64_t(c)));
        }
        sufficient[c] = double(pct->batches_used[c]) / double(pct->batches) >= o_.fraction_batches_used_threshold;
      }
      if (!sparse_here.list.empty()) sparse.members.emplace_back(node.fqn, std::move(sparse_here));
      r.modules.push_back({node.fqn,
                           fields({{"outlier_detection_channel_axis", Value::integer(pct->axis)},
                            {"outlier_detection_reference_percentile", Value::number(o_.reference_percentile)},
                            {"outlier_detection_ratio_threshold", Value::number(o_.ratio_threshold)},
                            {"outlier_detection_percentile_ratios", std::move(ratios)},
                            {"outlier_detection_batches_used", int_list(pct->batches_used)},
                            {"outliers_detected", bool_list(outliers)},
                            {"outlier_detection_is_sufficient_batches", bool_list(sufficient)},
                            {"constant_batch_counts", int_list(pct->constant_batches)},
                            {"input_activation_per_channel_max", float_list(mm->max)}})});
      bool header = false;
      auto add = [&](const std::string& line) {
        if (!header) lines += "For Module " + node.fqn + " looked at with axis " + std::to_string(pct->axis) + ": \n";
        header = true;
        lines += line;
      };
      for (size_t c = 0; c < channels; ++c) {
        if (outliers[c])
          add("\tFor channel " + std::to_string(c) +
              ", we found outliers in the preceding activation data with a max value across all batches of " +
              python_float_repr(mm->max[c]) + ".\n");
        if (pct->constant_batches[c] != 0)
          add("\tFor channel " + std::to_string(c) + ", we found " + std::to_string(pct->constant_batches[c]) +
              " constant value batches. We recommend taking a look at the dict and data to see how frequent this "
              "occurred and why.\n");
      }
    }
    r.summary = {{"sparse_channels", sparse}, {"llm_int8", llm_int8_summary(model, stats, axes)}};
    r.text = "Outlier detection report: \n" +
             (lines.empty() ? std::string("There were no outliers found in the activations.\n")
                            : lines + "Note: outlier detection is only reliable for stationary distributions. We "
                                      "recommend running the static vs. dynamic detector to ensure activation data "
                                      "before modules above is stationary to ensure the most accurate results.");
    return r;
  }

 private:
  OutlierOptions o_;
};

}  // namespace

std::unique_ptr<Detector> make_outlier(const OutlierOptions& options) {
  if (!(options.reference_percentile >= 0.0 && options.reference_percentile <= 1.0))
    throw UsageError("--outlier-reference-percentile must be in [0, 1]");
  if (!(options.fraction_batches_used_threshold >= 0.0 && options.fraction_batches_used_threshold <= 1.0))
    throw UsageError("--outlier-fraction-batches must be in [0, 1]");
  if (!(options.ratio_threshold >= 1.0) || std::isinf(options.ratio_threshold))
    throw UsageError("--outlier-ratio-threshold must be a finite number >= 1");
  return std::make_unique<OutlierDetector>(options);
}

}  // namespace qreport::detectors
