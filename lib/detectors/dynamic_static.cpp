// DynamicStaticDetector (spec §4.2): S = average batch range / epoch range before and after each
// Linear/Conv; a non-stationary output (S <= tolerance) recommends dynamic quantization.
#include "common/errors.h"
#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {
namespace {

class DynamicStaticDetector : public Detector {
 public:
  explicit DynamicStaticDetector(DynamicStaticOptions o) : o_(o) {}
  std::string name() const override { return "dynamic_vs_static_detector"; }

  std::vector<ObservationRequest> requests(const model::ModelView& model, const ChannelAxes&) const override {
    std::vector<ObservationRequest> out;
    for (const auto& node : model.tree().nodes()) {
      if (!node.kind.is_linear_or_conv()) continue;
      for (Side side : {Side::Input, Side::Output}) {
        ObservationRequest q;
        q.fqn = node.fqn;
        q.side = side;
        q.range = true;
        out.push_back(q);
      }
    }
    return out;
  }

  DetectorResult report(const model::ModelView& model, const StatsLookup& stats, const ChannelAxes&) const override {
    DetectorResult r;
    r.name = name();
    r.options = {{"tolerance", Value::number(o_.tolerance)}};
    // PyTorch compares a float32 0-d tensor with the Python float, so the tolerance is rounded to float32.
    const float tol = static_cast<float>(o_.tolerance);
    std::string lines;
    for (const auto& node : model.tree().nodes()) {
      if (!node.kind.is_linear_or_conv()) continue;
      const auto* pre = stats.find(node.fqn, Side::Input);
      const auto* post = stats.find(node.fqn, Side::Output);
      if (!pre || !post || !pre->range() || !post->range()) continue;
      std::string why_pre, why_post;
      auto s_pre = observers::batch_to_epoch_ratio(*pre->range(), &why_pre);
      auto s_post = observers::batch_to_epoch_ratio(*post->range(), &why_post);
      if (!s_pre) r.warnings.push_back(name() + ": S of the input of '" + node.fqn + "' is null: " + why_pre);
      if (!s_post) r.warnings.push_back(name() + ": S of the output of '" + node.fqn + "' is null: " + why_post);
      auto classify = [&](std::optional<float> s) {
        if (!s) return Value::null();
        return Value::string(*s > tol ? "stationary" : "non-stationary");
      };
      std::optional<bool> dynamic;
      if (s_post) dynamic = *s_post <= tol;
      bool supported = node.kind.is_linear;
      r.modules.push_back({node.fqn,
                           {{"dynamic_static_tolerance", Value::number(o_.tolerance)},
                            {"dynamic_recommended", dynamic ? Value::boolean(*dynamic) : Value::null()},
                            {"input_activation_dynamic_static_comp_stat", float_or_null(s_pre)},
                            {"input_activation_dynamic_static_data_classification", classify(s_pre)},
                            {"output_activation_dynamic_static_comp_stat", float_or_null(s_post)},
                            {"output_activation_dynamic_static_data_classification", classify(s_post)},
                            {"is_dynamic_supported", Value::boolean(supported)}}});
      r.qconfig_info.push_back({node.fqn, dynamic.value_or(false), false, false});
      if (!s_pre || !s_post) continue;
      std::string pre_cls = *s_pre > tol ? "stationary" : "non-stationary";
      std::string post_cls = *s_post > tol ? "stationary" : "non-stationary";
      std::string qt, benefit;
      if (*dynamic) {
        qt = "dynamic";
        benefit = " You will get more accurate results if you use dynamic quantization";
        if (!supported) benefit += ". This layer is not yet supported for dynamic quantization";
      } else {
        qt = "static";
        benefit = " You can increase model efficiency if you use static quantization";
      }
      std::string reason = "the distribution of data before " + node.fqn + " is " + pre_cls +
                           " and the distribution after is " + post_cls + "." + benefit;
      if (pre_cls == "non-stationary" && post_cls == "stationary")
        reason += ". We recommend to add a dynamic quantize per tensor layer before this module if it is static."
                  " This is because the input to this module has a non-stationary distribution";
      lines += "For module " + node.fqn + " it is suggested to use " + qt + " quantization because " + reason + ".\n";
    }
    r.text = "Dynamic vs. Static Quantization suggestions: \n" +
             (r.modules.empty() ? std::string("No applicable layers for suggestions. Only linear and conv are valid.\n")
                                : lines);
    return r;
  }

 private:
  DynamicStaticOptions o_;
};

}  // namespace

std::unique_ptr<Detector> make_dynamic_static(const DynamicStaticOptions& options) {
  if (!(options.tolerance >= 0.0 && options.tolerance <= 1.0))
    throw UsageError("--dynamic-static-tolerance must be in [0, 1]");
  return std::make_unique<DynamicStaticDetector>(options);
}

}  // namespace qreport::detectors
