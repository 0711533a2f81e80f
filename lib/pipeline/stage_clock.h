// Internal to lib/pipeline: how long each stage of a run took, logged at -v ("stage NAME: S s");
// bench/run.py and bench/exported.py read these lines.
#pragma once
#include <spdlog/spdlog.h>

#include <chrono>

namespace qreport::pipeline {

class StageClock {
 public:
  void lap(const char* stage) {
    auto now = std::chrono::steady_clock::now();
    spdlog::debug("stage {}: {:.3f} s", stage, std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace qreport::pipeline
