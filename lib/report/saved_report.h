// Internal: reading reports that qreport wrote (--format json), for `table` and `diff`.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "report/report.h"

namespace qreport::report {

// Parses a saved report; InputError naming `name` when it is not JSON, not a qreport report, or of
// another schema version.
nlohmann::ordered_json parse_saved_report(const std::string& text, const std::string& name);

// The detector results of a saved report, as analyze produced them (findings() works on them).
Report report_from_json(const nlohmann::ordered_json& j);

}  // namespace qreport::report
