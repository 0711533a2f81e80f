// qreport: tells a PyTorch user, before they quantize, which parts of their model will quantize badly.
// This file only parses arguments, writes output and maps errors to exit codes; the work is in lib/.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/errors.h"
#include "detectors/detectors.h"
#include "pipeline/analyze.h"
#include "report/report.h"

namespace {

using namespace qreport;

constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0   success\n"
    "  2   bad usage or bad input (unreadable or invalid model or archive, data that does not fit forward,\n"
    "      invalid option)\n"
    "  3   the model's forward failed during calibration\n"
    "  70  internal error (a bug in qreport: please report it)\n"
    "  130 interrupted (Ctrl-C); no report is written\n";

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "qreport: error: %s\n", first_line(message).c_str());
  return code;
}

// Writes via a temporary file in the same directory and a rename, so a failed or interrupted run never
// leaves a partial report behind.
void write_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("cannot write output file '" + path + "'");
    out << content;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw InputError("cannot write output file '" + path + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InputError("cannot write output file '" + path + "'");
  }
}

std::vector<std::string> parse_detectors(const std::string& list) {
  std::vector<std::string> out;
  if (list == "all") return out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    auto name = detectors::canonical_detector_name(item);
    if (!name)
      throw UsageError("unknown detector '" + item +
                       "' (use all, or a comma list of per_channel, dynamic_static, equalization, outlier)");
    out.push_back(*name);
    start = end + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qreport: find the parts of a TorchScript model that will quantize badly, before you quantize.\n"
               "Runs PyTorch ModelReport's detectors natively on calibration data."};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("qreport ") + QREPORT_VERSION + " (LibTorch " +
                                        report::libtorch_version() + ")");

  pipeline::AnalyzeOptions o;
  std::string detectors_arg = "all", format = "text", output, backend = "x86", qscheme = "per-tensor";
  bool quiet = false, verbose = false;
  int64_t batch_size = 0, max_batches = 0;

  auto* analyze = app.add_subcommand("analyze", "Calibrate a TorchScript model and report quantization problems");
  analyze->footer(kExitCodes);
  analyze->add_option("model", o.model_path, "TorchScript model file (torch.jit.save)")->required();
  analyze->add_option("--calib", o.calib_path,
                      "Calibration archive (torch.save): a list of batches, a dict {argument: Tensor | "
                      "[Tensor]}, or one Tensor split by --batch-size")
      ->required();
  analyze->add_option("--detectors", detectors_arg,
                      "all, or a comma list of per_channel, dynamic_static, equalization, outlier "
                      "(PyTorch's detector names work too)")
      ->capture_default_str();
  analyze->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  analyze->add_option("--format", format, "Report format")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  analyze->add_option("-o,--output", output, "Write the report to this file instead of stdout");
  analyze->add_option("--batch-size", batch_size, "Split a single-Tensor archive into batches of N rows");
  analyze->add_option("--max-batches", max_batches, "Use at most N calibration batches");
  analyze->add_option("--threads", o.threads, "Intra-op threads (default: one per core)");
  analyze->add_option("--backend", backend, "Per-channel detector backend: fbgemm, qnnpack, onednn, x86")
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
  analyze->add_option("--ch-axis", o.equalization.ch_axis, "Channel axis of activations for equalization and outliers")
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
  analyze->add_flag("-q,--quiet", quiet, "Only errors on stderr");
  analyze->add_flag("-v,--verbose", verbose, "Debug logging on stderr");

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
  spdlog::set_level(quiet ? spdlog::level::err : verbose ? spdlog::level::debug : spdlog::level::warn);

  install_interrupt_handler();
  try {
    o.detectors = parse_detectors(detectors_arg);
    if (batch_size != 0) o.calibration.batch_size = batch_size;
    if (max_batches != 0) o.calibration.max_batches = max_batches;
    if (batch_size < 0) throw UsageError("--batch-size must be positive");
    if (max_batches < 0) throw UsageError("--max-batches must be positive");
    if (o.threads < 0) throw UsageError("--threads must be positive");
    o.per_channel.backend = backend;
    o.per_channel.weight_per_channel = qscheme == "per-channel";
    o.outlier.ch_axis = o.equalization.ch_axis;
    const bool show_progress = !quiet && ::isatty(STDERR_FILENO);
    o.on_batch = [show_progress](size_t done, size_t total) {
      if (show_progress) std::fprintf(stderr, "\rcalibrating: batch %zu/%zu%s", done, total, done == total ? "\n" : "");
      spdlog::debug("calibration batch {}/{} done", done, total);
    };
    report::Report rep = pipeline::analyze(o);
    for (const auto& w : rep.warnings) spdlog::warn("{}", w);
    std::string text = format == "json" ? report::to_json(rep) : report::to_text(rep);
    if (output.empty()) {
      std::cout << text << std::flush;
    } else {
      write_atomically(output, text);
    }
    return kExitOk;
  } catch (const UsageError& e) {
    return fail(kExitUsage, e.what());
  } catch (const InputError& e) {
    return fail(kExitUsage, e.what());
  } catch (const ModelError& e) {
    return fail(kExitModelFailed, e.what());
  } catch (const Interrupted& e) {
    return fail(kExitInterrupted, e.what());
  } catch (const std::exception& e) {
    return fail(kExitInternal, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(kExitInternal, "internal error: unknown exception");
  }
}
