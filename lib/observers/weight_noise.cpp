// Quantization noise of a weight, qint8 symmetric per tensor and per channel, in two reads of the
// weight: per-channel min/max, then both fake-quantized values of every weight and the sums of squares
// of their errors. torch's fake_quantize functions would write two weight-sized tensors, a difference
// tensor each, and (in LibTorch 1.13) clamp through a libm call per value: half a second for ViT-B/16's
// 86M weights, more than all of its observers.
//
// fq(w) is torch's value bit for bit: q = nearbyint(w * (1 / scale)) in float32, clamped to [-128, 127],
// times scale (an integer of eight bits times a float32 is exact in float64, so the float32 product
// torch stores equals this one). The differences w - fq(w) are float32 as torch's tensors are; their
// squares are summed in float64.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "observers/channel_kernel.h"
#include "observers/observers.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qreport::observers {
namespace {

constexpr int64_t kQMin = -128, kQMax = 127;  // qint8

struct Sums {
  double signal = 0, noise_tensor = 0, noise_channel = 0;
};

void noise_scalar(const float* p, int64_t n, float st, float sc, Sums& s) {
  const float it = 1.0f / st, ic = 1.0f / sc;
  for (int64_t i = 0; i < n; ++i) {
    const float v = p[i];
    const float qt = std::min(std::max(std::nearbyint(v * it), -128.0f), 127.0f);
    const float qc = std::min(std::max(std::nearbyint(v * ic), -128.0f), 127.0f);
    const float dt = v - qt * st, dc = v - qc * sc;
    s.signal += static_cast<double>(v) * v;
    s.noise_tensor += static_cast<double>(dt) * dt;
    s.noise_channel += static_cast<double>(dc) * dc;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define QREPORT_HAVE_AVX2_NOISE 1
// Eight values per step; squares summed in float32 lanes over at most 1024 values, then in float64.
__attribute__((target("avx2"))) void noise_avx2(const float* p, int64_t n, float st, float sc, Sums& s) {
  const __m256 it = _mm256_set1_ps(1.0f / st), ic = _mm256_set1_ps(1.0f / sc);
  const __m256 vst = _mm256_set1_ps(st), vsc = _mm256_set1_ps(sc);
  const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;  // nearbyint: ties to even
  int64_t i = 0;
  while (i + 8 <= n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0;
    const int64_t end = std::min(n - (n - i) % 8, i + 1024);
    for (; i < end; i += 8) {
      const __m256 v = _mm256_loadu_ps(p + i);
      const __m256 qt = _mm256_min_ps(_mm256_max_ps(_mm256_round_ps(_mm256_mul_ps(v, it), kRound), lo), hi);
      const __m256 qc = _mm256_min_ps(_mm256_max_ps(_mm256_round_ps(_mm256_mul_ps(v, ic), kRound), lo), hi);
      const __m256 dt = _mm256_sub_ps(v, _mm256_mul_ps(qt, vst));
      const __m256 dc = _mm256_sub_ps(v, _mm256_mul_ps(qc, vsc));
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(v, v));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(dt, dt));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(dc, dc));
    }
    alignas(32) float l0[8], l1[8], l2[8];
    _mm256_store_ps(l0, a0);
    _mm256_store_ps(l1, a1);
    _mm256_store_ps(l2, a2);
    for (int l = 0; l < 8; ++l) {
      s.signal += l0[l];
      s.noise_tensor += l1[l];
      s.noise_channel += l2[l];
    }
  }
  noise_scalar(p + i, n - i, st, sc, s);
}
#endif

}  // namespace

std::optional<WeightNoise> weight_quantization_noise(const at::Tensor& w) {
  if (!w.is_cpu() || w.scalar_type() != at::kFloat || w.dim() < 1 || w.numel() == 0) return std::nullopt;
  const at::Tensor wc = w.contiguous();
  const float* p = wc.data_ptr<float>();
  const int64_t channels = w.size(0), m = w.numel() / channels;
  // Pass 1: per-channel min and max (PerChannelMinMaxObserver(ch_axis=0)), channel_min_max's; the
  // tensor's are theirs. An infinite min or max, or a NaN one (a NaN anywhere in the channel), leaves
  // the weight to torch's path.
  const auto range = channel_min_max(wc, 0);
  const std::vector<float>& cmin = range->first;
  const std::vector<float>& cmax = range->second;
  for (int64_t c = 0; c < channels; ++c)
    if (!std::isfinite(cmin[c]) || !std::isfinite(cmax[c])) return std::nullopt;
  const float tmin = *std::min_element(cmin.begin(), cmin.end());
  const float tmax = *std::max_element(cmax.begin(), cmax.end());
  const int64_t grain = std::max<int64_t>(1, kParallelGrainValues / std::max<int64_t>(m, 1));
  const float st = symmetric_qparams(tmin, tmax, kQMin, kQMax).scale;
  // Pass 2: per channel, summed in channel order afterwards (the same sums whatever the thread count).
  std::vector<Sums> sums(channels);
  at::parallel_for(0, channels, grain, [&](int64_t b, int64_t e) {
#if defined(QREPORT_HAVE_AVX2_NOISE)
    static const bool avx2 = __builtin_cpu_supports("avx2");
#endif
    for (int64_t c = b; c < e; ++c) {
      const float sc = symmetric_qparams(cmin[c], cmax[c], kQMin, kQMax).scale;
#if defined(QREPORT_HAVE_AVX2_NOISE)
      if (avx2) {
        noise_avx2(p + c * m, m, st, sc, sums[c]);
        continue;
      }
#endif
      noise_scalar(p + c * m, m, st, sc, sums[c]);
    }
  });
  WeightNoise r;
  for (const Sums& s : sums) {
    r.signal += s.signal;
    r.noise_per_tensor += s.noise_tensor;
    r.noise_per_channel += s.noise_channel;
  }
  return r;
}

}  // namespace qreport::observers
