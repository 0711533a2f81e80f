// Internal: one class per statistic. Each has two update paths with the same float32 arithmetic:
//  - update(): from one batch's per-channel results of the fused CPU kernel (channel_kernel.h), kept in
//    host vectors;
//  - observe(): from a tensor on any other device, with ATen ops whose results stay on that device
//    (no host synchronisation per batch).
// A run uses one path only (the model and batches live on one device).
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <utility>

#include "observers/observers.h"

namespace qreport::observers {

class RangeObserver {
 public:
  void update(float batch_min, float batch_max);
  void observe(const at::Tensor& x);  // x is float32
  void invalidate(std::string why) {
    if (invalid_.empty()) invalid_ = std::move(why);
  }
  bool valid() const { return invalid_.empty(); }
  RangeSummary finalize() const;

 private:
  int64_t n_ = 0;
  float avg_ = 0, min_ = 0, max_ = 0;     // host path
  at::Tensor avg_t_, min_t_, max_t_;      // device path
  std::string invalid_;
};

class MinMaxObserver {
 public:
  explicit MinMaxObserver(int ch_axis) : ch_axis_(ch_axis) {}
  int ch_axis() const { return ch_axis_; }
  // Validates the batch's shape against this statistic; false (and invalid from then on) when unusable.
  bool accept(const at::Tensor& x);
  void update(const float* batch_min, const float* batch_max, int64_t channels);
  void observe(const at::Tensor& x);
  // CUDA kernel path: the running min/max tensors on x's device, created on first use; returns true
  // the first time (the kernel then overwrites instead of combining).
  bool device_state(const at::Tensor& like, int64_t channels, float** min, float** max);
  MinMaxSummary finalize() const;

 private:
  int ch_axis_;  // negative: counted from the last axis
  int axis_used_ = -1;
  int64_t channels_ = -1;
  std::vector<float> min_, max_;
  at::Tensor min_t_, max_t_;
  std::string invalid_;
};

class PercentileObserver {
 public:
  PercentileObserver(int ch_axis, float q) : ch_axis_(ch_axis), q_(q) {}
  int ch_axis() const { return ch_axis_; }
  float q() const { return q_; }
  bool accept(const at::Tensor& x);
  // Per channel: min (q = 0), the comparison quantile and max (q = 1) of one batch.
  void update(const float* qz, const float* qc, const float* qm, int64_t channels);
  void observe(const at::Tensor& x);
  // CUDA kernel path: the three running tensors on x's device (zeros at first use); counts one batch.
  void device_state(const at::Tensor& like, int64_t channels, float** avg_ratio, int32_t** batches_used,
                    int32_t** constant);
  PercentileSummary finalize() const;

 private:
  int ch_axis_;
  int axis_used_ = -1;
  float q_;
  int64_t n_ = 0;
  int64_t channels_ = -1;
  std::vector<float> avg_ratio_;
  std::vector<int32_t> batches_used_, constant_;
  at::Tensor avg_ratio_t_, batches_used_t_, constant_t_;
  std::string invalid_;
};

// MomentsSummary's running sums. CPU: update() from the kernels' ChannelMoments into host vectors. Other
// devices: observe() with ATen ops in float64 on the device; CUDA: device_state() for the fused kernel.
class MomentsObserver {
 public:
  explicit MomentsObserver(int ch_axis) : ch_axis_(ch_axis) {}
  int ch_axis() const { return ch_axis_; }
  bool accept(const at::Tensor& x);
  void update(const double* s1, const double* s2, const double* s3, const double* s4, const double* above,
              int64_t channels, int64_t rows);
  void observe(const at::Tensor& x);
  // The running [5, C] float64 sums (s1, s2, s3, s4, above) on x's device, zeros at first use; counts rows.
  double* device_state(const at::Tensor& like, int64_t channels, int64_t rows);
  MomentsSummary finalize() const;

 private:
  int ch_axis_;
  int axis_used_ = -1;
  int64_t channels_ = -1;
  int64_t rows_ = 0;
  std::vector<double> sums_;  // host path: [5, C]
  at::Tensor sums_t_;         // device path
  std::string invalid_;
};

// PyTorch's HistogramObserver(bins=2048).forward, replayed with the same float32 operations
// (docs/quantization-error.md), merging batches as the PyTorch qreport is built against does
// (HistogramMerge, observers.h). kGrid: PyTorch 1.12-2.4's algorithm (upsample_rate 128); unlike PyTorch
// 1.13, whose torch.histc calls truncate the range to integers, the histogram covers [min_val, max_val]
// as in PyTorch 1.12 and 2.0-2.4 (docs/differences.md). kUpscale: PyTorch 2.5's (histogram_upscale.cpp).
// The bins are kept on the host: on a GPU each batch costs one small transfer.
class HistogramObserver {
 public:
  static constexpr int64_t kBins = 2048;
  static constexpr int64_t kUpsampleRate = 128;  // kGrid's
  explicit HistogramObserver(HistogramMerge merge = kHistogramMerge) : merge_(merge) {}
  // x is float32, any device. known_range: x's min and max when the caller has them (NaN if x holds one),
  // which saves a read of x on the CPU.
  void observe(const at::Tensor& x, const std::optional<std::pair<float, float>>& known_range = std::nullopt);
  HistogramSummary finalize() const { return s_; }

 private:
  void combine(std::vector<float>& fresh, int64_t downsample_rate, int64_t start_idx);
  HistogramMerge merge_;
  HistogramSummary s_;
};

// The bin torch.histc puts v in (lo <= v <= hi, lo < hi): (v - lo) * bins / (hi - lo) in float32,
// truncated, the top edge in the last bin.
int64_t histc_bin(float v, float lo, float hi, int64_t bins);

// acc plus n additions of v, one after the other in float64, as torch.cumsum adds the repeated values of
// an upsampled histogram: one multiply-add where that is provably the same number (v a float32 value).
double add_repeated(double acc, double v, int64_t n);

#if defined(QREPORT_WITH_CUDA_KERNELS)
// One fused CUDA kernel call for every statistic on one channel axis of a contiguous float32 CUDA
// tensor viewed as [outer, C, inner] (channel_kernel_cuda.h). No host synchronisation.
void cuda_channel_stats(const at::Tensor& x, int64_t outer, int64_t channels, int64_t inner, MinMaxObserver* minmax,
                        const std::vector<PercentileObserver*>& percentiles, const std::vector<int64_t>& ranks,
                        MomentsObserver* moments = nullptr);
#endif

// ch_axis counted from the front of a dim-d tensor: -1 is the last axis. May be out of range.
int resolve_axis(int ch_axis, int64_t dim);

// Checks that ch_axis exists in x and that the channel count matches earlier batches (channels, or -1
// before the first); returns the reason when it does not (PyTorch raises IndexError or a broadcasting
// error there).
std::string channel_problem(const at::Tensor& x, int ch_axis, int64_t channels);

// x as [C, M] with the channel axis first; a copy only when ch_axis is not already outermost.
at::Tensor channels_first_2d(const at::Tensor& x, int ch_axis);

}  // namespace qreport::observers
