#include <cmath>
#include <limits>

#include "observers/stat_observers.h"

namespace qreport::observers {

int resolve_axis(int ch_axis, int64_t dim) { return ch_axis < 0 ? static_cast<int>(ch_axis + dim) : ch_axis; }

std::string channel_problem(const at::Tensor& x, int ch_axis, int64_t channels) {
  const int axis = resolve_axis(ch_axis, x.dim());
  if (axis < 0 || axis >= x.dim())
    return "a " + std::to_string(x.dim()) + "-d tensor has no channel axis " + std::to_string(ch_axis);
  if (x.numel() == 0) return "an empty tensor was observed";
  if (channels >= 0 && channels != x.size(axis))
    return "the channel count changed between batches (" + std::to_string(channels) + " then " +
           std::to_string(x.size(axis)) + ")";
  return {};
}

at::Tensor channels_first_2d(const at::Tensor& x, int ch_axis) {
  const int axis = resolve_axis(ch_axis, x.dim());
  return x.movedim(axis, 0).reshape({x.size(axis), -1});
}

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kFltMax = std::numeric_limits<float>::max();

std::vector<float> to_floats(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int32_t> to_ints(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kInt).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

// torch.nan_to_num for float32, as selects (the per-channel loops below then vectorise).
inline float nan_to_num(float v) {
  v = v != v ? 0.0f : v;
  v = v > kFltMax ? kFltMax : v;
  return v < -kFltMax ? -kFltMax : v;
}

// axis_used: the first accepted tensor's axis, counted from the front (what reports show).
bool accept_into(const at::Tensor& x, int ch_axis, int64_t& channels, int& axis_used, std::string& invalid) {
  if (!invalid.empty()) return false;
  invalid = channel_problem(x, ch_axis, channels);
  if (!invalid.empty()) return false;
  const int axis = resolve_axis(ch_axis, x.dim());
  channels = x.size(axis);
  if (axis_used < 0) axis_used = axis;
  return true;
}

}  // namespace

bool MinMaxObserver::accept(const at::Tensor& x) { return accept_into(x, ch_axis_, channels_, axis_used_, invalid_); }

void MinMaxObserver::update(const float* bmin, const float* bmax, int64_t c) {
  if (min_.empty()) {
    min_.assign(bmin, bmin + c);
    max_.assign(bmax, bmax + c);
    return;
  }
  float* mn = min_.data();
  float* mx = max_.data();
  for (int64_t i = 0; i < c; ++i) {
    mn[i] = nan_min(mn[i], bmin[i]);
    mx[i] = nan_max(mx[i], bmax[i]);
  }
}

void MinMaxObserver::observe(const at::Tensor& x) {
  if (!accept(x)) return;
  // Reduce in the tensor's own layout: [outer, C, inner], no transposed copy.
  const int axis = resolve_axis(ch_axis_, x.dim());
  int64_t c = x.size(axis);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.size(d);
  for (int64_t d = axis + 1; d < x.dim(); ++d) inner *= x.size(d);
  at::Tensor y = x.reshape({outer, c, inner});
  at::Tensor bmin = y.amin({0, 2});
  at::Tensor bmax = y.amax({0, 2});
  if (!min_t_.defined()) {
    min_t_ = bmin;
    max_t_ = bmax;
  } else {
    min_t_ = at::minimum(bmin, min_t_);
    max_t_ = at::maximum(bmax, max_t_);
  }
}

bool MinMaxObserver::device_state(const at::Tensor& like, int64_t channels, float** min, float** max) {
  bool first = !min_t_.defined();
  if (first) {
    min_t_ = at::empty({channels}, like.options().dtype(at::kFloat));
    max_t_ = at::empty({channels}, like.options().dtype(at::kFloat));
  }
  *min = min_t_.data_ptr<float>();
  *max = max_t_.data_ptr<float>();
  return first;
}

MinMaxSummary MinMaxObserver::finalize() const {
  MinMaxSummary s;
  s.axis = axis_used_;
  s.invalid = invalid_;
  if (!invalid_.empty()) return s;
  if (min_t_.defined()) {
    s.min = to_floats(min_t_);
    s.max = to_floats(max_t_);
  } else {
    s.min = min_;
    s.max = max_;
  }
  return s;
}

bool PercentileObserver::accept(const at::Tensor& x) { return accept_into(x, ch_axis_, channels_, axis_used_, invalid_); }

// The float32 arithmetic of ModelReportObserver._calculate_percentile_stats (spec §1.2c), per channel.
void PercentileObserver::update(const float* qz, const float* qc, const float* qm, int64_t c) {
  if (n_ == 0) {
    avg_ratio_.assign(c, 0.0f);
    batches_used_.assign(c, 0);
    constant_.assign(c, 0);
  }
  float* avg = avg_ratio_.data();
  int32_t* used_before = batches_used_.data();
  int32_t* constant = constant_.data();
  for (int64_t i = 0; i < c; ++i) {
    const int32_t nz = (qc[i] != 0.0f) | (qm[i] != 0.0f);  // NaN != 0 holds, as in torch
    const int32_t cst = (qm[i] - qz[i]) == 0.0f;
    const float rnz = static_cast<float>(nz) * nan_to_num(qm[i] / qc[i]);
    const int32_t used = used_before[i] + nz;
    avg[i] = nan_to_num((avg[i] * static_cast<float>(used_before[i]) + rnz) / static_cast<float>(used));
    used_before[i] = used;
    constant[i] += cst;
  }
  ++n_;
}

void PercentileObserver::observe(const at::Tensor& x) {
  if (!accept(x)) return;
  at::Tensor y = channels_first_2d(x, ch_axis_);
  int64_t m = y.size(1);
  int64_t rank = quantile_lower_rank(q_, m);
  auto [qz, qm] = at::aminmax(y, 1);
  at::Tensor qc = std::get<0>(at::kthvalue(y, rank + 1, 1));
  // torch.quantile returns NaN for every quantile of a row holding a NaN; amax propagates it.
  qc = at::where(at::isnan(qm), qm, qc);
  at::Tensor nz = at::logical_or(qc != 0, qm != 0).to(at::kInt);
  at::Tensor cst = ((qm - qz) == 0).to(at::kInt);
  at::Tensor ratio = at::nan_to_num(qm / qc);
  at::Tensor rnz = nz * ratio;
  if (n_ == 0) {
    batches_used_t_ = at::zeros_like(nz);
    avg_ratio_t_ = at::zeros_like(rnz);
    constant_t_ = at::zeros_like(cst);
  }
  at::Tensor used = batches_used_t_ + nz;
  avg_ratio_t_ = at::nan_to_num((avg_ratio_t_ * batches_used_t_ + rnz) / used);
  batches_used_t_ = used;
  constant_t_ = constant_t_ + cst;
  ++n_;
}

void PercentileObserver::device_state(const at::Tensor& like, int64_t channels, float** avg_ratio,
                                      int32_t** batches_used, int32_t** constant) {
  if (!avg_ratio_t_.defined()) {
    avg_ratio_t_ = at::zeros({channels}, like.options().dtype(at::kFloat));
    batches_used_t_ = at::zeros({channels}, like.options().dtype(at::kInt));
    constant_t_ = at::zeros({channels}, like.options().dtype(at::kInt));
  }
  *avg_ratio = avg_ratio_t_.data_ptr<float>();
  *batches_used = batches_used_t_.data_ptr<int32_t>();
  *constant = constant_t_.data_ptr<int32_t>();
  ++n_;
}

PercentileSummary PercentileObserver::finalize() const {
  PercentileSummary s;
  s.batches = n_;
  s.axis = axis_used_;
  s.invalid = invalid_;
  if (!invalid_.empty() || n_ == 0) return s;
  if (avg_ratio_t_.defined()) {
    s.avg_ratio = to_floats(avg_ratio_t_);
    s.batches_used = to_ints(batches_used_t_);
    s.constant_batches = to_ints(constant_t_);
  } else {
    s.avg_ratio = avg_ratio_;
    s.batches_used = batches_used_;
    s.constant_batches = constant_;
  }
  return s;
}

}  // namespace qreport::observers
