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

namespace c10 {
struct IValue;
}

namespace qreport::stats {

// 2: a digest over the records, each calibration run's identifier, the histogram's stated bin count.
constexpr int64_t kFormatVersion = 2;
// HistogramObserver's bins (PyTorch's default), the only count the error detector reads.
constexpr int64_t kHistogramBins = 2048;

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

// One calibration run merged into the statistics. `run` identifies it (run_identifier()), so that the same
// run is never counted twice by merge or report --stats.
struct Source {
  std::string path;
  int64_t batches = 0;
  std::string run;
};

// The identifier of a calibration run: a hash of what its statistics were computed from (the model's
// sha256, the archive as the run named it and the archive's size and modification time, the batches it
// used out of it, and the observation settings), as 32 hex digits. Deterministic, so a file written
// twice from the same inputs is the same bytes, and a second calibration over the same batches is
// recognised as the same run.
std::string run_identifier(const std::string& model_sha256, const std::string& calib_path,
                           const std::vector<size_t>& batches_used, const std::string& settings);

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
// Reads one file with the checks untrusted input gets: the archive's, the digest, every key's type, and
// validate()'s. Every problem is an InputError naming the file. check_digest=false only for the fuzz
// target, which must reach the checks behind the digest with mutated files.
StatsFile load(const std::string& path, bool check_digest = true);
// The same layout in memory, for the distributed reduction (bytes from the job's own ranks).
std::string to_bytes(const StatsFile& file);
StatsFile from_bytes(const std::string& bytes, const std::string& name);

// "sha256:<64 hex digits>" over a canonical encoding of `root` (the file's dict) without its "digest" key
// (docs/statistics.md states the encoding). InputError for values no statistics file holds.
std::string digest_of(const c10::IValue& root);

// What a file must satisfy beyond its types, on its own (the model's plan is checked by lib/pipeline):
// minima not above maxima, counts non-negative and consistent with each other and with the batches, axes
// consistent with the channel axis asked for, the histogram's bins as stated, each run once, no point
// twice. InputError naming `name` and the first problem.
void validate(const StatsFile& file, const std::string& name);

// Combines files from runs of the same model and settings (InputError otherwise, naming the difference):
// a run found in two files, or counts that would overflow, are refused naming the file.
StatsFile merge(const std::vector<StatsFile>& files, const std::vector<std::string>& names);

}  // namespace qreport::stats
