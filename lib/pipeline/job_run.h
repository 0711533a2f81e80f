// Internal to lib/pipeline: a run as a whole (outputs checked first, written last, all or nothing) and
// the parts of a distributed run around the calibration itself (lib/pipeline/analyze.cpp).
#pragma once
#include <string>

#include "distributed/distributed.h"
#include "model/model.h"
#include "pipeline/analyze.h"
#include "stats/stats.h"

namespace qreport::pipeline {

// One process's calibration and report (analyze.cpp). In a job, the report is rank 0's over every rank's
// statistics, and other ranks return one with emit = false. *stats_bytes: the statistics file to save
// (with --save-stats; in a job, the merged one on rank 0).
report::Report analyze_rank(const AnalyzeOptions& options, distributed::Job* job, std::string* stats_bytes);

// What identifies the batches a rank calibrates, compared between ranks before calibration: the --calib
// argument as given (for per-rank archives, the {rank} pattern), and for one shared archive its size and
// batch count, with --max-batches and --batch-size.
std::string calibration_fingerprint(const AnalyzeOptions& options, const std::string& archive_path, size_t batches,
                                    bool per_rank_files);

// The settings a calibration run's identifier covers (stats::run_identifier): the observation settings
// and the batch size that cut the archive into batches.
std::string run_settings(const AnalyzeOptions& options, const stats::Settings& settings);

// After calibration in a job: every rank's statistics to rank 0 and merged there, which reports from them
// (and puts the merged file in *stats_bytes for --save-stats). Other ranks return a report with emit =
// false.
report::Report reduce_and_report(const AnalyzeOptions& options, const AnalyzeOptions& as_given, distributed::Job& job,
                                 const stats::StatsFile& mine, const model::Model& model, const report::Report& rep,
                                 std::string* stats_bytes);

}  // namespace qreport::pipeline
