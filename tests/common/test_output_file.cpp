// The outputs' all-or-nothing writer: a Ctrl-C that arrived after calibration (the flag set, the process
// still running) leaves no file behind, and says so.
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/output_file.h"

namespace {
bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
}  // namespace

TEST_CASE("write_outputs after Ctrl-C writes nothing and throws Interrupted") {
  char dir[] = "/tmp/qreport-output-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string report = std::string(dir) + "/report.json", stats = std::string(dir) + "/run.qstats";
  qreport::write_outputs({{report, "{}"}});  // before the interrupt: written
  CHECK(exists(report));
  std::remove(report.c_str());
  qreport::install_interrupt_handler();
  std::raise(SIGINT);  // the handler only sets the flag
  REQUIRE(qreport::interrupt_requested());
  CHECK_THROWS_AS(qreport::write_outputs({{stats, "stats"}, {report, "{}"}}), qreport::Interrupted);
  CHECK_FALSE(exists(report));
  CHECK_FALSE(exists(stats));
  ::rmdir(dir);  // fails (and the test with it, below) if a temporary file was left in the folder
  CHECK_FALSE(exists(dir));
}
