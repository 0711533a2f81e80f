// Calibration run identifiers (stats.h). What identifies a run is what its statistics were computed
// from, not when it ran: the same batches calibrated twice are the same run to a merge, which must not
// count them twice. The archive is identified by its path, size and modification time rather than its
// bytes, which would cost a second read of data that may be gigabytes.
#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include "common/text.h"
#include "stats/stats.h"

namespace qreport::stats {

std::string run_identifier(const std::string& model_sha256, const std::string& calib_path,
                           const std::vector<size_t>& batches_used, const std::string& settings) {
  std::string key = "qreport-run\n" + model_sha256 + "\n";
  char resolved[PATH_MAX];
  key += (::realpath(calib_path.c_str(), resolved) ? std::string(resolved) : calib_path) + "\n";
  struct stat st {};
  if (::stat(calib_path.c_str(), &st) == 0)
    key += std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + "\n";
  // Runs of contiguous batches as "first-last", so that a million batches stay a short key.
  for (size_t i = 0; i < batches_used.size();) {
    size_t j = i;
    while (j + 1 < batches_used.size() && batches_used[j + 1] == batches_used[j] + 1) ++j;
    key += std::to_string(batches_used[i]) + "-" + std::to_string(batches_used[j]) + ",";
    i = j + 1;
  }
  key += "\n" + settings;
  return sha256_hex(reinterpret_cast<const unsigned char*>(key.data()), key.size(), true).substr(0, 32);
}

}  // namespace qreport::stats
