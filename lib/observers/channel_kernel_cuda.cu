// CUDA kernels of channel_kernel_cuda.h. Exactness: the k-th value is found digit by digit on the
// values' order-preserving 32-bit keys (-0.0 folded onto +0.0, as on the CPU path), so the result is
// the exact order statistic torch.kthvalue / torch.quantile("lower") would return.
#include <cuda_runtime.h>

#include <cstdint>

#include "observers/channel_kernel_cuda.h"

namespace qreport::observers::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = kBins / kThreads;  // histogram bins each thread scans in select_bucket
constexpr float kFltMax = 3.402823466e38f;
constexpr float kOutlierMagnitude = 6.0f;  // channel_kernel.h's

// One thread's LLM.int8() moments of the values it reads in the first digit pass, in float64.
struct Moments {
  double s[5] = {0, 0, 0, 0, 0};  // x, x^2, x^3, x^4, count of |x| >= 6
  __device__ __forceinline__ void add(float v) {
    const double d = v, d2 = d * d;
    s[0] += d;
    s[1] += d2;
    s[2] += d2 * d;
    s[3] += d2 * d2;
    s[4] += fabsf(v) >= kOutlierMagnitude ? 1.0 : 0.0;
  }
};

__device__ __forceinline__ uint32_t key_of(float v) {
  v += 0.0f;
  uint32_t u = __float_as_uint(v);
  return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
}

__device__ __forceinline__ float value_of(uint32_t k) {
  return __uint_as_float(k ^ ((k & 0x80000000u) ? 0x80000000u : 0xFFFFFFFFu));
}

// Digit d of a key: bits 31..21, 20..10, 9..0.
__device__ __forceinline__ int shift_of(int d) { return d == 0 ? 21 : d == 1 ? 10 : 0; }
__device__ __forceinline__ uint32_t digit_mask(int d) { return d == 2 ? 0x3FFu : 0x7FFu; }
__device__ __forceinline__ uint32_t high_mask(int d) { return d == 0 ? 0u : d == 1 ? 0xFFE00000u : 0xFFFFFC00u; }

struct Layout {
  const float* data;
  int64_t outer, channels, inner, m;
};

// Walks values j, j + stride, ... of channel c (j counts over [outer, inner]) with one division per
// thread at the start instead of a 64-bit division per value.
struct Walk {
  const float* p;
  int64_t i, inner, step_i, step_p, wrap;
  __device__ Walk(const Layout& x, int64_t c, int64_t j, int64_t stride) : inner(x.inner) {
    const int64_t o = j / inner;
    i = j - o * inner;
    p = x.data + (o * x.channels + c) * inner + i;
    const int64_t so = stride / inner;
    step_i = stride - so * inner;
    step_p = so * x.channels * inner + step_i;
    wrap = (x.channels - 1) * inner;  // from past the end of one run of c to the same place in the next
  }
  __device__ __forceinline__ void next() {
    p += step_p;
    i += step_i;
    if (i >= inner) {
      i -= inner;
      p += wrap;
    }
  }
};

