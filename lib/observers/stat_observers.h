// Internal: one class per statistic, holding device tensors between batches.
#pragma once
#include <ATen/ATen.h>

#include "observers/observers.h"

namespace qreport::observers {

class RangeObserver {
 public:
  void observe(const at::Tensor& x);  // x is float32
  RangeSummary finalize() const;

 private:
  int64_t n_ = 0;
  at::Tensor avg_range_, epoch_min_, epoch_max_;
  std::string invalid_;
};

class MinMaxObserver {
 public:
  explicit MinMaxObserver(int ch_axis) : ch_axis_(ch_axis) {}
  void observe(const at::Tensor& x);
  MinMaxSummary finalize() const;

 private:
  int ch_axis_;
  at::Tensor min_, max_;
  std::string invalid_;
};

class PercentileObserver {
 public:
  PercentileObserver(int ch_axis, float q) : ch_axis_(ch_axis), q_(q) {}
  void observe(const at::Tensor& x);
  PercentileSummary finalize() const;

 private:
  int ch_axis_;
  float q_;
  int64_t n_ = 0;
  at::Tensor avg_ratio_, batches_used_, constant_;
  std::string invalid_;
};

// Checks that ch_axis exists in x and that the channel count matches earlier batches; returns the reason
// when it does not (PyTorch raises IndexError or a broadcasting error there).
std::string channel_problem(const at::Tensor& x, int ch_axis, const at::Tensor& previous);

// x as [C, M] with the channel axis first; a copy only when ch_axis is not already outermost.
at::Tensor channels_first_2d(const at::Tensor& x, int ch_axis);

}  // namespace qreport::observers
