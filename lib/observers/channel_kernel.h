// Internal: the fused per-channel statistics kernel of the CPU path. One call reads a float32 activation
// in its own layout, viewed as [outer, C, inner], and computes for every channel its min, max and the
// values at the given ranks (exact order statistics, as torch.kthvalue or torch.quantile "lower"), with
// no transposed copy, no sort and no allocation once its buffers have grown to the largest batch.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace qreport::observers {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// -0.0 and +0.0 are one value for the order statistics: results come out as +0.0.
inline float canonical(float v) { return v + 0.0f; }

// The fewest values one task of a parallel observer kernel reads. Waking the pool's other threads and
// joining them costs microseconds, so the smallest activations stay on the calling thread; above this
// the second thread pays (mobilenet_v2 at 300 x 1x3x64x64, observers' time: 0.87 s at 64 Ki values per
// task, 0.79-0.80 s at 16 Ki, 0.78-0.81 s at 8 Ki).
constexpr int64_t kParallelGrainValues = int64_t{1} << 14;

// A float buffer that grows to the largest size asked of it and never shrinks, uninitialised: its users
// write every value they read (the per-batch path then allocates nothing after the largest batch).
class GrowingBuffer {
 public:
  float* get(int64_t n) {
    if (n > capacity_) {
      data_.reset(new float[n]);
      capacity_ = n;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<float[]> data_;
  int64_t capacity_ = 0;
};

// Results for one batch, indexed by channel; kth holds one row of C values per rank (rank-major).
// A channel holding a NaN gets NaN for min, max and every rank (as amin/amax/quantile give).
struct ChannelBatchStats {
  std::vector<float> min, max, kth;
};

// LLM.int8()-style statistics of one batch, per channel (issue 24 item 6; docs/usage.md): the sums of x,
// x^2, x^3 and x^4 (the layer's kurtosis) and how many values have |x| >= kOutlierMagnitude, accumulated by
// the per-channel kernels inside the read they already make (no extra pass over the activation). The sums
// are float32 over blocks of kMomentBlock values of a channel, in order, then float64 across blocks: the
// float32 part keeps the kernels eight lanes wide, the blocks bound its rounding (a relative 64 * 2^-24
// at worst per block). A NaN makes its channel's sums NaN (its count skips it).
constexpr float kOutlierMagnitude = 6.0f;
constexpr int64_t kMomentBlock = 64;
struct ChannelMoments {
  std::vector<double> s1, s2, s3, s4, above;  // indexed by channel
  void resize(int64_t channels);              // and zero
};
// Adds one block's float32 partial sums of one channel into m (the scalar paths' flush).
inline void flush_moments(ChannelMoments& m, int64_t c, float a1, float a2, float a3, float a4, float n) {
  m.s1[c] += a1;
  m.s2[c] += a2;
  m.s3[c] += a3;
  m.s4[c] += a4;
  m.above[c] += n;
}
// The moments of [outer, C, inner] for the layouts no fused kernel reads (a single row, or a channel axis
// that is not innermost): one separate read, for the rare observation points that need it.
void channel_moments_cpu(const float* data, int64_t outer, int64_t channels, int64_t inner, ChannelMoments& m);

// Per rank and channel, a window [lo, hi] of values that will likely hold the next batch's order
// statistic, learnt from the batches before (batches of one model are alike): a channel with a window
// skips drawing a sample for its bounds. `half` is the window's half width as a fraction of the channel,
// widened after a miss and narrowed slowly after hits. Rank-major like ChannelBatchStats::kth; lo NaN:
// no window yet. Results never depend on the windows, only the time does.
struct RankWindows {
  std::vector<float> lo, hi, half;
  void reset(size_t n);  // n windows, none learnt yet
};

// data: outer * channels * inner contiguous float32 values. ranks: 0-based, each < outer * inner.
// windows (optional): read and updated, sized ranks.size() * channels by the caller (reset).
// Runs in parallel over channels on ATen's intra-op thread pool.
void channel_stats_cpu(const float* data, int64_t outer, int64_t channels, int64_t inner,
                       const std::vector<int64_t>& ranks, ChannelBatchStats& out, RankWindows* windows = nullptr);

// The same statistics for a [rows, C] row-major tensor (inner == 1: channels innermost, as a Linear's
// input), read row by row without a channel-first copy. Applies when every rank lies within a short tail
// of the rows (rows_kernel_applies: the reference percentile of a few hundred tokens); bit-identical to
// channel_stats_cpu.
bool rows_kernel_applies(int64_t rows, const std::vector<int64_t>& ranks);
// moments (optional): resized and filled with the batch's ChannelMoments in the same read.
void channel_stats_rows_cpu(const float* data, int64_t rows, int64_t channels, const std::vector<int64_t>& ranks,
                            ChannelBatchStats& out, ChannelMoments* moments = nullptr);

// [outer, C, inner] -> [outer * inner, C] (channels innermost, for the rows kernel) and -> [C, outer * inner]
// (channel-first); dst holds outer * C * inner values.
// Tensor-wide min and max of n contiguous values in one read on the pool's threads, NaN for both where
// any value is NaN (as at::aminmax). parts: the caller's scratch, one slot per thread, reused.
struct RangePart {
  float mn, mx;
  bool nan, used;
};
std::pair<float, float> tensor_range_cpu(const float* data, int64_t n, std::vector<RangePart>& parts);

void to_channels_last(const float* src, int64_t outer, int64_t channels, int64_t inner, float* dst);
void to_channels_first(const float* src, int64_t outer, int64_t channels, int64_t inner, float* dst);
// to_channels_first of a [rows, C] tensor (inner == 1) that also fills moments (resized) while it reads.
void to_channels_first_moments(const float* src, int64_t rows, int64_t channels, float* dst, ChannelMoments& moments);

// The exact k-th smallest (0-based) of n finite-or-infinite, NaN-free values, by radix selection on the
// values' order-preserving integer keys. A result of zero is +0.0 (-0.0 and +0.0 compare equal).
// Reorders nothing in values; uses scratch as working memory.
float select_kth(const float* values, int64_t n, int64_t k, std::vector<float>& scratch);

}  // namespace qreport::observers
