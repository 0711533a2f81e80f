// Stage 4: native statistics equal to PyTorch's ModelReportObserver (reference spec §1), computed on the
// tensor's own device without host synchronisation; copied to the host once, by finalize().
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace at { class Tensor; }

namespace qreport::observers {

// at::minimum / at::maximum on two floats: NaN if either side is NaN. Selects only, so that loops over
// channels vectorise.
inline float nan_min(float a, float b) {
  return (a != a || b != b) ? std::numeric_limits<float>::quiet_NaN() : (b < a ? b : a);
}
inline float nan_max(float a, float b) {
  return (a != a || b != b) ? std::numeric_limits<float>::quiet_NaN() : (a < b ? b : a);
}

// Index that torch.quantile(row, q, interpolation="lower") selects in a sorted row of m elements:
// floor(float32(q * float32(m - 1))), the product rounded to float32 as PyTorch does (spec §1.3).
int64_t quantile_lower_rank(float q, int64_t m);

// Per-tensor range statistics (the dynamic-vs-static detector's S).
struct RangeSummary {
  int64_t batches = 0;
  float avg_range = 0.0f;
  float epoch_min = std::numeric_limits<float>::infinity();
  float epoch_max = -std::numeric_limits<float>::infinity();
  std::string invalid;  // non-empty when the statistic could not be computed, with the reason
};

// S = average batch range / epoch range. Unlike PyTorch (which raises, or returns -0.0 with no data),
// returns nullopt with the reason in *why when the epoch range is 0, infinite or there was no data.
std::optional<float> batch_to_epoch_ratio(const RangeSummary& r, std::string* why);

// Running per-channel min and max along one axis.
struct MinMaxSummary {
  int axis = -1;  // the axis used, counted from the front (-1: nothing observed)
  std::vector<float> min, max;
  std::string invalid;
};

// Per-channel percentile statistics: the average of max/percentile over the batches where the channel
// was usable, how many batches were usable, and how many were constant.
struct PercentileSummary {
  int axis = -1;  // the axis used, counted from the front (-1: nothing observed)
  int64_t batches = 0;
  std::vector<float> avg_ratio;
  std::vector<int32_t> batches_used;
  std::vector<int32_t> constant_batches;
  std::string invalid;
};

// LLM.int8()-style per-channel statistics (issue 24 item 6), summed over every batch: how many values
// each channel had (its tokens, for a Linear's input features), how many of them had |x| >= 6, and the
// sums of x, x^2, x^3 and x^4 in float64 (the layer's kurtosis; channel_kernel.h says how they are
// accumulated). Counts and sums, so two states merge by addition. Not saved in statistics files.
struct MomentsSummary {
  int axis = -1;      // the axis used, counted from the front (-1: nothing observed)
  int64_t rows = 0;   // values per channel
  std::vector<double> above, s1, s2, s3, s4;
  std::string invalid;
};

// PyTorch's HistogramObserver state (bins over [min_val, max_val], merged across batches as PyTorch
// merges them) plus what the quantization-error estimate needs: the exact sum of squares and the count.
struct HistogramSummary {
  int64_t batches = 0;
  float min_val = std::numeric_limits<float>::infinity();
  float max_val = -std::numeric_limits<float>::infinity();
  std::vector<float> histogram;
  // The values' own range (MinMaxObserver's): min_val/max_val above are the histogram's, whose max PyTorch
  // relaxes when it merges batches.
  float data_min = std::numeric_limits<float>::infinity();
  float data_max = -std::numeric_limits<float>::infinity();
  double sum_squares = 0.0;  // sum of x^2 over every observed value, in float64
  int64_t count = 0;         // values observed
  std::string invalid;
};

// How HistogramObserver.forward merges a batch whose range differs from the histogram's: PyTorch 2.5
// rewrote it. qreport replays the algorithm of the LibTorch it is built against (docs/design.md,
// "HistogramObserver replayed"); kHistogramMerge is decided at compile time from <torch/version.h>.
enum class HistogramMerge {
  kGrid,     // PyTorch 1.12-2.4: _adjust_min_max's common grid (upsample_rate 128, the max relaxed onto
             // it) and _combine_histograms' float64 cumsum; float histc bounds (docs/differences.md 16)
  kUpscale,  // PyTorch >= 2.5: the histogram's range is the data's; the old histogram's 16-fold upsampled
             // mid-points are bucketized into the new bins (_upscale_histogram)
};
extern const HistogramMerge kHistogramMerge;
const char* histogram_merge_name(HistogramMerge m);  // "grid (PyTorch 1.12-2.4)", ...

// PyTorch >= 2.5's _combine_histograms' transform of one histogram state h onto 2048 bins over [lo, hi]
// (lo <= h.min_val, h.max_val <= hi): h's bins where the ranges are equal, a point mass (h.min_val ==
// h.max_val) in the bin torch.histc gives it, else _upscale_histogram. The same float32 operations as
// PyTorch's CPU observer (linspace through ATen itself). out is resized to h's bin count.
void upscale_histogram(const HistogramSummary& h, float lo, float hi, std::vector<float>& out);

// Quantization parameters of a uniform quantizer, computed as PyTorch's observers compute them
// (UniformQuantizationObserverBase._calculate_qparams), one float32 rounding at a time.
struct QParams {
  float scale = 1.0f;
  int64_t zero_point = 0;
  int64_t quant_min = 0, quant_max = 255;
};
// Affine (quint8 activations): quant range [quant_min, quant_max], zero point clamped into it.
QParams affine_qparams(float min_val, float max_val, int64_t quant_min, int64_t quant_max);
// Symmetric (qint8 weights): zero point 0, scale = max(|min|, |max|) / ((quant_max - quant_min) / 2).
QParams symmetric_qparams(float min_val, float max_val, int64_t quant_min, int64_t quant_max);

// Min and max of each slice of t along ch_axis, as torch.aminmax(t.transpose(0, ch_axis).flatten(1), 1)
// gives them (NaN for a slice that holds one), read in place by the channel kernel where t is a
// contiguous CPU float32 tensor (ATen's strided reduction took longer than the error pass's matmuls for
// a transformer's weights). PyTorch's IWE weight statistics. nullopt: t undefined or ch_axis out of range.
std::optional<std::pair<std::vector<float>, std::vector<float>>> channel_min_max(const at::Tensor& t, int ch_axis);

// w fake-quantized as qint8 with default_weight_observer's qparams (per tensor, symmetric) or
// default_per_channel_weight_observer's (axis 0), by torch's fake_quantize functions. Float32 w.
at::Tensor fake_quantize_weight(const at::Tensor& w, bool per_channel);
// Sums of squares of a float32 weight and of its quantization errors w - fq(w), fq as
// fake_quantize_weight's per tensor and per channel, in two reads of w (the per-batch-free part of the
// error detector, which for a transformer's weights took longer than calibration's observers).
// nullopt where torch's path must decide (not a CPU float32 tensor, or NaN or infinity in w).
struct WeightNoise {
  double signal = 0, noise_per_tensor = 0, noise_per_channel = 0;
};
std::optional<WeightNoise> weight_quantization_noise(const at::Tensor& w);
// at::fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max), bit for bit; a
// contiguous CPU float32 x takes qreport's vectorised kernel (fake_quantize.cpp), anything else ATen's.
at::Tensor fake_quantize_per_tensor(const at::Tensor& x, float scale, int64_t zero_point, int64_t quant_min,
                                    int64_t quant_max);
// at::fake_quantize_per_channel_affine(x, scale, zeros, 0, quant_min, quant_max), bit for bit, for a
// contiguous CPU float32 x of finite values ([C, ...], one scale per row, zero points 0): each row is the
// per-tensor kernel's. Anything else goes to ATen.
at::Tensor fake_quantize_per_row(const at::Tensor& x, const std::vector<float>& scale, int64_t quant_min,
                                 int64_t quant_max);
// x (float32) fake-quantized per tensor with q.
at::Tensor fake_quantize(const at::Tensor& x, const QParams& q);

// The [min, max] HistogramObserver._non_linear_param_search chooses (dst_nbins: 2^bits of the
// quantized dtype, 256 for quint8); nullopt for an empty histogram.
std::optional<std::pair<float, float>> histogram_search_range(const HistogramSummary& h, int64_t dst_nbins);

// Sum of (x - fake_quantize(x))^2 over the values the histogram counts, assuming the values of each bin
// are spread uniformly across it (the same model HistogramObserver's own search uses), integrated
// exactly over the quantizer's rounding cells and its clipped tails.
double histogram_quantization_error(const HistogramSummary& h, const QParams& q);

// NaN and infinite values among everything a point observed (values the model made: calibration data is
// checked finite before it runs), counted on the tensor's device and read once, by finalize().
struct NonFiniteCount {
  int64_t nan = 0, pos_inf = 0, neg_inf = 0;
  int64_t first_call = -1;   // the first call that had any (counted from 0), -1: none
  int64_t first_batch = -1;  // that call's batch, where the calls per batch are the same for every batch
  bool any() const { return nan + pos_inf + neg_inf > 0; }
  // "3 NaN and 2 infinite values (first in calibration batch 0)"
  std::string describe() const;
};

// All statistics wanted of one observed value (a module's input or output). Several detectors may ask
// for different statistics of the same value; each is computed once with the settings asked for.
class ObservationPoint {
 public:
  ObservationPoint();
  ~ObservationPoint();
  ObservationPoint(ObservationPoint&&) noexcept;
  ObservationPoint& operator=(ObservationPoint&&) noexcept;

