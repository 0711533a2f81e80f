// HistogramObserver._non_linear_param_search and _compute_quantization_error, replayed with the same
// ATen operations on the same float32/int64 tensors and Python-float scalars, so each step's error,
// and therefore where the search stops, are PyTorch's to the bit.
#include <limits>

#include "observers/stat_observers.h"

namespace qreport::observers {
namespace {

// _get_norm: density * (end^3 - begin^3) / 3.
at::Tensor get_norm(const at::Tensor& begin, const at::Tensor& end, const at::Tensor& density) {
  at::Tensor norm = (end * end * end - begin * begin * begin) / 3;
  return density * norm;
}

class Search {
 public:
  Search(const HistogramSummary& h, int64_t dst_nbins) : h_(h), dst_nbins_(dst_nbins) {
    histogram_ = at::from_blob(const_cast<float*>(h.histogram.data()), {bins()}, at::kFloat).clone();
    src_bin_ = at::arange(bins());
  }
  int64_t bins() const { return static_cast<int64_t>(h_.histogram.size()); }

  // _compute_quantization_error(next_start_bin, next_end_bin), as a Python float.
  double error(int64_t start_bin, int64_t end_bin) const {
    // Python floats from .item(): float64 arithmetic from here to the tensor operations.
    const double bin_width = (static_cast<double>(h_.max_val) - static_cast<double>(h_.min_val)) / bins();
    const double dst_bin_width = bin_width * static_cast<double>(end_bin - start_bin + 1) / dst_nbins_;
    if (dst_bin_width == 0.0) return 0.0;
    at::Tensor src_bin_begin = (src_bin_ - start_bin) * bin_width;
    at::Tensor src_bin_end = src_bin_begin + bin_width;
    at::Tensor dst_bin_of_begin =
        at::clamp(at::div(src_bin_begin, dst_bin_width, "floor"), 0, dst_nbins_ - 1);
    at::Tensor dst_bin_of_begin_center = (dst_bin_of_begin + 0.5) * dst_bin_width;
    at::Tensor dst_bin_of_end = at::clamp(at::div(src_bin_end, dst_bin_width, "floor"), 0, dst_nbins_ - 1);
    at::Tensor density = histogram_ / bin_width;
    at::Tensor norm = at::zeros({bins()});
    at::Tensor delta_begin = src_bin_begin - dst_bin_of_begin_center;
    norm += get_norm(delta_begin, at::ones({bins()}) * (dst_bin_width / 2), density);
    norm += (dst_bin_of_end - dst_bin_of_begin - 1) *
            get_norm(at::scalar_tensor(-dst_bin_width / 2, at::kFloat), at::scalar_tensor(dst_bin_width / 2, at::kFloat),
                     density);
    at::Tensor dst_bin_of_end_center = dst_bin_of_end * dst_bin_width + dst_bin_width / 2;
    at::Tensor delta_end = src_bin_end - dst_bin_of_end_center;
    norm += get_norm(at::scalar_tensor(-dst_bin_width / 2, at::kFloat), delta_end, density);
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
  at::Tensor histogram_, src_bin_;
};

}  // namespace

std::optional<std::pair<float, float>> histogram_search_range(const HistogramSummary& h, int64_t dst_nbins) {
  if (h.histogram.empty() || h.batches == 0 || !h.invalid.empty()) return std::nullopt;
  return Search(h, dst_nbins).run();
}

}  // namespace qreport::observers
