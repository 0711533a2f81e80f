// HistogramObserver.forward (PyTorch 1.13's algorithm with float histogram bounds, or PyTorch 2.5's, see
// stat_observers.h): the same float32 operations in the same order, so the merged histogram, and the
// range the search later picks from it, match PyTorch's.
#include <ATen/Parallel.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#include "observers/channel_kernel.h"
#include "observers/stat_observers.h"

namespace qreport::observers {
namespace {

// torch.histc(x, bins, lo, hi) on a contiguous float32 CPU tensor, bin for bin: ATen's histc maps a value
// with the same float32 expression, (x - lo) * bins / (hi - lo) truncated, the top edge going to the last
// bin and values outside [lo, hi] (and NaN) to none. ATen's generic N-dimensional loop costs about 3 ns a
// value; this one computes a block of bin indices (a branch-free loop the compiler vectorises) and counts
// them in per-thread integer histograms, four interleaved copies each: a ReLU output's run of zeros would
// otherwise wait on its own previous increment of one bin. lo < hi (the callers' ranges are never empty).
constexpr int64_t kBlock = 1024;
constexpr int kCopies = 4;

void bin_indices(const float* p, int64_t m, float lo, float hi, float scale, int32_t bins, int32_t* idx) {
  const float width = hi - lo;
  const int32_t last = bins - 1;
  for (int64_t k = 0; k < m; ++k) {
    const float v = p[k];
    const bool in = v >= lo && v <= hi;
    const float t = (in ? v : lo) - lo;  // 0 for values not counted: no out-of-range conversion
    const int32_t i = static_cast<int32_t>(t * scale / width);
    idx[k] = in ? (i > last ? last : i) : bins;  // bin `bins` collects the values not counted
  }
}

#if defined(__x86_64__)
// The same operations eight values at a time (GCC does not vectorise the scalar loop's selects).
__attribute__((target("avx2"))) void bin_indices_avx2(const float* p, int64_t m, float lo, float hi, float scale,
                                                     int32_t bins, int32_t* idx) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), vscale = _mm256_set1_ps(scale);
  const __m256 vwidth = _mm256_set1_ps(hi - lo);
  const __m256i vlast = _mm256_set1_epi32(bins - 1), vskip = _mm256_set1_epi32(bins);
  int64_t k = 0;
  for (; k + 8 <= m; k += 8) {
    const __m256 v = _mm256_loadu_ps(p + k);
    const __m256 in = _mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LE_OQ));
    const __m256 t = _mm256_sub_ps(_mm256_blendv_ps(vlo, v, in), vlo);
    __m256i i = _mm256_cvttps_epi32(_mm256_div_ps(_mm256_mul_ps(t, vscale), vwidth));
    i = _mm256_min_epi32(i, vlast);
    i = _mm256_blendv_epi8(vskip, i, _mm256_castps_si256(in));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + k), i);
  }
  bin_indices(p + k, m - k, lo, hi, scale, bins, idx + k);
}
#endif

// Scratch of the calling thread, reused by every observation point and batch: the per-batch path
// allocates nothing once it has seen its largest tensor.
struct Scratch {
  std::vector<uint32_t> counts;
  std::vector<char> used;      // per thread: its copies of counts were cleared and written
  std::vector<double> partial;  // per block: sum of squares
  std::vector<float> fresh;    // this batch's histogram; swapped with the observer's
  std::vector<float> moved;    // kUpscale: the old histogram on the new range
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Sum of squares of one block (float32 lanes, then float64), the one arithmetic of both moments() and
// the sum taken alongside the histogram, so that the two are the same number.
float squares_block(const float* p, int64_t m) {
  float ss = 0.0f;
  for (int64_t k = 0; k < m; ++k) ss += p[k] * p[k];
  return ss;
}
#if defined(__x86_64__)
__attribute__((target("avx2"))) double squares_block_avx2(const float* p, int64_t m) {
  __m256 ss = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= m; k += 8) {
    const __m256 v = _mm256_loadu_ps(p + k);
    ss = _mm256_add_ps(ss, _mm256_mul_ps(v, v));
  }
  alignas(32) float c[8];
  _mm256_store_ps(c, ss);
  double r = 0.0;
  for (int i = 0; i < 8; ++i) r += c[i];
  if (k < m) r += squares_block(p + k, m - k);
  return r;
}
#endif

