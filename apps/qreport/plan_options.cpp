#include "plan_options.h"

#include <cmath>

#include "common/errors.h"
#include "schemes/schemes.h"

namespace qreport::cli {

void add_plan_options(CLI::App* analyze, PlanArgs& a) {
  analyze->add_flag("--sensitivity", a.sensitivity,
                    "Also measure each Linear/Conv layer's effect on the model output under --scheme: the model output "
                    "SQNR with only this layer quantized (enable-one) and with every layer but this one (disable-one), "
                    "one run of the --sensitivity-batches batches each, reusing the outputs before the changed layer (about "
                    "layers + 2 forwards of them)");
  a.scheme_opt = analyze->add_option("--scheme", a.scheme,
                                     "The scheme of --sensitivity and --target-sqnr: int8-static (PyTorch's flow with the "
                                     "recommended mapping), int8-weight-only, int8-dynamic, int4-weight-only-gG, "
                                     "fp8-dynamic or fp8-dynamic-per-row")
                     ->capture_default_str();
  a.batches_opt = analyze->add_option("--sensitivity-batches", a.batches,
                                      "How many calibration batches (the first ones) the sensitivity runs use")
                      ->capture_default_str();
  a.runs_opt = analyze->add_option("--sensitivity-runs", a.runs,
                                   "both: enable-one and disable-one runs (about layers + 2 forwards of the batches); "
                                   "enable-one: the enable-one runs only, about half the cost, and the plan orders "
                                   "layers by their enable-one figure")
                   ->check(CLI::IsMember({"both", "enable-one"}))
                   ->capture_default_str();
  a.target_opt = analyze->add_option(
      "--target-sqnr", a.target,
      "Plan which layers to keep in float (at int8 under an int4 scheme) so that the model output SQNR under --scheme "
      "reaches this many dB: greedy from the sensitivities (implies --sensitivity), each step one simulated run; "
      "the report's plan says whether it was reached (--fail-on plan: exit 1 if not)");
}

std::string without_plan_gate(const std::string& list, bool* plan_gate) {
  *plan_gate = false;
  std::string rest;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(start, end - start);
    if (item == "plan") *plan_gate = true;
    else rest += (rest.empty() ? "" : ",") + item;
    start = end + 1;
  }
  return *plan_gate && rest.empty() ? "none" : *plan_gate ? rest : list;
}

void apply_plan_options(const PlanArgs& a, bool plan_gate, bool from_stats, bool in_job, pipeline::AnalyzeOptions& o) {
  const bool target = a.target_opt->count() > 0;
  if (plan_gate && !target)
    throw UsageError("--fail-on plan needs --target-sqnr DB (the model output SQNR the plan must reach)");
  if (!a.sensitivity && !target && (a.scheme_opt->count() || a.batches_opt->count() || a.runs_opt->count()))
    throw UsageError("--scheme, --sensitivity-batches and --sensitivity-runs set the sensitivity pass: add --sensitivity "
                     "or --target-sqnr DB");
  if (!a.sensitivity && !target) return;
  if (from_stats)
    throw UsageError("--sensitivity and --target-sqnr run the model on the calibration data: use qreport analyze --calib");
  if (in_job)
    throw UsageError("--sensitivity and --target-sqnr run in one process, not in a distributed job");
  if (a.batches < 1) throw UsageError("--sensitivity-batches must be at least 1");
  if (target && !std::isfinite(a.target)) throw UsageError("--target-sqnr must be a finite number of dB");
  const auto parsed = schemes::parse(a.scheme, "--scheme");
  if (parsed.size() != 1)
    throw UsageError("--scheme takes one scheme name (got '" + a.scheme + "'); --schemes takes a list");
  if (parsed[0].kind == schemes::Kind::SmoothQuant)
    throw UsageError("--scheme smoothquant is not available for sensitivity and plans yet (its alpha is chosen per "
                     "layer in the error pass): use int8-dynamic, or --schemes smoothquant for its per-layer figures");
  o.sensitivity = true;
  o.sensitivity_scheme = parsed[0];
  o.sensitivity_batches = a.batches;
  o.sensitivity_disable_one = a.runs == "both";
  if (target) o.target_sqnr_db = a.target;
}

}  // namespace qreport::cli
