#include "common/libtorch_warnings.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <string>

namespace qreport {
namespace {

std::string first_line_of(const std::string& s) { return s.substr(0, s.find('\n')); }

// The handler's interface changed in PyTorch 2.0: one Warning object instead of (location, message, verbatim).
class ToLog final : public c10::WarningHandler {
 public:
#if TORCH_VERSION_MAJOR >= 2
  void process(const c10::Warning& warning) override { spdlog::debug("LibTorch: {}", first_line_of(warning.msg())); }
#else
  void process(const c10::SourceLocation&, const std::string& msg, const bool) override {
    spdlog::debug("LibTorch: {}", first_line_of(msg));
  }
#endif
};

}  // namespace

void route_libtorch_warnings_to_log() {
  static ToLog handler;
#if TORCH_VERSION_MAJOR >= 2
  c10::WarningUtils::set_warning_handler(&handler);
#else
  c10::Warning::set_warning_handler(&handler);
#endif
}

}  // namespace qreport
