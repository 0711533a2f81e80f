#include <cmath>
#include <limits>

#include "observers/stat_observers.h"

namespace qreport::observers {
void RangeObserver::update(float mn, float mx) {
  if (!invalid_.empty()) return;
  if (n_ == 0) {
    min_ = mn;
    max_ = mx;
    avg_ = mx - mn;
  } else {
    // Same float32 operations, in the same order, as ModelReportObserver._calculate_range_stats.
    min_ = nan_min(min_, mn);
    max_ = nan_max(max_, mx);
    avg_ = (avg_ * static_cast<float>(n_) + (mx - mn)) / static_cast<float>(n_ + 1);
  }
  ++n_;
}

void RangeObserver::observe(const at::Tensor& x) {
  if (!invalid_.empty()) return;
  if (x.numel() == 0) {
    invalid_ = "an empty tensor was observed";
    return;
  }
  auto [mn, mx] = at::aminmax(x);
  if (n_ == 0) {
    min_t_ = mn;
    max_t_ = mx;
    avg_t_ = mx - mn;
  } else {
    min_t_ = at::minimum(min_t_, mn);
    max_t_ = at::maximum(max_t_, mx);
    // The divisor as a tensor on x's device: CUDA divides by a host scalar as a multiplication by its
    // reciprocal, one rounding off the CPU's (and ModelReport's) true division.
    avg_t_ = (avg_t_ * n_ + (mx - mn)) / at::full({}, static_cast<double>(n_ + 1), mn.options());
  }
  ++n_;
}

RangeSummary RangeObserver::finalize() const {
  RangeSummary s;
  s.batches = n_;
  s.invalid = invalid_;
  if (n_ > 0 && invalid_.empty()) {
    if (avg_t_.defined()) {
      at::Tensor host = at::stack({avg_t_, min_t_, max_t_}).cpu();  // the run's one transfer
      s.avg_range = host[0].item<float>();
      s.epoch_min = host[1].item<float>();
      s.epoch_max = host[2].item<float>();
    } else {
      s.avg_range = avg_;
      s.epoch_min = min_;
      s.epoch_max = max_;
    }
  }
  return s;
}

}  // namespace qreport::observers
