// analyze's --sensitivity, --scheme, --sensitivity-batches, --target-sqnr and the --fail-on plan gate
// (kept out of main.cpp, which is argument parsing for every subcommand).
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "pipeline/analyze.h"

namespace qreport::cli {

struct PlanArgs {
  bool sensitivity = false;
  std::string scheme = "int8-static";
  int64_t batches = 4;
  double target = 0.0;
  std::string runs = "both";
  CLI::Option *scheme_opt = nullptr, *batches_opt = nullptr, *target_opt = nullptr, *runs_opt = nullptr;
};

void add_plan_options(CLI::App* analyze, PlanArgs& args);
// --fail-on's list without "plan" (which is no detector's finding kind), and whether it named plan.
std::string without_plan_gate(const std::string& fail_on_arg, bool* plan_gate);
// Checks the options together (UsageError, before any data is read) and sets them in `o`.
void apply_plan_options(const PlanArgs& args, bool plan_gate, bool from_stats, bool in_job, pipeline::AnalyzeOptions& o);

}  // namespace qreport::cli
