#include "pipeline/stats_check.h"

#include "common/errors.h"
#include "model/model.h"

namespace qreport::pipeline {
namespace {

// Whether `channels` on `axis` of the input of the module `node` fits its weight; true where the model
// does not say (no weight, or an axis that is not the one its weight consumes).
bool fits(const model::ModuleNode& node, const at::Tensor& w, int axis, size_t channels, std::string* expected) {
  if (!w.defined() || w.dim() < 2) return true;
  const int64_t c = static_cast<int64_t>(channels), in = w.size(1), out = w.size(0);
  if (node.kind.is_linear && axis == -1) {
    *expected = std::to_string(in) + " (its weight's in_features)";
    return c == in;
  }
  if (node.kind.conv_dims > 0 && axis == 1) {
    *expected = "a multiple g of " + std::to_string(in) + " (its weight's input channels per group) with g dividing " +
                std::to_string(out) + " (its output channels)";
    return in > 0 && c % in == 0 && c / in > 0 && out % (c / in) == 0;
  }
  return true;
}

}  // namespace

void check_channels_against_model(const model::ModelView& model, const std::vector<detectors::ObservationRequest>& requests,
                                  const Plan& plan, const std::string& source) {
  for (const auto& r : requests) {
    if (r.side != Side::Input || (!r.minmax_axis && !r.percentile)) continue;
    const model::ModuleNode* node = model.tree().find(r.fqn);
    const observers::ObservationPoint* point = plan.find(r.fqn, r.side);
    if (!node || !node->kind.is_linear_or_conv() || !point) continue;
    const at::Tensor w = model.weight(r.fqn);
    auto check = [&](int axis, size_t channels, const char* what) {
      std::string expected;
      if (channels == 0 || fits(*node, w, axis, channels, &expected)) return;
      throw InputError("statistics " + source + " do not fit the model: the " + what + " of the input of '" + r.fqn +
                       "' have " + std::to_string(channels) + " channels on axis " + std::to_string(axis) +
                       ", where the model's " + node->kind.base + " takes " + expected);
    };
    if (r.minmax_axis)
      if (const auto* m = point->minmax(*r.minmax_axis)) check(*r.minmax_axis, m->min.size(), "minima and maxima");
    if (r.percentile)
      if (const auto* p = point->percentile(r.percentile->first, r.percentile->second))
        check(r.percentile->first, p->avg_ratio.size(), "percentile statistics");
  }
}

}  // namespace qreport::pipeline
