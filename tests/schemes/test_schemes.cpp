// lib/schemes without Python: --schemes parsing, which layers torchao leaves alone, and the e4m3fn
// emulation against LibTorch's own float8 cast where the LibTorch has one (2.1 and later; 1.13 has no
// float8 dtype, which is why qreport emulates it). The torchao numerics are checked end to end by
// tests/detectors/test_schemes_oracle.py.
#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

#include "common/errors.h"
#include "schemes/schemes.h"
#include "test_support.h"

using namespace qreport;
using namespace qreport::schemes;

TEST_CASE("--schemes: names, the int4 group size, duplicates, and one error line for bad ones") {
  const auto s = parse("int8-dynamic, int4-weight-only,int4-weight-only-g32,int8-dynamic,smoothquant");
  REQUIRE(s.size() == 4);
  CHECK(s[0].name == "int8-dynamic");
  CHECK(s[1].name == "int4-weight-only-g128");
  CHECK(s[1].group_size == 128);
  CHECK(s[2].group_size == 32);
  CHECK(s[3].kind == Kind::SmoothQuant);
  CHECK(s[1].weight_only());
  CHECK_FALSE(s[0].weight_only());
  CHECK_THROWS_AS(parse("int8"), UsageError);
  CHECK_THROWS_AS(parse("int4-weight-only-g256"), UsageError);
  CHECK_THROWS_AS(parse("int4-weight-only-gx"), UsageError);
  CHECK_THROWS_AS(parse(""), UsageError);
  CHECK_THROWS_AS(parse("int8-static,,fp8-dynamic"), UsageError);
}

TEST_CASE("not_applicable follows torchao 0.18.0: Linear shapes, fp8 Conv2d/3d only, per tensor") {
  const Scheme int4 = parse("int4-weight-only-g64")[0], fp8 = parse("fp8-dynamic")[0],
               row = parse("fp8-dynamic-per-row")[0], dyn = parse("int8-dynamic")[0],
               st = parse("int8-static")[0];
  CHECK_FALSE(not_applicable(int4, 0, at::zeros({8, 128})));
  CHECK(not_applicable(int4, 0, at::zeros({8, 96})));
  CHECK_FALSE(not_applicable(fp8, 0, at::zeros({32, 16})));
  CHECK(not_applicable(fp8, 0, at::zeros({10, 16})));
  // torchao 0.18.0 takes a per-tensor 128x128 weight for 128x128 blocks and its matmul asserts; per row is fine.
  CHECK(not_applicable(fp8, 0, at::zeros({128, 128})));
  CHECK_FALSE(not_applicable(fp8, 0, at::zeros({256, 128})));
  CHECK_FALSE(not_applicable(fp8, 0, at::zeros({128, 256})));
  CHECK_FALSE(not_applicable(row, 0, at::zeros({128, 128})));
  CHECK_FALSE(not_applicable(fp8, 2, at::zeros({32, 16, 3, 3})));
  CHECK(not_applicable(fp8, 2, at::zeros({8, 16, 3, 3})));
  CHECK(not_applicable(fp8, 1, at::zeros({32, 16, 3})));
  CHECK(not_applicable(row, 2, at::zeros({32, 16, 3, 3})));
  CHECK(not_applicable(dyn, 2, at::zeros({32, 16, 3, 3})));
  CHECK_FALSE(not_applicable(st, 2, at::zeros({8, 3, 3, 3})));
}

TEST_CASE("int8 per row: symmetric, one scale amax / 127.5 per row, the row's extreme to 127 steps") {
  const at::Tensor w = at::tensor({1.0f, -0.5f, 0.25f, 0.0f, -2.0f, 2.0f, 0.0f, 0.0f}).reshape({2, 4});
  const at::Tensor q = int8_rows(w);
  const float s0 = 1.0f / 127.5f;
  CHECK(q[0][0].item<float>() == doctest::Approx(127 * s0));  // round(127.5) is 128, clamped to 127
  CHECK(q[0][3].item<float>() == 0.0f);
  // x * (1 / scale) is 127.5 only up to float32 rounding: the row's extreme lands on 127 (or -128 on an
  // exact tie), never beyond.
  CHECK(q[1][1].item<float>() == doctest::Approx(127 * 2.0f / 127.5f));
  CHECK(std::abs(q[1][0].item<float>() + 2.0f) <= 2.0f / 127.5f);
  CHECK(q[0][2].item<float>() == doctest::Approx(32 * s0));  // 0.25 * 127.5 = 31.875 -> 32
}

TEST_CASE("fp8: an all-zero row gives NaN, as torchao's scale 0 does") {
  const at::Tensor x = at::zeros({2, 16});
  CHECK(std::isnan(fp8_rows(x)[0][0].item<float>()));
}

TEST_CASE("round_to_e4m3fn: specials, subnormals, ties to even, saturation") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const at::Tensor x = at::tensor({0.0f, 1.0625f, 1.1875f, 448.0f, 470.0f, inf, -inf, std::ldexp(1.0f, -10),
                                   std::ldexp(1.5f, -10), std::ldexp(3.0f, -10), nan});
  const at::Tensor r = round_to_e4m3fn(x);
  CHECK(r[1].item<float>() == 1.0f);     // a tie between 1 and 1.125: to even
  CHECK(r[2].item<float>() == 1.25f);    // a tie between 1.125 and 1.25: to even
  CHECK(r[4].item<float>() == 448.0f);   // saturated
  CHECK(r[5].item<float>() == 448.0f);
  CHECK(r[6].item<float>() == -448.0f);
  CHECK(r[7].item<float>() == 0.0f);     // half the smallest subnormal 2^-9: to even (0)
  CHECK(r[8].item<float>() == std::ldexp(1.0f, -9));
  CHECK(r[9].item<float>() == std::ldexp(2.0f, -9));  // 1.5 * 2^-9: to even (2 * 2^-9)
  CHECK(std::isnan(r[10].item<float>()));
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 12)
  // Every 977th float32 bit pattern (4.4 million values, every binade, both signs) against the cast of
  // the LibTorch this test is built with (PyTorch 2.12 and later saturate the cast, as emulated).
  const at::Tensor bits = at::arange(-2147483648LL, 2147483647LL, 977, at::kLong).to(at::kInt);
  const at::Tensor v = bits.view(at::kFloat);
  const at::Tensor want = v.to(at::kFloat8_e4m3fn).to(at::kFloat);
  const at::Tensor got = round_to_e4m3fn(v);
  const at::Tensor same = at::eq(want, got).logical_or(at::isnan(want).logical_and(at::isnan(got)));
  CHECK(same.all().item<bool>());
#endif
}
