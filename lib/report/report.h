// Stage 6: reports. Turns detector results into the JSON report (schema v1, docs/json-schema.md) for
// machines and a text report for people. Output is a pure function of its input: same input, same bytes.
#pragma once
#include <string>
#include <vector>

#include "detectors/detectors.h"

namespace qreport::report {

struct Report {
  std::string model_path;
  std::string model_sha256;
  size_t model_modules = 0;
  std::string calib_path;
  size_t batches = 0;
  std::string device;
  std::vector<detectors::DetectorResult> results;   // in the order the detectors ran
  std::vector<detectors::QConfigEntry> qconfig;      // qconfig_mapping and equalization_mapping
  std::vector<std::string> warnings;
};

// The LibTorch version qreport was built with, e.g. "1.13.0".
std::string libtorch_version();

std::string to_json(const Report& report);  // 2-space indented, ends with a newline
std::string to_text(const Report& report);

}  // namespace qreport::report