// Adds one to h[bin] for every lane of the warp at once: lanes with the same bin (ReLU's zeros, all in
// one bin of the first digit) elect one leader that adds their count, instead of serialising on one
// shared-memory address. bin < 0: this lane adds nothing.
__device__ __forceinline__ void add_to_bin(uint32_t* h, int bin) {
  const unsigned active = __activemask();
  const unsigned peers = __match_any_sync(active, bin);
  if (bin >= 0 && (threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&h[bin], static_cast<uint32_t>(__popc(peers)));
}

// Scratch layout (several blocks per channel only): hist[digit][rank][channel][kBins] (digit 0 only uses
// rank 0; none without ranks), then partial[c][b][3].
__device__ __forceinline__ uint32_t* hist_at(uint32_t* hist, int d, int r, int64_t c, int64_t channels, int nr) {
  return hist + ((static_cast<int64_t>(d) * nr + r) * channels + c) * kBins;
}

// Block-wide: the bucket of h[0, kBins) holding the k-th (0-based) counted value, and how many lie below.
__device__ void select_bucket(const uint32_t* h, int64_t k, uint32_t* bucket, int64_t* below) {
  __shared__ int64_t sums[kThreads];
  __shared__ uint32_t found_bucket;
  __shared__ int64_t found_below;
  int t = threadIdx.x;
  int64_t local = 0;
  for (int i = 0; i < kPerThread; ++i) local += h[t * kPerThread + i];
  sums[t] = local;
  __syncthreads();
  for (int off = 1; off < kThreads; off <<= 1) {  // inclusive Hillis-Steele scan
    int64_t add = t >= off ? sums[t - off] : 0;
    __syncthreads();
    sums[t] += add;
    __syncthreads();
  }
  int64_t before = t == 0 ? 0 : sums[t - 1];
  if (k >= before && k < sums[t]) {
    int64_t acc = before;
    for (int i = 0; i < kPerThread; ++i) {
      uint32_t n = h[t * kPerThread + i];
      if (k < acc + n) {
        found_bucket = static_cast<uint32_t>(t * kPerThread + i);
        found_below = acc;
        break;
      }
      acc += n;
    }
  }
  __syncthreads();
  *bucket = found_bucket;
  *below = found_below;
  __syncthreads();
}

// The key prefix (digits before d) and remaining rank of rank r, from the histograms of earlier digits.
__device__ void prefix_for(uint32_t* hist, int d, int r, int64_t c, int64_t channels, int nr, int64_t k,
                           uint32_t* prefix, int64_t* krem) {
  uint32_t p = 0;
  for (int e = 0; e < d; ++e) {
    uint32_t b;
    int64_t below;
    select_bucket(hist_at(hist, e, e == 0 ? 0 : r, c, channels, nr), k, &b, &below);
    p |= b << shift_of(e);
    k -= below;
  }
  *prefix = p;
  *krem = k;
}

// Counts digit d of the keys of channel c's values [begin, end) into sh (sh[0] for digit 0, which all
// ranks share; sh[r] for rank r's candidates, those whose higher digits equal prefixes[r], after it).
// Digit 0 also reduces this thread's min/max keys and NaN flag.
__device__ void count_digit(const Layout& x, int64_t c, int64_t begin, int64_t end, int d, int nranks,
                            const uint32_t* prefixes, uint32_t (*sh)[kBins], uint32_t& kmin, uint32_t& kmax,
                            uint32_t& nan, Moments* moments) {
  const int shift = shift_of(d);
  const uint32_t dmask = digit_mask(d), hmask = high_mask(d);
  Walk w(x, c, begin + threadIdx.x, kThreads);
  for (int64_t j = begin + threadIdx.x; j < end; j += kThreads, w.next()) {
    const float v = *w.p;
    const bool is_nan = v != v;  // NaN: the channel's statistics are NaN; not counted
    nan |= is_nan ? 1u : 0u;
    const uint32_t key = key_of(v);
    if (d == 0) {
      if (moments) moments->add(v);
      if (!is_nan) {
        kmin = min(kmin, key);
        kmax = max(kmax, key);
      }
      if (nranks > 0) add_to_bin(sh[0], is_nan ? -1 : static_cast<int>(key >> shift));
    } else {
      for (int r = 0; r < nranks; ++r)
        add_to_bin(sh[r], !is_nan && (key & hmask) == prefixes[r] ? static_cast<int>((key >> shift) & dmask) : -1);
    }
  }
}

// Block-wide sums of the threads' moments (warp shuffles, then one shared slot per warp), added by thread 0
// to the running sums of channel c. Called by every thread of the block.
__device__ void add_moments(Moments& m, double* run, int64_t c, int64_t channels) {
  __shared__ double warp_sums[kThreads / 32][5];
  for (int k = 0; k < 5; ++k) {
    double v = m.s[k];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32][k] = v;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int k = 0; k < 5; ++k) {
      double total = 0;
      for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w][k];
      atomicAdd(&run[k * channels + c], total);
    }
  __syncthreads();
}

// Block-wide reduction of the threads' min/max keys and NaN flags; the result is valid in thread 0.
__device__ void reduce_min_max(uint32_t& kmin, uint32_t& kmax, uint32_t& nan) {
  __shared__ uint32_t rmin[kThreads], rmax[kThreads], rnan[kThreads];
  rmin[threadIdx.x] = kmin;
  rmax[threadIdx.x] = kmax;
  rnan[threadIdx.x] = nan;
  __syncthreads();
  for (int off = kThreads / 2; off > 0; off >>= 1) {
    if (threadIdx.x < off) {
      rmin[threadIdx.x] = min(rmin[threadIdx.x], rmin[threadIdx.x + off]);
      rmax[threadIdx.x] = max(rmax[threadIdx.x], rmax[threadIdx.x + off]);
      rnan[threadIdx.x] |= rnan[threadIdx.x + off];
    }
    __syncthreads();
  }
  kmin = rmin[0];
  kmax = rmax[0];
  nan = rnan[0];
}

__device__ __forceinline__ float nan_to_num(float v) {
  if (v != v) return 0.0f;
  if (isinf(v)) return v > 0 ? kFltMax : -kFltMax;
  return v;
}

