// Merging statistics of separate runs (shards of the calibration data). Minima, maxima and counts
// combine exactly; averages combine as count-weighted sums in float64 (a single run keeps PyTorch's
// float32 running average, so the two agree to about 1e-6 relative). Histograms are combined onto the
// union of their ranges (docs/statistics.md: HistogramObserver's own state depends on batch order): by
// PyTorch >= 2.5's own transform of a histogram onto a wider range where qreport replays that
// observer, else re-binned in proportion to the bins' overlaps (PyTorch 1.13's merge needs a batch's
// raw values, not a histogram).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "common/errors.h"
#include "stats/stats.h"

namespace qreport::stats {
namespace {

using observers::HistogramSummary;
using observers::MinMaxSummary;
using observers::PercentileSummary;
using observers::RangeSummary;

using observers::nan_max;
using observers::nan_min;

// A count that would overflow if added: merge() names the file. A file of valid counts can still
// overflow a sum (counts near 2^63): the merge refuses it instead of wrapping around.
struct Overflow {
  std::string what;
};

template <class T>
T add(T a, T b, const char* what) {
  T sum;
  if (__builtin_add_overflow(a, b, &sum)) throw Overflow{what};
  return sum;
}

void keep_invalid(std::string& into, const std::string& other) {
  if (into.empty()) into = other;
}

RangeSummary merge_range(RangeSummary a, const RangeSummary& b) {
  keep_invalid(a.invalid, b.invalid);
  if (b.batches == 0) return a;
  if (a.batches == 0) return b;
  const int64_t batches = add(a.batches, b.batches, "range batches");
  const double n = static_cast<double>(batches);
  a.avg_range = static_cast<float>((static_cast<double>(a.avg_range) * a.batches +
                                    static_cast<double>(b.avg_range) * b.batches) / n);
  a.epoch_min = nan_min(a.epoch_min, b.epoch_min);
  a.epoch_max = nan_max(a.epoch_max, b.epoch_max);
  a.batches = batches;
  return a;
}

MinMaxSummary merge_minmax(MinMaxSummary a, const MinMaxSummary& b) {
  keep_invalid(a.invalid, b.invalid);
  if (b.min.empty()) return a;
  if (a.min.empty()) {
    MinMaxSummary r = b;
    keep_invalid(r.invalid, a.invalid);
    return r;
  }
  if (a.min.size() != b.min.size() || a.axis != b.axis) {
    keep_invalid(a.invalid, "the runs merged saw different channel counts or axes");
    return a;
  }
  for (size_t i = 0; i < a.min.size(); ++i) {
    a.min[i] = nan_min(a.min[i], b.min[i]);
    a.max[i] = nan_max(a.max[i], b.max[i]);
  }
  return a;
}

PercentileSummary merge_percentile(PercentileSummary a, const PercentileSummary& b) {
  keep_invalid(a.invalid, b.invalid);
  const int64_t batches = add(a.batches, b.batches, "percentile batches");
  if (b.avg_ratio.empty()) {
    a.batches = batches;
    return a;
  }
  if (a.avg_ratio.empty()) {
    PercentileSummary r = b;
    r.batches = batches;
    keep_invalid(r.invalid, a.invalid);
    return r;
  }
  if (a.avg_ratio.size() != b.avg_ratio.size() || a.axis != b.axis) {
    keep_invalid(a.invalid, "the runs merged saw different channel counts or axes");
    return a;
  }
  for (size_t i = 0; i < a.avg_ratio.size(); ++i) {
    const int32_t used = add(a.batches_used[i], b.batches_used[i], "batches used by a channel");
    const double sum = static_cast<double>(a.avg_ratio[i]) * a.batches_used[i] +
                       static_cast<double>(b.avg_ratio[i]) * b.batches_used[i];
    a.avg_ratio[i] = used > 0 ? static_cast<float>(sum / static_cast<double>(used)) : 0.0f;  // nan_to_num(0/0)
    a.batches_used[i] = used;
    a.constant_batches[i] = add(a.constant_batches[i], b.constant_batches[i], "constant batches of a channel");
  }
  a.batches = batches;
  return a;
}

// Adds `from`'s counts to `into` (bins over [lo, hi]) in proportion to each source bin's overlap with
// each target bin (counts spread uniformly within a bin, as HistogramObserver assumes).
void rebin_into(const HistogramSummary& from, float lo, float hi, std::vector<double>& into) {
  const int64_t bins = static_cast<int64_t>(into.size());
  const double w = (static_cast<double>(from.max_val) - from.min_val) / static_cast<double>(from.histogram.size());
  const double tw = (static_cast<double>(hi) - lo) / static_cast<double>(bins);
  for (size_t b = 0; b < from.histogram.size(); ++b) {
    const double n = from.histogram[b];
    if (n == 0.0) continue;
    const double a = from.min_val + w * static_cast<double>(b), c = a + w;
    if (!(w > 0.0) || !(tw > 0.0)) {  // a point mass
      const int64_t t = tw > 0.0 ? std::clamp<int64_t>(static_cast<int64_t>((a - lo) / tw), 0, bins - 1) : 0;
      into[t] += n;
      continue;
    }
    int64_t t0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor((a - lo) / tw)), 0, bins - 1);
    for (int64_t t = t0; t < bins; ++t) {
      const double ta = lo + tw * static_cast<double>(t), tc = ta + tw;
      const double overlap = std::min(c, tc) - std::max(a, ta);
      if (overlap > 0.0) into[t] += n * overlap / w;
      if (tc >= c) break;
    }
  }
}

