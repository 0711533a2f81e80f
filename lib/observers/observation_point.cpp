#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <set>

#include "observers/channel_kernel.h"
#include "observers/stat_observers.h"

namespace qreport::observers {

namespace {

// One channel axis of a batch as a kernel reads it: [outer, c, inner], or [outer rows, c] when rows.
struct AxisView {
  at::Tensor tensor;   // device path: what the kernel reads
  const float* data;   // CPU path: what the kernel reads (the batch, or Impl::reordered)
  int64_t outer, c, inner;
  bool rows;
  RankWindows* windows = nullptr;  // CPU path: this axis's learnt windows
  bool moments_read = false;       // CPU path: the copy into `data` already summed the moments
};

}  // namespace

struct ObservationPoint::Impl {
  int64_t calls = 0;
  std::optional<RangeObserver> range;
  std::map<int, MinMaxObserver> minmax;
  std::map<std::pair<int, float>, PercentileObserver> percentile;
  std::optional<HistogramObserver> histogram;
  std::map<int, MomentsObserver> moments;
  std::set<int> axes;  // channel axes some statistic wants, fixed before the first batch
  // CPU path: per-axis scratch, reused across batches.
  ChannelBatchStats batch;
  std::vector<int64_t> ranks;
  std::vector<PercentileObserver*> accepted;
  std::map<int, RankWindows> windows;  // per channel axis
  ChannelMoments batch_moments;
  GrowingBuffer reordered;  // a reordered copy of the batch
  std::vector<RangePart> range_parts;  // tensor_range_cpu's per-thread results
  // Host copies, filled by finalize().
  std::optional<RangeSummary> range_summary;
  std::map<int, MinMaxSummary> minmax_summary;
  std::map<std::pair<int, float>, PercentileSummary> percentile_summary;
  std::optional<HistogramSummary> histogram_summary;
  std::map<int, MomentsSummary> moments_summary;
  // NaN/inf counts: on the host for CPU tensors; for device tensors in `device_counts` ([nan, +inf, -inf,
  // first call], int64 on the device), updated without a sync and read by finalize().
  NonFiniteCount non_finite;
  at::Tensor device_counts;

  void count_non_finite(const at::Tensor& x);

