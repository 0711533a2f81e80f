// Error kinds shared by every stage. The CLI maps each kind to one exit code (docs/usage.md).
#pragma once
#include <stdexcept>
#include <string>

namespace qreport {

// Exit codes, documented in `qreport --help` and docs/usage.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitFindings = 1,      // --fail-on: the report has findings of the kinds asked for
  kExitUsage = 2,         // bad usage or bad input
  kExitModelFailed = 3,   // the model's forward raised during calibration
  kExitJob = 4,           // distributed analyze: another rank failed, or the job could not form
  kExitInternal = 70,     // a bug in qreport
  kExitInterrupted = 130, // SIGINT (Ctrl-C) during the run: 128 + SIGINT, as shells report it
};

// Bad command line or option value.
struct UsageError : std::runtime_error { using std::runtime_error::runtime_error; };
// Unreadable or invalid model or archive, or data that does not fit the model's forward.
struct InputError : std::runtime_error { using std::runtime_error::runtime_error; };
// The user's model raised while running calibration batches.
struct ModelError : std::runtime_error { using std::runtime_error::runtime_error; };
// Distributed analyze: another rank failed, vanished or differs, or the ranks could not meet.
struct JobError : std::runtime_error { using std::runtime_error::runtime_error; };
// The user interrupted the run (SIGINT).
struct Interrupted : std::runtime_error { using std::runtime_error::runtime_error; };
// A broken invariant inside qreport.
struct InternalError : std::runtime_error { using std::runtime_error::runtime_error; };

// SIGINT handling: the first Ctrl-C sets a flag that the calibration loop checks between batches (so the
// run stops at a clean point and no report is written); a second one terminates at once.
void install_interrupt_handler();

// Whether `e` says memory ran out (std::bad_alloc, LibTorch's CPU allocator, CUDA's out of memory): a
// resource limit of the run, not a bug in qreport.
bool is_out_of_memory(const std::exception& e);
bool interrupt_requested();

// First line of an exception message with LibTorch's C++ backtrace and source context removed,
// so that errors read as one line.
std::string first_line(const std::string& message);

// The most specific line of a TorchScript interpreter error: its last "SomethingError: ..." line (the
// exception the model raised), else first_line().
std::string root_cause_line(const std::string& message);

}  // namespace qreport