HistogramSummary merge_histogram(HistogramSummary a, const HistogramSummary& b) {
  keep_invalid(a.invalid, b.invalid);
  if (b.batches == 0 || b.histogram.empty()) return a;
  if (a.batches == 0 || a.histogram.empty()) {
    HistogramSummary r = b;
    keep_invalid(r.invalid, a.invalid);
    return r;
  }
  const int64_t count = add(a.count, b.count, "histogram values");
  const int64_t batches = add(a.batches, b.batches, "histogram batches");
  const float lo = std::min(a.min_val, b.min_val), hi = std::max(a.max_val, b.max_val);
  if (observers::kHistogramMerge == observers::HistogramMerge::kUpscale && a.histogram.size() == b.histogram.size()) {
    // Each side as _combine_histograms moves the histogram it holds onto a batch's wider range; the two
    // then add in float32 as PyTorch adds a batch's histogram.
    std::vector<float> ta, tb;
    observers::upscale_histogram(a, lo, hi, ta);
    observers::upscale_histogram(b, lo, hi, tb);
    for (size_t i = 0; i < ta.size(); ++i) {
      a.histogram[i] = ta[i] + tb[i];
      if (!std::isfinite(a.histogram[i])) throw Overflow{"histogram counts"};
    }
  } else {
    std::vector<double> bins(a.histogram.size(), 0.0);
    rebin_into(a, lo, hi, bins);
    rebin_into(b, lo, hi, bins);
    for (size_t i = 0; i < bins.size(); ++i) {
      a.histogram[i] = static_cast<float>(bins[i]);
      if (!std::isfinite(a.histogram[i])) throw Overflow{"histogram counts"};
    }
  }
  a.min_val = lo;
  a.max_val = hi;
  a.data_min = std::min(a.data_min, b.data_min);
  a.data_max = std::max(a.data_max, b.data_max);
  a.sum_squares += b.sum_squares;
  a.count = count;
  a.batches = batches;
  return a;
}

observers::ObservationPoint::Finished merge_point(observers::ObservationPoint::Finished a,
                                                  const observers::ObservationPoint::Finished& b) {
  a.calls = add(a.calls, b.calls, "calls");
  if (b.range) a.range = a.range ? merge_range(*a.range, *b.range) : *b.range;
  for (const auto& [k, s] : b.minmax) {
    auto it = a.minmax.find(k);
    a.minmax[k] = it == a.minmax.end() ? s : merge_minmax(it->second, s);
  }
  for (const auto& [k, s] : b.percentile) {
    auto it = a.percentile.find(k);
    a.percentile[k] = it == a.percentile.end() ? s : merge_percentile(it->second, s);
  }
  if (b.histogram) a.histogram = a.histogram ? merge_histogram(*a.histogram, *b.histogram) : *b.histogram;
  return a;
}

}  // namespace

std::string describe(const Settings& s) {
  std::string d;
  for (const auto& x : s.detectors) d += (d.empty() ? "" : ",") + x;
  char q[32];
  std::snprintf(q, sizeof q, "%g", s.outlier_reference_percentile);
  return "--ch-axis " + s.ch_axis + ", detectors " + d + ", outlier reference percentile " + q;
}

StatsFile merge(const std::vector<StatsFile>& files, const std::vector<std::string>& names) {
  if (files.empty()) throw UsageError("nothing to merge");
  // Each calibration run once: the same run twice would count its batches twice.
  std::map<std::string, size_t> run_of;
  for (size_t f = 0; f < files.size(); ++f)
    for (const auto& s : files[f].calibration) {
      auto [it, fresh] = run_of.emplace(s.run, f);
      if (!fresh)
        throw InputError("statistics file '" + names[f] + "' holds calibration run " + s.run.substr(0, 12) + "... ('" +
                         s.path + "', " + std::to_string(s.batches) + " batches), which '" + names[it->second] +
                         "' holds already: merging them would count those batches twice");
    }
  StatsFile out = files[0];
  std::map<std::pair<std::string, std::string>, size_t> index;
  for (size_t i = 0; i < out.points.size(); ++i) index[{out.points[i].site, out.points[i].side}] = i;
  for (size_t f = 1; f < files.size(); ++f) {
    const StatsFile& s = files[f];
    if (s.model_sha256 != out.model_sha256)
      throw InputError("statistics file '" + names[f] + "' is of another model (sha256 " + s.model_sha256.substr(0, 12) +
                       "..., '" + names[0] + "' has " + out.model_sha256.substr(0, 12) + "...)");
    if (!(s.settings == out.settings))
      throw InputError("statistics file '" + names[f] + "' was observed with other settings (" + describe(s.settings) +
                       "; '" + names[0] + "': " + describe(out.settings) + ")");
    if (s.device != out.device) out.device += "+" + s.device;
    try {
      int64_t batches = out.batches();
      for (const auto& c : s.calibration) batches = add(batches, c.batches, "calibration batches");
      out.calibration.insert(out.calibration.end(), s.calibration.begin(), s.calibration.end());
      for (const auto& p : s.points) {
        auto it = index.find({p.site, p.side});
        if (it == index.end()) {
          index[{p.site, p.side}] = out.points.size();
          out.points.push_back(p);
        } else {
          try {
            out.points[it->second].stats = merge_point(out.points[it->second].stats, p.stats);
          } catch (const Overflow& o) {
            throw Overflow{o.what + " of the " + p.side + " of '" + p.site + "'"};
          }
        }
      }
    } catch (const Overflow& o) {
      throw InputError("statistics file '" + names[f] + "' cannot be merged with the files before it: the sum of " +
                       "their " + o.what + " would overflow");
    }
  }
  return out;
}

}  // namespace qreport::stats