  template <class F>
  void for_each_axis(const at::Tensor& x, bool cpu, F&& fn);
  std::optional<std::pair<float, float>> observe_cpu(const at::Tensor& x);  // x contiguous
  void observe_device(const at::Tensor& x);
};

namespace {


// Below this many contiguous values per channel run, reading a channel in place is mostly cache misses;
// a channel-first copy (small, since such tensors are Linear-like [N, C]) is cheaper.
constexpr int64_t kMinRun = 16;
// At most this many values per channel, the rows kernel on a transposed copy beats per-channel calls,
// whose fixed cost (a selection, a buffer) is then most of the work.
constexpr int64_t kSmallChannel = 256;

}  // namespace

// Calls fn(view, minmax-or-null) once per channel axis that some statistic wants and accepts this batch
// (accepted percentiles and their ranks in the members). On the CPU (cpu == true) the view's data is x,
// or x reordered into `reordered` where another layout reads faster: channels innermost for the rows
// kernel (view.rows), or channel-first where x's per-channel runs are too short to read in place. On a
// device the view's tensor is x, or its channel-first copy.
template <class F>
void ObservationPoint::Impl::for_each_axis(const at::Tensor& x, bool cpu, F&& fn) {
  for (int axis : axes) {
    auto mm = minmax.find(axis);
    MinMaxObserver* want_mm = mm != minmax.end() && mm->second.accept(x) ? &mm->second : nullptr;
    auto mo = moments.find(axis);
    MomentsObserver* want_mo = mo != moments.end() && mo->second.accept(x) ? &mo->second : nullptr;
    accepted.clear();
    for (auto& [key, obs] : percentile)
      if (key.first == axis && obs.accept(x)) accepted.push_back(&obs);
    if (!want_mm && accepted.empty() && !want_mo) continue;

    const int a = resolve_axis(axis, x.dim());  // accept() checked that it exists
    AxisView v{x, nullptr, 1, x.size(a), 1, false};
    for (int64_t d = 0; d < a; ++d) v.outer *= x.size(d);
    for (int64_t d = a + 1; d < x.dim(); ++d) v.inner *= x.size(d);
    const int64_t m = v.outer * v.inner;
    ranks.clear();
    for (auto* obs : accepted) ranks.push_back(quantile_lower_rank(obs->q(), m));
    if (!cpu) {
      if (v.inner < kMinRun && v.outer > 1) {
        v.tensor = x.movedim(a, 0).contiguous();
        v.inner = m;
        v.outer = 1;
      }
      fn(v, want_mm, want_mo);
      continue;
    }
    v.data = x.data_ptr<float>();
    RankWindows& w = windows[axis];
    if (w.lo.size() != ranks.size() * static_cast<size_t>(v.c)) w.reset(ranks.size() * v.c);
    v.windows = &w;
    if (v.inner == 1 && v.outer > 1 && rows_kernel_applies(v.outer, ranks)) {
      v.rows = true;  // already [rows, C]
    } else if (v.inner > 1 && m <= kSmallChannel && rows_kernel_applies(m, ranks)) {
      // Many small channels (late layers, small images): one transposed copy and the rows kernel,
      // eight channels per instruction, instead of a selection call per channel.
      float* dst = reordered.get(x.numel());
      to_channels_last(v.data, v.outer, v.c, v.inner, dst);
      v = AxisView{x, dst, m, v.c, 1, true, v.windows};
    } else if (v.inner < kMinRun && v.outer > 1) {
      float* dst = reordered.get(x.numel());
      // A Linear's input of more tokens than the rows kernel takes: the copy's read sums the moments.
      const bool sum_here = want_mo && v.inner == 1;
      if (sum_here)
        to_channels_first_moments(v.data, v.outer, v.c, dst, batch_moments);
      else
        to_channels_first(v.data, v.outer, v.c, v.inner, dst);
      v = AxisView{x, dst, 1, v.c, m, false, v.windows, sum_here};
    }
    fn(v, want_mm, want_mo);
  }
}

// One fused kernel call per channel axis serves every statistic on that axis; the tensor-wide range is
// then the min/max of the channel results (NaN if any channel saw one, as aminmax), returned for the
// histogram. Without any channel statistic, the range statistic takes its own read.
std::optional<std::pair<float, float>> ObservationPoint::Impl::observe_cpu(const at::Tensor& x) {
  std::optional<std::pair<float, float>> seen;
  for_each_axis(x, true, [&](const AxisView& v, MinMaxObserver* mm, MomentsObserver* mo) {
    const int64_t c = v.c;
    if (v.rows) {
      channel_stats_rows_cpu(v.data, v.outer, c, ranks, batch, mo ? &batch_moments : nullptr);
    } else {
      // Only a single row, or an axis that is not innermost, reaches here without its moments summed.
      if (mo && !v.moments_read) channel_moments_cpu(v.data, v.outer, c, v.inner, batch_moments);
      channel_stats_cpu(v.data, v.outer, c, v.inner, ranks, batch, v.windows);
    }
    if (mo) {
      const ChannelMoments& b = batch_moments;
      mo->update(b.s1.data(), b.s2.data(), b.s3.data(), b.s4.data(), b.above.data(), c, v.outer * v.inner);
    }
    if (mm) mm->update(batch.min.data(), batch.max.data(), c);
    for (size_t r = 0; r < accepted.size(); ++r)
      accepted[r]->update(batch.min.data(), batch.kth.data() + r * c, batch.max.data(), c);
    if (!seen) {
      float mn = kInf, mx = -kInf;
      for (int64_t i = 0; i < c; ++i) {
        mn = nan_min(mn, batch.min[i]);
        mx = nan_max(mx, batch.max[i]);
      }
      seen.emplace(mn, mx);
    }
  });
  if (range) {
    if (seen) {
      range->update(seen->first, seen->second);
    } else if (x.numel() == 0) {
      range->invalidate("an empty tensor was observed");
    } else {
      // One read for min, max and NaN; a finite result then also spares the caller's NaN/inf count.
      seen = tensor_range_cpu(x.data_ptr<float>(), x.numel(), range_parts);
      range->update(seen->first, seen->second);
    }
  }
  return seen;
}

void ObservationPoint::Impl::observe_device(const at::Tensor& xin) {
#if defined(QREPORT_WITH_CUDA_KERNELS)
  if (xin.is_cuda()) {  // fused kernels; the rare per-tensor range keeps ATen's aminmax
    at::Tensor x = xin.contiguous();
    if (range) range->observe(x);
    for_each_axis(x, false, [&](const AxisView& v, MinMaxObserver* mm, MomentsObserver* mo) {
      cuda_channel_stats(v.tensor, v.outer, v.c, v.inner, mm, accepted, ranks, mo);
    });
    return;
  }
#endif
  const at::Tensor& x = xin;
  if (range) range->observe(x);
  for (auto& [axis, obs] : minmax) obs.observe(x);
  for (auto& [key, obs] : percentile) obs.observe(x);
  for (auto& [axis, obs] : moments) obs.observe(x);
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

void ObservationPoint::want_moments(int ch_axis) {
  impl_->moments.try_emplace(ch_axis, ch_axis);
  impl_->axes.insert(ch_axis);
}

void ObservationPoint::want_histogram() {
  if (!impl_->histogram) impl_->histogram.emplace();
}

// One read of a CPU tensor (its exponent bits); the rare tensor with any non-finite value is then split
// into NaN and +-inf by ATen. On a device everything stays there.
void ObservationPoint::Impl::count_non_finite(const at::Tensor& x) {
  const int64_t call = calls - 1;
  if (x.is_cpu()) {
    const auto* bits = static_cast<const uint32_t*>(x.data_ptr());
    int64_t bad = 0;
    for (int64_t i = 0, n = x.numel(); i < n; ++i) bad += (~bits[i] & 0x7f800000u) == 0;
    if (bad == 0) return;
    non_finite.nan += at::isnan(x).sum().item<int64_t>();
    non_finite.pos_inf += at::isposinf(x).sum().item<int64_t>();
    non_finite.neg_inf += at::isneginf(x).sum().item<int64_t>();
    if (non_finite.first_call < 0) non_finite.first_call = call;
    return;
  }
  if (!device_counts.defined()) {
    device_counts = at::zeros({4}, x.options().dtype(at::kLong));
    device_counts[3].fill_(-1);
  }
  at::Tensor c = at::stack({at::isnan(x).sum(), at::isposinf(x).sum(), at::isneginf(x).sum()});
  device_counts.narrow(0, 0, 3).add_(c);
  at::Tensor first = device_counts.narrow(0, 3, 1);
  first.copy_(at::where((first < 0).logical_and(c.sum() > 0), at::full_like(first, call), first));
}

std::string NonFiniteCount::describe() const {
  std::string out;
  auto add = [&](int64_t n, const char* what) {
    if (n > 0) out += (out.empty() ? "" : " and ") + std::to_string(n) + " " + what;
  };
  add(nan, "NaN");
  add(pos_inf, "+inf");
  add(neg_inf, "-inf");
  out += std::string(" value") + (nan + pos_inf + neg_inf == 1 ? "" : "s");
  if (first_batch >= 0)
    out += " (first in calibration batch " + std::to_string(first_batch) + ")";
  else if (first_call >= 0)
    out += " (first in call " + std::to_string(first_call) + ")";
  return out;
}

void ObservationPoint::observe(const at::Tensor& x) { observe_and_range(x); }

bool ObservationPoint::wants_only_range() const {
  const Impl& i = *impl_;
  return i.range && i.axes.empty() && !i.histogram && i.moments.empty();
}

bool ObservationPoint::reads_range() const { return !impl_->axes.empty(); }

void ObservationPoint::observe_with_range(const at::Tensor& x, std::pair<float, float> range) {
  if (!wants_only_range() || !x.is_cpu() || x.numel() == 0) return observe(x);
  ++impl_->calls;
  // What observe() does for a point that wants only the range, minus the read: tensor_range_cpu's
  // result is the same min and max (NaN for both where x holds one).
  impl_->range->update(range.first, range.second);
  if (!std::isfinite(range.first) || !std::isfinite(range.second))
    impl_->count_non_finite(x.detach().to(at::kFloat).contiguous());
}

std::optional<std::pair<float, float>> ObservationPoint::observe_and_range(const at::Tensor& x) {
  ++impl_->calls;
  // ModelReportObserver works on x.detach().to(float32); the observed value itself is never modified.
  at::Tensor xf = x.detach().to(at::kFloat);
  if (xf.is_cpu()) xf = xf.contiguous();
  if (!xf.is_cpu()) impl_->count_non_finite(xf);
  if (xf.is_cpu()) {
    if (impl_->histogram && !impl_->axes.empty() && xf.numel() < 2 * kParallelGrainValues &&
        at::get_num_threads() > 1 && !at::in_parallel_region()) {
      // A small activation, which the kernels read on one thread: its channel statistics and its
      // histogram side by side on two instead (the histogram then finds its own range, the same one).
      // The two touch disjoint state and thread-local scratch.
      std::optional<std::pair<float, float>> seen;
      at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
          if (task == 0)
            seen = impl_->observe_cpu(xf);
          else
            impl_->histogram->observe(xf);
        }
      });
      impl_->count_non_finite(xf);
      return seen;
    }
    auto seen = impl_->observe_cpu(xf);
    // A histogram alone (the error detector on a layer's input): one parallel read for the range, which
    // the histogram needs first anyway and which, finite, spares the NaN/inf count below.
    if (!seen && impl_->histogram && xf.numel() > 0)
      seen = tensor_range_cpu(xf.data_ptr<float>(), xf.numel(), impl_->range_parts);
    // The tensor-wide range propagates NaN and holds any +-inf: a finite one leaves nothing to count, and
    // saves a read of every value (most activations); otherwise the values are read and counted.
    if (!seen || !std::isfinite(seen->first) || !std::isfinite(seen->second)) impl_->count_non_finite(xf);
    if (impl_->histogram) impl_->histogram->observe(xf, seen);
    return seen;
  }
  impl_->observe_device(xf);
  if (impl_->histogram) impl_->histogram->observe(xf);
  return std::nullopt;
}

