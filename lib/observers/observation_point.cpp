#include <cmath>
#include <limits>
#include <set>

#include "observers/channel_kernel.h"
#include "observers/stat_observers.h"

namespace qreport::observers {

struct ObservationPoint::Impl {
  int64_t calls = 0;
  std::optional<RangeObserver> range;
  std::map<int, MinMaxObserver> minmax;
  std::map<std::pair<int, float>, PercentileObserver> percentile;
  std::optional<HistogramObserver> histogram;
  std::set<int> axes;  // channel axes some statistic wants, fixed before the first batch
  // CPU path: per-axis scratch, reused across batches.
  ChannelBatchStats batch;
  std::vector<int64_t> ranks;
  std::vector<PercentileObserver*> accepted;
  // Host copies, filled by finalize().
  std::optional<RangeSummary> range_summary;
  std::map<int, MinMaxSummary> minmax_summary;
  std::map<std::pair<int, float>, PercentileSummary> percentile_summary;
  std::optional<HistogramSummary> histogram_summary;

  // rows_kernel: the caller can take [rows, C] tensors as they are (channel_stats_rows_cpu).
  template <class F>
  void for_each_axis(const at::Tensor& x, bool rows_kernel, F&& fn);
  void observe_cpu(const at::Tensor& x);
  void observe_device(const at::Tensor& x);
};

namespace {


// Below this many contiguous values per channel run, reading a channel in place is mostly cache misses;
// a channel-first copy (small, since such tensors are Linear-like [N, C]) is cheaper.
constexpr int64_t kMinRun = 16;

}  // namespace

// Calls fn(y, outer, C, inner, minmax-or-null, rows) once per channel axis that some statistic wants and
// accepts this batch (accepted percentiles and their ranks in the members); y is x, or a channel-first copy
// when x's per-channel runs are too short to read in place. rows: y is [outer, C] as it is and goes to the
// rows kernel (only where the caller allows it).
template <class F>
void ObservationPoint::Impl::for_each_axis(const at::Tensor& x, bool rows_kernel, F&& fn) {
  for (int axis : axes) {
    auto mm = minmax.find(axis);
    MinMaxObserver* want_mm = mm != minmax.end() && mm->second.accept(x) ? &mm->second : nullptr;
    accepted.clear();
    for (auto& [key, obs] : percentile)
      if (key.first == axis && obs.accept(x)) accepted.push_back(&obs);
    if (!want_mm && accepted.empty()) continue;

    const int a = resolve_axis(axis, x.dim());  // accept() checked that it exists
    int64_t c = x.size(a), outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= x.size(d);
    for (int64_t d = a + 1; d < x.dim(); ++d) inner *= x.size(d);
    ranks.clear();
    for (auto* obs : accepted) ranks.push_back(quantile_lower_rank(obs->q(), outer * inner));
    at::Tensor y = x;
    const bool rows = rows_kernel && inner == 1 && outer > 1 && rows_kernel_applies(outer, ranks);
    if (inner < kMinRun && outer > 1 && !rows) {
      y = x.movedim(a, 0).contiguous();
      inner *= outer;
      outer = 1;
    }
    fn(y, outer, c, inner, want_mm, rows);
  }
}

// One fused kernel call per channel axis serves every statistic on that axis; the tensor-wide range is
// then the min/max of the channel results (NaN if any channel saw one, as aminmax).
void ObservationPoint::Impl::observe_cpu(const at::Tensor& xin) {
  at::Tensor x = xin.contiguous();
  bool range_done = false;
  for_each_axis(x, true, [&](const at::Tensor& y, int64_t outer, int64_t c, int64_t inner, MinMaxObserver* mm,
                             bool rows) {
    if (rows)
      channel_stats_rows_cpu(y.data_ptr<float>(), outer, c, ranks, batch);
    else
      channel_stats_cpu(y.data_ptr<float>(), outer, c, inner, ranks, batch);
    if (mm) mm->update(batch.min.data(), batch.max.data(), c);
    for (size_t r = 0; r < accepted.size(); ++r)
      accepted[r]->update(batch.min.data(), batch.kth.data() + r * c, batch.max.data(), c);
    if (range && !range_done) {
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      for (int64_t i = 0; i < c; ++i) {
        if (std::isnan(batch.min[i])) {
          mn = mx = kNaN;
          break;
        }
        mn = std::min(mn, batch.min[i]);
        mx = std::max(mx, batch.max[i]);
      }
      range->update(mn, mx);
      range_done = true;
    }
  });
  if (range && !range_done) {
    if (x.numel() == 0) {
      range->invalidate("an empty tensor was observed");
      return;
    }
    auto [mn, mx] = at::aminmax(x);
    range->update(mn.item<float>(), mx.item<float>());  // CPU tensors: no device sync involved
  }
}

void ObservationPoint::Impl::observe_device(const at::Tensor& xin) {
#if defined(QREPORT_WITH_CUDA_KERNELS)
  if (xin.is_cuda()) {  // fused kernels; the rare per-tensor range keeps ATen's aminmax
    at::Tensor x = xin.contiguous();
    if (range) range->observe(x);
    for_each_axis(x, false, [&](const at::Tensor& y, int64_t outer, int64_t c, int64_t inner, MinMaxObserver* mm,
                                bool) {
      cuda_channel_stats(y, outer, c, inner, mm, accepted, ranks);
    });
    return;
  }
#endif
  const at::Tensor& x = xin;
  if (range) range->observe(x);
  for (auto& [axis, obs] : minmax) obs.observe(x);
  for (auto& [key, obs] : percentile) obs.observe(x);
}

ObservationPoint::ObservationPoint() : impl_(std::make_unique<Impl>()) {}
ObservationPoint::~ObservationPoint() = default;
ObservationPoint::ObservationPoint(ObservationPoint&&) noexcept = default;
ObservationPoint& ObservationPoint::operator=(ObservationPoint&&) noexcept = default;

void ObservationPoint::want_range() {
  if (!impl_->range) impl_->range.emplace();
}
void ObservationPoint::want_minmax(int ch_axis) {
  impl_->minmax.try_emplace(ch_axis, ch_axis);
  impl_->axes.insert(ch_axis);
}
void ObservationPoint::want_percentile(int ch_axis, float q) {
  impl_->percentile.try_emplace({ch_axis, q}, ch_axis, q);
  impl_->axes.insert(ch_axis);
}

void ObservationPoint::want_histogram() {
  if (!impl_->histogram) impl_->histogram.emplace();
}

void ObservationPoint::observe(const at::Tensor& x) {
  ++impl_->calls;
  // ModelReportObserver works on x.detach().to(float32); the observed value itself is never modified.
  at::Tensor xf = x.detach().to(at::kFloat);
  if (xf.is_cpu())
    impl_->observe_cpu(xf);
  else
    impl_->observe_device(xf);
  if (impl_->histogram) impl_->histogram->observe(xf);
}

void ObservationPoint::finalize() {
  if (impl_->range) impl_->range_summary = impl_->range->finalize();
  for (auto& [axis, obs] : impl_->minmax) impl_->minmax_summary[axis] = obs.finalize();
  for (auto& [key, obs] : impl_->percentile) impl_->percentile_summary[key] = obs.finalize();
  if (impl_->histogram) impl_->histogram_summary = impl_->histogram->finalize();
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

ObservationPoint::Finished ObservationPoint::finished() const {
  return {impl_->calls, impl_->range_summary, impl_->minmax_summary, impl_->percentile_summary,
          impl_->histogram_summary};
}

void ObservationPoint::restore(Finished f) {
  impl_->calls = f.calls;
  impl_->range_summary = std::move(f.range);
  impl_->minmax_summary = std::move(f.minmax);
  impl_->percentile_summary = std::move(f.percentile);
  impl_->histogram_summary = std::move(f.histogram);
}

const HistogramSummary* ObservationPoint::histogram() const {
  return impl_->histogram_summary ? &*impl_->histogram_summary : nullptr;
}

}  // namespace qreport::observers
