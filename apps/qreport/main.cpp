// qreport: tells a PyTorch user, before they quantize, which parts of their model will quantize badly.
// This file only parses arguments, writes output and maps errors to exit codes; the work is in lib/.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "plan_options.h"
#include "common/errors.h"
#include "common/heap.h"
#include "common/process_exit.h"
#include "common/libtorch_warnings.h"
#include "common/output_file.h"
#include "common/version.h"
#include "detectors/detectors.h"
#include "pipeline/analyze.h"
#include "report/report.h"
#include "distributed/distributed.h"
#include "stats/stats.h"

namespace {

using namespace qreport;

constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0   success\n"
    "  1   findings of a kind named by --fail-on (the report is written first)\n"
    "  2   bad usage or bad input (unreadable or invalid model or archive, data that does not fit forward,\n"
    "      invalid option, unwritable output), or a --fail-on gate that cannot be evaluated (its detector not\n"
    "      selected, sqnr without --min-sqnr, or its detector judged no module: the report is written first)\n"
    "  3   the model's forward failed during calibration, or memory ran out\n"
    "  4   distributed analyze: another rank failed, vanished or differs, or the ranks could not meet\n"
    "  70  internal error (a bug in qreport: please report it)\n"
    "  130 interrupted (Ctrl-C); no report is written\n";

// inspect and table run no calibration and gate nothing.
constexpr const char* kExitCodesNoCalibration =
    "Exit codes:\n"
    "  0   success\n"
    "  2   bad usage or bad input (unreadable or invalid model or report, invalid option, unwritable output)\n"
    "  70  internal error (a bug in qreport: please report it)\n";

// diff gates like analyze, and runs no model.
constexpr const char* kExitCodesDiff =
    "Exit codes:\n"
    "  0   success\n"
    "  1   a gate failed: --fail-on new-findings, or --max-sqnr-drop (the diff is written first)\n"
    "  2   bad usage or bad input (a file that is not a qreport JSON report of schema 1, invalid option,\n"
    "      unwritable output), or --max-sqnr-drop on a report without SQNR figures\n"
    "  70  internal error (a bug in qreport: please report it)\n";

constexpr int kMaxThreads = 1024;  // --threads' upper bound
constexpr int64_t kMaxErrorMemoryMib = int64_t{1} << 30;  // --error-memory's: 1 EiB, so that bytes fit in 63 bits

bool progress_line_open = false;  // a "\rcalibrating..." line without its newline yet
std::string rank_prefix;          // "rank 2: " in a distributed job, so that each error line names its rank

int fail(int code, const std::string& message) {
  if (progress_line_open) std::fputc('\n', stderr);
  std::fprintf(stderr, "qreport: error: %s%s\n", rank_prefix.c_str(), first_line(message).c_str());
  return code;
}

// "a,b,c" -> {"a", "b", "c"}; an empty item stays (and is then rejected as unknown).
std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    out.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> parse_detectors(const std::string& list) {
  std::vector<std::string> out;
  if (list == "all") return out;
  for (const auto& item : split_list(list)) {
    auto name = detectors::canonical_detector_name(item);
    if (!name)
      throw UsageError("unknown detector '" + item +
                       "' (use all, or a comma list of per_channel, dynamic_static, equalization, outlier, error)");
    out.push_back(*name);
  }
  return out;
}

// --fail-on: a comma list of finding kinds, "all" or "none".
std::vector<std::string> parse_fail_on(const std::string& list) {
  if (list.empty())  // --fail-on '' from an unset variable in a CI script: not a silent "none"
    throw UsageError("--fail-on needs a value: none, all, or a comma list of per_channel, dynamic, equalization, "
                     "outliers, sqnr, plan");
  if (list == "none") return {};
  if (list == "all") return report::finding_kinds();
  const auto& kinds = report::finding_kinds();
  std::vector<std::string> out = split_list(list);
  for (const auto& item : out)
    if (std::find(kinds.begin(), kinds.end(), item) == kinds.end())
      throw UsageError("unknown --fail-on kind '" + item + "' (use none, all, or a comma list of per_channel, dynamic, "
                       "equalization, outliers, sqnr, plan)");
  return out;
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError("cannot read '" + path + "': it is a directory");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError("cannot read '" + path + "'");
  // One read of the whole file, not a character at a time: reports can be a hundred MB.
  const std::streamoff size = in.tellg();
  std::string text;
  if (size > 0) {
    text.resize(static_cast<size_t>(size));
    in.seekg(0);
    in.read(&text[0], size);
    text.resize(static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw InputError("cannot read '" + path + "'");
  return text;
}

void emit(const std::string& output, const std::string& text) { write_output(output, text); }

}  // namespace

// CLI11 reads an empty value as 0 and a hexadecimal one as a number ("0x1e" is 30): a CI job that passes
// --target-sqnr "$UNSET" would gate on 0 dB and pass. Every numeric option, of every subcommand, takes
// only a written-out decimal number (nan and inf still reach the options' own range checks).
static void require_plain_numbers(CLI::App& app) {
  static const CLI::Validator plain(
      [](std::string& value) -> std::string {
        if (value.empty()) return "a number is expected, not an empty value";
        if (value.find_first_of("xX") != std::string::npos) return "a decimal number is expected, not '" + value + "'";
        return "";
      },
      "", "decimal number");
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();
    if (type == "FLOAT" || type == "INT" || type == "UINT" || type == "NUMBER") opt->check(plain);
  }
  for (CLI::App* sub : app.get_subcommands({})) require_plain_numbers(*sub);
}

static int run_command(int argc, char** argv) {
  CLI::App app{"qreport: find the parts of a TorchScript model that will quantize badly, before you quantize.\n"
               "Runs PyTorch ModelReport's detectors natively on calibration data."};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("qreport ") + QREPORT_VERSION + " (LibTorch " +
                                        libtorch_version() + ")");