__device__ __forceinline__ float nan_min(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7fc00000) : fminf(a, b); }
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b); }

// Thread 0 of channel c's block: the observers' float32 updates (spec §1.2) from the batch's min/max keys,
// NaN flag and the values at the ranks.
__device__ void update_observers(int64_t c, uint32_t kmin, uint32_t kmax, uint32_t nan, const float* values,
                                 const ChannelStatsArgs& args) {
  const float qnan = __int_as_float(0x7fc00000);
  const float mn = nan ? qnan : value_of(kmin), mx = nan ? qnan : value_of(kmax);
  if (args.run_min) {
    args.run_min[c] = args.first_minmax ? mn : nan_min(args.run_min[c], mn);
    args.run_max[c] = args.first_minmax ? mx : nan_max(args.run_max[c], mx);
  }
  for (int r = 0; r < args.nranks; ++r) {
    const float qc = nan ? qnan : values[r], qz = mn, qm = mx;
    const int32_t nz = (qc != 0.0f || qm != 0.0f) ? 1 : 0;
    const int32_t cst = __fsub_rn(qm, qz) == 0.0f ? 1 : 0;
    const float rnz = __fmul_rn(static_cast<float>(nz), nan_to_num(__fdiv_rn(qm, qc)));
    PercentileState s = args.pct[r];
    const int32_t used = s.batches_used[c] + nz;
    s.avg_ratio[c] = nan_to_num(__fdiv_rn(__fadd_rn(__fmul_rn(s.avg_ratio[c], static_cast<float>(s.batches_used[c])), rnz),
                                          static_cast<float>(used)));
    s.batches_used[c] = used;
    s.constant[c] += cst;
  }
}

// Large channels: several blocks per channel (gridDim.y), so each digit's histograms are summed in global
// scratch, one launch per digit.
__global__ void digit_pass(Layout x, int d, int nranks, ChannelStatsArgs args, uint32_t* hist, uint32_t* partial) {
  __shared__ uint32_t sh[kMaxRanks][kBins];
  __shared__ uint32_t prefixes[kMaxRanks];
  const int64_t c = blockIdx.x;
  const int nh = d == 0 ? (nranks > 0 ? 1 : 0) : nranks;  // min/max alone: no histogram
  for (int r = 0; r < nh; ++r)
    for (int i = threadIdx.x; i < kBins; i += kThreads) sh[r][i] = 0;
  if (d > 0)
    for (int r = 0; r < nranks; ++r) {
      uint32_t p;
      int64_t krem;
      prefix_for(hist, d, r, c, x.channels, nranks, args.ranks[r], &p, &krem);
      if (threadIdx.x == 0) prefixes[r] = p;
    }
  __syncthreads();

  const int64_t per_block = (x.m + gridDim.y - 1) / gridDim.y;
  const int64_t begin = blockIdx.y * per_block, end = min(x.m, begin + per_block);
  uint32_t kmin = 0xFFFFFFFFu, kmax = 0u, nan = 0u;
  Moments mom;
  const bool sum = d == 0 && args.moments;
  count_digit(x, c, begin, end, d, nranks, prefixes, sh, kmin, kmax, nan, sum ? &mom : nullptr);
  __syncthreads();
  if (sum) add_moments(mom, args.moments, c, x.channels);
  for (int r = 0; r < nh; ++r) {
    uint32_t* g = hist_at(hist, d, r, c, x.channels, nranks);
    for (int i = threadIdx.x; i < kBins; i += kThreads)
      if (sh[r][i]) atomicAdd(&g[i], sh[r][i]);
  }
  if (d == 0) {  // this block's min/max keys and NaN flag into its partial slot
    reduce_min_max(kmin, kmax, nan);
    if (threadIdx.x == 0) {
      uint32_t* p = partial + (c * gridDim.y + blockIdx.y) * 3;
      p[0] = kmin;
      p[1] = kmax;
      p[2] = nan;
    }
  }
}

