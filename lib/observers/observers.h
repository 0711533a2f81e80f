// Stage 4: native statistics equal to PyTorch's ModelReportObserver (reference spec §1), computed on the
// tensor's own device without host synchronisation; copied to the host once, by finalize().
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace at { class Tensor; }

namespace qreport::observers {

// Index that torch.quantile(row, q, interpolation="lower") selects in a sorted row of m elements:
// floor(float32(q * float32(m - 1))), the product rounded to float32 as PyTorch does (spec §1.3).
int64_t quantile_lower_rank(float q, int64_t m);

// Per-tensor range statistics (the dynamic-vs-static detector's S).
struct RangeSummary {
  int64_t batches = 0;
  float avg_range = 0.0f;
  float epoch_min = std::numeric_limits<float>::infinity();
  float epoch_max = -std::numeric_limits<float>::infinity();
  std::string invalid;  // non-empty when the statistic could not be computed, with the reason
};

// S = average batch range / epoch range. Unlike PyTorch (which raises, or returns -0.0 with no data),
// returns nullopt with the reason in *why when the epoch range is 0, infinite or there was no data.
std::optional<float> batch_to_epoch_ratio(const RangeSummary& r, std::string* why);

// Running per-channel min and max along one axis.
struct MinMaxSummary {
  int axis = -1;  // the axis used, counted from the front (-1: nothing observed)
  std::vector<float> min, max;
  std::string invalid;
};

// Per-channel percentile statistics: the average of max/percentile over the batches where the channel
// was usable, how many batches were usable, and how many were constant.
struct PercentileSummary {
  int axis = -1;  // the axis used, counted from the front (-1: nothing observed)
  int64_t batches = 0;
  std::vector<float> avg_ratio;
  std::vector<int32_t> batches_used;
  std::vector<int32_t> constant_batches;
  std::string invalid;
};

// All statistics wanted of one observed value (a module's input or output). Several detectors may ask
// for different statistics of the same value; each is computed once with the settings asked for.
class ObservationPoint {
 public:
  ObservationPoint();
  ~ObservationPoint();
  ObservationPoint(ObservationPoint&&) noexcept;
  ObservationPoint& operator=(ObservationPoint&&) noexcept;

  // A negative ch_axis counts from the last axis of each observed tensor (-1: the last), so a Linear's
  // features are found whatever the rank of its input.
  void want_range();
  void want_minmax(int ch_axis);
  void want_percentile(int ch_axis, float q);

  // Updates every wanted statistic with one observed tensor (any dtype, any device).
  void observe(const at::Tensor& x);
  // Copies the statistics to the host. Call once, after the last observe().
  void finalize();

  int64_t calls() const;
  const RangeSummary* range() const;
  const MinMaxSummary* minmax(int ch_axis) const;
  const PercentileSummary* percentile(int ch_axis, float q) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qreport::observers
