#include "observers/stat_observers.h"

namespace qreport::observers {

void RangeObserver::observe(const at::Tensor& x) {
  if (!invalid_.empty()) return;
  if (x.numel() == 0) {
    invalid_ = "an empty tensor was observed";
    return;
  }
  auto [mn, mx] = at::aminmax(x);
  if (n_ == 0) {
    epoch_min_ = mn;
    epoch_max_ = mx;
    avg_range_ = mx - mn;
  } else {
    // Same float32 operations, in the same order, as ModelReportObserver._calculate_range_stats.
    epoch_min_ = at::minimum(epoch_min_, mn);
    epoch_max_ = at::maximum(epoch_max_, mx);
    avg_range_ = (avg_range_ * n_ + (mx - mn)) / (n_ + 1);
  }
  ++n_;
}

RangeSummary RangeObserver::finalize() const {
  RangeSummary s;
  s.batches = n_;
  s.invalid = invalid_;
  if (n_ > 0 && invalid_.empty()) {
    s.avg_range = avg_range_.cpu().item<float>();
    s.epoch_min = epoch_min_.cpu().item<float>();
    s.epoch_max = epoch_max_.cpu().item<float>();
  }
  return s;
}

}  // namespace qreport::observers
