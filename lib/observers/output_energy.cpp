// ATen's form of these sums (y.square().sum(), (yq - y).square().sum()) reads and writes each output
// about seven times and allocates a temporary the size of the output; in the error pass of mobilenet_v2
// (54 M output values a batch) the temporary's first-touch page faults alone showed as 2% of the run.
#include "observers/output_energy.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "observers/channel_kernel.h"

namespace qreport::observers {
namespace {

constexpr int64_t kBlock = 1024;

struct Sums {
  double signal = 0.0, noise = 0.0;
};

Sums block_sums(const float* y, const float* yq, int64_t m) {
  Sums s;
  for (int64_t k = 0; k < m; ++k) {
    const float d = yq[k] - y[k];  // float32, as the tensors' difference
    s.signal += static_cast<double>(y[k]) * y[k];
    s.noise += static_cast<double>(d) * d;
  }
  return s;
}

#if defined(__x86_64__)
// Four float64 lanes per sum and operand half; lane order is fixed, so the block's sum is too.
__attribute__((target("avx2"))) Sums block_sums_avx2(const float* y, const float* yq, int64_t m) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, n0 = s0, n1 = s0;
  int64_t k = 0;
  for (; k + 8 <= m; k += 8) {
    const __m256 a = _mm256_loadu_ps(y + k);
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(yq + k), a);
    const __m256d alo = _mm256_cvtps_pd(_mm256_castps256_ps128(a)), ahi = _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1));
    const __m256d dlo = _mm256_cvtps_pd(_mm256_castps256_ps128(d)), dhi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
    s0 = _mm256_add_pd(s0, _mm256_mul_pd(alo, alo));
    s1 = _mm256_add_pd(s1, _mm256_mul_pd(ahi, ahi));
    n0 = _mm256_add_pd(n0, _mm256_mul_pd(dlo, dlo));
    n1 = _mm256_add_pd(n1, _mm256_mul_pd(dhi, dhi));
  }
  alignas(32) double a[4], b[4], c[4], e[4];
  _mm256_store_pd(a, s0);
  _mm256_store_pd(b, s1);
  _mm256_store_pd(c, n0);
  _mm256_store_pd(e, n1);
  Sums s;
  for (int i = 0; i < 4; ++i) {
    s.signal += a[i] + b[i];
    s.noise += c[i] + e[i];
  }
  const Sums tail = block_sums(y + k, yq + k, m - k);
  s.signal += tail.signal;
  s.noise += tail.noise;
  return s;
}
#endif

Sums sums_cpu(const float* y, const float* yq, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  thread_local std::vector<Sums> storage;  // the calling thread's, reused: no allocation per call
  std::vector<Sums>& partial = storage;
  partial.assign(static_cast<size_t>(blocks), Sums{});
  at::parallel_for(0, blocks, kParallelGrainValues / kBlock, [&](int64_t b0, int64_t b1) {
#if defined(__x86_64__)
    static const bool avx2 = __builtin_cpu_supports("avx2");
#endif
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t at = b * kBlock, m = std::min(kBlock, n - at);
#if defined(__x86_64__)
      if (avx2) {
        partial[b] = block_sums_avx2(y + at, yq + at, m);
        continue;
      }
#endif
      partial[b] = block_sums(y + at, yq + at, m);
    }
  });
  Sums total;
  for (const Sums& p : partial) {  // in block order
    total.signal += p.signal;
    total.noise += p.noise;
  }
  return total;
}

}  // namespace

void add_output_energy(const at::Tensor& y, const at::Tensor& yq, at::Tensor& signal, at::Tensor& noise) {
  if (y.is_cpu() && yq.is_cpu() && y.scalar_type() == at::kFloat && yq.scalar_type() == at::kFloat &&
      y.sizes() == yq.sizes() && y.strides() == yq.strides() && y.is_non_overlapping_and_dense() && signal.is_cpu() && noise.is_cpu() &&
      signal.scalar_type() == at::kDouble && noise.scalar_type() == at::kDouble) {
    const Sums s = sums_cpu(y.data_ptr<float>(), yq.data_ptr<float>(), y.numel());
    *signal.data_ptr<double>() += s.signal;
    *noise.data_ptr<double>() += s.noise;
    return;
  }
  signal.add_(y.square().sum());
  noise.add_((yq - y).square().sum());
}

}  // namespace qreport::observers
