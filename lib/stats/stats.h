// Statistics files (.qstats): what each observation point accumulated during calibration, with the
// settings it was observed with and where the data came from, so that the detectors can run again
// (`qreport report`) and runs over separate shards can be combined (`qreport merge`) without calibrating
// again. The file is a torch.save-compatible archive (torch.load opens it in Python); docs/statistics.md
// documents its layout. Every statistic merges exactly: minima, maxima and counts bit for bit, averages
// as count-weighted sums.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "observers/observers.h"

namespace qreport::stats {

constexpr int64_t kFormatVersion = 1;

// What the observations depended on: files may merge, and `qreport report` may run, only where these agree.
struct Settings {
  std::string ch_axis = "auto";                 // --ch-axis: "auto" or N
  std::vector<std::string> detectors;           // the detectors whose observations were made
  double outlier_reference_percentile = 0.975;  // the percentile the outlier detector observed
  bool operator==(const Settings& o) const {
    return ch_axis == o.ch_axis && detectors == o.detectors &&
           outlier_reference_percentile == o.outlier_reference_percentile;
  }
};

// "--ch-axis auto, detectors a,b, outlier reference percentile 0.975", for messages.
std::string describe(const Settings& s);

struct Source {
  std::string path;
  int64_t batches = 0;
};

struct StatsFile {
  std::string tool;  // "qreport 0.1.0", of the writer
  std::string model_path, model_sha256;
  std::vector<Source> calibration;  // one entry per calibration run merged in
  std::string device;
  Settings settings;
  // One entry per observation point: the observed call site, "input" or "output", and its statistics.
  struct Point {
    std::string site, side;
    observers::ObservationPoint::Finished stats;
  };
  std::vector<Point> points;
  int64_t batches() const;
};

// Writes the file (replaced atomically). Throws InputError when it cannot be written.
void save(const StatsFile& file, const std::string& path);
// Reads one file with the checks untrusted input gets; every problem is an InputError naming the file.
StatsFile load(const std::string& path);
// The same layout in memory, for the distributed reduction (bytes from the job's own ranks).
std::string to_bytes(const StatsFile& file);
StatsFile from_bytes(const std::string& bytes, const std::string& name);

// Combines files from runs of the same model and settings (InputError otherwise, naming the difference).
StatsFile merge(const std::vector<StatsFile>& files, const std::vector<std::string>& names);

}  // namespace qreport::stats