// Large channels, last launch: one block per channel, the exact values at the ranks, then the updates.
__global__ void finalize(Layout x, int blocks, ChannelStatsArgs args, uint32_t* hist, const uint32_t* partial) {
  const int64_t c = blockIdx.x;
  __shared__ float values[kMaxRanks];
  for (int r = 0; r < args.nranks; ++r) {
    uint32_t p;
    int64_t krem;
    prefix_for(hist, 3, r, c, x.channels, args.nranks, args.ranks[r], &p, &krem);
    if (threadIdx.x == 0) values[r] = value_of(p);
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  uint32_t kmin = 0xFFFFFFFFu, kmax = 0u, nan = 0u;
  for (int b = 0; b < blocks; ++b) {
    const uint32_t* q = partial + (c * blocks + b) * 3;
    kmin = min(kmin, q[0]);
    kmax = max(kmax, q[1]);
    nan |= q[2];
  }
  update_observers(c, kmin, kmax, nan, values, args);
}

// Channels that one block reads whole (blocks_per_channel == 1: most activations, and every Linear
// input): the three digit passes, the selection and the updates in one launch, histograms in shared
// memory only. No global scratch, so nothing that grows with the channel count.
__global__ void channel_block(Layout x, ChannelStatsArgs args) {
  __shared__ uint32_t sh[kMaxRanks][kBins];
  __shared__ uint32_t prefixes[kMaxRanks];
  __shared__ int64_t krem[kMaxRanks];
  __shared__ float values[kMaxRanks];
  const int64_t c = blockIdx.x;
  const int nranks = args.nranks;
  uint32_t kmin = 0xFFFFFFFFu, kmax = 0u, nan = 0u;
  if (threadIdx.x < kMaxRanks) {
    prefixes[threadIdx.x] = 0;
    krem[threadIdx.x] = threadIdx.x < nranks ? args.ranks[threadIdx.x] : 0;
  }
  const int digits = nranks > 0 ? 3 : 1;
  for (int d = 0; d < digits; ++d) {
    const int nh = d == 0 ? (nranks > 0 ? 1 : 0) : nranks;
    for (int r = 0; r < nh; ++r)
      for (int i = threadIdx.x; i < kBins; i += kThreads) sh[r][i] = 0;
    __syncthreads();
    Moments mom;
    const bool sum = d == 0 && args.moments;
    count_digit(x, c, 0, x.m, d, nranks, prefixes, sh, kmin, kmax, nan, sum ? &mom : nullptr);
    __syncthreads();
    if (sum) add_moments(mom, args.moments, c, x.channels);
    for (int r = 0; r < nranks; ++r) {  // this digit of rank r's value, from its histogram
      uint32_t b;
      int64_t below;
      select_bucket(sh[d == 0 ? 0 : r], krem[r], &b, &below);
      if (threadIdx.x == 0) {
        prefixes[r] |= b << shift_of(d);
        krem[r] -= below;
      }
      __syncthreads();
    }
  }
  reduce_min_max(kmin, kmax, nan);
  if (threadIdx.x != 0) return;
  for (int r = 0; r < nranks; ++r) values[r] = value_of(prefixes[r]);
  update_observers(c, kmin, kmax, nan, values, args);
}

}  // namespace

int blocks_per_channel(int64_t m) {
  int64_t b = (m + kThreads * 64 - 1) / (kThreads * 64);  // about 64 values per thread
  return static_cast<int>(b < 1 ? 1 : b > 64 ? 64 : b);
}

static int64_t hist_words(int64_t channels, int nranks) { return 3 * int64_t{nranks} * channels * kBins; }

size_t scratch_bytes(int64_t channels, int64_t m, int nranks) {
  const int blocks = blocks_per_channel(m);
  if (blocks == 1) return 0;  // channel_block: shared memory only
  // Several blocks per channel means at least kThreads * 64 values per channel, so the histograms
  // (24 KiB per channel and rank) are smaller than the data they count.
  return (hist_words(channels, nranks) + channels * blocks * 3) * sizeof(uint32_t);
}

const char* channel_stats_cuda(const ChannelStatsArgs& args, void* stream_handle) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_handle);
  const int64_t m = args.outer * args.inner;
  const int blocks = blocks_per_channel(m);
  Layout x{args.data, args.outer, args.channels, args.inner, m};
  if (blocks == 1) {
    channel_block<<<static_cast<unsigned>(args.channels), kThreads, 0, stream>>>(x, args);
  } else {
    auto* hist = static_cast<uint32_t*>(args.scratch);
    uint32_t* partial = hist + hist_words(args.channels, args.nranks);
    // Only the histograms need zeroing (partials are written whole); min/max alone uses none of them.
    if (args.nranks > 0) cudaMemsetAsync(hist, 0, hist_words(args.channels, args.nranks) * sizeof(uint32_t), stream);
    dim3 grid(static_cast<unsigned>(args.channels), static_cast<unsigned>(blocks));
    const int digits = args.nranks > 0 ? 3 : 1;  // min/max alone needs only the first pass
    for (int d = 0; d < digits; ++d) digit_pass<<<grid, kThreads, 0, stream>>>(x, d, args.nranks, args, hist, partial);
    finalize<<<static_cast<unsigned>(args.channels), kThreads, 0, stream>>>(x, blocks, args, hist, partial);
  }
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace qreport::observers::cuda
