// Where reports go: -o FILE, -o - (stdout), or stdout by default.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace qreport {

// Writes `content` to `path`: stdout for "" or "-". A regular file (or a path that does not exist yet)
// is replaced atomically, through a temporary file in its directory and a rename, so a failed run never
// leaves a partial report. Anything else (a FIFO, a character device such as /dev/null, /dev/stdout, a
// symbolic link) is written in place: renaming over it would replace the device or the link itself.
// Throws InputError "cannot write output file 'PATH': REASON" (REASON from strerror) when it cannot be
// written.
void write_output(const std::string& path, const std::string& content);

// Several outputs of one run, all or none: each file that write_output would replace atomically is first
// written in full to its temporary file, then stdout and the outputs written in place, and only when all
// of that succeeded are the temporary files renamed into place. A failure removes the temporary files
// and throws as write_output does, leaving every output as it was (but a device or stdout written before
// the failing one).
void write_outputs(const std::vector<std::pair<std::string, std::string>>& outputs);

// Checks before a run starts that write_output could write `path` at its end: a path that exists must not
// be a directory and must open for writing; a new one needs an existing folder where a file can be
// created (checked by creating and removing a probe file). Throws write_output's InputError, with the
// reason the system gives. "" and "-" (stdout) pass.
void check_writable(const std::string& path);

// Throws UsageError when `output` names the same file as one of `inputs` (after links): -o must never
// overwrite the model or the calibration data. `option` names the output in the message.
void check_output_is_not_input(const std::string& output, const std::vector<std::string>& inputs,
                               const std::string& option = "-o");

// Throws UsageError when the statistics file and the report (`report`; "" or "-" is stdout) are one file,
// by name or after links (--save-stats /dev/stdout while the report goes to stdout): one would overwrite
// the other's bytes.
void check_distinct_outputs(const std::string& report, const std::string& stats);

}  // namespace qreport