// histc, and with sum_squares the sum of squares of x (moments()' value) in the same read.
void histc_cpu(const float* x, int64_t n, int64_t bins, float lo, float hi, std::vector<float>& out,
               double* sum_squares) {
  const int32_t nb = static_cast<int32_t>(bins);
  const int64_t stride = bins + 1;
  const int threads = at::get_num_threads();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  Scratch& s = scratch();
  std::vector<uint32_t>& counts = s.counts;
  counts.resize(static_cast<size_t>(threads) * kCopies * stride);
  // Each task zeroes its thread's copies and marks them used; a tensor below the parallel grain then
  // clears and sums one thread's copies, not every thread's.
  s.used.assign(static_cast<size_t>(threads), 0);
  // A tensor of fewer values than bins gains nothing from the interleaved copies, whose clearing and
  // summing would then cost more than the counting.
  const int copies = n >= 4 * bins ? kCopies : 1;
  s.partial.resize(sum_squares ? static_cast<size_t>(blocks) : 0);
  at::parallel_for(0, blocks, kParallelGrainValues / kBlock, [&, lo, hi, nb](int64_t b0, int64_t b1) {
    const int t = at::get_thread_num();
    uint32_t* h = counts.data() + static_cast<size_t>(t) * kCopies * stride;
    if (!s.used[t]) {
      std::fill(h, h + copies * stride, 0u);
      s.used[t] = 1;
    }
    const float scale = static_cast<float>(nb);
    alignas(64) int32_t idx[kBlock];
    for (int64_t b = b0; b < b1; ++b) {
      const float* p = x + b * kBlock;
      const int64_t m = std::min(kBlock, n - b * kBlock);
#if defined(__x86_64__)
      static const bool avx2 = __builtin_cpu_supports("avx2");
      if (avx2) {
        bin_indices_avx2(p, m, lo, hi, scale, nb, idx);
        if (sum_squares) s.partial[b] = squares_block_avx2(p, m);  // the block is in L1 now
      } else
#endif
      {
        bin_indices(p, m, lo, hi, scale, nb, idx);
        if (sum_squares) s.partial[b] = squares_block(p, m);
      }
      int64_t k = 0;
      if (copies == kCopies)
        for (; k + kCopies <= m; k += kCopies) {
          ++h[idx[k]];
          ++h[stride + idx[k + 1]];
          ++h[2 * stride + idx[k + 2]];
          ++h[3 * stride + idx[k + 3]];
        }
      for (; k < m; ++k) ++h[idx[k]];
    }
  });
  out.assign(bins, 0.0f);
  for (size_t t = 0; t < static_cast<size_t>(threads); ++t) {
    if (!s.used[t]) continue;
    for (size_t c = t * kCopies; c < t * kCopies + copies; ++c)
      for (int64_t i = 0; i < bins; ++i) out[i] += static_cast<float>(counts[c * stride + i]);
  }
  if (sum_squares) {
    *sum_squares = 0.0;
    for (double p : s.partial) *sum_squares += p;  // in block order, as moments()
  }
}

// min, max and sum of squares of a tensor, in one read on the CPU (three ATen reductions otherwise). A
// NaN or infinity anywhere makes the sum of squares non-finite, which the caller rejects.
struct Moments {
  float min, max;
  double sum_squares;
};
Moments moments(const at::Tensor& x);

// torch.histc into `out` (the thread's scratch): the replay on the CPU, ATen's elsewhere and for an
// empty range (mn == mx: every value the same), which ATen widens by a rule that changed across versions.
// sum_squares (CPU float32 only): moments()' sum of squares, taken in the same read where it can be.
void histc(const at::Tensor& x, int64_t bins, float mn, float mx, std::vector<float>& out,
           double* sum_squares = nullptr) {
  if (x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() && mn < mx)
    return histc_cpu(x.data_ptr<float>(), x.numel(), bins, mn, mx, out, sum_squares);
  at::Tensor h = at::histc(x, bins, mn, mx).to(at::kCPU).contiguous();
  out.assign(h.data_ptr<float>(), h.data_ptr<float>() + bins);
  if (sum_squares) *sum_squares = moments(x).sum_squares;
}


