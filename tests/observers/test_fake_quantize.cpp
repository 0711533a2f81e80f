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

TEST_CASE("fake_quantize_per_row equals ATen's per-channel fake quantization bit for bit, NaN and infinities included") {
  // Rows of hostile values, each with its own scale (a weight's per-channel qparams), qint8 and the
  // 7-bit range; [C, K] and a conv weight's [C, I, kh, kw].
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{5, 1001}, std::vector<int64_t>{3, 4, 3, 3},
                                           std::vector<int64_t>{200, 300}, std::vector<int64_t>{7, 1}}) {
    int64_t rows = shape[0], numel = 1;
    for (int64_t d : shape) numel *= d;
    const at::Tensor x = hostile_values(numel, 0.03f, static_cast<uint32_t>(numel)).reshape(shape);
    std::vector<float> scale(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) scale[static_cast<size_t>(r)] = 0.003f * static_cast<float>(r + 1) + 1e-7f * r;
    scale[0] = FLT_EPSILON;  // an all-zero channel's scale
    for (auto [qmin, qmax] : {std::pair<int64_t, int64_t>{-128, 127}, std::pair<int64_t, int64_t>{-64, 63}}) {
      CAPTURE(numel);
      CAPTURE(qmin);
      const at::Tensor aten = at::fake_quantize_per_channel_affine(
          x, at::tensor(at::ArrayRef<float>(scale), at::kFloat), at::zeros({rows}, at::kInt), 0, qmin, qmax);
      CHECK(first_difference(fake_quantize_per_row(x, scale, qmin, qmax), aten) == -1);
    }
  }
}

TEST_CASE("fake_quantize_weight per channel equals PerChannelMinMaxObserver's qparams through ATen") {
  // The composition it replaces: aminmax over dim 1 of the [C, -1] view, symmetric qint8 qparams per
  // row, ATen's per-channel fake quantization.
  at::manual_seed(3);
  at::Tensor w = at::randn({16, 8, 3, 3}) * at::linspace(0.01, 3.0, 16).reshape({16, 1, 1, 1});
  w[5].zero_();    // scale eps
  w[6].fill_(-2);  // one-sided
  auto [mn, mx] = at::aminmax(w.reshape({16, -1}), 1);
  std::vector<float> scale(16);
  for (int64_t c = 0; c < 16; ++c) scale[c] = symmetric_qparams(mn[c].item<float>(), mx[c].item<float>(), -128, 127).scale;
  const at::Tensor aten = at::fake_quantize_per_channel_affine(w, at::tensor(at::ArrayRef<float>(scale), at::kFloat),
                                                               at::zeros({16}, at::kInt), 0, -128, 127);
  CHECK(first_difference(fake_quantize_weight(w, true), aten) == -1);
  // A weight that ATen's path must take (not contiguous) gives the same.
  const at::Tensor wt = w.reshape({16, 72}).t().contiguous().t();
  CHECK(first_difference(fake_quantize_weight(wt, true), fake_quantize_weight(w.reshape({16, 72}), true)) == -1);
}

TEST_CASE("channel_min_max equals aminmax of the transposed, flattened weight, NaN included") {
  at::manual_seed(4);
  at::Tensor w = at::randn({6, 5, 3, 2});
  w.index_put_({2, 1, 0, 1}, std::numeric_limits<float>::quiet_NaN());  // channel 2 of axis 0, 1 of axis 1, ...
  for (int axis = 0; axis < 4; ++axis) {
    CAPTURE(axis);
    const auto ours = channel_min_max(w, axis);
    REQUIRE(ours.has_value());
    auto [mn, mx] = w.transpose(0, axis).flatten(1).aminmax(1);
    REQUIRE(static_cast<int64_t>(ours->first.size()) == mn.numel());
    for (int64_t c = 0; c < mn.numel(); ++c) {
      CAPTURE(c);
      const float a = mn[c].item<float>(), b = mx[c].item<float>();
      CHECK((std::isnan(a) ? std::isnan(ours->first[c]) : ours->first[c] == a));
      CHECK((std::isnan(b) ? std::isnan(ours->second[c]) : ours->second[c] == b));
    }
  }
  CHECK_FALSE(channel_min_max(w, 4).has_value());
  CHECK_FALSE(channel_min_max(w, -1).has_value());
  CHECK_FALSE(channel_min_max(at::Tensor(), 0).has_value());
  // Not contiguous: ATen's reduction, the same numbers.
  const at::Tensor t = w.transpose(1, 2);
  const auto strided = channel_min_max(t, 1);
  auto [smn, smx] = t.transpose(0, 1).flatten(1).aminmax(1);
  REQUIRE(strided.has_value());
  CHECK(strided->first.size() == 3);
  CHECK(std::isnan(strided->first[0]));  // the NaN's slice
  CHECK(strided->first[1] == smn[1].item<float>());
  CHECK(strided->second[2] == smx[2].item<float>());
}
