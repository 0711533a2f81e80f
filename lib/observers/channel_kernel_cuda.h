// Internal: the CUDA version of the fused per-channel kernel (channel_kernel.h), for --device cuda.
// Plain pointers and a stream handle, so that nvcc never sees LibTorch's headers; the glue in
// channel_kernel_cuda_glue.cpp allocates the scratch and passes the current stream.
//
// One call observes one float32 tensor viewed as [outer, C, inner] and updates the observers' running
// state on the device, with no host synchronisation: a radix selection in three digit passes over
// order-preserving keys (11 + 11 + 10 bits, exact), the first pass also reducing min/max/NaN, then the
// observers' float32 update arithmetic per channel. Channels one block reads whole take one launch with
// the histograms in shared memory; larger ones one launch per digit plus a finalising one.
#pragma once
#include <cstdint>

namespace qreport::observers::cuda {

constexpr int kMaxRanks = 4;
constexpr int kBins = 2048;

// Running state of one percentile statistic (PercentileObserver's three tensors), device pointers.
struct PercentileState {
  float* avg_ratio;
  int32_t* batches_used;
  int32_t* constant;
};

struct ChannelStatsArgs {
  const float* data;
  int64_t outer, channels, inner;
  // MinMaxObserver's running min/max (nullptr when not wanted); first: overwrite instead of combine.
  float* run_min;
  float* run_max;
  bool first_minmax;
  int nranks;                        // 0..kMaxRanks
  int64_t ranks[kMaxRanks];
  PercentileState pct[kMaxRanks];
  // LLM.int8() moments (channel_kernel.h): running float64 sums [5][C] (x, x^2, x^3, x^4, count of
  // |x| >= 6) that the first digit pass adds to, one atomic add per block and sum; nullptr: not wanted.
  double* moments;
  // Scratch of scratch_bytes() (nullptr when that is 0): histograms and per-block partial min/max;
  // zeroed by the call.
  void* scratch;
};

// Blocks per channel for the streaming passes; with one, a single launch does everything in shared memory.
int blocks_per_channel(int64_t m);
// 0 where one block reads a whole channel; otherwise about 24 KiB per channel and rank, less than the
// at least 64 KiB of values per channel that needs several blocks.
size_t scratch_bytes(int64_t channels, int64_t m, int nranks);
// Enqueues everything on `stream` (a cudaStream_t); returns a CUDA error string or nullptr.
const char* channel_stats_cuda(const ChannelStatsArgs& args, void* stream);

}  // namespace qreport::observers::cuda
