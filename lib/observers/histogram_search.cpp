// HistogramObserver._non_linear_param_search and _compute_quantization_error, replayed with the same
// float32 operations PyTorch's tensor expressions perform (a Python float operand rounded to float32, as
// ATen does for a scalar next to a float32 tensor), element by element in plain loops: ATen's per-op
// overhead on 2048-element tensors made the search 0.3 s of a resnet18 report. Only the final sum is
// ATen's, for its summation order. Each step's error, and so where the search stops, are PyTorch's to
// the bit (tests/detectors/test_quantization_error.py compares the qparams on 176 layers).
#include <cmath>
#include <algorithm>
#include <limits>

#include "observers/stat_observers.h"

namespace qreport::observers {
namespace {

// _get_norm: density * ((end^3 - begin^3) / 3), in float32 as the tensors are.
float get_norm(float begin, float end, float density) {
  const float norm = (end * end * end - begin * begin * begin) / 3.0f;
  return density * norm;
}

// torch.div(a, b, rounding_mode="floor") on float32 (c10::div_floor_floating).
float div_floor(float a, float b) {
  if (b == 0.0f) return a / b;
  const float mod = std::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0.0f && (b < 0.0f) != (mod < 0.0f)) div -= 1.0f;
  if (div == 0.0f) return std::copysign(0.0f, a / b);
  float floordiv = std::floor(div);
  if (div - floordiv > 0.5f) floordiv += 1.0f;
  return floordiv;
}

class Search {
 public:
  Search(const HistogramSummary& h, int64_t dst_nbins) : h_(h), dst_nbins_(dst_nbins) {
    histogram_ = at::from_blob(const_cast<float*>(h.histogram.data()), {bins()}, at::kFloat).clone();
    norm_.resize(static_cast<size_t>(bins()));
  }
  int64_t bins() const { return static_cast<int64_t>(h_.histogram.size()); }

  // _compute_quantization_error(next_start_bin, next_end_bin), as a Python float.
  double error(int64_t start_bin, int64_t end_bin) const {
    // Python floats from .item(): float64 arithmetic from here to the tensor operations.
    const double bin_width = (static_cast<double>(h_.max_val) - static_cast<double>(h_.min_val)) / bins();
    const double dst_bin_width = bin_width * static_cast<double>(end_bin - start_bin + 1) / dst_nbins_;
    if (dst_bin_width == 0.0) return 0.0;
    const float bw = static_cast<float>(bin_width), dw = static_cast<float>(dst_bin_width);
    const float half = static_cast<float>(dst_bin_width / 2), neg_half = static_cast<float>(-dst_bin_width / 2);
    const float top = static_cast<float>(dst_nbins_ - 1);
    // The middle term's norm is one 0-d tensor expression: get_norm(tensor(-w/2), tensor(w/2), density).
    const float full_cube = (half * half * half - neg_half * neg_half * neg_half) / 3.0f;
    const float* hist = histogram_.data_ptr<float>();
    for (int64_t i = 0; i < bins(); ++i) {
      const float begin = static_cast<float>(i - start_bin) * bw;  // (src_bin - start) * bin_width
      const float end = begin + bw;
      const float dst_begin = std::clamp(div_floor(begin, dw), 0.0f, top);
      const float dst_begin_center = (dst_begin + 0.5f) * dw;
      const float dst_end = std::clamp(div_floor(end, dw), 0.0f, top);
      const float density = hist[i] / bw;
      float norm = 0.0f;
      norm += get_norm(begin - dst_begin_center, half, density);
      norm += (dst_end - dst_begin - 1.0f) * (density * full_cube);
      const float dst_end_center = dst_end * dw + half;
      norm += get_norm(neg_half, end - dst_end_center, density);
      norm_[static_cast<size_t>(i)] = norm;
    }
    at::Tensor norm = at::from_blob(norm_.data(), {bins()}, at::kFloat);
    return norm.sum().item<double>();
  }

  std::pair<float, float> run() const {
    const double total = histogram_.sum().item<double>();
    at::Tensor csum_t = at::cumsum(histogram_, 0).contiguous();
    const float* csum = csum_t.data_ptr<float>();
    const double stepsize = 1e-5;
    double alpha = 0.0, beta = 1.0, norm_min = std::numeric_limits<double>::infinity();
    int64_t start_bin = 0, end_bin = bins() - 1;
    while (alpha < beta) {
      const double next_alpha = alpha + stepsize, next_beta = beta - stepsize;
      // cSum[l] < next_alpha * total compares a float32 tensor with a Python float: in float32.
      const float lo = static_cast<float>(next_alpha * total), hi = static_cast<float>(next_beta * total);
      int64_t l = start_bin, r = end_bin;
      while (l < end_bin && csum[l] < lo) ++l;
      while (r > start_bin && csum[r] > hi) --r;
      int64_t next_start = start_bin, next_end = end_bin;
      if (l - start_bin > end_bin - r) {
        next_start = l;
        alpha = next_alpha;
      } else {
        next_end = r;
        beta = next_beta;
      }
      if (next_start == start_bin && next_end == end_bin) continue;
      const double norm = error(next_start, next_end);
      if (norm > norm_min) break;
      norm_min = norm;
      start_bin = next_start;
      end_bin = next_end;
    }
    // new_min = min_val + bin_width * start_bin, with bin_width a float32 tensor.
    const float bin_width = (h_.max_val - h_.min_val) / static_cast<float>(bins());
    const float new_min = h_.min_val + bin_width * static_cast<float>(start_bin);
    const float new_max = h_.min_val + bin_width * static_cast<float>(end_bin + 1);
    return {new_min, new_max};
  }

 private:
  const HistogramSummary& h_;
  int64_t dst_nbins_;
  at::Tensor histogram_;
  mutable std::vector<float> norm_;
};

}  // namespace

std::optional<std::pair<float, float>> histogram_search_range(const HistogramSummary& h, int64_t dst_nbins) {
  if (h.histogram.empty() || h.batches == 0 || !h.invalid.empty()) return std::nullopt;
  return Search(h, dst_nbins).run();
}

}  // namespace qreport::observers
