// Copies that put an [outer, C, inner] activation into the layout a kernel reads fastest. ATen's
// movedim(...).contiguous() does the same through TensorIterator, whose set-up and strided element loop
// cost several microseconds per call: on small images, where a layer's activation is a few thousand
// values, that was a fifth of the observers' time. These loops write into a buffer the caller reuses.
#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "observers/channel_kernel.h"

namespace qreport::observers {

namespace {

#if defined(__x86_64__)
// One 8 x 8 block: 8 channels' runs of 8 positions (source lines `ss` apart) -> 8 positions' runs of 8
// channels (destination lines `ds` apart), in registers. The scalar tile loop gathered one value per
// strided load and was the largest observer cost with small images (7% of the run on mobilenet_v2 with
// batches of one 64x64 image).
__attribute__((target("avx2"))) inline void transpose_8x8(const float* s, int64_t ss, float* d, int64_t ds) {
  const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ss), r2 = _mm256_loadu_ps(s + 2 * ss),
               r3 = _mm256_loadu_ps(s + 3 * ss), r4 = _mm256_loadu_ps(s + 4 * ss), r5 = _mm256_loadu_ps(s + 5 * ss),
               r6 = _mm256_loadu_ps(s + 6 * ss), r7 = _mm256_loadu_ps(s + 7 * ss);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
               u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
               u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
               u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(d + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(d + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(d + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(d + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(d + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(d + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(d + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// The whole 8 x 8 blocks of one [C, inner] -> [inner, C] transpose, 64 positions at a time (as the tiles
// of to_channels_last); the caller copies the channels and positions past the last whole block.
__attribute__((target("avx2"))) void blocks_avx2(const float* s, int64_t channels, int64_t inner, float* d) {
  constexpr int64_t kPositions = 64;
  const int64_t c8 = channels / 8 * 8, i8 = inner / 8 * 8;
  for (int64_t i0 = 0; i0 < i8; i0 += kPositions) {
    const int64_t i1 = std::min(i8, i0 + kPositions);
    for (int64_t c = 0; c < c8; c += 8)
      for (int64_t i = i0; i < i1; i += 8) transpose_8x8(s + c * inner + i, inner, d + i * channels + c, channels);
  }
}
#endif

}  // namespace

void to_channels_last(const float* src, int64_t outer, int64_t channels, int64_t inner, float* dst) {
  // Per outer index a [C, inner] -> [inner, C] transpose in tiles of 16 channels x 64 positions: the
  // tile's source runs and destination lines both stay in L1. Without the position blocking, 16 read
  // streams a power-of-two apart (inner = 1024) fall into the same cache sets.
  constexpr int64_t kChannels = 16, kPositions = 64;
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
#else
  constexpr bool avx2 = false;
#endif
  // With AVX2 the whole 8 x 8 blocks go through registers and the loops below copy only the channels
  // and positions past them.
  const int64_t c_done = avx2 ? channels / 8 * 8 : 0, i_done = avx2 ? inner / 8 * 8 : 0;
  for (int64_t o = 0; o < outer; ++o) {
    const float* s = src + o * channels * inner;
    float* d = dst + o * inner * channels;
#if defined(__x86_64__)
    if (avx2 && c_done > 0 && i_done > 0) blocks_avx2(s, channels, inner, d);
#endif
    for (int64_t i0 = 0; i0 < inner; i0 += kPositions) {
      const int64_t i1 = std::min(inner, i0 + kPositions);
      for (int64_t c0 = 0; c0 < channels; c0 += kChannels) {
        const int64_t c1 = std::min(channels, c0 + kChannels);
        for (int64_t i = i0; i < i1; ++i) {
          // Inside the blocks' rectangle [0, c_done) x [0, i_done) the values are already written.
          const int64_t from = (i < i_done && c_done > 0) ? std::max(c0, c_done) : c0;
          for (int64_t c = from; c < c1; ++c) d[i * channels + c] = s[c * inner + i];
        }
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