  // A negative ch_axis counts from the last axis of each observed tensor (-1: the last), so a Linear's
  // features are found whatever the rank of its input.
  void want_range();
  void want_minmax(int ch_axis);
  void want_percentile(int ch_axis, float q);
  void want_histogram();
  void want_moments(int ch_axis);

  // Updates every wanted statistic with one observed tensor (any dtype, any device).
  void observe(const at::Tensor& x);
  // observe(x), returning x's min and max (NaN for both if x holds a NaN) where the statistics read them
  // anyway: a channel statistic of a CPU tensor. nullopt otherwise.
  std::optional<std::pair<float, float>> observe_and_range(const at::Tensor& x);
  // Whether this point wants nothing but the tensor-wide range, and whether its observe_and_range gives
  // one for CPU tensors (it wants a channel statistic).
  bool wants_only_range() const;
  bool reads_range() const;
  // For a point that wants only the range: observe(x), given x's min and max from another point's
  // observe_and_range of the same tensor instead of reading x again.
  void observe_with_range(const at::Tensor& x, std::pair<float, float> range);
  // Copies the statistics to the host. Call once, after the last observe(); `batches` (when known) turns
  // the first call with NaN or infinity into its batch.
  void finalize(int64_t batches = 0);
  // NaN and infinite values observed (after finalize); none for a point restored from saved statistics.
  const NonFiniteCount& non_finite() const;

  int64_t calls() const;
  const RangeSummary* range() const;
  const MinMaxSummary* minmax(int ch_axis) const;
  const PercentileSummary* percentile(int ch_axis, float q) const;
  const HistogramSummary* histogram() const;
  // nullptr where not wanted, and for a point restored from saved statistics (they do not hold it).
  const MomentsSummary* moments(int ch_axis) const;

  // The finished statistics, all of them (lib/stats saves and merges these), and a point rebuilt from
  // saved ones: restore() stands for observe() and finalize().
  struct Finished {
    int64_t calls = 0;
    std::optional<RangeSummary> range;
    std::map<int, MinMaxSummary> minmax;                           // by requested ch_axis
    std::map<std::pair<int, float>, PercentileSummary> percentile;  // by (ch_axis, q)
    std::optional<HistogramSummary> histogram;
  };
  Finished finished() const;
  void restore(Finished f);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qreport::observers
