#include "common/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "common/errors.h"

namespace qreport {
namespace {

[[noreturn]] void cannot_write(const std::string& path, int error) {
  throw InputError("cannot write output file '" + path + "': " + std::strerror(error));
}

bool is_stdout(const std::string& path) { return path.empty() || path == "-"; }

// How an output is written: replaced through a temporary file and a rename (a regular file or a new
// path), or in place (a device, a FIFO, a link: renaming over it would replace the device or the link).
enum class Mode { Stdout, Atomic, InPlace };

Mode mode_of(const std::string& path) {
  if (is_stdout(path)) return Mode::Stdout;
  struct stat link {}, target {};
  if (::lstat(path.c_str(), &link) != 0 || S_ISREG(link.st_mode)) return Mode::Atomic;
  if (S_ISDIR(link.st_mode) || (::stat(path.c_str(), &target) == 0 && S_ISDIR(target.st_mode)))
    cannot_write(path, EISDIR);
  return Mode::InPlace;
}

void write_all(int fd, const std::string& content, const std::string& path) {
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) cannot_write(path, n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
}

// `path`'s temporary file, written in full; its name, for the rename.
std::string stage(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) cannot_write(path, errno);
  try {
    write_all(fd, content, path);
  } catch (...) {
    ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int error = errno;
    std::remove(tmp.c_str());
    cannot_write(path, error);
  }
  return tmp;
}

void write_in_place(const std::string& path, const std::string& content) {
  if (is_stdout(path)) {
    std::cout << content << std::flush;
    if (!std::cout) cannot_write("-", errno ? errno : EIO);
    return;
  }
  // No O_CREAT (it exists), O_TRUNC for a link to a regular file; devices and FIFOs ignore it.
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) cannot_write(path, errno);
  try {
    write_all(fd, content, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) cannot_write(path, errno);
}

// The folder `path` would be created in ("." for a bare name).
std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_outputs(const std::vector<std::pair<std::string, std::string>>& outputs) {
  std::vector<std::pair<std::string, std::string>> staged;  // (temporary, final)
  auto discard = [&staged] {
    for (const auto& [tmp, _] : staged) std::remove(tmp.c_str());
  };
  try {
    for (const auto& [path, content] : outputs)
      if (mode_of(path) == Mode::Atomic) staged.emplace_back(stage(path, content), path);
    // Ctrl-C after calibration (while the detectors ran or the outputs were staged) still means no report:
    // the last point where nothing is written yet. Past it, the renames take microseconds.
    if (interrupt_requested()) throw Interrupted("interrupted before the outputs were written; no report written");
    for (const auto& [path, content] : outputs)
      if (mode_of(path) != Mode::Atomic) write_in_place(path, content);
  } catch (...) {
    discard();
    throw;
  }
  for (size_t i = 0; i < staged.size(); ++i) {
    if (std::rename(staged[i].first.c_str(), staged[i].second.c_str()) != 0) {
      const int error = errno;
      for (size_t j = i; j < staged.size(); ++j) std::remove(staged[j].first.c_str());
      cannot_write(staged[i].second, error);
    }
  }
}

void write_output(const std::string& path, const std::string& content) { write_outputs({{path, content}}); }

void check_writable(const std::string& path) {
  if (is_stdout(path)) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) cannot_write(path, EISDIR);
    if (S_ISFIFO(st.st_mode)) return;  // opening it would wait for a reader
    // Opened without O_TRUNC or O_CREAT: the existing file is left as it is.
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) cannot_write(path, errno);
    ::close(fd);
    // A regular file is replaced by a rename in its folder, which must allow creating the temporary file;
    // anything else, a symbolic link included (/dev/stdout), is written in place (mode_of).
    struct stat link {};
    if (::lstat(path.c_str(), &link) != 0 || !S_ISREG(link.st_mode)) return;
  } else if (errno != ENOENT) {
    cannot_write(path, errno);
  }
  const std::string folder = folder_of(path);
  struct stat dir {};
  if (::stat(folder.c_str(), &dir) != 0) cannot_write(path, errno);
  if (!S_ISDIR(dir.st_mode)) cannot_write(path, ENOTDIR);
  const std::string probe = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) cannot_write(path, errno);
  ::close(fd);
  std::remove(probe.c_str());
}

void check_output_is_not_input(const std::string& output, const std::vector<std::string>& inputs,
                               const std::string& option) {
  if (output.empty() || output == "-") return;
  struct stat out {};
  if (::stat(output.c_str(), &out) != 0 || !S_ISREG(out.st_mode)) return;
  for (const auto& in : inputs) {
    struct stat st {};
    if (::stat(in.c_str(), &st) == 0 && st.st_dev == out.st_dev && st.st_ino == out.st_ino)
      throw UsageError(option + " '" + output + "' is the input file '" + in + "'; choose another output file");
  }
}

void check_distinct_outputs(const std::string& report, const std::string& stats) {
  if (stats.empty()) return;
  const bool to_stdout = report.empty() || report == "-";
  const std::string where = to_stdout ? "the report (stdout)" : "-o '" + report + "'";
  if (stats == report || (stats == "-" && to_stdout))
    throw UsageError("--save-stats '" + stats + "' and " + where + " are the same file");
  // Even with the report in a file: the statistics are a binary archive, never written to stdout.
  if (stats == "-") throw UsageError("--save-stats needs a file name: the statistics are binary, not for stdout ('-')");
  struct stat a {}, b {};
  const bool have_report = to_stdout ? ::fstat(STDOUT_FILENO, &a) == 0 : ::stat(report.c_str(), &a) == 0;
  if (have_report && ::stat(stats.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    throw UsageError("--save-stats '" + stats + "' and " + where + " are the same file; choose another file");
}

}  // namespace qreport
