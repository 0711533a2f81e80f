// HistogramObserver.forward (PyTorch 1.13's algorithm with float histogram bounds, see
// stat_observers.h): the same float32 operations in the same order, so the merged histogram, and the
// range the search later picks from it, match PyTorch's.
#include <cmath>

#include "observers/stat_observers.h"

namespace qreport::observers {
namespace {

std::vector<float> histc(const at::Tensor& x, int64_t bins, float mn, float mx) {
  at::Tensor h = at::histc(x, bins, mn, mx).to(at::kCPU).contiguous();
  return std::vector<float>(h.data_ptr<float>(), h.data_ptr<float>() + bins);
}

}  // namespace

void HistogramObserver::observe(const at::Tensor& x) {
  if (!s_.invalid.empty() || x.numel() == 0) return;
  auto [mn_t, mx_t] = at::aminmax(x);
  at::Tensor flat = x.reshape(-1);
  at::Tensor ss = at::dot(flat, flat);
  // One transfer for the three scalars (a device sync on a GPU: the merge below needs them on the host).
  at::Tensor host = at::stack({mn_t, mx_t, ss}).to(at::kCPU);
  const float new_min = host[0].item<float>(), new_max = host[1].item<float>();
  if (!std::isfinite(new_min) || !std::isfinite(new_max)) {
    s_.invalid = "the observed values include NaN or infinity";
    return;
  }
  s_.sum_squares += static_cast<double>(host[2].item<float>());
  s_.count += x.numel();
  s_.data_min = std::min(s_.data_min, new_min);
  s_.data_max = std::max(s_.data_max, new_max);
  ++s_.batches;

  const bool uninitialized = std::isinf(s_.min_val) && std::isinf(s_.max_val);
  // PyTorch starts over while every value seen so far was the same (min_val == max_val).
  if (uninitialized || s_.min_val == s_.max_val) {
    s_.min_val = new_min;
    s_.max_val = new_max;
    s_.histogram = histc(x, kBins, new_min, new_max);
    return;
  }
  float cmin = std::min(new_min, s_.min_val);
  float cmax = std::max(new_max, s_.max_val);
  // _adjust_min_max: a grid of width hist_bin_width on which both histograms align; only the max is relaxed.
  const float hist_bin_width = (s_.max_val - s_.min_val) / static_cast<float>(kBins * kUpsampleRate);
  const float grid = static_cast<float>(kBins) * hist_bin_width;
  const double down = std::ceil(static_cast<double>((cmax - cmin) / grid));
  if (!(hist_bin_width > 0.0f) || !std::isfinite(down) || down > 1e12) {
    s_.invalid = "the range grew too much from one batch to the next for a histogram (from [" +
                 std::to_string(s_.min_val) + ", " + std::to_string(s_.max_val) + "])";
    return;
  }
  const int64_t downsample_rate = static_cast<int64_t>(down);
  const float e = static_cast<float>(downsample_rate) * grid - (cmax - cmin);
  cmax = cmax + e;
  const int64_t start_idx = static_cast<int64_t>(std::nearbyint((s_.min_val - cmin) / hist_bin_width));
  std::vector<float> fresh = histc(x, kBins, cmin, cmax);
  if (cmin == s_.min_val && cmax == s_.max_val) {
    for (int64_t i = 0; i < kBins; ++i) fresh[i] += s_.histogram[i];
    s_.histogram = std::move(fresh);
  } else {
    combine(fresh, downsample_rate, start_idx);
    s_.histogram.swap(fresh);
  }
  s_.min_val = cmin;
  s_.max_val = cmax;
}

// _combine_histograms without materialising the upsampled grid (kBins * downsample_rate floats, which
// PyTorch allocates): the old bins, each repeated kUpsampleRate times from start_idx, are summed in
// float64 in the same sequential order as torch.cumsum, and read at every downsample_rate-th position.
// `fresh` (this batch's histogram on the combined range) receives the interpolated old counts.
void HistogramObserver::combine(std::vector<float>& fresh, int64_t downsample_rate, int64_t start_idx) {
  const std::vector<float>& old = s_.histogram;
  const int64_t end = start_idx + kBins * kUpsampleRate;  // one past the last upsampled position
  double acc = 0.0, prev = 0.0;
  int64_t j = start_idx;
  for (int64_t k = 0; k < kBins; ++k) {
    const int64_t p = (k + 1) * downsample_rate - 1;  // inclusive
    for (; j <= p && j < end; ++j) acc += static_cast<double>(old[(j - start_idx) / kUpsampleRate]);
    const double shifted = static_cast<double>(static_cast<float>(prev));  // PyTorch's float32 buffer
    const double interpolated = (acc - shifted) / static_cast<double>(kUpsampleRate);
    fresh[k] = fresh[k] + static_cast<float>(interpolated);
    prev = acc;
  }
}

}  // namespace qreport::observers
