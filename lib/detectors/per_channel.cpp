// PerChannelDetector (spec §4.1): which Linear/Conv modules could use per-channel weight quantization.
#include "common/errors.h"
#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {
namespace {

class PerChannelDetector : public Detector {
 public:
  explicit PerChannelDetector(PerChannelOptions o) : o_(std::move(o)) {}
  std::string name() const override { return "per_channel_detector"; }
  std::vector<ObservationRequest> requests(const model::ModelView&, const ChannelAxes&) const override { return {}; }
  std::vector<std::string> weight_only_modules(const model::ModelView& model) const override {
    std::vector<std::string> out;
    for (const auto& node : model.tree().nodes())
      if (node.kind.is_linear_or_conv()) out.push_back(node.fqn);
    return out;
  }

  DetectorResult report(const model::ModelView& model, const StatsLookup&, const ChannelAxes&) const override {
    DetectorResult r;
    r.name = name();
    r.options = {{"backend", Value::string(o_.backend)},
                 {"weight_qscheme", Value::string(o_.weight_per_channel ? "per-channel" : "per-tensor")}};
    std::string lines;
    for (const auto& fqn : weight_only_modules(model)) {
      // A QAT module carries its own weight fake-quantizer; float modules get the assumed qconfig.
      bool used = model.qat_weight_per_channel(fqn).value_or(o_.weight_per_channel);
      r.modules.push_back({fqn,
                           {{"per_channel_quantization_supported", Value::boolean(true)},
                            {"per_channel_quantization_used", Value::boolean(used)},
                            {"backend", Value::string(o_.backend)}}});
      r.qconfig_info.push_back({fqn, false, true, false});
      if (!used) lines += "Module " + fqn + " can be configured to use per_channel quantization.\n";
    }
    r.text = "Further Optimizations for backend " + o_.backend + ": \n" + lines +
             (lines.empty() ? "No further per_channel optimizations possible."
                            : "To use per_channel quantization, make sure the qconfig has a per_channel weight observer.");
    return r;
  }

 private:
  PerChannelOptions o_;
};

}  // namespace

std::unique_ptr<Detector> make_per_channel(const PerChannelOptions& options) {
  for (const char* b : {"fbgemm", "qnnpack", "onednn", "x86"})
    if (options.backend == b) return std::make_unique<PerChannelDetector>(options);
  throw UsageError("--backend must be one of fbgemm, qnnpack, onednn, x86 (got '" + options.backend + "')");
}

}  // namespace qreport::detectors
