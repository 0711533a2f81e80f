#include "report/report.h"

namespace qreport::report {

std::string to_text(const Report& r) {
  std::string out;
  out += "qreport " QREPORT_VERSION " — " + r.model_path + " (" + std::to_string(r.model_modules) + " modules), " +
         std::to_string(r.batches) + " calibration batch" + (r.batches == 1 ? "" : "es") + " on " + r.device + "\n";
  for (const auto& res : r.results) {
    out += "\n== " + res.name + " ==\n" + res.text;
    if (!res.text.empty() && res.text.back() != '\n') out += "\n";
  }
  if (!r.warnings.empty()) {
    out += "\n== warnings ==\n";
    for (const auto& w : r.warnings) out += "- " + w + "\n";
  }
  return out;
}

}  // namespace qreport::report
