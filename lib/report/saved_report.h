// Internal: reading reports that qreport wrote (--format json), for `table` and `diff`.
//
// One schema walk reads the whole document: every field a reader uses is type-checked, and the first
// problem is an InputError naming the file and the JSON path ("r.json: $.model.sha256: expected a
// string, got a number"), which the CLI turns into exit 2. Fields no reader uses (the tool's version,
// the mappings, the warnings) are not checked. docs/json-schema.md, "Reading reports back", lists the rules.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "report/report.h"

namespace qreport::report {

struct SavedReport {
  std::string name;  // the file, as messages name it
  // The detector results as analyze produced them (findings() works on them): model path and sha256,
  // every detector's options, modules and other keys, its report text, and the simulation. Values in
  // dB (keys ending in "_db") are Float or Null: integers are widened, non-finite numbers refused.
  Report report;
  // The settings that change what a report says, in report order: "<detector>.<option>" and
  // "calibration.batches" / "calibration.device", each with its value as JSON text.
  std::vector<std::pair<std::string, std::string>> settings;
};

// Parses and checks a saved report. Throws InputError when the text is not JSON, nests deeper than
// kMaxJsonDepth, is not a qreport report, is of another schema version, or has a used field of the
// wrong type.
SavedReport read_saved_report(const std::string& text, const std::string& name);

// A per-module figure that --max-sqnr-drop gates: a value in dB whose key names an SQNR, never a gain
// ("sqnr_db", "input_sqnr_minmax_db", "weight_sqnr_per_channel_db", "layers_output_sqnr_db"; not
// "weight_per_channel_gain_db").
bool is_sqnr_key(const std::string& key);

}  // namespace qreport::report
