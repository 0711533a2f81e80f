// MomentsObserver: the LLM.int8()-style per-channel sums (observers.h, MomentsSummary). The CPU kernels
// compute one batch's sums in their own read; this class only adds them up, or on another device keeps
// float64 tensors there (no host synchronisation per batch).
#include "observers/channel_kernel.h"
#include "observers/stat_observers.h"

namespace qreport::observers {

bool MomentsObserver::accept(const at::Tensor& x) {
  if (!invalid_.empty()) return false;
  invalid_ = channel_problem(x, ch_axis_, channels_);
  if (!invalid_.empty()) return false;
  const int axis = resolve_axis(ch_axis_, x.dim());
  channels_ = x.size(axis);
  if (axis_used_ < 0) axis_used_ = axis;
  return true;
}

void MomentsObserver::update(const double* s1, const double* s2, const double* s3, const double* s4,
                             const double* above, int64_t c, int64_t rows) {
  if (sums_.empty()) sums_.assign(5 * c, 0.0);
  const double* from[5] = {s1, s2, s3, s4, above};
  for (int k = 0; k < 5; ++k)
    for (int64_t i = 0; i < c; ++i) sums_[k * c + i] += from[k][i];
  rows_ += rows;
}

void MomentsObserver::observe(const at::Tensor& x) {
  if (!accept(x)) return;
  at::Tensor y = channels_first_2d(x, ch_axis_).to(at::kDouble);
  at::Tensor y2 = y * y;
  at::Tensor big = (y.abs() >= static_cast<double>(kOutlierMagnitude)).to(at::kDouble);
  at::Tensor batch = at::stack({y.sum(1), y2.sum(1), (y2 * y).sum(1), (y2 * y2).sum(1), big.sum(1)});
  sums_t_ = sums_t_.defined() ? sums_t_ + batch : batch;
  rows_ += y.size(1);
}

double* MomentsObserver::device_state(const at::Tensor& like, int64_t channels, int64_t rows) {
  if (!sums_t_.defined()) sums_t_ = at::zeros({5, channels}, like.options().dtype(at::kDouble));
  rows_ += rows;
  return sums_t_.data_ptr<double>();
}

MomentsSummary MomentsObserver::finalize() const {
  MomentsSummary s;
  s.axis = axis_used_;
  s.invalid = invalid_;
  s.rows = rows_;
  if (!invalid_.empty() || rows_ == 0) return s;
  std::vector<double> all = sums_;
  if (sums_t_.defined()) {
    at::Tensor h = sums_t_.to(at::kCPU).contiguous();
    all.assign(h.data_ptr<double>(), h.data_ptr<double>() + h.numel());
  }
  const int64_t c = static_cast<int64_t>(all.size()) / 5;
  std::vector<double>* to[5] = {&s.s1, &s.s2, &s.s3, &s.s4, &s.above};
  for (int k = 0; k < 5; ++k) to[k]->assign(all.begin() + k * c, all.begin() + (k + 1) * c);
  return s;
}

}  // namespace qreport::observers
