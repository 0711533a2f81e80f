// libFuzzer target for the readers of saved JSON reports (qreport diff and qreport table): the schema
// walk of lib/report/saved_report.cpp and everything downstream of it: findings, the diff in its three
// formats, the tables. Built by scripts/fuzz with clang, ASan and UBSan.
//
// Contract under test: any input either reads or throws qreport's InputError. A crash, a sanitizer report
// (stack overflow on deep nesting included), or any other exception escaping is a bug: the CLI would
// report it as internal (70).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/errors.h"
#include "report/report.h"

namespace {

// A small valid report, so that a fuzzed one is also diffed against something that has findings,
// settings, SQNR figures and a simulation to compare with.
constexpr const char* kReference = R"({"schema_version": 1, "tool": {"name": "qreport"},
  "model": {"path": "m.pt", "sha256": "00"}, "calibration": {"batches": 2, "device": "cpu"},
  "detectors": {
    "per_channel_detector": {"options": {"backend": "x86"}, "report": "",
      "modules": {"fc": {"per_channel_quantization_supported": true, "per_channel_quantization_used": false}}},
    "outlier_detector": {"options": {"ratio_threshold": 3.5}, "report": "",
      "modules": {"fc": {"outliers_detected": [true, false], "outlier_detection_is_sufficient_batches": [true, true]}}},
    "quantization_error_detector": {"options": {"min_sqnr_db": 40}, "report": "",
      "modules": {"fc": {"sqnr_db": 31.5, "weight_per_channel_gain_db": 2.0, "sqnr_limited_by": "input"}}}},
  "simulation": {"recommended": {"output_sqnr_db": 30.0, "layers_output_sqnr_db": {"fc": 31.0}}}})";

void exercise(const std::string& text) {
  using namespace qreport::report;
  for (const auto& [a, b] : {std::pair<std::string, std::string>{text, text}, {kReference, text}, {text, kReference}}) {
    ReportDiff d = diff_reports(a, b, "old.json", "new.json");
    (void)to_text(d).size();
    (void)to_json(d).size();
    (void)to_html(d).size();
    (void)drops_beyond(d, 0.0).size();
  }
  (void)tables_from_json(text, "", "", "r.json").size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    exercise(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const qreport::InputError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "escaped exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
