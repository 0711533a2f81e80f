#include "pipeline/plan.h"

namespace qreport::pipeline {

std::vector<detectors::ObservationRequest> plan_requests(
    const std::vector<std::unique_ptr<detectors::Detector>>& dets, const Front& front,
    const detectors::ChannelAxes& axes, Plan& plan,
    std::vector<std::string>& warnings) {
  std::vector<detectors::ObservationRequest> routed;
  std::set<std::string> reported_missing;
  for (const auto& det : dets) {
    for (const auto& req : det->requests(front.model(), axes)) {
      auto site = front.resolve(req.fqn);
      if (!site) {
        if (reported_missing.insert(req.fqn).second)
          warnings.push_back("module '" + req.fqn + "' is never called from forward; it is not observed");
        continue;
      }
      int id = plan.point_for(*site, req.side);
      auto& point = plan.points()[id];
      if (req.range) point.want_range();
      if (req.minmax_axis) point.want_minmax(*req.minmax_axis);
      if (req.percentile) point.want_percentile(req.percentile->first, req.percentile->second);
      if (req.histogram) point.want_histogram();
      if (req.moments_axis) point.want_moments(*req.moments_axis);
      plan.route(req.fqn, req.side, id);
      routed.push_back(req);
    }
  }
  return routed;
}

void run_detectors(const std::vector<std::unique_ptr<detectors::Detector>>& dets, const model::ModelView& model,
                   const Plan& plan, const detectors::ChannelAxes& axes, report::Report& rep) {
  for (const auto& det : dets) {
    auto result = det->report(model, plan, axes);
    for (const auto& w : result.warnings) rep.warnings.push_back(w);
    rep.results.push_back(std::move(result));
  }
  rep.qconfig = detectors::merge_qconfig_info(model, rep.results);
}

}  // namespace qreport::pipeline
