// HistogramObserver._combine_histograms of PyTorch >= 2.5 (_upscale_histogram), replayed on the host with
// the float32 operations of PyTorch's CPU observer, in its order:
//   histogram.repeat_interleave(16) / 16                     the old bins, each split into 16 equal parts
//   linspace(orig_min, orig_max, 2048 * 16 + 1)[:-1] + 0.5 * bin_size   the parts' mid-points
//   bucketize(mid_points, linspace(new_min, new_max, 2049), right=True) - 1, clamped to [0, 2047]
//   bincount(assignments, weights=parts, minlength=2048)      float32, added in index order
// linspace is ATen's own (into preallocated buffers): its CPU kernel computes start + step * i with or
// without a fused multiply-add depending on the instruction set it was compiled for, which only calling it
// reproduces. The rest is exact float32 arithmetic and comparisons, done without materialising the
// upsampled weights: empty bins add nothing and are skipped, and the bucket index moves monotonically
// along the sorted mid-points (ATen's binary search where the boundaries are not sorted).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "observers/stat_observers.h"

namespace qreport::observers {

const HistogramMerge kHistogramMerge =
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)) ? HistogramMerge::kUpscale
                                                                                      : HistogramMerge::kGrid;

const char* histogram_merge_name(HistogramMerge m) {
  return m == HistogramMerge::kUpscale ? "upscale (PyTorch 2.5 and later)" : "grid (PyTorch 1.12-2.4)";
}

int64_t histc_bin(float v, float lo, float hi, int64_t bins) {
  const int64_t i = static_cast<int64_t>((v - lo) * static_cast<float>(bins) / (hi - lo));
  return std::min(i, bins - 1);  // the top edge belongs to the last bin
}

namespace {

constexpr int64_t kUpscaleRate = 16;  // HistogramObserver.upsample_rate since PyTorch 2.5 (fixed)

// torch.linspace(start, end, steps) (float32, CPU) into a buffer of the calling thread, reused.
// Under InferenceMode whatever the caller's mode: a buffer made during calibration (an inference tensor)
// is written again by a distributed run's merge, which runs outside it.
const float* linspace(at::Tensor& buffer, float start, float end, int64_t steps) {
  c10::InferenceMode guard;
  if (!buffer.defined() || buffer.numel() != steps) buffer = at::empty({steps}, at::kFloat);
  at::linspace_out(buffer, start, end, steps);
  return buffer.data_ptr<float>();
}

// ATen's cus_upper_bound (Bucketize.cpp): the binary search bucketize(right=True) runs, for boundaries
// that are not sorted (a range so narrow that float32 linspace is not monotonic).
int64_t upper_bound(const float* bd, int64_t n, float v) {
  int64_t start = 0, end = n;
  while (start < end) {
    const int64_t mid = start + ((end - start) >> 1);
    if (!(bd[mid] > v)) {
      start = mid + 1;
    } else {
      end = mid;
    }
  }
  return start;
}

}  // namespace

void upscale_histogram(const HistogramSummary& h, float lo, float hi, std::vector<float>& out) {
  const int64_t bins = static_cast<int64_t>(h.histogram.size());
  if (h.min_val == lo && h.max_val == hi) {  // the ranges are equal: orig_hist + update_hist
    out = h.histogram;
    return;
  }
  out.assign(static_cast<size_t>(bins), 0.0f);
  if (h.min_val == h.max_val) {
    // torch.histc(orig_min, bins, min=lo, max=hi) * torch.sum(orig_hist): the one value's bin gets the
    // total (1 * total; 0 * total elsewhere). The sum is ATen's, in its order.
    at::Tensor hist = at::from_blob(const_cast<float*>(h.histogram.data()), {bins}, at::kFloat);
    out[static_cast<size_t>(histc_bin(h.min_val, lo, hi, bins))] = 1.0f * hist.sum().item<float>();
    return;
  }
  thread_local at::Tensor mid_buffer, boundary_buffer;
  const int64_t fine = bins * kUpscaleRate;
  const float* grid = linspace(mid_buffer, h.min_val, h.max_val, fine + 1);
  const float* bd = linspace(boundary_buffer, lo, hi, bins + 1);
  // bin_size = (orig_max - orig_min) / (bins * upsample_rate), then 0.5 * bin_size: 0-d float32 tensors.
  const float bin_size = (h.max_val - h.min_val) / static_cast<float>(fine);
  const float half = 0.5f * bin_size;
  const int64_t edges = bins + 1;
  const bool sorted = std::is_sorted(bd, bd + edges);
  int64_t u = 0;  // upper bound of the current mid-point among the boundaries
  for (int64_t b = 0; b < bins; ++b) {
    const float w = h.histogram[static_cast<size_t>(b)] / static_cast<float>(kUpscaleRate);
    if (w == 0.0f) continue;  // bincount adds +0 to a non-negative float32: nothing changes
    for (int64_t i = b * kUpscaleRate; i < (b + 1) * kUpscaleRate; ++i) {
      const float v = grid[i] + half;
      if (sorted) {
        while (u < edges && !(bd[u] > v)) ++u;
        while (u > 0 && bd[u - 1] > v) --u;
      } else {
        u = upper_bound(bd, edges, v);
      }
      out[static_cast<size_t>(std::clamp<int64_t>(u - 1, 0, bins - 1))] += w;
    }
  }
}

}  // namespace qreport::observers
