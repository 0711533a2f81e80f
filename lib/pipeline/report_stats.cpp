// qreport report: detectors on saved statistics. The points are restored from the file(s), the
// detectors' requests are routed to them exactly as analyze routes them, and every request must find
// the statistic it needs with the settings it asks for.
#include <ATen/Parallel.h>

#include "common/errors.h"
#include "common/text.h"
#include "instrumentation/instrumentation.h"
#include "model/model.h"
#include "pipeline/analyze.h"
#include "pipeline/exported_front.h"
#include "pipeline/layer_error.h"
#include "pipeline/front.h"
#include "pipeline/plan.h"
#include "pipeline/stats_check.h"
#include "stats/stats.h"

namespace qreport::pipeline {
namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "none" : s;
}

// The statistic a request needs, if the restored point lacks it; "" when it is there.
std::string missing(const detectors::ObservationRequest& r, const observers::ObservationPoint& p) {
  if (r.range && !p.range()) return "the range";
  if (r.minmax_axis && !p.minmax(*r.minmax_axis)) return "the per-channel min/max on axis " + std::to_string(*r.minmax_axis);
  if (r.percentile && !p.percentile(r.percentile->first, r.percentile->second))
    return "the percentile " + std::to_string(r.percentile->second) + " on axis " + std::to_string(r.percentile->first);
  if (r.histogram && !p.histogram()) return "the histogram";
  return "";
}

}  // namespace

report::Report report_from_stats(const AnalyzeOptions& o, const std::vector<std::string>& paths) {
  if (o.simulate) throw UsageError("--simulate needs the calibration data: use qreport analyze");
  if (o.check_outputs) o.check_outputs();
  std::vector<stats::StatsFile> files;
  for (const auto& p : paths) files.push_back(stats::load(p));
  stats::StatsFile f = stats::merge(files, paths);
  const std::string sha = sha256_file(o.model_path);
  auto same_model = [&] {
    if (sha != f.model_sha256)
      throw InputError("statistics file '" + paths[0] + "' was made from another model ('" + f.model_path +
                       "', sha256 " + f.model_sha256.substr(0, 12) + "...; '" + o.model_path + "' has " +
                       sha.substr(0, 12) + "...)");
  };
  std::string source;
  for (const auto& p : paths) source += (source.empty() ? "'" : ", '") + p + "'";
  const char* why = "qreport report has only the saved statistics, and measuring it needs the calibration data "
                    "(qreport analyze measures it)";
  report::Report rep;
  if (exported::is_pt2_archive(o.model_path)) {  // the same plan on the exported program's calls
    exported::Program program = exported::Program::load(o.model_path);
    same_model();
    const exported::ExportedModel view(program);
    const ExportedFront front(program, view);
    rep = report_from_statistics(o, front, front.call_sites(), sha, std::move(f), source);
    finish_without_layer_error(view, why, rep);
  } else {
    model::Model model = model::Model::load(o.model_path);
    same_model();
    rep = report_from_statistics(o, model, sha, std::move(f), source);
    finish_without_layer_error(model, why, rep);
  }
  if (o.write_outputs) o.write_outputs(rep, "");
  return rep;
}

report::Report report_from_statistics(const AnalyzeOptions& o, const model::Model& model, const std::string& sha,
                                      stats::StatsFile f, const std::string& source) {
  instrumentation::Instrumenter instr(model);
  return report_from_statistics(o, ScriptFront(model, instr), instr.call_sites(), sha, std::move(f), source);
}

report::Report report_from_statistics(const AnalyzeOptions& o, const Front& front,
                                      const std::vector<std::string>& call_order, const std::string& sha,
                                      stats::StatsFile f, const std::string& source) {
  const model::ModelView& model = front.model();
  auto dets = make_detectors(o);
  report::Report rep;
  rep.model_path = o.model_path;
  rep.model_sha256 = sha;
  rep.model_modules = model.tree().size();
  std::vector<std::string> sources;
  for (const auto& s : f.calibration) sources.push_back(s.path);
  rep.calib_path = joined(sources);
  rep.batches = static_cast<size_t>(f.batches());
  rep.device = f.device;

  const stats::Settings want = stats_settings(o, dets);
  if (want.ch_axis != f.settings.ch_axis)
    throw UsageError("--ch-axis " + want.ch_axis + " needs other observations than the statistics hold (observed with "
                     "--ch-axis " + f.settings.ch_axis + "): run qreport analyze again");
  for (const auto& d : want.detectors)
    if (std::find(f.settings.detectors.begin(), f.settings.detectors.end(), d) == f.settings.detectors.end())
      throw UsageError("the statistics hold no observations for " + d + " (observed for: " +
                       joined(f.settings.detectors) + "): run qreport analyze with it");
  const bool outliers = std::find(want.detectors.begin(), want.detectors.end(), "outlier_detector") != want.detectors.end();
  if (outliers && want.outlier_reference_percentile != f.settings.outlier_reference_percentile)
    throw UsageError("--outlier-reference-percentile " + std::to_string(want.outlier_reference_percentile) +
                     " needs other observations than the statistics hold (observed at " +
                     std::to_string(f.settings.outlier_reference_percentile) + "): run qreport analyze again");

  const detectors::ChannelAxes axes = channel_axes(o, front);
  Plan plan;
  for (auto& p : f.points) {
    const Side side = p.side == "input" ? Side::Input : Side::Output;
    plan.points()[plan.point_for(p.site, side)].restore(std::move(p.stats));
  }
  const auto requests = plan_requests(dets, front, axes, plan, rep.warnings);
  for (const auto& r : requests) {
    const auto* point = plan.find(r.fqn, r.side);
    const std::string lack = point ? missing(r, *point) : "everything";
    if (!lack.empty())
      throw UsageError("the statistics lack " + lack + " of the " + instrumentation::side_name(r.side) + " of '" +
                       r.fqn + "', which these options need: run qreport analyze again");
  }
  check_channels_against_model(model, requests, plan, source);
  rep.call_order = call_order;
  run_detectors(dets, model, plan, axes, rep);
  return rep;
}

}  // namespace qreport::pipeline
