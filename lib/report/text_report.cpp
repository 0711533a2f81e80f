#include <algorithm>

#include "common/text.h"
#include "report/report.h"

namespace qreport::report {

std::string to_text(const Report& r) {
  std::string out;
  out += "qreport " QREPORT_VERSION " — " + r.model_path + " (" + std::to_string(r.model_modules) + " modules), " +
         std::to_string(r.batches) + " calibration batch" + (r.batches == 1 ? "" : "es") + " on " + r.device + "\n";
  for (const auto& res : r.results) {
    out += "\n== " + res.name + " ==\n" + res.text;
    if (!res.text.empty() && res.text.back() != '\n') out += "\n";
    if (res.name == "per_channel_detector")
      if (const std::string caveat = per_channel_caveat(r); !caveat.empty()) out += caveat + "\n";
  }
  if (const auto* llm = llm_int8_of(r)) out += "\n== outliers the LLM way (outlier_detector.llm_int8) ==\n" + llm_int8_text(*llm);
  if (r.simulation.ran && r.simulation.configs.size() == 2) {
    const auto& d = r.simulation.configs[0];
    const auto& q = r.simulation.configs[1];
    auto show = [](const std::optional<double>& v) { return v ? format_db(*v) + " dB" : std::string("null"); };
    out += "\n== simulation (--simulate) ==\n";
    out += "Model output SQNR against the float model: default_qconfig " + show(d.output_sqnr_db) +
           ", recommended mapping " + show(q.output_sqnr_db) + ".\n";
    out += "Output SQNR after each observed layer (default_qconfig -> recommended), in graph order:\n";
    size_t width = 0;
    for (const auto& [fqn, v] : d.layers) width = std::max(width, fqn.size());
    for (size_t i = 0; i < d.layers.size() && i < q.layers.size(); ++i)
      out += "  " + d.layers[i].first + std::string(width - d.layers[i].first.size(), ' ') + "  " +
             show(d.layers[i].second) + " -> " + show(q.layers[i].second) + "\n";
  }
  out += sensitivity_text(r);
  out += pt2e_text(r);
  // The findings, with what the error detector measured for them (per-channel gains, histogram gains).
  const auto found = findings(r);
  if (!found.empty()) {
    out += "\n== findings ==\n";
    for (const auto& f : found) out += "- " + f.kind + " " + (f.fqn.empty() ? "(root)" : f.fqn) + ": " + f.detail + "\n";
  }
  // Notes: what a reader should know but no gate acts on (sparse channels that PyTorch flags as outliers).
  const auto noted = notes(r);
  if (!noted.empty()) {
    out += "\n== notes ==\n";
    for (const auto& f : noted) out += "- " + f.kind + " " + (f.fqn.empty() ? "(root)" : f.fqn) + ": " + f.detail + "\n";
  }
  if (!r.warnings.empty()) {
    out += "\n== warnings ==\n";
    for (const auto& w : r.warnings) out += "- " + w + "\n";
  }
  return out;
}

}  // namespace qreport::report
