#include "common/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>

#include "common/errors.h"

namespace qreport {
namespace {

[[noreturn]] void cannot_write(const std::string& path) {
  throw InputError("cannot write output file '" + path + "'");
}

void write_all(int fd, const std::string& content, const std::string& path) {
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) cannot_write(path);
    done += static_cast<size_t>(n);
  }
}

void write_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) cannot_write(path);
  try {
    write_all(fd, content, path);
  } catch (...) {
    ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    cannot_write(path);
  }
}

}  // namespace

void write_output(const std::string& path, const std::string& content) {
  if (path.empty() || path == "-") {
    std::cout << content << std::flush;
    if (!std::cout) cannot_write(path.empty() ? "-" : path);
    return;
  }
  struct stat link {}, target {};
  const bool exists = ::lstat(path.c_str(), &link) == 0;
  const bool regular = exists && S_ISREG(link.st_mode);
  if (!exists || regular) return write_atomically(path, content);
  if (S_ISDIR(link.st_mode) || (::stat(path.c_str(), &target) == 0 && S_ISDIR(target.st_mode)))
    throw InputError("cannot write output file '" + path + "': it is a directory");
  // In place: no O_CREAT (it exists), O_TRUNC for a link to a regular file; devices and FIFOs ignore it.
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) cannot_write(path);
  try {
    write_all(fd, content, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) cannot_write(path);
}

void check_output_is_not_input(const std::string& output, const std::vector<std::string>& inputs) {
  if (output.empty() || output == "-") return;
  struct stat out {};
  if (::stat(output.c_str(), &out) != 0 || !S_ISREG(out.st_mode)) return;
  for (const auto& in : inputs) {
    struct stat st {};
    if (::stat(in.c_str(), &st) == 0 && st.st_dev == out.st_dev && st.st_ino == out.st_ino)
      throw UsageError("-o '" + output + "' is the input file '" + in + "'; choose another output file");
  }
}

}  // namespace qreport
