// Internal to lib/pipeline: the observation plan shared by analyze (which observes) and report (which
// restores saved statistics): observation points keyed by (call site, side), and each detector request
// routed to the point that observes it.
#pragma once
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "detectors/detectors.h"
#include "instrumentation/instrumentation.h"
#include "observers/observers.h"
#include "pipeline/analyze.h"
#include "pipeline/front.h"
#include "stats/stats.h"

namespace qreport::pipeline {

using detectors::Side;

// Observation points keyed by the observed value: (call-site fqn, side). Requests of several detectors
// for the same value share one point; each statistic inside it keeps the settings it was asked with.
class Plan : public detectors::StatsLookup {
 public:
  int point_for(const std::string& site, Side side) {
    auto key = std::make_pair(site, side);
    auto it = index_.find(key);
    if (it != index_.end()) return it->second;
    int id = static_cast<int>(points_.size());
    points_.emplace_back();
    keys_.push_back(key);
    index_[key] = id;
    return id;
  }
  void route(const std::string& fqn, Side side, int id) { routes_[{fqn, side}] = id; }
  const observers::ObservationPoint* find(const std::string& fqn, Side side) const override {
    auto it = routes_.find({fqn, side});
    return it == routes_.end() ? nullptr : &points_[it->second];
  }
  std::vector<observers::ObservationPoint>& points() { return points_; }
  const std::vector<std::pair<std::string, Side>>& keys() const { return keys_; }

 private:
  std::vector<observers::ObservationPoint> points_;
  std::vector<std::pair<std::string, Side>> keys_;
  std::map<std::pair<std::string, Side>, int> index_;
  std::map<std::pair<std::string, Side>, int> routes_;
};

// Routes every request of `dets` to its point (creating points as needed, with the statistics asked
// for); a module never called gets one warning. Returns the requests, for checks against saved points.
std::vector<detectors::ObservationRequest> plan_requests(
    const std::vector<std::unique_ptr<detectors::Detector>>& dets, const Front& front,
    const detectors::ChannelAxes& axes, Plan& plan,
    std::vector<std::string>& warnings);

// Every detector's result from the plan's finished statistics into `rep`, with its warnings, and the
// merged qconfig and equalization mappings.
void run_detectors(const std::vector<std::unique_ptr<detectors::Detector>>& dets, const model::ModelView& model,
                   const Plan& plan, const detectors::ChannelAxes& axes, report::Report& rep);

// The detectors of `o` on statistics `f` of `model` (whose sha256 the caller checked): qreport report,
// and rank 0 of a distributed analyze after the reduction. `source` names the statistics in messages.
report::Report report_from_statistics(const AnalyzeOptions& o, const model::Model& model, const std::string& sha,
                                      stats::StatsFile f, const std::string& source = "of the job's ranks");

// The same on any front end (a torch.export program's: qreport report on a .pt2).
report::Report report_from_statistics(const AnalyzeOptions& o, const Front& front,
                                      const std::vector<std::string>& call_order, const std::string& sha,
                                      stats::StatsFile f, const std::string& source);

// What a run with these options observes with (saved in statistics files, checked by report).
stats::Settings stats_settings(const AnalyzeOptions& o, const std::vector<std::unique_ptr<detectors::Detector>>& dets);

}  // namespace qreport::pipeline
