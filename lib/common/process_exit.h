// Internal: how qreport's process ends (apps/qreport/main.cpp), and the benchmark's baseline with it
// (bench/baseline.cpp --fast-exit), so that the two end the same way.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace qreport {

// Ends the process without static teardown (LibTorch's operator registry, CUDA's libraries: about 0.2 s
// of a run), as clang's -disable-free does: the caller has written and closed every output; stdio and
// std::cout are flushed here.
[[noreturn]] inline void exit_without_teardown(int code) {
  std::cout.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace qreport
