// Per-tensor affine fake quantization of a CPU float32 tensor, bit for bit ATen's
// fake_quantize_per_tensor_affine, eight lanes at a time.
//
// Why not ATen's: its CPU kernel rounds one value at a time through std::nearbyint and also writes a
// gradient mask the analysis never reads, about 5 ns a value here. The error pass, --simulate and the
// sensitivity runs fake-quantize every Linear/Conv input of their batches, so that kernel was the
// largest single cost of the error pass (mobilenet_v2, 8 images: 0.13 s of CPU of 0.3 s).
//
// ATen's arithmetic (FakeQuantPerTensorAffine, CPU): inv = 1.0f / scale, both float32;
// q = float(zero_point) + nearbyint(x * inv) in float32; q clamped into [quant_min, quant_max];
// out = float(q - zero_point) * scale. Every step here is the same float32 operation, so the results
// are equal bit for bit. Only q outside the int64 range (NaN, +-inf, |q| >= 2^63) differs between
// PyTorch versions: 2.x clamps q as a float (NaN goes to quant_min, +inf to quant_max); 1.13 casts q to
// int64 first, which x86 turns into INT64_MIN, so all of them go to quant_min. Which rule the linked
// LibTorch follows is asked of ATen itself, once.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "observers/channel_kernel.h"
#include "observers/observers.h"

namespace qreport::observers {
namespace {

struct Affine {
  float scale, inv, zp, qmin, qmax;
  bool out_of_range_to_min;  // 1.13's rule for q outside the int64 range
};

// 2^63: the first float q that does not convert to int64.
constexpr float kInt64Limit = 9223372036854775808.0f;

float fake_quantize_one(float x, const Affine& a) {
  float q = a.zp + std::nearbyint(x * a.inv);
  if (a.out_of_range_to_min && !(q >= -kInt64Limit && q < kInt64Limit)) q = a.qmin;
  q = std::fmin(std::fmax(q, a.qmin), a.qmax);  // fmax(NaN, qmin) is qmin, as std::fmax in double
  return (q - a.zp) * a.scale;
}

void fake_quantize_scalar(const float* x, float* out, int64_t n, const Affine& a) {
  for (int64_t i = 0; i < n; ++i) out[i] = fake_quantize_one(x[i], a);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define QREPORT_HAVE_AVX2_FAKE_QUANT 1
__attribute__((target("avx2"))) void fake_quantize_avx2(const float* x, float* out, int64_t n, const Affine& a) {
  const __m256 vinv = _mm256_set1_ps(a.inv), vzp = _mm256_set1_ps(a.zp), vscale = _mm256_set1_ps(a.scale);
  const __m256 vqmin = _mm256_set1_ps(a.qmin), vqmax = _mm256_set1_ps(a.qmax);
  const __m256 vlimit = _mm256_set1_ps(kInt64Limit), vneg_limit = _mm256_set1_ps(-kInt64Limit);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // nearbyint: the current rounding direction (round to nearest even unless someone changed it).
    __m256 q = _mm256_add_ps(vzp, _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv),
                                                  _MM_FROUND_CUR_DIRECTION | _MM_FROUND_NO_EXC));
    if (a.out_of_range_to_min) {
      const __m256 in = _mm256_and_ps(_mm256_cmp_ps(q, vneg_limit, _CMP_GE_OQ), _mm256_cmp_ps(q, vlimit, _CMP_LT_OQ));
      q = _mm256_blendv_ps(vqmin, q, in);
    }
    q = _mm256_max_ps(q, vqmin);  // maxps returns its second operand where q is NaN: quant_min
    q = _mm256_min_ps(q, vqmax);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_sub_ps(q, vzp), vscale));
  }
  fake_quantize_scalar(x + i, out + i, n - i, a);
}
#endif

// Whether the linked ATen sends +inf to quant_min (1.13's int64 cast) rather than quant_max.
bool aten_sends_out_of_range_to_min() {
  static const bool to_min = [] {
    at::Tensor probe = at::full({1}, std::numeric_limits<float>::infinity(), at::kFloat);
    return at::fake_quantize_per_tensor_affine(probe, 1.0, 0, 0, 255).item<float>() == 0.0f;
  }();
  return to_min;
}

// The same question of ATen's per-channel kernel, which casts q to int64 before clamping in every
// version so far (x86: INT64_MIN, so quant_min), whatever its per-tensor kernel does.
bool aten_per_channel_sends_out_of_range_to_min() {
  static const bool to_min = [] {
    at::Tensor probe = at::full({1, 1}, std::numeric_limits<float>::infinity(), at::kFloat);
    return at::fake_quantize_per_channel_affine(probe, at::ones({1}, at::kFloat), at::zeros({1}, at::kInt), 0, 0,
                                                255)
               .item<float>() == 0.0f;
  }();
  return to_min;
}

void fake_quantize_run(const float* in, float* out, int64_t n, const Affine& a) {
#if defined(QREPORT_HAVE_AVX2_FAKE_QUANT)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return fake_quantize_avx2(in, out, n, a);
#endif
  fake_quantize_scalar(in, out, n, a);
}

}  // namespace

at::Tensor fake_quantize_per_tensor(const at::Tensor& x, float scale, int64_t zero_point, int64_t quant_min,
                                    int64_t quant_max) {
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || !x.is_contiguous() || x.requires_grad())
    return at::fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max);
  // Arguments ATen rejects get ATen's own error.
  if (quant_min > quant_max || zero_point < quant_min || zero_point > quant_max)
    return at::fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max);
  const Affine a{scale, 1.0f / scale, static_cast<float>(zero_point), static_cast<float>(quant_min),
                 static_cast<float>(quant_max), aten_sends_out_of_range_to_min()};
  at::Tensor out = at::empty_like(x);
  const float* in = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, x.numel(), at::internal::GRAIN_SIZE,
                   [&](int64_t begin, int64_t end) { fake_quantize_run(in + begin, o + begin, end - begin, a); });
  return out;
}

at::Tensor fake_quantize_per_row(const at::Tensor& x, const std::vector<float>& scale, int64_t quant_min,
                                 int64_t quant_max) {
  const int64_t rows = static_cast<int64_t>(scale.size());
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || !x.is_contiguous() || x.requires_grad() || x.dim() < 1 ||
      x.size(0) != rows || quant_min > quant_max || quant_min > 0 || quant_max < 0) {
    at::Tensor s = at::tensor(at::ArrayRef<float>(scale), at::kFloat).to(x.device());
    return at::fake_quantize_per_channel_affine(x, s, at::zeros({rows}, x.options().dtype(at::kInt)), 0, quant_min,
                                                quant_max);
  }
  const int64_t cols = rows ? x.numel() / rows : 0;
  const bool to_min = aten_per_channel_sends_out_of_range_to_min();
  at::Tensor out = at::empty_like(x);
  const float* in = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(cols, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      // ATen's per-channel lambda: inv = 1.0f / scale[r], zero point 0, the per-tensor arithmetic.
      const Affine a{scale[r], 1.0f / scale[r], 0.0f, static_cast<float>(quant_min), static_cast<float>(quant_max),
                     to_min};
      fake_quantize_run(in + r * cols, o + r * cols, cols, a);
    }
  });
  return out;
}

at::Tensor fake_quantize(const at::Tensor& x, const QParams& q) {
  return fake_quantize_per_tensor(x, q.scale, q.zero_point, q.quant_min, q.quant_max);
}

}  // namespace qreport::observers