  pipeline::AnalyzeOptions o;
  std::string detectors_arg = "all", format = "text", output, backend = "x86", qscheme = "per-tensor";
  std::string fail_on_arg = "none", inspect_format = "text", table_report, module_filter, feature_filter;
  std::string ch_axis_arg = "auto";
  double min_sqnr = 0.0;
  bool quiet = false, verbose = false;
  int64_t batch_size = 0, max_batches = 0;

  auto* analyze = app.add_subcommand(
      "analyze", "Calibrate a TorchScript model and report quantization problems. As 'qreport report MODEL --stats "
                 "FILE...': the detectors again on saved statistics (--save-stats), with any thresholds, no data");
  analyze->alias("report");
  analyze->footer(kExitCodes);
  analyze->add_option("model", o.model_path, "TorchScript model file (torch.jit.save)")->required();
  auto* calib_opt = analyze->add_option("--calib", o.calib_path,
                      "Calibration archive (torch.save): a list of batches, a dict {argument: Tensor | "
                      "[Tensor]}, or one Tensor split by --batch-size");
  std::vector<std::string> stats_paths;
  analyze->add_option("--stats", stats_paths,
                      "Instead of --calib (qreport report): statistics files written by --save-stats, merged when "
                      "several; thresholds may change, what is observed may not")
      ->excludes(calib_opt);
  auto* save_stats_opt = analyze->add_option("--save-stats", o.save_stats,
                      "Also write the statistics calibration accumulated to this file (a torch.save archive, "
                      "docs/statistics.md), for qreport report and qreport merge");
  analyze->add_option("--detectors", detectors_arg,
                      "all, or a comma list of per_channel, dynamic_static, equalization, outlier, error "
                      "(PyTorch's detector names work too; error is qreport's quantization-error detector)")
      ->capture_default_str();
  analyze->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  analyze->add_option("--format", format, "Report format: text for people, json for machines (docs/json-schema.md), "
                      "html for a self-contained page with plots")
      ->check(CLI::IsMember({"text", "json", "html"}))
      ->capture_default_str();
  analyze->add_option("--fail-on", fail_on_arg,
                      "Exit 1, after writing the report, if it has findings of these kinds: none, all, or a comma "
                      "list of per_channel, dynamic, equalization, outliers, sqnr (with --min-sqnr), plan (with --target-sqnr: "
                      "the plan did not reach it; all does not include plan)")
      ->capture_default_str();
  auto* min_sqnr_opt = analyze->add_option(
      "--min-sqnr", min_sqnr,
      "With --fail-on sqnr: a layer whose SQNR under the recommended configuration is below this many dB is a "
      "finding");
  analyze->add_option("--histogram-min-gain", o.error.histogram_min_gain_db,
                      "The qconfig mapping uses HistogramObserver for a layer's input only where its range gains at "
                      "least this many dB of SQNR over MinMaxObserver's")
      ->capture_default_str();
  analyze->add_option("--worst", o.error.worst_layers, "How many of the lowest-SQNR layers the report ranks")
      ->capture_default_str();
  auto* error_batches_opt = analyze->add_option(
      "--error-batches", o.error.error_batches,
      "How many calibration batches (the first) the second pass that measures each layer's output SQNR runs over")
      ->capture_default_str();
  auto* error_memory_opt = analyze->add_option(
      "--error-memory", o.error_memory_mib,
      "MiB that calibration may use to keep the layers' inputs and outputs of those batches for that pass (it "
      "then needs no second forward); layers beyond it are measured by running the model again. 0: keep none")
      ->capture_default_str();
  analyze->add_option("-o,--output", output,
                      "Write the report to this file ('-': stdout). A regular file is replaced atomically; a "
                      "device, FIFO or symbolic link is written in place. Never the model or the archive");
  auto* batch_size_opt =
      analyze->add_option("--batch-size", batch_size, "Split a single-Tensor archive into batches of N rows (N >= 1)");
  auto* max_batches_opt = analyze->add_option("--max-batches", max_batches, "Use at most N calibration batches (N >= 1)");
  analyze->add_option("--threads", o.threads,
                      "LibTorch's intra-op and inter-op threads (default: OMP_NUM_THREADS, else one per core)");
  analyze->add_option("--backend", backend,
                      "Backend the per-channel and quantization-error detectors assume (fbgemm and x86 reduce the "
                      "activation range to 7 bits): fbgemm, qnnpack, onednn, x86")
      ->capture_default_str();
  analyze->add_option("--weight-qscheme", qscheme,
                      "Weight qscheme the per-channel detector assumes for float modules: per-tensor "
                      "(default_qconfig) or per-channel")
      ->check(CLI::IsMember({"per-tensor", "per-channel"}))
      ->capture_default_str();
  analyze->add_option("--dynamic-static-tolerance", o.dynamic_static.tolerance,
                      "S at or below this is non-stationary, in [0, 1]")
      ->capture_default_str();
  analyze->add_option("--equalization-threshold", o.equalization.ratio_threshold,
                      "Equalization is suggested for channels with threshold <= s_c <= 1/threshold, in (0, 1)")
      ->capture_default_str();
  analyze->add_option("--ch-axis", ch_axis_arg,
                      "Channel axis of activations for equalization and outliers: auto (the axis each module's "
                      "weight consumes: features of Linear inputs, channels of conv inputs), or N for PyTorch's "
                      "ch_axis=N on every module")
      ->capture_default_str();
  analyze->add_option("--outlier-ratio-threshold", o.outlier.ratio_threshold,
                      "A channel whose max / reference percentile exceeds this has outliers (>= 1)")
      ->capture_default_str();
  analyze->add_option("--outlier-reference-percentile", o.outlier.reference_percentile,
                      "Reference percentile of the outlier ratio, in [0, 1]")
      ->capture_default_str();
  analyze->add_option("--outlier-fraction-batches", o.outlier.fraction_batches_used_threshold,
                      "Fraction of batches a channel must be usable in to count as sufficient, in [0, 1]")
      ->capture_default_str();
  analyze->add_flag("--simulate", o.simulate,
                    "Also run the batches with every Linear/Conv input and weight fake-quantized (default_qconfig, "
                    "then the recommended mapping) and report the model's output SQNR and each layer's: a second "
                    "pass, about three forwards per batch");
  std::string schemes_arg;
  auto* schemes_opt = analyze->add_option(
      "--schemes", schemes_arg,
      "Also measure each Linear/Conv layer under these quantization schemes, with torchao 0.18.0's numerics: "
      "a comma list of int8-static, int8-weight-only, int8-dynamic, int4-weight-only-gG (G = 32, 64, 128; "
      "default 128), fp8-dynamic, fp8-dynamic-per-row, smoothquant. Per layer and scheme: weight, input and "
      "local output SQNR (docs/quantization-error.md), in the error detector's second pass");
  cli::PlanArgs plan_args;
  cli::add_plan_options(analyze, plan_args);
  bool no_cast = false;
  analyze->add_flag("--no-cast", no_cast,
                    "Make floating calibration data of another dtype than the model's parameters an input error "
                    "(default: cast it, with one warning; integer inputs are never cast)");
  analyze->add_option("--dist-timeout", o.dist_timeout_s,
                      "Distributed analyze (under torchrun or srun): seconds to wait for a rank to join, or to make "
                      "progress, before the job gives up on it")
      ->capture_default_str();
  analyze->add_flag("-q,--quiet", quiet, "Only errors on stderr (no progress, no warnings)");
  analyze->add_flag("-v,--verbose", verbose, "Debug logging on stderr (stage timings, each batch)");

