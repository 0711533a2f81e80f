// Where reports go: -o FILE, -o - (stdout), or stdout by default.
#pragma once
#include <string>
#include <vector>

namespace qreport {

// Writes `content` to `path`: stdout for "" or "-". A regular file (or a path that does not exist yet)
// is replaced atomically, through a temporary file in its directory and a rename, so a failed run never
// leaves a partial report. Anything else (a FIFO, a character device such as /dev/null, /dev/stdout, a
// symbolic link) is written in place: renaming over it would replace the device or the link itself.
// Throws InputError when it cannot be written.
void write_output(const std::string& path, const std::string& content);

// Throws UsageError when `output` names the same file as one of `inputs` (after links): -o must never
// overwrite the model or the calibration data.
void check_output_is_not_input(const std::string& output, const std::vector<std::string>& inputs);

}  // namespace qreport
