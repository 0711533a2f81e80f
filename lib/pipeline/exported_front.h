// Internal to lib/pipeline: the torch.export front end (lib/exported) where the pipeline takes it so far.
#pragma once
#include <string>

#include "pipeline/analyze.h"

namespace qreport::pipeline {

// Throws InputError when `path` is a PT2 archive: `command` (analyze, report) does not run them yet.
void refuse_exported(const std::string& path, const char* command);
// qreport inspect on a PT2 archive: the module tree and leaf module calls, no detector observations yet.
report::Inspection inspect_exported(const AnalyzeOptions& o);

}  // namespace qreport::pipeline