  std::vector<std::string> merge_inputs;
  std::string merge_output;
  auto* merge = app.add_subcommand("merge", "Merge statistics files of runs of the same model and settings (shards "
                                            "of the calibration data) into one");
  merge->footer(kExitCodesNoCalibration);
  merge->add_option("stats", merge_inputs, "Statistics files (analyze --save-stats)")->required();
  merge->add_option("-o,--output", merge_output, "The merged statistics file")->required();
  merge->add_flag("-q,--quiet", quiet, "Only errors on stderr");

  auto* inspect = app.add_subcommand(
      "inspect", "Show the module tree, the call sites found and what each detector would observe where (no data "
                 "needed): the tool to run first when a report looks wrong");
  inspect->footer(kExitCodesNoCalibration);
  inspect->add_option("model", o.model_path,
                      "TorchScript model (torch.jit.save) or torch.export program (torch.export.save)")
      ->required();
  inspect->add_option("--detectors", detectors_arg, "all, or a comma list of detectors")->capture_default_str();
  inspect->add_option("--ch-axis", ch_axis_arg, "Channel axis of activations: auto or N")->capture_default_str();
  inspect->add_option("--format", inspect_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  inspect->add_option("-o,--output", output, "Write to this file instead of stdout");
  inspect->add_flag("-q,--quiet", quiet, "Only errors on stderr");
  inspect->add_flag("-v,--verbose", verbose, "Debug logging on stderr");

  auto* table = app.add_subcommand("table", "Print the tensor-level and channel-level tables of a saved JSON report "
                                            "(like PyTorch's ModelReportVisualizer)");
  table->footer(kExitCodesNoCalibration);
  table->add_option("report", table_report, "A report written by 'qreport analyze --format json'")->required();
  table->add_option("--module", module_filter, "Only modules whose name contains this");
  table->add_option("--feature", feature_filter, "Only features whose name contains this");
  table->add_option("-o,--output", output, "Write to this file instead of stdout");

  std::string diff_old, diff_new, diff_format = "text", diff_fail_on = "none";
  double max_sqnr_drop = -1, min_change = 0.05;
  auto* diff = app.add_subcommand(
      "diff", "Compare two saved JSON reports, e.g. the last release's and this commit's: findings that appeared, "
              "disappeared or changed, modules added or removed, changed settings, changes of values in dB");
  diff->footer(kExitCodesDiff);
  diff->add_option("old", diff_old, "The earlier report (qreport analyze --format json)")->required();
  diff->add_option("new", diff_new, "The later report")->required();
  diff->add_option("--format", diff_format, "text, json or html")
      ->check(CLI::IsMember({"text", "json", "html"}))
      ->capture_default_str();
  diff->add_option("--fail-on", diff_fail_on, "none, or new-findings: exit 1 when findings appeared")
      ->check(CLI::IsMember({"none", "new-findings"}))
      ->capture_default_str();
  auto* max_drop_opt = diff->add_option("--max-sqnr-drop", max_sqnr_drop,
                                        "Exit 1 when an SQNR figure (a layer's, or the simulated model output's) "
                                        "dropped by more than this many dB, or became null");
  diff->add_option("--min-change", min_change, "List only SQNR changes larger than this many dB (the gate sees all)")
      ->capture_default_str();
  diff->add_option("-o,--output", output, "Write to this file instead of stdout ('-': stdout)");
  diff->add_flag("-q,--quiet", quiet, "Only errors on stderr");

  require_plain_numbers(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    std::cout << app.version() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    if (analyze->parsed() && (e.get_name() == "CallForHelp")) return kExitOk;
    return fail(kExitUsage, std::string(e.what()) + " (run 'qreport --help')");
  }

  auto logger = spdlog::stderr_color_mt("qreport");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("qreport: %l: %v");
  route_libtorch_warnings_to_log();
  // A distributed job (torchrun, srun): progress and logs from rank 0 only, unless -v.
  std::optional<distributed::Env> job_env;
  try {
    if (analyze->parsed()) job_env = distributed::detect();
  } catch (const UsageError& e) {
    return fail(kExitUsage, e.what());
  }
  if (job_env) {
    rank_prefix = "rank " + std::to_string(job_env->rank) + ": ";
    spdlog::set_pattern("qreport: %l: " + rank_prefix + "%v");
    if (job_env->rank != 0 && !verbose) quiet = true;
  }
  spdlog::set_level(quiet ? spdlog::level::err : verbose ? spdlog::level::debug : spdlog::level::warn);
  spdlog::debug("{}", keep_freed_memory());

  install_interrupt_handler();
  try {
    if (diff->parsed()) {
      if (max_drop_opt->count() && !(max_sqnr_drop >= 0 && std::isfinite(max_sqnr_drop)))
        throw UsageError("--max-sqnr-drop must be a number >= 0");
      if (!(min_change >= 0 && std::isfinite(min_change))) throw UsageError("--min-change must be a number >= 0");
      check_output_is_not_input(output, {diff_old, diff_new});
      report::DiffOptions diff_options;
      diff_options.min_change_db = min_change;
      diff_options.gate_sqnr_drop = max_drop_opt->count() > 0;
      report::ReportDiff d =
          report::diff_reports(read_file(diff_old), read_file(diff_new), diff_old, diff_new, diff_options);
      emit(output, diff_format == "json" ? report::to_json(d) : diff_format == "html" ? report::to_html(d)
                                                                                      : report::to_text(d));
      if (!quiet)
        for (const auto& w : d.warnings) spdlog::warn("{}", w);
      size_t failed = 0;
      if (diff_fail_on == "new-findings")
        for (const auto& f : d.appeared) {
          ++failed;
          if (!quiet) std::fprintf(stderr, "qreport: new finding: %s %s: %s\n", f.kind.c_str(), f.fqn.c_str(), f.detail.c_str());
        }
      if (max_drop_opt->count())
        for (const auto& line : report::drops_beyond(d, max_sqnr_drop)) {
          ++failed;
          if (!quiet) std::fprintf(stderr, "qreport: %s\n", line.c_str());
        }
      if (failed && !quiet) std::fprintf(stderr, "qreport: diff: %zu gated change%s; exit 1\n", failed, failed == 1 ? "" : "s");
      return failed ? kExitFindings : kExitOk;
    }
    if (merge->parsed()) {
      check_output_is_not_input(merge_output, merge_inputs);
      check_writable(merge_output);
      std::vector<stats::StatsFile> files;
      for (const auto& p : merge_inputs) files.push_back(stats::load(p));
      stats::save(stats::merge(files, merge_inputs), merge_output);
      return kExitOk;
    }
    if (table->parsed()) {
      check_output_is_not_input(output, {table_report});
      emit(output, report::tables_from_json(read_file(table_report), module_filter, feature_filter, table_report));
      return kExitOk;
    }
    o.detectors = parse_detectors(detectors_arg);
    if (schemes_opt->count()) o.schemes = schemes::parse(schemes_arg);
    o.ch_axis = detectors::parse_ch_axis(ch_axis_arg);
    if (inspect->parsed()) {
      check_output_is_not_input(output, {o.model_path});
      report::Inspection in = pipeline::inspect(o);
      for (const auto& w : in.warnings) spdlog::warn("{}", w);
      emit(output, inspect_format == "json" ? report::to_json(in) : report::to_text(in));
      return kExitOk;
    }
    bool plan_gate = false;
    std::vector<std::string> fail_on = parse_fail_on(cli::without_plan_gate(fail_on_arg, &plan_gate));
    if (save_stats_opt->count() && o.save_stats.empty()) throw UsageError("--save-stats needs a file name");
    const bool from_stats = !stats_paths.empty();
    if (!from_stats && o.calib_path.empty())
      throw UsageError("--calib is required (or, for qreport report, --stats FILE...)");
    if (from_stats && (batch_size_opt->count() || max_batches_opt->count() || o.simulate || !o.save_stats.empty() ||
                       error_batches_opt->count() || error_memory_opt->count() || schemes_opt->count()))
      throw UsageError("--stats reads saved statistics: --batch-size, --max-batches, --simulate, --save-stats, "
                       "--error-batches, --error-memory and --schemes need the calibration data (qreport analyze "
                       "--calib)");
    // A layer's SQNR is its output's, measured on data: saved statistics cannot judge that gate.
    if (from_stats && std::find(fail_on.begin(), fail_on.end(), "sqnr") != fail_on.end())
      throw UsageError("--fail-on sqnr needs the layers' output SQNR, which is measured on the calibration data: "
                       "use qreport analyze --calib");
    // 0 is not "all": a usage error, like any other count below 1.
    if (batch_size_opt->count() && batch_size < 1) throw UsageError("--batch-size must be at least 1");
    if (max_batches_opt->count() && max_batches < 1) throw UsageError("--max-batches must be at least 1");
    if (batch_size_opt->count()) o.calibration.batch_size = batch_size;
    if (max_batches_opt->count()) o.calibration.max_batches = max_batches;
    {
      std::vector<std::string> inputs = {o.model_path};
      if (!from_stats) inputs.push_back(o.calib_path);
      inputs.insert(inputs.end(), stats_paths.begin(), stats_paths.end());
      check_output_is_not_input(output, inputs);
      if (!o.save_stats.empty()) {
        check_output_is_not_input(o.save_stats, inputs, "--save-stats");
        check_distinct_outputs(output, o.save_stats);
      }
    }
    o.cast_inputs = !no_cast;
    // More threads than this only contend, and thousands exhaust the process's thread limit inside OpenMP.
    if (o.threads < 0 || o.threads > kMaxThreads)
      throw UsageError("--threads must be 0 (one per core) or a count up to " + std::to_string(kMaxThreads));
    if (o.error_memory_mib < 0 || o.error_memory_mib > kMaxErrorMemoryMib)
      throw UsageError("--error-memory must be a count of MiB from 0 to " + std::to_string(kMaxErrorMemoryMib));
    if (o.dist_timeout_s < 1) throw UsageError("--dist-timeout must be at least 1 second");
    o.per_channel.backend = backend;
    o.error.backend = backend;
    if (min_sqnr_opt->count()) o.error.min_sqnr_db = min_sqnr;
    cli::apply_plan_options(plan_args, plan_gate, from_stats, job_env.has_value(), o);
    report::check_gates_runnable(fail_on_arg, fail_on, o.detectors, detectors_arg, min_sqnr_opt->count() > 0);
    o.per_channel.weight_per_channel = qscheme == "per-channel";
    // Progress only for a person watching (stderr is a terminal); -v logs every batch instead.
    const bool show_progress = !quiet && !verbose && ::isatty(STDERR_FILENO);
    const auto start = std::chrono::steady_clock::now();
    o.on_batch = [show_progress, start](size_t done, size_t total) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (show_progress) {
        std::fprintf(stderr, "\rcalibrating: batch %zu/%zu, %.1f batches/s%s", done, total, s > 0 ? done / s : 0.0,
                     done == total ? "\n" : "");
        progress_line_open = done != total;
      }
      spdlog::debug("calibration batch {}/{} done", done, total);
    };
    o.on_simulate_batch = [show_progress, start](size_t done, size_t total) {
      if (show_progress) {
        std::fprintf(stderr, "\rsimulating: batch %zu/%zu%s", done, total, done == total ? "\n" : "");
        progress_line_open = done != total;
      }
      spdlog::debug("simulation batch {}/{} done", done, total);
    };
    o.on_sensitivity_run = [show_progress](size_t done, size_t total) {
      if (show_progress) {
        std::fprintf(stderr, "\rsensitivity: run %zu/%zu%s", done, total, done == total ? "\n" : "");
        progress_line_open = done != total;
      }
      spdlog::debug("sensitivity run {}/{} done", done, total);
    };
    if (from_stats && job_env)
      throw UsageError("qreport report runs in one process (unset the launcher's RANK/WORLD_SIZE or SLURM_NTASKS)");
    o.job = job_env;
    // Outputs checked before calibration, written together once the run succeeded (lib/pipeline/job_run.cpp).
    o.check_outputs = [&] {
      check_writable(output);
      if (!o.save_stats.empty()) check_writable(o.save_stats);
    };
    o.write_outputs = [&](const report::Report& rep, const std::string& stats_bytes) {
      for (const auto& w : rep.warnings) spdlog::warn("{}", w);
      std::string text = format == "json" ? report::to_json(rep) : format == "html" ? report::to_html(rep)
                                                                                    : report::to_text(rep);
      std::vector<std::pair<std::string, std::string>> outputs;
      if (!o.save_stats.empty()) outputs.emplace_back(o.save_stats, stats_bytes);
      outputs.emplace_back(output, std::move(text));
      write_outputs(outputs);
    };
    // Never freed: main ends the process without teardown, and a transformer's report holds a million values.
    const report::Report& rep =
        *new report::Report(from_stats ? pipeline::report_from_stats(o, stats_paths) : pipeline::analyze(o));
    if (!rep.emit) return kExitOk;  // a rank of a distributed job other than 0: rank 0 writes
    // A gate whose detector judged no module cannot fail: refused, after the report that says why.
    if (std::string why = report::unevaluated_gates(rep, fail_on); !why.empty()) throw UsageError(why);
    // The gate: one line per finding of a gated kind, then a summary line; exit 1.
    size_t gated = 0;
    for (const auto& f : report::findings(rep)) {
      if (std::find(fail_on.begin(), fail_on.end(), f.kind) == fail_on.end()) continue;
      ++gated;
      if (!quiet) std::fprintf(stderr, "qreport: finding: %s %s: %s\n", f.kind.c_str(), f.fqn.empty() ? "(root)" : f.fqn.c_str(), f.detail.c_str());
    }
    if (const std::string line = report::plan_finding(rep); plan_gate && !line.empty()) {
      ++gated;
      if (!quiet) std::fprintf(stderr, "qreport: finding: %s\n", line.c_str());
    }
    if (gated && !quiet)  // -q: the exit code says it
      std::fprintf(stderr, "qreport: --fail-on %s: %zu finding%s; exit 1\n", fail_on_arg.c_str(), gated, gated == 1 ? "" : "s");
    return gated ? kExitFindings : kExitOk;
  } catch (const UsageError& e) {
    return fail(kExitUsage, e.what());
  } catch (const InputError& e) {
    return fail(kExitUsage, e.what());
  } catch (const ModelError& e) {
    return fail(kExitModelFailed, e.what());
  } catch (const JobError& e) {
    return fail(kExitJob, e.what());
  } catch (const Interrupted& e) {
    return fail(kExitInterrupted, e.what());
  } catch (const std::exception& e) {
    if (is_out_of_memory(e))
      return fail(kExitModelFailed, "ran out of memory: " + first_line(e.what()) +
                                        "; try smaller batches (--batch-size) or fewer (--max-batches)");
    return fail(kExitInternal, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(kExitInternal, "internal error: unknown exception");
  }
}

// The process ends without LibTorch's static teardown (its operator registry, CUDA's libraries) and
// without freeing the report: every output is written and closed by now. The run's own state (model,
// graphs, observers) is freed when the analysis returns; what this skips took about 0.2 s of every run
// (mobilenet_v2: 0.19 s from the report's rename to exit, now 6 ms), as clang's -disable-free spares it.
// bench/baseline.cpp --fast-exit ends the same way (docs/performance.md, "Round 10").
int main(int argc, char** argv) { qreport::exit_without_teardown(run_command(argc, argv)); }
