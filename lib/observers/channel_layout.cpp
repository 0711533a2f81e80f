// Copies that put an [outer, C, inner] activation into the layout a kernel reads fastest. ATen's
// movedim(...).contiguous() does the same through TensorIterator, whose set-up and strided element loop
// cost several microseconds per call: on small images, where a layer's activation is a few thousand
// values, that was a fifth of the observers' time. These loops write into a buffer the caller reuses.
#include <algorithm>
#include <cstring>
#include <vector>

#include "observers/channel_kernel.h"

namespace qreport::observers {

void to_channels_last(const float* src, int64_t outer, int64_t channels, int64_t inner, float* dst) {
  // Per outer index a [C, inner] -> [inner, C] transpose in tiles of 16 channels x 64 positions: the
  // tile's source runs and destination lines both stay in L1. Without the position blocking, 16 read
  // streams a power-of-two apart (inner = 1024) fall into the same cache sets.
  constexpr int64_t kChannels = 16, kPositions = 64;
  for (int64_t o = 0; o < outer; ++o) {
    const float* s = src + o * channels * inner;
    float* d = dst + o * inner * channels;
    for (int64_t i0 = 0; i0 < inner; i0 += kPositions) {
      const int64_t i1 = std::min(inner, i0 + kPositions);
      for (int64_t c0 = 0; c0 < channels; c0 += kChannels) {
        const int64_t c1 = std::min(channels, c0 + kChannels);
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t c = c0; c < c1; ++c) d[i * channels + c] = s[c * inner + i];
      }
    }
  }
}

void to_channels_first(const float* src, int64_t outer, int64_t channels, int64_t inner, float* dst) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c)
      std::memcpy(dst + (c * outer + o) * inner, src + (o * channels + c) * inner, inner * sizeof(float));
}

void ChannelMoments::resize(int64_t channels) {
  for (auto* v : {&s1, &s2, &s3, &s4, &above}) v->assign(channels, 0.0);
}

namespace {

// Float32 partial sums of one block of rows, per channel, for the row-walking loops below: five arrays of
// C values that the inner loop over channels updates side by side (it vectorises), flushed into the
// float64 sums every kMomentBlock rows. Grown once per thread, never shrunk.
struct MomentBlock {
  std::vector<float> a1, a2, a3, a4, n;
  void start(int64_t channels) {
    for (auto* v : {&a1, &a2, &a3, &a4, &n}) v->assign(channels, 0.0f);
  }
  void add_row(const float* row, int64_t channels) {
    float *p1 = a1.data(), *p2 = a2.data(), *p3 = a3.data(), *p4 = a4.data(), *pn = n.data();
    for (int64_t c = 0; c < channels; ++c) {
      const float v = row[c], v2 = v * v;
      p1[c] += v;
      p2[c] += v2;
      p3[c] += v2 * v;
      p4[c] += v2 * v2;
      pn[c] += (v >= kOutlierMagnitude || v <= -kOutlierMagnitude) ? 1.0f : 0.0f;
    }
  }
  void flush(ChannelMoments& m, int64_t channels) {
    for (int64_t c = 0; c < channels; ++c) flush_moments(m, c, a1[c], a2[c], a3[c], a4[c], n[c]);
    start(channels);
  }
};

}  // namespace

void to_channels_first_moments(const float* src, int64_t rows, int64_t channels, float* dst, ChannelMoments& m) {
  m.resize(channels);
  thread_local MomentBlock b;
  b.start(channels);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = src + r * channels;
    for (int64_t c = 0; c < channels; ++c) dst[c * rows + r] = row[c];
    b.add_row(row, channels);
    if ((r + 1) % kMomentBlock == 0 || r + 1 == rows) b.flush(m, channels);
  }
}

void channel_moments_cpu(const float* data, int64_t outer, int64_t channels, int64_t inner, ChannelMoments& m) {
  m.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    float a1 = 0, a2 = 0, a3 = 0, a4 = 0, n = 0;
    int64_t in_block = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const float v = data[(o * channels + c) * inner + i], v2 = v * v;
        a1 += v;
        a2 += v2;
        a3 += v2 * v;
        a4 += v2 * v2;
        n += (v >= kOutlierMagnitude || v <= -kOutlierMagnitude) ? 1.0f : 0.0f;
        if (++in_block == kMomentBlock) {
          flush_moments(m, c, a1, a2, a3, a4, n);
          a1 = a2 = a3 = a4 = n = 0;
          in_block = 0;
        }
      }
    if (in_block) flush_moments(m, c, a1, a2, a3, a4, n);
  }
}

}  // namespace qreport::observers
