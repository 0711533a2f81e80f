// The process's heap policy for calibration runs (no torch headers).
#pragma once
#include <string>

namespace qreport {

// Keeps freed memory in the process for reuse instead of returning it to the system (glibc: no mmap for
// large blocks, no trimming). An activation of tens of MB is allocated and freed in every batch; with
// glibc's defaults each one is a fresh mmap whose pages are faulted in and zeroed again (500,000 page
// faults, half of mobilenet_v2's inference time on a 2-core VM: docs/performance.md). Peak RSS stays what
// it was; freed memory is not given back until exit. Does nothing where the user set glibc's malloc
// tunables (GLIBC_TUNABLES), or without glibc. Returns what it did, for the debug log.
std::string keep_freed_memory();

}  // namespace qreport
