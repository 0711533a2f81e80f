// Copies that put an [outer, C, inner] activation into the layout a kernel reads fastest. ATen's
// movedim(...).contiguous() does the same through TensorIterator, whose set-up and strided element loop
// cost several microseconds per call: on small images, where a layer's activation is a few thousand
// values, that was a fifth of the observers' time. These loops write into a buffer the caller reuses.
#include <algorithm>
#include <cstring>

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

}  // namespace qreport::observers
