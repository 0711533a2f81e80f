#include "observers/stat_observers.h"

namespace qreport::observers {

struct ObservationPoint::Impl {
  int64_t calls = 0;
  std::optional<RangeObserver> range;
  std::map<int, MinMaxObserver> minmax;
  std::map<std::pair<int, float>, PercentileObserver> percentile;
  // Host copies, filled by finalize().
  std::optional<RangeSummary> range_summary;
  std::map<int, MinMaxSummary> minmax_summary;
  std::map<std::pair<int, float>, PercentileSummary> percentile_summary;
};

ObservationPoint::ObservationPoint() : impl_(std::make_unique<Impl>()) {}
ObservationPoint::~ObservationPoint() = default;
ObservationPoint::ObservationPoint(ObservationPoint&&) noexcept = default;
ObservationPoint& ObservationPoint::operator=(ObservationPoint&&) noexcept = default;

void ObservationPoint::want_range() {
  if (!impl_->range) impl_->range.emplace();
}
void ObservationPoint::want_minmax(int ch_axis) { impl_->minmax.try_emplace(ch_axis, ch_axis); }
void ObservationPoint::want_percentile(int ch_axis, float q) {
  impl_->percentile.try_emplace({ch_axis, q}, ch_axis, q);
}

void ObservationPoint::observe(const at::Tensor& x) {
  ++impl_->calls;
  // ModelReportObserver works on x.detach().to(float32); the observed value itself is never modified.
  at::Tensor xf = x.detach().to(at::kFloat);
  if (impl_->range) impl_->range->observe(xf);
  for (auto& [axis, obs] : impl_->minmax) obs.observe(xf);
  for (auto& [key, obs] : impl_->percentile) obs.observe(xf);
}

void ObservationPoint::finalize() {
  if (impl_->range) impl_->range_summary = impl_->range->finalize();
  for (auto& [axis, obs] : impl_->minmax) impl_->minmax_summary[axis] = obs.finalize();
  for (auto& [key, obs] : impl_->percentile) impl_->percentile_summary[key] = obs.finalize();
}

int64_t ObservationPoint::calls() const { return impl_->calls; }

const RangeSummary* ObservationPoint::range() const {
  return impl_->range_summary ? &*impl_->range_summary : nullptr;
}
const MinMaxSummary* ObservationPoint::minmax(int ch_axis) const {
  auto it = impl_->minmax_summary.find(ch_axis);
  return it == impl_->minmax_summary.end() ? nullptr : &it->second;
}
const PercentileSummary* ObservationPoint::percentile(int ch_axis, float q) const {
  auto it = impl_->percentile_summary.find({ch_axis, q});
  return it == impl_->percentile_summary.end() ? nullptr : &it->second;
}

}  // namespace qreport::observers
