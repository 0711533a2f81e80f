// qreport's per-tensor fake quantization against ATen's fake_quantize_per_tensor_affine, bit for bit, on
// the linked LibTorch (2.x and 1.13 differ for NaN, infinities and values beyond int64: both are checked).
#include <ATen/ATen.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "observers/observers.h"
#include "pipeline/fake_quant.h"
#include "test_support.h"

using namespace qreport::observers;

namespace {

const float kInfF = std::numeric_limits<float>::infinity();

// Index of the first value whose bits differ, or -1.
int64_t first_difference(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  const auto* pa = static_cast<const uint32_t*>(ca.data_ptr());
  const auto* pb = static_cast<const uint32_t*>(cb.data_ptr());
  for (int64_t i = 0; i < ca.numel(); ++i)
    if (pa[i] != pb[i]) return i;
  return -1;
}

// Values that exercise every branch: ties at .5 of a step, both zeros, the clamps, NaN, infinities,
// values past int64 once scaled, subnormals, and random values around the range.
at::Tensor hostile_values(int64_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 200.0f * scale);
  std::vector<float> v(static_cast<size_t>(n));
  const float specials[] = {0.0f, -0.0f, 0.5f * scale, -0.5f * scale, 1.5f * scale, 2.5f * scale, -2.5f * scale,
                            127.5f * scale, 255.5f * scale, -128.5f * scale, 1e20f, -1e20f, 3e38f, -3e38f,
                            kInfF, -kInfF, std::numeric_limits<float>::quiet_NaN(), 1e-40f, -1e-40f};
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = normal(rng);
  for (int64_t i = 0; i < n; i += 37) v[static_cast<size_t>(i)] = specials[(i / 37) % std::size(specials)];
  return at::from_blob(v.data(), {n}, at::kFloat).clone();
}

}  // namespace

TEST_CASE("fake_quantize_per_tensor equals ATen's bit for bit, NaN and infinities included") {
  struct Case {
    float scale;
    int64_t zp, qmin, qmax;
  };
  // quint8 with a zero point, qint8 symmetric, the 7-bit reduced range, a tiny scale (large q), and a
  // scale that is not a power of two.
  const Case cases[] = {{0.0473f, 131, 0, 255}, {0.02f, 0, -128, 127}, {0.1f, 64, 0, 127},
                        {1.17549435e-38f, 0, 0, 255}, {3.0f, 255, 0, 255}};
  // Sizes: below eight lanes, lane tails, and over ATen's parallel grain (two tasks).
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{37}, int64_t{1001}, int64_t{70001}}) {
    uint32_t seed = 1;
    for (const Case& c : cases) {
      CAPTURE(n);
      CAPTURE(c.scale);
      const at::Tensor x = hostile_values(n, c.scale, seed++);
      const at::Tensor ours = fake_quantize_per_tensor(x, c.scale, c.zp, c.qmin, c.qmax);
      const at::Tensor aten = at::fake_quantize_per_tensor_affine(x, c.scale, c.zp, c.qmin, c.qmax);
      CHECK(first_difference(ours, aten) == -1);
    }
  }
}

TEST_CASE("fake_quantize_per_tensor: the special values themselves, against ATen") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor x = at::tensor({nan, kInfF, -kInfF, 1e6f, -1e6f, 0.0f, -0.0f, 0.25f, 0.75f, 1e30f, -1e30f}, at::kFloat);
  const at::Tensor ours = fake_quantize_per_tensor(x, 0.5f, 10, 0, 255);
  const at::Tensor aten = at::fake_quantize_per_tensor_affine(x, 0.5, 10, 0, 255);
  CHECK(first_difference(ours, aten) == -1);
  // Whatever the version's rule for values past int64 (1e30 here), NaN goes to quant_min and finite
  // values within int64 clamp.
  CHECK(ours[0].item<float>() == (0.0f - 10.0f) * 0.5f);
  CHECK(ours[3].item<float>() == (255.0f - 10.0f) * 0.5f);
  CHECK(ours[4].item<float>() == (0.0f - 10.0f) * 0.5f);
  // 0.25 / 0.5 = 0.5 and 0.75 / 0.5 = 1.5: ties to even, 0 and 2 steps.
  CHECK(ours[7].item<float>() == 0.0f);
  CHECK(ours[8].item<float>() == 1.0f);
}

TEST_CASE("fake_quantize_per_tensor: what the vectorised kernel does not take goes to ATen, unchanged") {
  const at::Tensor x = hostile_values(1000, 0.05f, 7).reshape({10, 100});
  const at::Tensor strided = x.t();  // not contiguous
  CHECK(first_difference(fake_quantize_per_tensor(strided, 0.05f, 3, 0, 255),
                         at::fake_quantize_per_tensor_affine(strided, 0.05, 3, 0, 255)) == -1);
  const at::Tensor d = x.to(at::kDouble);
  CHECK(at::equal(fake_quantize_per_tensor(d, 0.05f, 3, 0, 255), at::fake_quantize_per_tensor_affine(d, 0.05, 3, 0, 255)));
  // Arguments ATen rejects: ATen's own error.
  CHECK_THROWS_WITH(fake_quantize_per_tensor(x, 0.05f, 300, 0, 255), doctest::Contains("zero_point"));
}

TEST_CASE("fake_quantize_dynamic equals ATen's tensor-qparams fake quantization on the CPU") {
  for (uint32_t seed : {11u, 12u}) {
    at::Tensor x = hostile_values(5000, 0.01f, seed);
    x = at::where(at::isfinite(x), x, at::zeros_like(x));  // the dynamic range of a finite activation
    auto [mn, mx] = at::aminmax(x);
    const at::Tensor min_neg = at::clamp_max(mn, 0.0), max_pos = at::clamp_min(mx, 0.0);
    const at::Tensor scale = at::clamp_min((max_pos - min_neg) / 127.0, static_cast<double>(FLT_EPSILON));
    const at::Tensor zp = at::clamp(at::neg(at::round(min_neg / scale)), 0, 127).to(at::kInt);
    const at::Tensor aten = at::fake_quantize_per_tensor_affine(x, scale.reshape({1}), zp.reshape({1}), 0, 127);
    CHECK(first_difference(qreport::pipeline::fake_quantize_dynamic(x, 127), aten) == -1);
  }
}
