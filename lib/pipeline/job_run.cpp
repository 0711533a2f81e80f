// A run as a whole: the outputs checked before calibration and written only when everything else
// succeeded; in a distributed job, rank 0 writes them and then tells the other ranks, which wait for that
// word, so that a failure on rank 0 after the reduction ends every rank non-zero.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>

#include "common/errors.h"
#include "common/text.h"
#include "pipeline/job_run.h"
#include "pipeline/plan.h"

namespace qreport::pipeline {

std::string calibration_fingerprint(const AnalyzeOptions& o, const std::string& archive_path, size_t batches,
                                    bool per_rank_files) {
  std::string s = "--calib '" + o.calib_path + "'";
  if (per_rank_files) {
    s += " (one archive per rank)";
  } else {
    struct stat st {};
    const long long size = ::stat(archive_path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : -1;
    s += " (" + std::to_string(size) + " bytes, " + std::to_string(batches) + " batches)";
  }
  s += ", --max-batches " + (o.calibration.max_batches ? std::to_string(*o.calibration.max_batches) : "all");
  s += ", --batch-size " + (o.calibration.batch_size ? std::to_string(*o.calibration.batch_size) : "none");
  return s;
}

std::string run_settings(const AnalyzeOptions& o, const stats::Settings& settings) {
  return stats::describe(settings) + "; batch size " +
         (o.calibration.batch_size ? std::to_string(*o.calibration.batch_size) : "none");
}

report::Report reduce_and_report(const AnalyzeOptions& o, const AnalyzeOptions& as_given, distributed::Job& job,
                                 const stats::StatsFile& f, const model::Model& model, const report::Report& rep,
                                 std::string* stats_bytes) {
  // The reduction: every rank's statistics to rank 0 (a c10d gather), merged there in rank order by the
  // rules of qreport merge; rank 0 alone reports (and saves the merged statistics).
  std::vector<std::string> all = job.gather(stats::to_bytes(f));
  if (job.rank() != 0) {
    report::Report none;
    none.emit = false;
    return none;
  }
  std::vector<stats::StatsFile> files;
  std::vector<std::string> names;
  for (size_t r = 0; r < all.size(); ++r) {
    names.push_back("rank " + std::to_string(r));
    files.push_back(stats::from_bytes(all[r], names.back()));
  }
  stats::StatsFile merged = stats::merge(files, names);
  merged.device = as_given.device;
  if (!o.save_stats.empty()) *stats_bytes = stats::to_bytes(merged);
  report::Report out = report_from_statistics(o, model, rep.model_sha256, std::move(merged));
  out.calib_path = as_given.calib_path;
  out.device = as_given.device;
  out.batches = 0;
  for (const auto& fr : files) out.batches += static_cast<size_t>(fr.batches());
  std::vector<std::string> warnings = rep.warnings;  // rank 0's own (instrumentation, casts)
  for (const auto& w : out.warnings)
    if (std::find(warnings.begin(), warnings.end(), w) == warnings.end()) warnings.push_back(w);
  out.warnings = warnings;
  return out;
}

report::Report analyze(const AnalyzeOptions& o) {
  std::string stats;
  if (!o.job) {
    if (o.check_outputs) o.check_outputs();
    report::Report rep = analyze_rank(o, nullptr, &stats);
    if (o.write_outputs) o.write_outputs(rep, stats);
    return rep;
  }
  if (o.simulate) throw UsageError("--simulate runs in one process: drop it, or run without a launcher");
  const auto t0 = std::chrono::steady_clock::now();
  distributed::Job job(*o.job, std::chrono::milliseconds(static_cast<int64_t>(o.dist_timeout_s) * 1000));
  spdlog::debug("job of {} ranks ({}) formed in {:.3f} s", job.world(), o.job->launcher,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  try {
    // Rank 0 writes the outputs: it checks them once the job has formed, so that the other ranks hear of
    // a bad path at once instead of waiting out --dist-timeout for a rank 0 that never came.
    if (job.rank() == 0 && o.check_outputs) o.check_outputs();
    report::Report rep = analyze_rank(o, &job, &stats);
    if (job.rank() != 0) {
      job.wait_for_rank0();
      return rep;
    }
    if (o.write_outputs) o.write_outputs(rep, stats);
    job.finish();
    return rep;
  } catch (const JobError&) {
    throw;
  } catch (const Interrupted& e) {
    job.fail(first_line(e.what()), /*wait_for_others=*/false);  // Ctrl-C ends this rank at once
    throw;
  } catch (const std::exception& e) {
    job.fail(first_line(e.what()));  // the other ranks stop too, naming this one
    throw;
  }
}

}  // namespace qreport::pipeline
