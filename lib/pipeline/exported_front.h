// Internal to lib/pipeline: the torch.export front end (lib/exported) as the pipeline drives it, beside
// the TorchScript one (analyze.cpp): the same plan, observers, detectors and reports (pipeline/front.h).
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "exported/exported.h"
#include "pipeline/analyze.h"
#include "pipeline/front.h"
#include "pipeline/run_host.h"

namespace qreport::pipeline {

// An exported program's modules and calls for the plan. A module inside a fused or QAT module (whose
// TorchScript call is a leaf, never inlined) resolves to that module, as on the TorchScript path; any
// other to its own leaf call, else its nearest ancestor with one (exported::Program::resolve).
class ExportedFront : public Front {
 public:
  ExportedFront(const exported::Program& program, const exported::ExportedModel& model)
      : program_(program), model_(model) {}
  const model::ModelView& model() const override { return model_; }
  std::optional<std::string> resolve(const std::string& fqn) const override;
  instrumentation::LayoutGuess input_layout(const std::string& fqn) const override;
  // The call sites in graph order, as Instrumenter::call_sites() lists TorchScript's.
  std::vector<std::string> call_sites() const;

 private:
  bool has_call(const std::string& fqn) const;
  const exported::Program& program_;
  const exported::ExportedModel& model_;
};

// qreport inspect on a PT2 archive: the module tree, the module calls, and what the detectors observe.
report::Inspection inspect_exported(const AnalyzeOptions& o);
// qreport analyze on a PT2 archive, in one process (analyze_rank's torch.export twin).
report::Report analyze_exported(const AnalyzeOptions& o, std::string* stats_bytes);

// The whole-model runs' host (--simulate, --sensitivity) on the program; clears its observations.
std::unique_ptr<RunHost> exported_run_host(exported::Program& program, const exported::ExportedModel& model,
                                           const ExportedFront& front);

// Shared with inspect.cpp: what each detector observes and where, on either front end.
void list_observations(const std::vector<std::unique_ptr<detectors::Detector>>& dets, const Front& front,
                       const detectors::ChannelAxes& axes, report::Inspection& out);
// Shared with analyze.cpp: LibTorch's thread pools, set once per run.
void set_threads(int requested);
// Shared with analyze.cpp: --simulate, --schemes and --sensitivity need the error detector (UsageError).
void check_error_passes(const AnalyzeOptions& o, const std::vector<std::unique_ptr<detectors::Detector>>& dets);

}  // namespace qreport::pipeline
