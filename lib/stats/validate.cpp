// What a statistics file must satisfy beyond its types. The digest refuses damage; these checks refuse
// what the digest cannot: a file edited by hand and signed again, or written by a faulty tool. Each is a
// property every file qreport writes has, so none can refuse a genuine file.
#include <algorithm>
#include <cmath>
#include <set>

#include "common/errors.h"
#include "stats/stats.h"

namespace qreport::stats {
namespace {

class Check {
 public:
  explicit Check(std::string name) : name_(std::move(name)) {}
  [[noreturn]] void bad(const std::string& why) const {
    throw InputError("statistics file " + name_ + " is not valid: " + why);
  }
  void that(bool ok, const std::string& why) const {
    if (!ok) bad(why);
  }

 private:
  std::string name_;
};

bool finite(float v) { return std::isfinite(v); }

// min <= max where both are finite (NaN or an infinity means "no data" or "not computable", which the
// detectors handle).
bool ordered(float lo, float hi) { return !(finite(lo) && finite(hi)) || lo <= hi; }

bool is_hex(const std::string& s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// The channel axis a statistic was asked for, against the settings it was observed with: --ch-axis N asks
// N everywhere; auto asks axis 1 (channels) or -1 (features), per module.
void check_ch_axis(const Check& c, const Settings& s, int ch_axis, const std::string& where) {
  if (s.ch_axis == "auto")
    c.that(ch_axis == 1 || ch_axis == -1, where + " was asked for axis " + std::to_string(ch_axis) +
                                              ", which --ch-axis auto never asks (1 or -1)");
  else
    c.that(std::to_string(ch_axis) == s.ch_axis,
           where + " was asked for axis " + std::to_string(ch_axis) + ", but the file says --ch-axis " + s.ch_axis);
}

// The axis used: -1 with nothing observed; else the one asked (counted from the front when it is), and
// below 64, LibTorch's bound on a tensor's dimensions.
void check_axis(const Check& c, int ch_axis, int axis, size_t channels, const std::string& where) {
  if (channels == 0) return;
  c.that(axis >= 0 && axis < 64, where + " has axis " + std::to_string(axis) + ", out of range");
  if (ch_axis >= 0)
    c.that(axis == ch_axis, where + " has axis " + std::to_string(axis) + ", but was asked for axis " +
                                std::to_string(ch_axis));
}

void check_point(const Check& c, const Settings& s, const StatsFile::Point& p) {
  const std::string at = "'" + p.site + "' (" + p.side + ")";
  const int64_t calls = p.stats.calls;
  if (p.stats.range) {
    const auto& r = *p.stats.range;
    c.that(r.batches <= calls, "the range of " + at + " counts more batches than calls");
    c.that(!(r.avg_range < 0), "the range of " + at + " has a negative average range");
    c.that(ordered(r.epoch_min, r.epoch_max), "the range of " + at + " has min > max");
  }
  for (const auto& [ch_axis, m] : p.stats.minmax) {
    const std::string where = "the min/max of " + at;
    check_ch_axis(c, s, ch_axis, where);
    check_axis(c, ch_axis, m.axis, m.min.size(), where);
    for (size_t i = 0; i < m.min.size(); ++i)
      c.that(ordered(m.min[i], m.max[i]), where + " has min > max in channel " + std::to_string(i));
  }
  for (const auto& [key, q] : p.stats.percentile) {
    const std::string where = "the percentile statistics of " + at;
    check_ch_axis(c, s, key.first, where);
    check_axis(c, key.first, q.axis, q.avg_ratio.size(), where);
    c.that(key.second == static_cast<float>(s.outlier_reference_percentile),
           where + " are of another percentile than the file's settings");
    c.that(q.batches <= calls, where + " count more batches than calls");
    for (size_t i = 0; i < q.avg_ratio.size(); ++i) {
      c.that(q.batches_used[i] >= 0 && q.batches_used[i] <= q.batches && q.constant_batches[i] >= 0 &&
                 q.constant_batches[i] <= q.batches,
             where + " have batch counts out of [0, " + std::to_string(q.batches) + "] in channel " + std::to_string(i));
    }
    // The same value on the same axis: minima/maxima and percentiles agree on its channels.
    auto mm = p.stats.minmax.find(key.first);
    if (mm != p.stats.minmax.end() && !mm->second.min.empty() && !q.avg_ratio.empty())
      c.that(mm->second.axis == q.axis && mm->second.min.size() == q.avg_ratio.size(),
             where + " disagree with its min/max on the channels (" + std::to_string(q.avg_ratio.size()) + " against " +
                 std::to_string(mm->second.min.size()) + ")");
  }
  if (p.stats.histogram) {
    const auto& h = *p.stats.histogram;
    const std::string where = "the histogram of " + at;
    c.that(h.batches <= calls, where + " counts more batches than calls");
    c.that(h.count >= 0, where + " has a negative count");
    c.that(!(h.sum_squares < 0), where + " has a negative sum of squares");
    // HistogramObserver combines batches by differences of cumulative sums in float32, which leaves bins
    // of a few thousandths below zero on genuine files (-0.0069 with 196,608 values): a count is negative
    // only beyond that rounding, a millionth of the values counted.
    const double rounding = 1e-6 * static_cast<double>(std::max<int64_t>(h.count, 1));
    for (size_t i = 0; i < h.histogram.size(); ++i)
      c.that(h.histogram[i] >= -rounding && std::isfinite(h.histogram[i]),
             where + " has a negative or non-finite count in bin " + std::to_string(i));
    c.that(ordered(h.min_val, h.max_val), where + " has min > max");
    c.that(ordered(h.data_min, h.data_max), where + " has a data min > data max");
  }
}

}  // namespace

void validate(const StatsFile& f, const std::string& name) {
  const Check c(name);
  c.that(is_hex(f.model_sha256, 64), "the model's sha256 is not 64 hex digits");
  c.that(f.settings.ch_axis == "auto" ||
             (!f.settings.ch_axis.empty() && f.settings.ch_axis.size() <= 2 &&
              f.settings.ch_axis.find_first_not_of("0123456789") == std::string::npos),
         "settings.ch_axis is '" + f.settings.ch_axis + "' (auto or an axis)");
  c.that(f.settings.outlier_reference_percentile >= 0 && f.settings.outlier_reference_percentile <= 1,
         "settings.outlier_reference_percentile is not in [0, 1]");
  std::set<std::string> detectors;
  for (const auto& d : f.settings.detectors)
    c.that(!d.empty() && detectors.insert(d).second, "settings.detectors names '" + d + "' twice, or an empty name");
  c.that(!f.calibration.empty(), "it names no calibration run");
  std::set<std::string> runs;
  int64_t batches = 0;
  for (const auto& s : f.calibration) {
    c.that(is_hex(s.run, 32), "calibration run '" + s.run + "' is not 32 hex digits");
    c.that(runs.insert(s.run).second, "calibration run " + s.run + " (" + s.path + ") is counted twice");
    c.that(!__builtin_add_overflow(batches, s.batches, &batches), "its batch counts overflow");
  }
  std::set<std::pair<std::string, std::string>> points;
  for (const auto& p : f.points) {
    c.that(points.insert({p.site, p.side}).second, "the " + p.side + " of '" + p.site + "' appears twice");
    check_point(c, f.settings, p);
  }
}

}  // namespace qreport::stats