void ObservationPoint::finalize(int64_t batches) {
  NonFiniteCount& nf = impl_->non_finite;
  if (impl_->device_counts.defined()) {
    at::Tensor h = impl_->device_counts.cpu();
    nf.nan += h[0].item<int64_t>();
    nf.pos_inf += h[1].item<int64_t>();
    nf.neg_inf += h[2].item<int64_t>();
    if (nf.first_call < 0) nf.first_call = h[3].item<int64_t>();
  }
  if (nf.first_call >= 0 && batches > 0 && impl_->calls % batches == 0)
    nf.first_batch = nf.first_call / (impl_->calls / batches);
  if (impl_->range) impl_->range_summary = impl_->range->finalize();
  for (auto& [axis, obs] : impl_->minmax) impl_->minmax_summary[axis] = obs.finalize();
  for (auto& [key, obs] : impl_->percentile) impl_->percentile_summary[key] = obs.finalize();
  for (auto& [axis, obs] : impl_->moments) impl_->moments_summary[axis] = obs.finalize();
  if (impl_->histogram) impl_->histogram_summary = impl_->histogram->finalize();
}

int64_t ObservationPoint::calls() const { return impl_->calls; }
const NonFiniteCount& ObservationPoint::non_finite() const { return impl_->non_finite; }

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

const MomentsSummary* ObservationPoint::moments(int ch_axis) const {
  auto it = impl_->moments_summary.find(ch_axis);
  return it == impl_->moments_summary.end() ? nullptr : &it->second;
}

const HistogramSummary* ObservationPoint::histogram() const {
  return impl_->histogram_summary ? &*impl_->histogram_summary : nullptr;
}

}  // namespace qreport::observers
