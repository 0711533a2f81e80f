#include "observers/stat_observers.h"

namespace qreport::observers {

std::string channel_problem(const at::Tensor& x, int ch_axis, const at::Tensor& previous) {
  if (ch_axis >= x.dim())
    return "a " + std::to_string(x.dim()) + "-d tensor has no channel axis " + std::to_string(ch_axis);
  if (x.numel() == 0) return "an empty tensor was observed";
  if (previous.defined() && previous.size(0) != x.size(ch_axis))
    return "the channel count changed between batches (" + std::to_string(previous.size(0)) + " then " +
           std::to_string(x.size(ch_axis)) + ")";
  return {};
}

at::Tensor channels_first_2d(const at::Tensor& x, int ch_axis) {
  return x.movedim(ch_axis, 0).reshape({x.size(ch_axis), -1});
}

namespace {

std::vector<float> to_floats(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int32_t> to_ints(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kInt).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

}  // namespace

void MinMaxObserver::observe(const at::Tensor& x) {
  if (!invalid_.empty()) return;
  invalid_ = channel_problem(x, ch_axis_, min_);
  if (!invalid_.empty()) return;
  // Reduce in the tensor's own layout: [outer, C, inner], no transposed copy.
  int64_t c = x.size(ch_axis_);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < ch_axis_; ++d) outer *= x.size(d);
  for (int64_t d = ch_axis_ + 1; d < x.dim(); ++d) inner *= x.size(d);
  at::Tensor y = x.reshape({outer, c, inner});
  at::Tensor bmin = y.amin({0, 2});
  at::Tensor bmax = y.amax({0, 2});
  if (!min_.defined()) {
    min_ = bmin;
    max_ = bmax;
  } else {
    min_ = at::minimum(bmin, min_);
    max_ = at::maximum(bmax, max_);
  }
}

MinMaxSummary MinMaxObserver::finalize() const {
  MinMaxSummary s;
  s.invalid = invalid_;
  if (invalid_.empty() && min_.defined()) {
    s.min = to_floats(min_);
    s.max = to_floats(max_);
  }
  return s;
}

void PercentileObserver::observe(const at::Tensor& x) {
  if (!invalid_.empty()) return;
  invalid_ = channel_problem(x, ch_axis_, avg_ratio_);
  if (!invalid_.empty()) return;
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
    batches_used_ = at::zeros_like(nz);
    avg_ratio_ = at::zeros_like(rnz);
    constant_ = at::zeros_like(cst);
  }
  at::Tensor used = batches_used_ + nz;
  avg_ratio_ = at::nan_to_num((avg_ratio_ * batches_used_ + rnz) / used);
  batches_used_ = used;
  constant_ = constant_ + cst;
  ++n_;
}

PercentileSummary PercentileObserver::finalize() const {
  PercentileSummary s;
  s.batches = n_;
  s.invalid = invalid_;
  if (invalid_.empty() && n_ > 0) {
    s.avg_ratio = to_floats(avg_ratio_);
    s.batches_used = to_ints(batches_used_);
    s.constant_batches = to_ints(constant_);
  }
  return s;
}

}  // namespace qreport::observers
