// The LibTorch qreport was built with, for reports and messages.
#pragma once
#include <string>

namespace qreport {

// e.g. "1.13.0"
std::string libtorch_version();

}  // namespace qreport