Moments moments_block(const float* p, int64_t m) {
  float mn = p[0], mx = p[0];
  for (int64_t k = 0; k < m; ++k) {
    const float v = p[k];
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  return {mn, mx, squares_block(p, m)};  // the block is in L1: a second loop costs little
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) Moments moments_block_avx2(const float* p, int64_t m) {
  __m256 mn = _mm256_set1_ps(p[0]), mx = mn;
  int64_t k = 0;
  for (; k + 8 <= m; k += 8) {
    const __m256 v = _mm256_loadu_ps(p + k);
    mn = _mm256_min_ps(mn, v);
    mx = _mm256_max_ps(mx, v);
  }
  alignas(32) float a[8], b[8];
  _mm256_store_ps(a, mn);
  _mm256_store_ps(b, mx);
  Moments r{a[0], b[0], squares_block_avx2(p, m)};
  for (int i = 0; i < 8; ++i) {
    r.min = std::min(r.min, a[i]);
    r.max = std::max(r.max, b[i]);
  }
  for (; k < m; ++k) {
    r.min = std::min(r.min, p[k]);
    r.max = std::max(r.max, p[k]);
  }
  return r;
}
#endif

Moments moments_cpu(const float* x, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  // The calling thread's buffer, reused (no allocation per batch). A reference, so that the workers
  // below write into it rather than into their own thread_local copies.
  thread_local std::vector<Moments> storage;
  std::vector<Moments>& partial = storage;
  partial.resize(static_cast<size_t>(blocks));
  at::parallel_for(0, blocks, kParallelGrainValues / kBlock, [&](int64_t b0, int64_t b1) {
#if defined(__x86_64__)
    static const bool avx2 = __builtin_cpu_supports("avx2");
#endif
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t m = std::min(kBlock, n - b * kBlock);
#if defined(__x86_64__)
      if (avx2) {
        partial[b] = moments_block_avx2(x + b * kBlock, m);
        continue;
      }
#endif
      partial[b] = moments_block(x + b * kBlock, m);
    }
  });
  Moments r = partial[0];
  r.sum_squares = 0.0;
  for (const auto& p : partial) {  // in block order: the same sum whatever the thread count
    r.min = std::min(r.min, p.min);
    r.max = std::max(r.max, p.max);
    r.sum_squares += p.sum_squares;
  }
  return r;
}

Moments moments(const at::Tensor& x) {
  if (x.is_cpu() && x.scalar_type() == at::kFloat) {
    Moments r = moments_cpu(x.data_ptr<float>(), x.numel());
    r.min = canonical(r.min);  // -0.0 as +0.0, as the channel kernel's range (known_range) has it
    r.max = canonical(r.max);
    return r;
  }
  auto [mn, mx] = at::aminmax(x);
  at::Tensor flat = x.reshape(-1);
  // One transfer for the three scalars (a device sync on a GPU: the merge below needs them on the host).
  at::Tensor host = at::stack({mn, mx, at::dot(flat, flat)}).to(at::kCPU);
  return {host[0].item<float>(), host[1].item<float>(), static_cast<double>(host[2].item<float>())};
}

// Why a batch whose min, max or sum of squares is not finite cannot be histogrammed. A NaN makes the sum
// of squares NaN and an infinity +inf with an infinite min or max; finite values whose squares overflow
// float32 (|x| above 1.8e19) leave min and max finite.
std::string nonfinite_reason(float mn, float mx, double sum_squares) {
  if (std::isinf(sum_squares) && sum_squares > 0 && std::isfinite(mn) && std::isfinite(mx))
    return "the observed values' squares overflow float32 (|x| up to " + std::to_string(std::max(-mn, mx)) + ")";
  return "the observed values include NaN or infinity";
}

}  // namespace

void HistogramObserver::observe(const at::Tensor& x_in, const std::optional<std::pair<float, float>>& known_range) {
  if (!s_.invalid.empty() || x_in.numel() == 0) return;
  const at::Tensor x = x_in.contiguous();
  // With the batch's range already known (the channel kernel's, in the same call), the sum of squares is
  // taken in the histogram's read: one read of x instead of two.
  const bool fused = known_range && x.is_cpu() && x.scalar_type() == at::kFloat;
  Moments mo{};
  if (fused) {
    mo.min = canonical(known_range->first);
    mo.max = canonical(known_range->second);
  } else {
    mo = moments(x);
  }
  const float new_min = mo.min, new_max = mo.max;
  if (!std::isfinite(new_min) || !std::isfinite(new_max) || !std::isfinite(mo.sum_squares)) {
    s_.invalid = nonfinite_reason(new_min, new_max, mo.sum_squares);
    return;
  }
  const bool upscale = merge_ == HistogramMerge::kUpscale;
  const bool uninitialized = std::isinf(s_.min_val) && std::isinf(s_.max_val);
  // kGrid: PyTorch starts over while every value seen so far was the same (min_val == max_val).
  // kUpscale keeps such a histogram and moves it as a point mass (upscale_histogram).
  const bool restart = uninitialized || (!upscale && s_.min_val == s_.max_val);
  float cmin = new_min, cmax = new_max;
  int64_t downsample_rate = 1, start_idx = 0;
  std::string invalid;
  if (upscale) {
    if (!restart) {
      cmin = std::min(new_min, s_.min_val);
      cmax = std::max(new_max, s_.max_val);
    }
  } else if (!restart) {
    cmin = std::min(new_min, s_.min_val);
    cmax = std::max(new_max, s_.max_val);
    // _adjust_min_max: a grid of width hist_bin_width on which both histograms align; only the max is relaxed.
    const float hist_bin_width = (s_.max_val - s_.min_val) / static_cast<float>(kBins * kUpsampleRate);
    const float grid = static_cast<float>(kBins) * hist_bin_width;
    const double down = std::ceil(static_cast<double>((cmax - cmin) / grid));
    if (!(hist_bin_width > 0.0f) || !std::isfinite(down) || down > 1e12) {
      invalid = "the range grew too much from one batch to the next for a histogram (from [" +
                std::to_string(s_.min_val) + ", " + std::to_string(s_.max_val) + "])";
    } else {
      downsample_rate = static_cast<int64_t>(down);
      const float e = static_cast<float>(downsample_rate) * grid - (cmax - cmin);
      cmax = cmax + e;
      start_idx = static_cast<int64_t>(std::nearbyint((s_.min_val - cmin) / hist_bin_width));
    }
  }
  std::vector<float>& fresh = scratch().fresh;
  if (invalid.empty()) {
    histc(x, kBins, cmin, cmax, fresh, fused ? &mo.sum_squares : nullptr);
  } else if (fused) {
    mo = moments(x);  // rare: the statistics of an invalid histogram still count this batch
  }
  if (fused && !std::isfinite(mo.sum_squares)) {
    s_.invalid = nonfinite_reason(new_min, new_max, mo.sum_squares);
    return;
  }
  s_.sum_squares += mo.sum_squares;
  s_.count += x.numel();
  s_.data_min = std::min(s_.data_min, new_min);
  s_.data_max = std::max(s_.data_max, new_max);
  ++s_.batches;
  if (!invalid.empty()) {
    s_.invalid = std::move(invalid);
    return;
  }
  if (restart) {
    s_.histogram.swap(fresh);
    s_.min_val = new_min;
    s_.max_val = new_max;
    return;
  }
  if (cmin == s_.min_val && cmax == s_.max_val) {
    for (int64_t i = 0; i < kBins; ++i) fresh[i] += s_.histogram[i];
  } else if (upscale) {
    std::vector<float>& moved = scratch().moved;
    upscale_histogram(s_, cmin, cmax, moved);  // update_hist + transformed_orig_hist, in float32
    for (int64_t i = 0; i < kBins; ++i) fresh[i] += moved[i];
  } else {
    combine(fresh, downsample_rate, start_idx);
  }
  s_.histogram.swap(fresh);  // both buffers keep their capacity
  s_.min_val = cmin;
  s_.max_val = cmax;
}

namespace {

// Exponent of the lowest set bit of a finite, non-zero double; floor(log2 |x|) of a normal one. From the
// bits: frexp and ldexp cost a library call each, and this runs once per run of an upsampled bin.
int lowest_bit_exponent(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const int biased = static_cast<int>((bits >> 52) & 0x7FF);
  uint64_t mantissa = bits & ((uint64_t{1} << 52) - 1);
  if (biased != 0) mantissa |= uint64_t{1} << 52;  // the implicit bit of a normal number
  return (biased != 0 ? biased : 1) - 1075 + __builtin_ctzll(mantissa);
}
int floor_log2(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return static_cast<int>((bits >> 52) & 0x7FF) - 1023;
}

}  // namespace

double add_repeated(double acc, double v, int64_t n) {
  if (v == 0.0 || n <= 0) return acc;
  // Every partial sum acc + i * v lies on the grid 2^q of both operands' lowest bits; while the largest
  // stays below 2^(52 + q) each is a double, so each addition is exact and the n additions give
  // acc + n * v (n * v itself is exact: v has 24 significant bits, n far fewer than 29).
  int q = lowest_bit_exponent(v);
  if (acc != 0.0) q = std::min(q, lowest_bit_exponent(acc));
  const double bound = std::fabs(acc) + static_cast<double>(n) * std::fabs(v);
  if (n < (int64_t{1} << 28) && std::isnormal(bound) && floor_log2(bound) < 51 + q)
    return acc + static_cast<double>(n) * v;
  for (int64_t i = 0; i < n; ++i) acc += v;
  return acc;
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
    while (j <= p && j < end) {
      const int64_t bin = (j - start_idx) / kUpsampleRate;
      const int64_t run_end = std::min(p, start_idx + (bin + 1) * kUpsampleRate - 1);
      const double v = static_cast<double>(old[bin]);
      if (v == 0.0) {  // adding zeros changes nothing: skip the run (tails are mostly empty bins)
        j = run_end + 1;
        continue;
      }
      acc = add_repeated(acc, v, run_end - j + 1);
      j = run_end + 1;
    }
    const double shifted = static_cast<double>(static_cast<float>(prev));  // PyTorch's float32 buffer
    const double interpolated = (acc - shifted) / static_cast<double>(kUpsampleRate);
    fresh[k] = fresh[k] + static_cast<float>(interpolated);
    prev = acc;
  }
}

}  // namespace qreport::observers
